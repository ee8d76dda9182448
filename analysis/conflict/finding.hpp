// A finding: a code, the object it is reported on, the objects it conflicts with, and the flow.
#pragma once

#include "analysis/conflict/codes.hpp"
#include "analysis/model/types.hpp"

#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::conflict {

struct WorkloadRef {
    std::string namespace_name;
    std::string name;
    friend auto operator<=>(const WorkloadRef&, const WorkloadRef&) = default;
};

// The traffic a conflict breaks, aggregated over the client namespaces that send it.
struct FlowSummary {
    std::vector<std::string> client_namespaces; // sorted
    // Admission keeps only the first names, those its messages show (FlowFindingCollector's
    // `names_kept`); the others are counted here. Always 0 in analyze's findings.
    std::size_t client_namespaces_omitted = 0;
    bool client_sidecar = true;
    std::string client_dataplane = "sidecar"; // sidecar, none, ambient (matrix clientDataplane)
    std::optional<WorkloadRef> via;           // the waypoint the flow goes through
    bool predicted_client = false; // ambient clients only predicted by labels (not in output)
    // The annotation by which these sidecar clients skip their sidecar (ambient.md §13), if any.
    std::string client_bypass;
    std::string host;
    std::uint16_t port = 0;
    std::uint16_t target_port = 0;
    std::optional<WorkloadRef> workload;
    std::string workload_dataplane; // sidecar, ambient, ambient-predicted, none
    std::string subset;
    std::string client; // PLAINTEXT, SIMPLE, MUTUAL, ISTIO_MUTUAL, HBONE
    std::string server; // STRICT, PERMISSIVE, DISABLE, NO_SIDECAR, UNKNOWN, AMBIENT_STRICT, ...
};

// What the message generator needs beyond the flow (e.g. the port key of MTG204).
struct Detail {
    std::string text; // a free-form fragment, already one line
    long number = 0;
};

struct Finding {
    Code code = Code::MTG206;
    Severity severity = Severity::Info;
    model::ObjectRef resource;
    std::vector<model::ObjectRef> related;
    std::optional<FlowSummary> flow;
    Detail detail;
    std::string message; // one line: what breaks, for whom, how to fix
};

// A total order: severity, code, resource, the flow, then what else tells findings apart.
bool finding_less(const Finding& a, const Finding& b) noexcept;

} // namespace mtlsguard::conflict
