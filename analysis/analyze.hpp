// The engine's front door: whole-snapshot analysis and the client x server matrix.
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/model/snapshot.hpp"

#include <nlohmann/json.hpp>

namespace mtlsguard {

struct AnalysisResult {
    std::vector<conflict::Finding> findings; // sorted, messages filled in
    std::string internal_error;              // set only if the engine itself failed
};

// Every finding of the snapshot: flows from every client class to every service port, plus the
// per-object checks. A finding names at most `names_kept` client namespaces and counts the rest
// (FlowSummary::client_namespaces_omitted): what a caller that only counts findings, such as
// serve's metric, passes to keep a mesh-wide client list of thousands of names out of memory.
// Never throws.
AnalysisResult analyze(const model::Snapshot& snapshot,
                       std::size_t names_kept = static_cast<std::size_t>(-1)) noexcept;

struct MatrixRow {
    std::string client_namespace;
    bool client_sidecar = true;
    std::string client_dataplane = "sidecar"; // sidecar, none, ambient
    std::string host;
    std::uint16_t port = 0;
    std::uint16_t target_port = 0;
    std::string workload_namespace; // empty for external hosts
    std::string workload_name;
    std::string workload_dataplane; // sidecar, ambient, ambient-predicted, none
    std::string subset;
    std::string via_namespace; // the waypoint the flow goes through, if any
    std::string via_name;
    std::string bypass; // sidecar clients that skip their sidecar: the annotation (ambient.md §13)
    // The Sidecar resource that hides the host from the client (ambient.md §14): it sends
    // plaintext through the passthrough cluster. Rows of REGISTRY_ONLY clients are left out.
    std::string hidden_by_namespace;
    std::string hidden_by_name;
    std::string client;
    std::string server;
    std::string verdict;
    friend auto operator<=>(const MatrixRow&, const MatrixRow&) = default;
};

struct MatrixResult {
    std::vector<MatrixRow> rows; // sorted, unique
    std::string internal_error;
};

// What each client namespace sends to each service port and endpoint workload, with the verdict.
// `namespace_filter`: only rows whose client or service namespace is this one.
MatrixResult matrix(const model::Snapshot& snapshot,
                    const std::string& namespace_filter = {}) noexcept;

nlohmann::json matrix_json(const std::vector<MatrixRow>& rows);
std::string matrix_text(const std::vector<MatrixRow>& rows);

} // namespace mtlsguard
