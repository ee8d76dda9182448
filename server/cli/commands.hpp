// The offline subcommands: options as parsed from the command line, and their entry points.
#pragma once

#include "server/input/snapshot_files.hpp"

#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::cli {

enum class Output : std::uint8_t { Text, Json };

struct AnalyzeOptions {
    input::SnapshotSource source;
    Output output = Output::Text;
    std::string fail_on = "error"; // error | warning | never
};

struct MatrixOptions {
    input::SnapshotSource source;
    Output output = Output::Text;
    std::string namespace_filter;
};

struct ReviewOptions {
    input::SnapshotSource source; // --snapshot paths
    std::string object_file;      // -f
    std::string request_file;     // --request
    std::string operation;        // empty: UPDATE if the snapshot has the object, else CREATE
    std::string mode = "enforce";
    bool dry_run = false;
};

// Each returns the process exit code: 0 ok, 1 findings at or above --fail-on / denied, 2 bad input.
int run_analyze(const AnalyzeOptions& options);
int run_matrix(const MatrixOptions& options);
int run_review(const ReviewOptions& options);

// Prints the LoadError or notices of a snapshot load to stderr.
void print_notices(const std::vector<std::string>& notices);

} // namespace mtlsguard::cli
