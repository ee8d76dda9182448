// The command line: parses flags and dispatches to the subcommands.
#include "server/cli/app.hpp"

#include <cstdio>

namespace mtlsguard::cli {
int run(int, char**) noexcept {
    std::fputs("mtls-guard: not yet\n", stderr);
    return 2;
}
} // namespace mtlsguard::cli
