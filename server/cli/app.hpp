// The command line: parses flags and dispatches to the subcommands.
#pragma once

namespace mtlsguard::cli {
// Runs the command line; returns the process exit code (0 ok, 1 findings/denied, 2 bad usage or
// input).
int run(int argc, char** argv) noexcept;
} // namespace mtlsguard::cli
