// The version string, the one fact the engine and the server share about the build.
#pragma once
#include <string_view>

namespace mtlsguard {
std::string_view version() noexcept;
} // namespace mtlsguard
