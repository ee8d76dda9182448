// The version string, the one fact the engine and the server share about the build.
#include "analysis/version.hpp"

namespace mtlsguard {
std::string_view version() noexcept {
    return "0.1.0";
}
} // namespace mtlsguard
