// Turns flows that carry a code into findings, aggregated over the client namespaces that send
// them.
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/conflict/flows.hpp"

#include <map>
#include <set>

namespace mtlsguard::conflict {

// The objects a flow's finding is reported on, with the other side in `related` (spec: reported on
// both a server-side object and a DestinationRule when both are involved).
struct Attribution {
    model::ObjectRef resource;
    std::vector<model::ObjectRef> related;
};
std::vector<Attribution> attribute(const Flow& flow);

// The client namespaces (names, sorted) that send a flow.
std::vector<NsId> client_namespaces(const resolution::ConfigView& view, const FlowClients& who);

class FlowFindingCollector {
  public:
    explicit FlowFindingCollector(const resolution::ConfigView& view) : view_(view) {}
    // Records the flow if it carries a code.
    void add(const Flow& flow, const FlowClients& who);
    // Records the flow as sent by exactly these client namespaces.
    void add_for(const Flow& flow, const std::vector<NsId>& namespaces);
    std::vector<Finding> take();

  private:
    using Key = std::tuple<Code, model::ObjectRef, std::vector<model::ObjectRef>, std::string,
                           std::uint16_t, std::uint16_t, std::optional<WorkloadRef>, std::string,
                           bool, std::string, std::string>;
    const std::vector<NsId>& members(const FlowClients& who);

    const resolution::ConfigView& view_;
    std::map<Key, std::pair<Finding, std::set<NsId>>> findings_;
    const resolution::HostClients* cached_host_ = nullptr;
    std::map<const resolution::ClientOutcome*, std::vector<NsId>> cache_;
};

} // namespace mtlsguard::conflict
