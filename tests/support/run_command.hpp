// Runs a command (the mtls-guard binary or another tool) as a child process for tests: stdout,
// stderr, exit status, wall time and peak RSS.
#pragma once

#include "tests/support/files.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace mtlsguard::testing {

// `s` as one word for /bin/sh, whatever it holds.
inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// `program` and `args`, each quoted.
inline std::string command_line(const std::string& program, const std::vector<std::string>& args) {
    std::string command = shell_quote(program);
    for (const auto& a : args)
        command += " " + shell_quote(a);
    return command;
}

struct Run {
    int exit_code = -1; // -1 when killed by a signal
    int signal = 0;
    std::string out;
    std::string err;
    double seconds = 0;
    long max_rss_kib = 0; // peak resident set of the process
};

struct RunOptions {
    // stdin; /dev/null when not given, so that nothing waits on the test runner's terminal.
    std::optional<std::string> stdin_file;
    // Caps the address space (ulimit -v, KiB) so that a runaway allocation fails in the child
    // instead of exhausting the machine; 0: no cap.
    long memory_cap_kib = 0;
};

// Runs `command` through /bin/sh (stdin redirected from a file, stderr to a file), collecting
// stdout, the exit status, the wall time and the peak RSS of the child. Forked rather than
// popen()ed so that wait4 gives the child's resource use.
inline Run run_shell(const std::string& command, const RunOptions& options = {}) {
    static int counter = 0;
    const std::filesystem::path err_file =
        std::filesystem::temp_directory_path() /
        ("mtls-guard-test-stderr-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    std::string line;
#ifndef MTLS_GUARD_SANITIZED
    // The sanitizers reserve terabytes of address space up front.
    if (options.memory_cap_kib > 0)
        line += "ulimit -v " + std::to_string(options.memory_cap_kib) + " && ";
#endif
    line += command;
    if (options.stdin_file)
        line += " < " + shell_quote(*options.stdin_file);
    else
        line += " < /dev/null";
    line += " 2>" + shell_quote(err_file.string());

    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::close(fds[0]);
        ::close(fds[1]);
        ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(fds[1]);
    Run result;
    char buffer[65536];
    ssize_t n = 0;
    while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0)
        result.out.append(buffer, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    rusage usage{};
    REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.max_rss_kib = usage.ru_maxrss;
    if (WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.signal = WTERMSIG(status);
    result.err = slurp(err_file);
    std::error_code ignored;
    std::filesystem::remove(err_file, ignored);
    return result;
}

#ifdef MTLS_GUARD_BINARY
// The mtls-guard binary of this build with `args`. exec: the shell gives way to the binary, so
// the exit status and the peak RSS are the binary's own.
inline Run run(const std::vector<std::string>& args, const RunOptions& options = {}) {
    return run_shell("exec " + command_line(MTLS_GUARD_BINARY, args), options);
}
#endif

} // namespace mtlsguard::testing
