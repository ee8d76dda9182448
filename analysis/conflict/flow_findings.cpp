// Turns flows that carry a code into findings, aggregated over the client namespaces that send
// them.
#include "analysis/conflict/flow_findings.hpp"

namespace mtlsguard::conflict {

std::vector<Attribution> attribute(const Flow& flow) {
    std::optional<model::ObjectRef> rule;
    if (const auto* dr = deciding_rule(flow))
        rule = dr->ref;
    std::optional<model::ObjectRef> server;
    if (flow.server_mode.peer_authentication)
        server = flow.server_mode.peer_authentication->ref;
    else if (flow.server_mode.alpha_policy)
        server = flow.server_mode.alpha_policy->ref;
    std::optional<model::ObjectRef> cause;
    if (flow.decision.auto_cause)
        cause = flow.decision.auto_cause->ref;
    else if (flow.decision.auto_alpha_cause)
        cause = flow.decision.auto_alpha_cause->ref;
    if (cause && server && *cause == *server)
        cause.reset();

    std::vector<Attribution> out;
    if (rule && server) {
        out.push_back(Attribution{*rule, {*server}});
        out.push_back(Attribution{*server, {*rule}});
        return out;
    }
    std::vector<model::ObjectRef> related;
    if (cause)
        related.push_back(*cause);
    if (rule)
        out.push_back(Attribution{*rule, related});
    else if (server)
        out.push_back(Attribution{*server, related});
    else if (flow.service)
        out.push_back(Attribution{flow.service->service.ref, related});
    else if (flow.external)
        out.push_back(Attribution{flow.external->ref, related});
    return out;
}

std::vector<NsId> client_namespaces(const resolution::ConfigView& view, const FlowClients& who) {
    if (!who.outcome)
        return view.non_mesh_client_namespaces();
    std::vector<NsId> out;
    for (const auto& member : resolution::expand_members(view, *who.outcome, *who.host_clients))
        if (out.empty() || out.back() != member.ns)
            out.push_back(member.ns);
    return out;
}

const std::vector<NsId>& FlowFindingCollector::members(const FlowClients& who) {
    if (cached_host_ != who.host_clients) {
        cache_.clear();
        cached_host_ = who.host_clients;
    }
    auto it = cache_.find(who.outcome);
    if (it == cache_.end())
        it = cache_.emplace(who.outcome, client_namespaces(view_, who)).first;
    return it->second;
}

void FlowFindingCollector::add(const Flow& flow, const FlowClients& who) {
    if (!flow.code)
        return;
    add_for(flow, members(who));
}

void FlowFindingCollector::add_for(const Flow& flow, const std::vector<NsId>& namespaces) {
    if (!flow.code || namespaces.empty())
        return; // nobody sends this traffic
    std::optional<WorkloadRef> workload;
    if (flow.workload)
        workload = WorkloadRef{view_.namespace_name(flow.workload->ns), flow.workload->name};
    const std::string subset = flow.subset ? flow.subset->name : std::string();
    const std::string client(resolution::to_string(flow.send));
    const std::string server(resolution::to_string(flow.server));
    for (auto& attribution : attribute(flow)) {
        Key key{*flow.code,
                attribution.resource,
                attribution.related,
                std::string(flow.host),
                flow.port,
                flow.target_port,
                workload,
                subset,
                flow.client_sidecar,
                client,
                server};
        auto [it, inserted] = findings_.try_emplace(std::move(key));
        auto& [finding, clients] = it->second;
        if (inserted) {
            finding.code = *flow.code;
            finding.severity = severity_of(*flow.code);
            finding.resource = std::move(attribution.resource);
            finding.related = std::move(attribution.related);
            FlowSummary summary;
            summary.client_sidecar = flow.client_sidecar;
            summary.host = std::string(flow.host);
            summary.port = flow.port;
            summary.target_port = flow.target_port;
            summary.workload = workload;
            summary.subset = subset;
            summary.client = client;
            summary.server = server;
            finding.flow = std::move(summary);
        }
        clients.insert(namespaces.begin(), namespaces.end());
    }
}

std::vector<Finding> FlowFindingCollector::take() {
    std::vector<Finding> out;
    out.reserve(findings_.size());
    for (auto& [key, entry] : findings_) {
        auto& [finding, clients] = entry;
        for (NsId ns : clients)
            finding.flow->client_namespaces.push_back(view_.namespace_name(ns));
        std::sort(finding.flow->client_namespaces.begin(), finding.flow->client_namespaces.end());
        out.push_back(std::move(finding));
    }
    findings_.clear();
    return out;
}

} // namespace mtlsguard::conflict
