// Every flow from client classes to service ports and endpoint workloads, with its verdict (spec
// §6).
#include "analysis/conflict/flows.hpp"

#include "analysis/resolution/ambient.hpp"
#include "analysis/resolution/sidecar.hpp"
#include "analysis/resolution/virtual_service.hpp"

#include <algorithm>
#include <deque>

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

std::string_view to_string(ClientKind kind) noexcept {
    switch (kind) {
    case ClientKind::Sidecar:
    case ClientKind::SidecarBypass:
        return "sidecar";
    case ClientKind::NonMesh:
    case ClientKind::ApiServer:
        return "none";
    case ClientKind::Ambient:
    case ClientKind::AmbientPredicted:
        return "ambient";
    }
    return "none";
}

Verdict verdict_of(ClientSend send, ServerAccept server, ClientSend inner) noexcept {
    if (server == ServerAccept::Unknown)
        return send == ClientSend::Plaintext ? Verdict::Plaintext : Verdict::Depends;
    const bool ambient = resolution::is_ambient(server);
    switch (send) {
    case ClientSend::Plaintext:
        return server == ServerAccept::Strict || server == ServerAccept::AmbientStrict
                   ? Verdict::Fail
                   : Verdict::Plaintext;
    case ClientSend::Simple:
        return server == ServerAccept::Strict || server == ServerAccept::AmbientStrict
                   ? Verdict::Fail
                   : Verdict::Depends;
    case ClientSend::Mutual:
        // ztunnel never terminates TLS on its plaintext port: no principal, even with mesh certs.
        return server == ServerAccept::AmbientStrict ? Verdict::Fail : Verdict::Depends;
    case ClientSend::IstioMutual:
        // Legacy Istio mTLS is not HBONE: ztunnel denies it (STRICT) or hands it to the app.
        if (ambient)
            return Verdict::Fail;
        return server == ServerAccept::Strict || server == ServerAccept::Permissive ? Verdict::Mtls
                                                                                    : Verdict::Fail;
    case ClientSend::Hbone:
        // HBONE is sent only to what takes it, and always carries a mesh identity.
        return inner == ClientSend::Plaintext ? Verdict::Mtls : Verdict::Depends;
    }
    return Verdict::Depends;
}

std::optional<Code> code_of(ClientKind client, ClientSend send, ServerAccept server,
                            bool mesh_external, ClientSend inner) noexcept {
    if (server == ServerAccept::Unknown)
        return std::nullopt;
    // Originating TLS to an external host is the point of a SIMPLE/MUTUAL rule; Istio mTLS is not.
    if (mesh_external)
        return send == ClientSend::IstioMutual ? std::optional<Code>(Code::MTG103) : std::nullopt;
    if (send == ClientSend::Hbone)
        return inner == ClientSend::Plaintext ? std::nullopt : std::optional<Code>(Code::MTG202);
    // The API server's own TLS reaches the app only where nothing demands Istio mTLS (§16).
    if (client == ClientKind::ApiServer)
        return send == ClientSend::Plaintext &&
                       (server == ServerAccept::Strict || server == ServerAccept::AmbientStrict)
                   ? std::optional<Code>(Code::MTG108)
                   : std::nullopt;
    if (resolution::is_ambient(server)) {
        const bool strict = server == ServerAccept::AmbientStrict;
        switch (send) {
        case ClientSend::Plaintext:
            if (!strict)
                return std::nullopt;
            return client == ClientKind::NonMesh ? Code::MTG203 : Code::MTG106;
        case ClientSend::Simple:
            return strict ? Code::MTG104 : Code::MTG202;
        case ClientSend::Mutual:
            return strict ? Code::MTG106 : Code::MTG202;
        case ClientSend::IstioMutual:
            return Code::MTG106;
        case ClientSend::Hbone:
            return std::nullopt;
        }
        return std::nullopt;
    }
    const bool strict = server == ServerAccept::Strict;
    switch (send) {
    case ClientSend::Plaintext:
        if (!strict)
            return std::nullopt;
        switch (client) {
        case ClientKind::Sidecar:
        case ClientKind::SidecarBypass:
            return Code::MTG101;
        case ClientKind::NonMesh:
            return Code::MTG203;
        case ClientKind::Ambient:
        case ClientKind::AmbientPredicted:
            return Code::MTG105;
        case ClientKind::ApiServer:
            return Code::MTG108;
        }
        return std::nullopt;
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
    case ClientSend::Hbone:
        return std::nullopt;
    }
    return std::nullopt;
}

namespace {

// The code of a flow whose clients send `send` (`inner` inside HBONE) to a port accepting
// `server`; none for hosts a Sidecar hides.
std::optional<Code> code_for(const Flow& flow, ClientSend send, ServerAccept server,
                             bool mesh_external, ClientSend inner) {
    return flow.hidden_by ? std::nullopt : code_of(flow.client, send, server, mesh_external, inner);
}

void finish(Flow& flow, bool mesh_external) {
    flow.verdict = verdict_of(flow.send, flow.server, flow.decision.inner);
    flow.code = code_for(flow, flow.send, flow.server, mesh_external, flow.decision.inner);
}

// Marks a flow as one to a host the clients' Sidecar hides (ambient.md §14), or not.
void set_hidden(const resolution::ConfigView& view, Flow& flow, const model::Sidecar* hidden_by) {
    flow.hidden_by = hidden_by;
    flow.dropped = hidden_by && resolution::outbound_policy(view, *hidden_by) ==
                                    model::OutboundPolicy::RegistryOnly;
}

// What a flow was in the earlier view: its clients sent `then` to a port accepting `server`.
// Apart from emit(), which runs for every flow and is best kept small enough to inline.
void note_earlier(Flow& flow, ServerAccept server, const resolution::SendDecision& then) {
    flow.earlier.known = true;
    flow.earlier.verdict = verdict_of(then.send, server, then.inner);
    flow.earlier.coded = code_for(flow, then.send, server, false, then.inner).has_value();
}

// Fills in the endpoint's side of a flow and its decision, then hands it on. `earlier_decision`:
// what the clients sent in the earlier view, when that differs from `decision` (auto mTLS).
void emit(Flow& flow, const Endpoint& ep, const resolution::SendDecision& decision,
          const FlowClients& who, const FlowSink& sink,
          const resolution::SendDecision* earlier_decision = nullptr) {
    flow.workload = ep.workload;
    flow.target_port = ep.target_port;
    flow.decision = decision;
    flow.send = decision.send;
    flow.server_mode = ep.mode;
    flow.server = ep.mode.accept;
    flow.predicted =
        flow.client == ClientKind::AmbientPredicted ||
        (ep.workload->dataplane == model::Dataplane::Ambient && ep.workload->ambient_predicted);
    finish(flow, false);
    if (ep.earlier)
        note_earlier(flow, *ep.earlier, earlier_decision ? *earlier_decision : decision);
    sink(flow, who);
}

// The VirtualService routes to subsets of one service, and the namespace lists of subset flows
// (kept for the whole evaluation: FlowClients point at them).
class SubsetRouting {
  public:
    SubsetRouting(const resolution::ConfigView& view, const std::string& host)
        : view_(view), host_(host) {}
    // Looked up on first use: most services have no subset with TLS of its own to route to.
    const std::vector<resolution::HostRoute>& routes() {
        if (!routes_)
            routes_ = resolution::subset_routes_to(view_, host_);
        return *routes_;
    }
    std::deque<std::vector<NsId>> routed;

  private:
    const resolution::ConfigView& view_;
    const std::string& host_;
    std::optional<std::vector<resolution::HostRoute>> routes_;
};

// Whether some subset of the rule has a trafficPolicy: else its clusters are the service's.
bool has_subset_tls(const model::ConsolidatedRule& rule) noexcept {
    return std::any_of(rule.subsets.begin(), rule.subsets.end(), [](const model::Subset* subset) {
        return subset->traffic_policy.has_value();
    });
}

// Sidecar clients of one DestinationRule outcome: the service-level cluster, then each subset
// whose own TLS differs from it, for the clients a VirtualService route sends there (ambient.md
// §15: a subset no route uses carries no traffic).
// `earlier`: the earlier view, whose auto mTLS the flows also report (evaluate_service).
void sidecar_flows(const resolution::ConfigView& view, const model::ServiceRecord& service,
                   const model::ServicePort& port, const std::vector<Endpoint>& endpoints,
                   const resolution::ClientOutcome& outcome, const FlowClients& who, Flow& flow,
                   const FlowSink& sink, SubsetRouting& routing,
                   const resolution::ConfigView* earlier) {
    flow.rule = outcome.rule;
    flow.client = ClientKind::Sidecar;
    flow.via.reset();
    flow.subset = nullptr;
    set_hidden(view, flow, outcome.hidden_by);
    if (outcome.hidden_by) {
        // No cluster for the host: the passthrough cluster, which has no TLS at all.
        for (const auto& ep : endpoints)
            emit(flow, ep, resolution::SendDecision{}, who, sink);
        return;
    }
    // What the clients send to one endpoint through `tls`, then emits it with what they sent in
    // the earlier view through `earlier_tls`.
    const auto send = [&](const Endpoint& ep, const resolution::SidecarClientTls& tls,
                          const std::optional<resolution::SidecarClientTls>& earlier_tls,
                          const FlowClients& senders) {
        const auto now = tls.for_endpoint(*ep.workload, ep.target_port, ep.peer);
        if (!earlier_tls)
            return emit(flow, ep, now, senders, sink);
        const auto then = earlier_tls->for_endpoint(*ep.workload, ep.target_port, ep.earlier_peer);
        emit(flow, ep, now, senders, sink, &then);
    };
    const auto tls_in = [&](const resolution::ConfigView* v, const model::Subset* subset) {
        std::optional<resolution::SidecarClientTls> out;
        if (v)
            out.emplace(*v, service, port, outcome.rule, subset);
        return out;
    };
    const resolution::SidecarClientTls base(view, service, port, outcome.rule, nullptr);
    const auto earlier_base = tls_in(earlier, nullptr);
    for (const auto& ep : endpoints)
        send(ep, base, earlier_base, who);
    if (!outcome.rule || !has_subset_tls(*outcome.rule) || routing.routes().empty())
        return;
    std::optional<std::vector<NsId>> members; // the outcome's namespaces, expanded when needed
    for (const model::Subset* subset : outcome.rule->subsets) {
        if (!subset->traffic_policy)
            continue; // same as the service-level cluster
        const auto mine = resolution::cluster_tls(outcome.rule, port.port, subset);
        const auto parent = resolution::cluster_tls(outcome.rule, port.port, nullptr);
        if (mine.cluster == parent.cluster && mine.endpoint_marking == parent.endpoint_marking &&
            mine.passthrough == parent.passthrough)
            continue; // the subset changes nothing about TLS
        if (routing.routes().empty())
            return; // no route sends anyone to any subset
        if (!members)
            members = resolution::outcome_namespaces(view, outcome, *who.host_clients);
        auto routed = resolution::routed_namespaces(view, routing.routes(), subset->name, port.port,
                                                    *members);
        if (routed.empty())
            continue; // no route sends these clients there
        FlowClients routed_who = who;
        routed_who.routed = &routing.routed.emplace_back(std::move(routed));
        const resolution::SidecarClientTls tls(view, service, port, outcome.rule, subset);
        const auto earlier_tls = tls_in(earlier, subset);
        flow.subset = subset;
        for (const auto& ep : endpoints)
            if (subset->labels.subset_of(ep.workload->labels))
                send(ep, tls, earlier_tls, routed_who);
    }
}

// The flows of every sidecar client outcome of a service port (but those `options` skip).
void every_sidecar_flow(const resolution::ConfigView& view, const model::ServiceRecord& service,
                        const model::ServicePort& port, const std::vector<Endpoint>& endpoints,
                        const std::vector<const resolution::ClientOutcome*>& outcomes,
                        const resolution::HostClients& clients, model::ServiceId id, Flow& flow,
                        const FlowSink& sink, SubsetRouting& routing,
                        const EvaluateOptions& options) {
    for (const auto* outcome : outcomes)
        if (!options.skip_hidden || !outcome->hidden_by)
            sidecar_flows(view, service, port, endpoints, *outcome,
                          FlowClients{&clients, outcome, ClientKind::Sidecar, id}, flow, sink,
                          routing, options.earlier);
}

// Ambient clients (ambient.md §12): ztunnel straight to the endpoint, or through the waypoint of
// the service (or of the endpoint), which applies the DestinationRule its own namespace sees.
void ambient_flows(const resolution::ConfigView& view, const model::ServiceRecord& service,
                   const model::ServicePort& port, const std::vector<Endpoint>& endpoints,
                   const FlowClients& who, Flow& flow, const FlowSink& sink) {
    flow.client = who.kind;
    flow.subset = nullptr;
    set_hidden(view, flow, nullptr); // ztunnel and waypoints ignore Sidecar resources
    for (const auto& ep : endpoints) {
        flow.via = resolution::waypoint_for(view, service, *ep.workload);
        flow.rule = nullptr;
        if (!flow.via) {
            emit(flow, ep, resolution::ztunnel_send(view, *ep.workload), who, sink);
            continue;
        }
        if (auto waypoint_ns = view.namespace_id(flow.via->namespace_name))
            flow.rule =
                resolution::rule_for_namespace(view, service.host, service.ns, *waypoint_ns);
        emit(flow, ep, resolution::waypoint_send(view, flow.rule, port.port, *ep.workload), who,
             sink);
    }
}

// Sidecar clients whose pods let this destination skip the sidecar (ambient.md §13): the
// application's bytes, straight to the pod. Headless services are dialled at the pod, on the
// target port.
void bypass_flows(const resolution::ConfigView& view, const model::ServiceRecord& service,
                  const model::ServicePort& port, const std::vector<Endpoint>& endpoints,
                  const FlowClients& who, Flow& flow, const FlowSink& sink,
                  SubsetRouting& routing) {
    const auto& bypassing = view.outbound_bypass_clients();
    flow.rule = nullptr;
    flow.subset = nullptr;
    flow.via.reset();
    // The pod's traffic skips its sidecar (ambient.md §13): no Sidecar resource hides the host
    // from it or drops it under REGISTRY_ONLY.
    flow.hidden_by = nullptr;
    flow.dropped = false;
    flow.client = ClientKind::SidecarBypass;
    const bool headless = service.service.headless;
    const auto address = headless ? std::nullopt : service.service.cluster_ipv4;
    for (const auto& ep : endpoints) {
        std::vector<NsId> namespaces;
        std::string_view reason;
        for (model::WorkloadId id : bypassing) {
            const auto& client = view.workload(id);
            const auto why = resolution::outbound_bypass(
                client.interception, headless ? ep.target_port : port.port, address);
            if (!why)
                continue;
            if (reason.empty())
                reason = *why;
            namespaces.push_back(client.ns);
        }
        if (namespaces.empty())
            continue;
        std::sort(namespaces.begin(), namespaces.end());
        namespaces.erase(std::unique(namespaces.begin(), namespaces.end()), namespaces.end());
        FlowClients bypass_who = who;
        bypass_who.routed = &routing.routed.emplace_back(std::move(namespaces));
        flow.bypass = reason;
        emit(flow, ep, resolution::SendDecision{}, bypass_who, sink);
    }
    flow.bypass = {};
}

// The API server (ambient.md §16): its own TLS, straight to the pod, like a client without a
// proxy; only to the ports its callees name.
void api_server_flows(const std::vector<model::ApiServerCallRef>& calls,
                      const std::vector<Endpoint>& endpoints, const FlowClients& who, Flow& flow,
                      const FlowSink& sink) {
    flow.rule = nullptr;
    flow.subset = nullptr;
    flow.via.reset();
    flow.hidden_by = nullptr;
    flow.dropped = false;
    flow.client = ClientKind::ApiServer;
    flow.api_server_calls = &calls;
    for (const auto& ep : endpoints)
        emit(flow, ep, resolution::SendDecision{}, who, sink);
    flow.api_server_calls = nullptr;
}

// Whether some client whose pods skip their sidecar for some destinations runs in `sender` (any
// namespace without `sender`).
bool bypass_from(const resolution::ConfigView& view, std::optional<NsId> sender) {
    const auto& bypassing = view.outbound_bypass_clients();
    if (!sender)
        return !bypassing.empty();
    return std::any_of(bypassing.begin(), bypassing.end(),
                       [&](model::WorkloadId id) { return view.workload(id).ns == *sender; });
}

// Whether the outcome has a class of the namespace `ns` (`resolved`: whether the host's clients
// have an answer of their own for `ns`). Only namespaces with an answer of their own are listed
// as members; the generic members (expand_members) are every other mesh client namespace, one
// class per selector variant.
bool in_outcome(const resolution::ConfigView& view, const resolution::ClientOutcome& outcome,
                bool resolved, NsId ns) {
    if (!resolved)
        return outcome.generic && view.is_mesh_client(ns) && !view.config(ns).variants.empty();
    return std::any_of(outcome.members.begin(), outcome.members.end(),
                       [ns](const resolution::ClientClass& c) { return c.ns == ns; });
}

// The host an evaluation is about, as the Sidecar check needs it.
struct Target {
    const std::string& host;
    NsId ns;
};

// The outcomes with a class of `sender` whose flows can carry a code. A client class that a
// Sidecar hides the host from is in that Sidecar's outcome, whose flows carry none (ambient.md
// §14): when all of `sender`'s are, there is nothing to evaluate. A host's outcomes can number one
// per Sidecar of the mesh, so they are searched only when needed.
std::vector<const resolution::ClientOutcome*> outcomes_of(const resolution::ConfigView& view,
                                                          const resolution::HostClients& clients,
                                                          const Target& target, NsId sender) {
    const auto& variants = view.config(sender).variants;
    if (!clients.answers_for(sender)) {
        if (!view.is_mesh_client(sender) || variants.empty())
            return {};
        if (!clients.generic)
            return {};
        return {&clients.outcomes[*clients.generic]};
    }
    const std::string_view host_ns = target.ns < view.namespace_count()
                                         ? std::string_view(view.namespace_name(target.ns))
                                         : std::string_view();
    bool all_hidden = true;
    for (std::size_t v = 0; v < variants.size() && all_hidden; ++v) {
        const model::Sidecar* sidecar = resolution::sidecar_of(view, sender, v);
        all_hidden = sidecar && !resolution::sidecar_imports(*sidecar, view.namespace_name(sender),
                                                             target.host, host_ns);
    }
    if (all_hidden)
        return {};
    std::vector<const resolution::ClientOutcome*> out;
    clients.for_each_outcome([&](const resolution::ClientOutcome& outcome) {
        if (in_outcome(view, outcome, true, sender))
            out.push_back(&outcome);
    });
    return out;
}

// The sidecar client outcomes whose flows to evaluate: all, or those of `sender`; with
// `skip_hidden`, none a Sidecar hides the host from (EvaluateOptions::skip_hidden).
std::vector<const resolution::ClientOutcome*>
outcomes_from(const resolution::ConfigView& view, const resolution::HostClients& clients,
              const Target& target, std::optional<NsId> sender, bool skip_hidden) {
    if (sender)
        return outcomes_of(view, clients, target, *sender);
    std::vector<const resolution::ClientOutcome*> out;
    if (skip_hidden) {
        // The Sidecar outcomes `hidden` marks are all hidden ones: not even read. At Kubernetes'
        // limit a host has about 1,000 of them, and a mesh-wide change evaluates 10,000 hosts.
        for (const auto& outcome : clients.outcomes)
            if (!outcome.hidden_by)
                out.push_back(&outcome);
        return out;
    }
    clients.for_each_outcome(
        [&](const resolution::ClientOutcome& outcome) { out.push_back(&outcome); });
    return out;
}

} // namespace

bool sends_from(const resolution::ConfigView& view, const FlowClients& who, NsId ns) {
    auto in = [ns](const std::vector<NsId>& list) {
        return std::binary_search(list.begin(), list.end(), ns);
    };
    switch (who.kind) {
    case ClientKind::ApiServer:
        return ns == model::api_server_client;
    case ClientKind::Ambient:
        return in(view.captured_client_namespaces());
    case ClientKind::AmbientPredicted:
        return in(view.predicted_ambient_client_namespaces());
    case ClientKind::SidecarBypass:
        return who.routed && in(*who.routed);
    case ClientKind::Sidecar:
    case ClientKind::NonMesh:
        break;
    }
    if (!who.outcome)
        return in(view.non_mesh_client_namespaces());
    if (who.routed && !in(*who.routed))
        return false;
    return in_outcome(view, *who.outcome, who.host_clients->answers_for(ns), ns);
}

namespace {

// Which kinds of client send flows to a Service (with `sender`: those that may include it).
struct Senders {
    bool non_mesh = false;
    bool captured = false;
    bool predicted = false;
    bool api_server = false;
    bool bypass = false;
};

Senders senders_of(const resolution::ConfigView& view, const resolution::HostClients& clients,
                   model::ServiceId id, bool called, std::optional<NsId> sender) {
    const bool as_server = view.service(id).analysed_as_server;
    // A view of sidecar clients only (ConfigView::restrict_clients_to) has no other senders: no
    // clients without a sidecar, no ambient ones, none that bypass their sidecar, no API server.
    const bool others = !view.sidecar_clients_only();
    auto wanted = [&](ClientKind kind, bool any) {
        return others && any &&
               (!sender || sends_from(view, FlowClients{&clients, nullptr, kind, id}, *sender));
    };
    Senders out;
    out.non_mesh =
        wanted(ClientKind::NonMesh, as_server && !view.non_mesh_client_namespaces().empty());
    out.captured =
        wanted(ClientKind::Ambient, as_server && !view.captured_client_namespaces().empty());
    out.predicted = wanted(ClientKind::AmbientPredicted,
                           as_server && !view.predicted_ambient_client_namespaces().empty());
    out.api_server = wanted(ClientKind::ApiServer, called);
    out.bypass = others && as_server && bypass_from(view, sender);
    return out;
}

} // namespace

void evaluate_service(const resolution::ConfigView& view, model::ServiceId id, const FlowSink& sink,
                      const EvaluateOptions& options) {
    const model::ServiceRecord& service = view.service(id);
    if (!service.service.selector)
        return;
    const auto* calls = view.snapshot().api_server_calls(service.service.ref.namespace_name,
                                                         service.service.ref.name);
    const bool as_server = service.analysed_as_server;
    if (!as_server && !calls)
        return;
    resolution::HostClients scratch;
    static const resolution::HostClients no_clients;
    const auto& clients = as_server ? view.service_clients(id, scratch) : no_clients;
    const Senders who_sends = senders_of(view, clients, id, calls != nullptr, options.sender);
    const auto outcomes = options.sender && !options.sidecar_senders
                              ? std::vector<const resolution::ClientOutcome*>()
                              : outcomes_from(view, clients, Target{service.host, service.ns},
                                              options.sender, options.skip_hidden);
    const auto [non_mesh, captured, predicted, api_server, bypass] = who_sends;
    if (outcomes.empty() && !non_mesh && !captured && !predicted && !api_server && !bypass)
        return; // no flow to hand over
    SubsetRouting routing(view, service.host);

    std::vector<Endpoint> computed;
    std::vector<model::ApiServerCallRef> port_calls;
    const auto& ports = service.service.ports;
    if (options.endpoints)
        options.endpoints->resize(ports.size());
    for (std::size_t p = 0; p < ports.size(); ++p) {
        const model::ServicePort& port = ports[p];
        if (!port.tcp)
            continue;
        port_calls.clear();
        if (calls)
            for (const auto& call : *calls)
                if (call.call->port == port.port)
                    port_calls.push_back(call);
        if (!as_server && port_calls.empty())
            continue;
        std::optional<std::vector<Endpoint>>* kept =
            options.endpoints ? &(*options.endpoints)[p] : nullptr;
        if (!kept || !*kept)
            resolution::list_endpoints(view, options.earlier, service, port,
                                       kept ? kept->emplace() : computed);
        const std::vector<Endpoint>& endpoints = kept ? **kept : computed;
        if (endpoints.empty())
            continue;

        Flow flow;
        flow.service = &service;
        flow.host = service.host;
        flow.port = port.port;
        every_sidecar_flow(view, service, port, endpoints, outcomes, clients, id, flow, sink,
                           routing, options);
        for (const auto kind : {ClientKind::Ambient, ClientKind::AmbientPredicted})
            if (kind == ClientKind::Ambient ? captured : predicted)
                ambient_flows(view, service, port, endpoints,
                              FlowClients{&clients, nullptr, kind, id}, flow, sink);
        if (bypass)
            bypass_flows(view, service, port, endpoints,
                         FlowClients{&clients, nullptr, ClientKind::SidecarBypass, id}, flow, sink,
                         routing);
        if (api_server && !port_calls.empty())
            api_server_flows(port_calls, endpoints,
                             FlowClients{&clients, nullptr, ClientKind::ApiServer, id}, flow, sink);
        if (!non_mesh)
            continue;
        // Clients without any proxy always send plaintext, straight to the pod (no waypoint).
        flow.rule = nullptr;
        flow.subset = nullptr;
        flow.via.reset();
        flow.hidden_by = nullptr;
        flow.dropped = false;
        flow.client = ClientKind::NonMesh;
        const FlowClients who{&clients, nullptr, ClientKind::NonMesh, id};
        for (const auto& ep : endpoints)
            emit(flow, ep, resolution::SendDecision{}, who, sink);
    }
}

void evaluate_external_host(const resolution::ConfigView& view, std::size_t index,
                            const FlowSink& sink, std::optional<NsId> sender,
                            bool sidecar_senders) {
    const model::ExternalHost& host = view.snapshot().external_hosts()[index];
    if (!host.mesh_external || host.host.find('*') != std::string::npos ||
        (sender && !sidecar_senders))
        return; // only sidecar clients send to ServiceEntry hosts here
    resolution::HostClients scratch;
    const auto& clients = view.external_clients(index, scratch);
    std::vector<std::uint16_t> ports = host.ports;
    if (ports.empty())
        ports.push_back(0);
    Flow flow;
    flow.external = &host;
    flow.host = host.host;
    flow.server = ServerAccept::NoSidecar;
    const std::uint32_t target = external_target | static_cast<std::uint32_t>(index);
    const auto outcomes = outcomes_from(view, clients, Target{host.host, host.ns}, sender, false);
    for (std::uint16_t port : ports) {
        flow.port = port;
        flow.target_port = port;
        for (const auto* outcome : outcomes) {
            flow.rule = outcome->rule;
            set_hidden(view, flow, outcome->hidden_by);
            const auto tls = resolution::cluster_tls(outcome->rule, port, nullptr);
            // Auto mTLS never applies to MESH_EXTERNAL hosts; TLS istiod drops is plaintext.
            const auto drop = resolution::dropped_tls(tls, outcome->rule, view.version());
            flow.decision = resolution::SendDecision{
                tls.cluster && drop == resolution::TlsDrop::None ? resolution::send_of(*tls.cluster)
                                                                 : ClientSend::Plaintext,
                tls.cluster.has_value(), nullptr, nullptr, drop};
            flow.send = flow.decision.send;
            finish(flow, true);
            sink(flow, FlowClients{&clients, outcome, ClientKind::Sidecar, target});
        }
    }
}

std::vector<resolution::ClientClass> sending_classes(const resolution::ConfigView& view,
                                                     const FlowClients& who) {
    if (!who.outcome)
        return {};
    auto classes = resolution::expand_members(view, *who.outcome, *who.host_clients);
    if (who.routed)
        std::erase_if(classes, [&](const resolution::ClientClass& c) {
            return !std::binary_search(who.routed->begin(), who.routed->end(), c.ns);
        });
    return classes;
}

void evaluate_mesh(const resolution::ConfigView& view, const FlowSink& sink) {
    for (model::ServiceId id = 0; id < view.snapshot().services().size(); ++id)
        evaluate_service(view, id, sink);
    for (std::size_t i = 0; i < view.snapshot().external_hosts().size(); ++i)
        evaluate_external_host(view, i, sink);
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
