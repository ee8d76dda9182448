// A finding: a code, the object it is reported on, the objects it conflicts with, and the flow.
#include "analysis/conflict/finding.hpp"

#include <tuple>

namespace mtlsguard::conflict {

bool finding_less(const Finding& a, const Finding& b) noexcept {
    auto flow_key = [](const Finding& f) {
        return f.flow ? std::make_tuple(f.flow->host, f.flow->port, f.flow->workload,
                                        f.flow->subset, !f.flow->client_sidecar,
                                        f.flow->client_dataplane, f.flow->via, f.flow->client)
                      : std::make_tuple(std::string(), std::uint16_t{0},
                                        std::optional<WorkloadRef>(), std::string(), false,
                                        std::string(), std::optional<WorkloadRef>(), std::string());
    };
    auto head = [](const Finding& f) {
        return std::tie(f.severity, f.code, f.resource.kind, f.resource.namespace_name,
                        f.resource.name, f.resource.api_version);
    };
    // Last, what tells apart findings alike in all the above (routes of one VirtualService to one
    // subset, failing for other client namespaces with other rules): without it their order
    // would follow where their rules happen to sit in memory.
    static const std::vector<std::string> no_namespaces;
    auto tail = [](const Finding& f) {
        return std::tie(f.detail.text, f.related,
                        f.flow ? f.flow->client_namespaces : no_namespaces, f.message);
    };
    return head(a) < head(b) ||
           (head(a) == head(b) &&
            (flow_key(a) < flow_key(b) || (flow_key(a) == flow_key(b) && tail(a) < tail(b))));
}

} // namespace mtlsguard::conflict
