// Every flow from client classes to service ports and endpoint workloads, with its verdict (spec
// §6).
#include "analysis/conflict/flows.hpp"

namespace mtlsguard::conflict {

using resolution::ServerMode;

std::string_view to_string(Verdict verdict) noexcept {
    switch (verdict) {
    case Verdict::Mtls:
        return "MTLS";
    case Verdict::Plaintext:
        return "PLAINTEXT";
    case Verdict::Fail:
        return "FAIL";
    case Verdict::Depends:
        return "DEPENDS";
    }
    return "DEPENDS";
}

Verdict verdict_of(ClientSend send, ServerAccept server) noexcept {
    if (server == ServerAccept::Unknown)
        return send == ClientSend::Plaintext ? Verdict::Plaintext : Verdict::Depends;
    switch (send) {
    case ClientSend::Plaintext:
        return server == ServerAccept::Strict ? Verdict::Fail : Verdict::Plaintext;
    case ClientSend::Simple:
        return server == ServerAccept::Strict ? Verdict::Fail : Verdict::Depends;
    case ClientSend::Mutual:
        return Verdict::Depends;
    case ClientSend::IstioMutual:
        return server == ServerAccept::Strict || server == ServerAccept::Permissive ? Verdict::Mtls
                                                                                    : Verdict::Fail;
    }
    return Verdict::Depends;
}

std::optional<Code> code_of(bool client_sidecar, ClientSend send, ServerAccept server,
                            bool mesh_external) noexcept {
    if (server == ServerAccept::Unknown)
        return std::nullopt;
    // Originating TLS to an external host is the point of a SIMPLE/MUTUAL rule; Istio mTLS is not.
    if (mesh_external)
        return send == ClientSend::IstioMutual ? std::optional<Code>(Code::MTG103) : std::nullopt;
    const bool strict = server == ServerAccept::Strict;
    switch (send) {
    case ClientSend::Plaintext:
        if (!strict)
            return std::nullopt;
        return client_sidecar ? Code::MTG101 : Code::MTG203;
    case ClientSend::Simple:
        return strict ? Code::MTG104 : Code::MTG202;
    case ClientSend::Mutual:
        return strict ? Code::MTG201 : Code::MTG202;
    case ClientSend::IstioMutual:
        if (server == ServerAccept::Disable)
            return Code::MTG102;
        if (server == ServerAccept::NoSidecar)
            return Code::MTG103;
        return std::nullopt;
    }
    return std::nullopt;
}

namespace {

struct Endpoint {
    const model::Workload* workload;
    std::uint16_t target_port;
    ServerMode mode;
};

void finish(Flow& flow, bool mesh_external) {
    flow.verdict = verdict_of(flow.send, flow.server);
    flow.code = code_of(flow.client_sidecar, flow.send, flow.server, mesh_external);
}

} // namespace

void evaluate_service(const resolution::ConfigView& view, model::ServiceId id,
                      const FlowSink& sink) {
    const model::ServiceRecord& service = view.snapshot().services()[id];
    if (!service.analysed_as_server || !service.service.selector)
        return;
    const auto& workloads = view.snapshot().workloads();
    const bool non_mesh = !view.non_mesh_client_namespaces().empty();
    resolution::HostClients scratch;
    const auto& clients = view.service_clients(id, scratch);

    std::vector<Endpoint> endpoints;
    for (const auto& port : service.service.ports) {
        if (!port.tcp)
            continue;
        endpoints.clear();
        for (model::WorkloadId wid : service.endpoints) {
            const auto& w = workloads[wid];
            const std::uint16_t target = resolution::target_port_of(w, port);
            if (target == 0)
                continue; // a named port the pod does not declare: not an endpoint
            endpoints.push_back(Endpoint{
                &w, target, resolution::effective_server_mode(view, w, target, service, port)});
        }
        if (endpoints.empty())
            continue;

        Flow flow;
        flow.service = &service;
        flow.host = service.host;
        flow.port = port.port;
        for (const auto& outcome : clients.outcomes) {
            const FlowClients who{&clients, &outcome, id};
            flow.rule = outcome.rule;
            flow.client_sidecar = true;
            flow.subset = nullptr;
            const resolution::SidecarClientTls base(view, service, port, outcome.rule, nullptr);
            for (const auto& ep : endpoints) {
                flow.workload = ep.workload;
                flow.target_port = ep.target_port;
                flow.decision = base.for_endpoint(*ep.workload, ep.target_port);
                flow.send = flow.decision.send;
                flow.server_mode = ep.mode;
                flow.server = ep.mode.accept;
                finish(flow, false);
                sink(flow, who);
            }
            if (!outcome.rule)
                continue;
            for (const model::Subset* subset : outcome.rule->subsets) {
                if (!subset->traffic_policy)
                    continue; // same as the service-level cluster
                const auto mine = resolution::cluster_tls(outcome.rule, port.port, subset);
                const auto parent = resolution::cluster_tls(outcome.rule, port.port, nullptr);
                if (mine.cluster == parent.cluster &&
                    mine.endpoint_marking == parent.endpoint_marking &&
                    mine.passthrough == parent.passthrough)
                    continue; // the subset changes nothing about TLS
                const resolution::SidecarClientTls tls(view, service, port, outcome.rule, subset);
                flow.subset = subset;
                for (const auto& ep : endpoints) {
                    if (!subset->labels.subset_of(ep.workload->labels))
                        continue;
                    flow.workload = ep.workload;
                    flow.target_port = ep.target_port;
                    flow.decision = tls.for_endpoint(*ep.workload, ep.target_port);
                    flow.send = flow.decision.send;
                    flow.server_mode = ep.mode;
                    flow.server = ep.mode.accept;
                    finish(flow, false);
                    sink(flow, who);
                }
            }
        }
        if (!non_mesh)
            continue;
        // Clients without a sidecar always send plaintext; DestinationRules do not apply to them.
        flow.rule = nullptr;
        flow.subset = nullptr;
        flow.client_sidecar = false;
        flow.decision = resolution::SendDecision{};
        flow.send = ClientSend::Plaintext;
        for (const auto& ep : endpoints) {
            flow.workload = ep.workload;
            flow.target_port = ep.target_port;
            flow.server_mode = ep.mode;
            flow.server = ep.mode.accept;
            finish(flow, false);
            sink(flow, FlowClients{&clients, nullptr, id});
        }
    }
}

void evaluate_external_host(const resolution::ConfigView& view, std::size_t index,
                            const FlowSink& sink) {
    const model::ExternalHost& host = view.snapshot().external_hosts()[index];
    if (!host.mesh_external || host.host.find('*') != std::string::npos)
        return;
    resolution::HostClients scratch;
    const auto& clients = view.external_clients(index, scratch);
    std::vector<std::uint16_t> ports = host.ports;
    if (ports.empty())
        ports.push_back(0);
    Flow flow;
    flow.external = &host;
    flow.host = host.host;
    flow.server = ServerAccept::NoSidecar;
    for (std::uint16_t port : ports) {
        flow.port = port;
        flow.target_port = port;
        for (const auto& outcome : clients.outcomes) {
            flow.rule = outcome.rule;
            const auto tls = resolution::cluster_tls(outcome.rule, port, nullptr);
            // Auto mTLS never applies to MESH_EXTERNAL hosts; TLS istiod drops is plaintext.
            const auto drop = resolution::dropped_tls(tls, outcome.rule, view.version());
            flow.decision = resolution::SendDecision{
                tls.cluster && drop == resolution::TlsDrop::None ? resolution::send_of(*tls.cluster)
                                                                 : ClientSend::Plaintext,
                tls.cluster.has_value(), nullptr, nullptr, drop};
            flow.send = flow.decision.send;
            finish(flow, true);
            sink(flow, FlowClients{&clients, &outcome,
                                   external_target | static_cast<std::uint32_t>(index)});
        }
    }
}

const model::DestinationRule* deciding_rule(const Flow& flow) noexcept {
    if (!flow.decision.by_rule || !flow.rule)
        return nullptr;
    if (flow.subset) {
        for (const auto* member : flow.rule->members)
            for (const auto& s : member->subsets)
                if (&s == flow.subset)
                    return member;
    }
    return flow.rule->policy_source ? flow.rule->policy_source : flow.rule->members.front();
}

} // namespace mtlsguard::conflict
