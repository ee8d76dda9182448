// `explain`: every step of the decision for the flows from one client namespace (or workload) to
// one host, with the objects that decided each step and the ones that lost.
#include "analysis/report/explain.hpp"

#include "analysis/conflict/flow_findings.hpp"
#include "analysis/conflict/flows.hpp"
#include "analysis/report/messages.hpp"
#include "analysis/resolution/sidecar.hpp"

#include <algorithm>
#include <charconv>

namespace mtlsguard::report {
namespace {

using conflict::ClientKind;
using conflict::Flow;
using model::NsId;
using resolution::ClientSend;
using resolution::ServerAccept;

ExplainedObject object_of(const model::ObjectRef& ref) {
    return {ref.kind, ref.namespace_name, ref.name};
}

// "Kind ns/name", or "Kind name" for cluster-scoped objects.
std::string name_of(const model::ObjectRef& ref) {
    return ref.kind + " " + (ref.namespace_name.empty() ? "" : ref.namespace_name + "/") + ref.name;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& p : parts)
        out += (out.empty() ? "" : std::string(separator)) + p;
    return out;
}

// What the request names, found in the snapshot.
struct Target {
    std::vector<model::ServiceId> services;
    std::optional<std::size_t> external; // a ServiceEntry host's index
    std::string fqdn;
};

// The names a client in `from` can dial the host by, as Kubernetes DNS resolves them: a short
// name in `from`, "name.ns" and "name.ns.svc" under the cluster domain, else the name as written.
std::vector<std::string> host_candidates(const model::Snapshot& snapshot, const std::string& host,
                                         const std::string& from) {
    const std::string& domain = snapshot.settings().cluster_domain;
    std::vector<std::string> out{snapshot.resolve_host(host, from)};
    if (std::count(host.begin(), host.end(), '.') == 1)
        out.push_back(host + ".svc." + domain);
    if (host.ends_with(".svc"))
        out.push_back(host + "." + domain);
    return out;
}

std::optional<Target> find_target(const model::Snapshot& snapshot, const std::string& host,
                                  const std::string& from) {
    for (const auto& fqdn : host_candidates(snapshot, host, from)) {
        if (const auto* ids = snapshot.services_for_host(fqdn); ids && !ids->empty())
            return Target{*ids, std::nullopt, fqdn};
        const auto& hosts = snapshot.external_hosts();
        for (std::size_t i = 0; i < hosts.size(); ++i)
            if (hosts[i].host == fqdn)
                return Target{{}, i, fqdn};
    }
    return std::nullopt;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// Up to three known hosts close to an unknown one (by edit distance on the FQDN, "name.ns" or the
// short name), for the error message.
std::vector<std::string> close_hosts(const model::Snapshot& snapshot, const std::string& host) {
    std::vector<std::pair<std::size_t, std::string>> scored;
    auto score = [&](const std::string& fqdn, std::string_view short_name, std::string_view two) {
        std::size_t best = edit_distance(host, fqdn);
        best = std::min({best, edit_distance(host, short_name), edit_distance(host, two)});
        if (best <= 2 || (host.size() >= 3 && fqdn.find(host) != std::string::npos))
            scored.emplace_back(best, fqdn);
    };
    for (const auto& s : snapshot.services()) {
        const std::string two = s.service.ref.name + "." + s.service.ref.namespace_name;
        score(s.host, s.service.ref.name, two);
    }
    for (const auto& h : snapshot.external_hosts())
        score(h.host, h.host, h.host);
    std::sort(scored.begin(), scored.end());
    scored.erase(std::unique(scored.begin(), scored.end()), scored.end());
    std::vector<std::string> out;
    for (const auto& [distance, name] : scored)
        if (out.size() < 3)
            out.push_back(name);
    return out;
}

// The position of a workload's pods among its namespace's selector variants (semantics §4,
// ambient.md §14): which selector DestinationRules and Sidecar they see.
std::uint16_t variant_of(const model::Snapshot& snapshot, model::WorkloadId id) {
    const auto& w = snapshot.workloads()[id];
    const auto& list = snapshot.namespaces()[w.ns].workloads;
    const auto position =
        static_cast<std::uint32_t>(std::find(list.begin(), list.end(), id) - list.begin());
    const auto& variants = snapshot.config(w.ns).variants;
    for (std::size_t v = 0; v < variants.size(); ++v)
        if (std::find(variants[v].workloads.begin(), variants[v].workloads.end(), position) !=
            variants[v].workloads.end())
            return static_cast<std::uint16_t>(v);
    return 0;
}

// Whether a sidecar client workload skips its sidecar for a flow's destination (ambient.md §13).
std::optional<std::string_view> bypass_of(const model::Workload& client, const Flow& flow) {
    if (!flow.service || !client.sidecar)
        return std::nullopt;
    const bool headless = flow.service->service.headless;
    return resolution::outbound_bypass(client.interception, headless ? flow.target_port : flow.port,
                                       headless ? std::nullopt
                                                : flow.service->service.cluster_ipv4);
}

// A flow worth explaining, copied out of the evaluation (its pointers are into the snapshot).
struct Candidate {
    Flow flow;
    std::vector<std::uint16_t> variants; // sidecar flows: the namespace's classes that send it
    // API server flows: the registrations that call the port. Flow::api_server_calls points into
    // the evaluation, which is gone once it returns; the refs themselves point into the snapshot.
    std::vector<model::ApiServerCallRef> calls;
};

// Who asks: the client namespace, and the one workload when --workload names it; or the API
// server (--from kube-apiserver, the name `matrix` gives its flows; ambient.md §16).
struct Asker {
    NsId ns = 0;
    std::vector<model::WorkloadId> workloads; // empty: the whole namespace
    bool api_server = false;
};

bool workload_sends(const model::Snapshot& snapshot, model::WorkloadId id, const Candidate& c) {
    const auto& w = snapshot.workloads()[id];
    switch (c.flow.client) {
    case ClientKind::Sidecar:
        return w.sidecar && !bypass_of(w, c.flow) &&
               std::find(c.variants.begin(), c.variants.end(), variant_of(snapshot, id)) !=
                   c.variants.end();
    case ClientKind::SidecarBypass:
        return bypass_of(w, c.flow).has_value();
    case ClientKind::Ambient:
    case ClientKind::AmbientPredicted:
        return w.dataplane == model::Dataplane::Ambient;
    case ClientKind::NonMesh:
        return w.dataplane == model::Dataplane::None;
    case ClientKind::ApiServer:
        return false;
    }
    return false;
}

std::vector<Candidate> collect(const resolution::ConfigView& view, const Target& target,
                               const Asker& asker, std::optional<std::uint16_t> port) {
    std::vector<Candidate> out;
    const conflict::FlowSink sink = [&](const Flow& flow, const conflict::FlowClients& who) {
        // A ServiceEntry without ports has one flow, port 0, for every port.
        if ((flow.client == ClientKind::ApiServer) != asker.api_server ||
            (port && flow.port != *port && !(flow.external && flow.port == 0)))
            return;
        const auto namespaces = conflict::client_namespaces(view, who);
        if (std::find(namespaces.begin(), namespaces.end(), asker.ns) == namespaces.end())
            return;
        Candidate c{flow, {}, {}};
        if (flow.api_server_calls)
            c.calls = *flow.api_server_calls;
        c.flow.api_server_calls = nullptr;
        if (flow.client == ClientKind::Sidecar)
            for (const auto& cls : conflict::sending_classes(view, who))
                if (cls.ns == asker.ns)
                    c.variants.push_back(cls.variant);
        if (!asker.workloads.empty() &&
            std::none_of(asker.workloads.begin(), asker.workloads.end(), [&](model::WorkloadId id) {
                return workload_sends(view.snapshot(), id, c);
            }))
            return;
        out.push_back(std::move(c));
    };
    for (model::ServiceId id : target.services)
        conflict::evaluate_service(view, id, sink);
    if (target.external)
        conflict::evaluate_external_host(view, *target.external, sink);
    return out;
}

// The client workloads of the namespace a flow explains (or the one asked about).
std::vector<std::string> client_workloads(const model::Snapshot& snapshot, const Asker& asker,
                                          const Candidate& c) {
    std::vector<std::string> out;
    const auto& ids =
        asker.workloads.empty() ? snapshot.namespaces()[asker.ns].workloads : asker.workloads;
    for (model::WorkloadId id : ids) {
        const auto& w = snapshot.workloads()[id];
        if (!w.waypoint && workload_sends(snapshot, id, c) &&
            std::find(out.begin(), out.end(), w.name) == out.end())
            out.push_back(w.name);
    }
    return out;
}

std::string dataplane_of(ClientKind kind) {
    switch (kind) {
    case ClientKind::Sidecar:
        return "sidecar";
    case ClientKind::SidecarBypass:
        return "sidecar-bypass";
    case ClientKind::Ambient:
    case ClientKind::AmbientPredicted:
        return "ambient";
    case ClientKind::NonMesh:
    case ClientKind::ApiServer:
        return "none";
    }
    return "none";
}

ExplainStep client_step(const resolution::ConfigView& view, const Asker& asker,
                        const Candidate& c) {
    const Flow& f = c.flow;
    const std::string& ns = view.namespace_name(asker.ns);
    ExplainStep step{"client", {}, {}, {}, {}, nlohmann::json::object()};
    const auto workloads = client_workloads(view.snapshot(), asker, c);
    step.facts = {
        {"namespace", ns}, {"dataplane", dataplane_of(f.client)}, {"workloads", workloads}};
    if (workloads.empty() && f.client == ClientKind::Sidecar)
        step.because.push_back("the input has no client workloads here: the namespace is assumed "
                               "to run sidecar clients (semantics §8)");
    switch (f.client) {
    case ClientKind::Sidecar:
        step.summary = "sidecar clients in " + ns;
        step.because.push_back("the pods run an istio-proxy sidecar (semantics §2)");
        break;
    case ClientKind::SidecarBypass:
        step.summary = "sidecar clients in " + ns + " that skip their sidecar for this destination";
        step.because.push_back("annotation " + std::string(f.bypass) +
                               " on the client pods: the application's bytes leave without the "
                               "sidecar (ambient.md §13)");
        step.facts["bypass"] = std::string(f.bypass);
        break;
    case ClientKind::Ambient:
    case ClientKind::AmbientPredicted:
        step.summary = "ambient clients (ztunnel) in " + ns;
        step.because.push_back("captured by ztunnel: DestinationRules, VirtualServices and Sidecar "
                               "resources do not apply to them (ambient.md §12)");
        if (f.client == ClientKind::AmbientPredicted)
            step.because.push_back("ambient only by prediction from labels, not the CNI's "
                                   "annotation: errors become warnings (ambient.md §10)");
        break;
    case ClientKind::NonMesh:
    case ClientKind::ApiServer:
        step.summary = "clients without a proxy in " + ns;
        step.because.push_back(
            "no sidecar and not captured by ztunnel: they send the application's bytes (semantics "
            "§5)");
        break;
    }
    if (!workloads.empty())
        step.summary += " (" + join(workloads, ", ") + ")";
    if (f.client == ClientKind::Sidecar && !c.variants.empty()) {
        const auto* sidecar =
            f.hidden_by ? f.hidden_by : resolution::sidecar_of(view, asker.ns, c.variants[0]);
        if (sidecar && !f.hidden_by)
            step.because.push_back("they use " + name_of(sidecar->ref) +
                                   ", whose egress hosts import the host (ambient.md §14)");
    }
    if (f.hidden_by) {
        const bool drop = f.dropped;
        step.summary += "; " + name_of(f.hidden_by->ref) + " hides the host";
        step.because.push_back(
            name_of(f.hidden_by->ref) +
            " is the Sidecar they use, and its egress hosts do not import the "
            "host: no cluster, no DestinationRule, no auto mTLS (ambient.md §14)");
        step.because.push_back(drop ? "outboundTrafficPolicy REGISTRY_ONLY: the connection is "
                                      "dropped"
                                    : "outboundTrafficPolicy ALLOW_ANY: the traffic leaves "
                                      "through the passthrough cluster, as plaintext");
        step.decided_by.push_back(object_of(f.hidden_by->ref));
        step.facts["hiddenBy"] = {{"namespace", f.hidden_by->ref.namespace_name},
                                  {"name", f.hidden_by->ref.name}};
        step.facts["outboundTrafficPolicy"] = drop ? "REGISTRY_ONLY" : "ALLOW_ANY";
    }
    return step;
}

// The DestinationRule lookup of one proxy (semantics §4): the client's own, or a waypoint's.
struct Lookup {
    std::string client_ns;                             // whose namespace the lookup starts in
    std::vector<const model::ClientVariant*> variants; // the client pods; empty for a waypoint
    std::vector<std::string> order;                    // client, service, root (deduplicated)
    std::vector<std::string> keys;                     // candidate_keys(host)
    const model::ConsolidatedRule* chosen = nullptr;
    std::size_t chosen_step = 0; // 1-based position of the chosen rule's namespace in `order`
    std::string who;             // "these client pods", "the waypoint ns/name"
    std::string whose;           // "the client's", "the waypoint's"
};

std::size_t step_of(const Lookup& lookup, const std::string& ns) {
    const auto it = std::find(lookup.order.begin(), lookup.order.end(), ns);
    return it == lookup.order.end() ? 0 : static_cast<std::size_t>(it - lookup.order.begin()) + 1;
}

std::size_t rank_of(const Lookup& lookup, const std::string& key) {
    const auto it = std::find(lookup.keys.begin(), lookup.keys.end(), key);
    return static_cast<std::size_t>(it - lookup.keys.begin());
}

std::string order_text(const Lookup& lookup) {
    return join(lookup.order, ", then ");
}

// The consolidated rule of an index that holds `rule` under `key`, if any.
const model::ConsolidatedRule* entry_holding(const model::DrIndex& index, const std::string& key,
                                             const model::DestinationRule& rule) {
    for (const auto* map : {&index.specific, &index.wildcard}) {
        const auto it = map->find(key);
        if (it == map->end())
            continue;
        for (const auto& entry : it->second)
            if (std::find(entry.members.begin(), entry.members.end(), &rule) != entry.members.end())
                return &entry;
    }
    return nullptr;
}

// The most specific key an index offers the lookup for the host, as a rank in `keys`.
std::size_t considered_rank(const Lookup& lookup, const model::DrIndex& index) {
    const auto* entries = resolution::most_specific(index, lookup.keys);
    if (!entries || entries->empty())
        return lookup.keys.size();
    for (std::size_t r = 0; r < lookup.keys.size(); ++r)
        for (const auto* map : {&index.specific, &index.wildcard})
            if (auto it = map->find(lookup.keys[r]); it != map->end() && &it->second == entries)
                return r;
    return lookup.keys.size();
}

std::string export_text(const model::DestinationRule& rule) {
    return rule.export_to.empty() ? "exportTo unset: the mesh default"
                                  : "exportTo: " + join(rule.export_to, ", ");
}

// Why a DestinationRule whose host matches lost, as far as it can be said with certainty; else
// "not chosen" with the lookup order (semantics §4).
std::string lost_reason(const resolution::ConfigView& view, const Lookup& lookup,
                        const model::DestinationRule& rule, const std::string& key) {
    const std::string& ns = rule.ref.namespace_name;
    const std::size_t step = step_of(lookup, ns);
    if (step == 0)
        return "not looked up: only " + order_text(lookup) + " are searched (semantics §4)";
    const bool own = ns == lookup.client_ns;
    if (rule.workload_selector) {
        if (!own)
            return "has a workloadSelector: private to namespace " + ns + " (semantics §4)";
        const bool selects =
            std::any_of(lookup.variants.begin(), lookup.variants.end(), [&](const auto* v) {
                return std::find(v->selector_rules.begin(), v->selector_rules.end(), &rule) !=
                       v->selector_rules.end();
            });
        if (!selects)
            return "its workloadSelector does not select " + lookup.who + " (semantics §4)";
    }
    const auto ns_id = view.namespace_id(ns);
    if (!ns_id)
        return "not chosen (lookup order: " + order_text(lookup) + "; most specific host first)";
    const auto& config = view.config(*ns_id);
    if (!own && !rule.workload_selector) {
        const auto* entry = entry_holding(config.exported, key, rule);
        if (!entry || !entry->exported_to(lookup.client_ns))
            return "not exported to namespace " + lookup.client_ns + " (" + export_text(rule) + ")";
    }
    const std::size_t considered = considered_rank(lookup, own ? config.local : config.exported);
    if (considered < rank_of(lookup, key))
        return "a less specific host (" + key + ") than " + lookup.keys[considered] +
               ", which namespace " + ns +
               " also holds: only the most specific one there is considered (semantics §4)";
    if (!lookup.chosen && step > 1 && !lookup.variants.empty())
        if (const auto client = view.namespace_id(lookup.client_ns))
            if (resolution::most_specific(view.config(*client).local, lookup.keys))
                return "namespace " + lookup.client_ns +
                       " holds DestinationRules for this host, which end the lookup there "
                       "although none applies to these pods: no fall-through (semantics §4)";
    if (lookup.chosen && step > lookup.chosen_step)
        return "its namespace comes later in the lookup (" + order_text(lookup) +
               "): the chosen rule was found in " + lookup.order[lookup.chosen_step - 1];
    return "not chosen (lookup order: " + order_text(lookup) + "; most specific host first)";
}

std::string lookup_step_text(const Lookup& lookup) {
    const std::string& ns = lookup.order[lookup.chosen_step - 1];
    const std::string order = " (lookup: " + order_text(lookup) + ")";
    if (lookup.chosen_step == 1)
        return "found in " + lookup.whose + " own namespace " + ns + order;
    if (ns == lookup.order.back() && lookup.order.size() == 3)
        return "found in the root namespace " + ns + ", exported to " + lookup.client_ns +
               ": the earlier namespaces offer no rule for the host" + order;
    return "found in the service's namespace " + ns + ", exported to " + lookup.client_ns + ": " +
           lookup.client_ns + " holds no rule for the host" + order;
}

void describe_chosen(const model::Snapshot& snapshot, const Lookup& lookup, ExplainStep& step) {
    const auto& rule = *lookup.chosen;
    const auto& first = *rule.members.front();
    const std::string key = snapshot.resolve_host(first.host, first.ref.namespace_name);
    std::vector<std::string> names;
    for (const auto* member : rule.members) {
        step.decided_by.push_back(object_of(member->ref));
        names.push_back(member->ref.namespace_name + "/" + member->ref.name);
    }
    step.summary = join(names, " + ");
    step.because.push_back(lookup_step_text(lookup));
    step.because.push_back("the most specific host that matches: " + key);
    if (rule.selector)
        step.because.push_back("its workloadSelector selects " + lookup.who);
    const auto* source = rule.policy_source ? rule.policy_source : &first;
    if (rule.members.size() > 1)
        step.because.push_back(std::to_string(rule.members.size()) +
                               " DestinationRules with the same host and exportTo are merged: "
                               "the oldest, " +
                               source->ref.name +
                               ", gives the trafficPolicy; subsets are "
                               "concatenated (semantics §4)");
    step.facts["step"] = lookup.chosen_step;
    step.facts["hostKey"] = key;
    step.facts["policySource"] = {{"kind", source->ref.kind},
                                  {"namespace", source->ref.namespace_name},
                                  {"name", source->ref.name}};
}

// Every other DestinationRule whose host matches, with the reason it lost.
void list_lost_rules(const resolution::ConfigView& view, const Lookup& lookup, ExplainStep& step) {
    const auto& snapshot = view.snapshot();
    for (NsId ns = 0; ns < snapshot.namespaces().size(); ++ns) {
        for (const auto& rule : snapshot.config(ns).destination_rules) {
            const std::string key = snapshot.resolve_host(rule.host, rule.ref.namespace_name);
            if (rank_of(lookup, key) == lookup.keys.size())
                continue; // the host does not match
            if (lookup.chosen &&
                std::find(lookup.chosen->members.begin(), lookup.chosen->members.end(), &rule) !=
                    lookup.chosen->members.end())
                continue;
            step.lost.push_back({object_of(rule.ref), lost_reason(view, lookup, rule, key)});
        }
    }
}

Lookup make_lookup(const resolution::ConfigView& view, const std::string& client_ns,
                   const std::string& host, const std::string& service_ns,
                   const model::ConsolidatedRule* chosen) {
    Lookup lookup;
    lookup.client_ns = client_ns;
    for (const auto& ns : {client_ns, service_ns, view.mesh().root_namespace})
        if (std::find(lookup.order.begin(), lookup.order.end(), ns) == lookup.order.end())
            lookup.order.push_back(ns);
    lookup.keys = resolution::candidate_keys(host);
    lookup.chosen = chosen;
    if (chosen)
        lookup.chosen_step = step_of(lookup, chosen->members.front()->ref.namespace_name);
    if (chosen && lookup.chosen_step == 0)
        lookup.chosen = nullptr; // cannot happen by the lookup's rules; say nothing wrong
    return lookup;
}

ExplainStep destination_rule_step(const resolution::ConfigView& view, const Asker& asker,
                                  const Candidate& c) {
    const Flow& f = c.flow;
    ExplainStep step{"destinationRule", {}, {}, {}, {}, nlohmann::json::object()};
    const std::string& service_ns =
        f.service ? view.namespace_name(f.service->ns) : view.namespace_name(f.external->ns);
    std::string client_ns = view.namespace_name(asker.ns);
    const bool waypoint = f.via && conflict::is_ambient(f.client);
    if (f.client != ClientKind::Sidecar && !waypoint) {
        step.summary = "none applies";
        step.because.push_back(f.client == ClientKind::NonMesh
                                   ? "no proxy: DestinationRules do not apply (semantics §5)"
                               : f.client == ClientKind::SidecarBypass
                                   ? "the sidecar is skipped: DestinationRules do not apply"
                                   : "ztunnel ignores DestinationRules (ambient.md §12)");
        return step;
    }
    if (waypoint)
        client_ns = f.via->namespace_name;
    Lookup lookup = make_lookup(view, client_ns, std::string(f.host), service_ns, f.rule);
    if (waypoint) {
        lookup.who = "the waypoint " + f.via->namespace_name + "/" + f.via->name;
        lookup.whose = "the waypoint's";
        step.because.push_back(lookup.who + " applies the DestinationRule its own namespace sees "
                                            "(ambient.md §12)");
    } else {
        lookup.who = "these client pods";
        lookup.whose = "the client's";
        for (auto v : c.variants)
            if (v < view.config(asker.ns).variants.size())
                lookup.variants.push_back(&view.config(asker.ns).variants[v]);
    }
    step.facts["lookupNamespace"] = client_ns;
    step.facts["lookupOrder"] = lookup.order;
    if (f.hidden_by) {
        step.summary = "none applies: the host is hidden by " + name_of(f.hidden_by->ref);
        for (NsId ns = 0; ns < view.snapshot().namespaces().size(); ++ns)
            for (const auto& rule : view.snapshot().config(ns).destination_rules)
                if (rank_of(lookup, view.snapshot().resolve_host(
                                        rule.host, rule.ref.namespace_name)) < lookup.keys.size())
                    step.lost.push_back({object_of(rule.ref),
                                         "the Sidecar the clients use hides the host: no "
                                         "DestinationRule applies (ambient.md §14)"});
        return step;
    }
    if (lookup.chosen)
        describe_chosen(view.snapshot(), lookup, step);
    else {
        step.summary = "none applies";
        step.because.push_back("no DestinationRule for the host is found in " + order_text(lookup) +
                               " (semantics §4)");
    }
    list_lost_rules(view, lookup, step);
    return step;
}

// Where a port's TLS came from in the chosen rule (semantics §4, ambient.md §15).
std::string tls_source(const model::ConsolidatedRule& rule, std::uint16_t port,
                       const model::Subset* subset) {
    const std::string p = std::to_string(port);
    auto from = [&](const model::TrafficPolicy& tp, const std::string& prefix) -> std::string {
        for (const auto& entry : tp.port_level)
            if (entry.port == port)
                return prefix + "portLevelSettings[port " + p + "]" +
                       (entry.tls ? "" : " (no tls)");
        return tp.tls ? prefix + "tls" : std::string();
    };
    if (subset && subset->traffic_policy)
        if (auto s = from(*subset->traffic_policy, "subsets[" + subset->name + "].trafficPolicy.");
            !s.empty())
            return s;
    if (const auto* tp = rule.traffic_policy())
        return from(*tp, "trafficPolicy.");
    return {};
}

// Why auto mTLS chose what it did for one endpoint (semantics §5).
void explain_auto_mtls(const resolution::ConfigView& view, const Flow& f, ExplainStep& step) {
    const auto& d = f.decision;
    if (!view.mesh().auto_mtls) {
        step.because.push_back("auto mTLS is off (enableAutoMtls: false, or Istio 1.4/1.5 "
                               "defaults): plaintext (semantics §5)");
        return;
    }
    step.facts["autoMtls"] = true;
    if (d.auto_cause) {
        const bool mesh = d.auto_cause->ref.namespace_name == view.mesh().root_namespace;
        step.because.push_back(
            std::string("auto mTLS: the ") + (mesh ? "mesh-wide" : "namespace-wide") + " " +
            name_of(d.auto_cause->ref) + " is DISABLE: plaintext to every endpoint (semantics §5)");
        step.decided_by.push_back(object_of(d.auto_cause->ref));
    } else if (d.auto_alpha_cause) {
        step.because.push_back("auto mTLS: the legacy " + name_of(d.auto_alpha_cause->ref) +
                               " is plaintext-only: plaintext to every endpoint (semantics §5)");
        step.decided_by.push_back(object_of(d.auto_alpha_cause->ref));
    } else if (d.send == ClientSend::IstioMutual) {
        step.because.push_back("auto mTLS: the endpoint has a sidecar and its port is not "
                               "DISABLE: Istio mTLS (semantics §5)");
    } else if (f.service && (f.service->service.headless ||
                             resolution::cluster_tls(f.rule, f.port, f.subset).passthrough)) {
        step.because.push_back(
            std::string("auto mTLS on a ") +
            (f.service->service.headless ? "headless service" : "PASSTHROUGH load balancer") +
            ": one decision for all endpoints, mTLS only when every endpoint "
            "has a sidecar and the namespace mode is not DISABLE (semantics §5)");
    } else if (f.workload && !f.workload->sidecar) {
        step.because.push_back("auto mTLS: the endpoint has no sidecar: plaintext (semantics §5)");
    } else if (f.server == ServerAccept::Disable) {
        step.because.push_back(
            "auto mTLS: the endpoint's port is DISABLE: plaintext (semantics §5)");
    } else {
        step.because.push_back("auto mTLS: plaintext to this endpoint (semantics §5)");
    }
}

// A port-level entry without tls: auto mTLS's endpoint marking, which the top-level mode can only
// clear (semantics §4).
void explain_endpoint_marking(const resolution::ClusterTls& tls, const std::string& source,
                              ClientSend send, ExplainStep& step) {
    const std::string where = source.empty() ? std::string("no tls") : source;
    const std::string top =
        tls.endpoint_marking ? std::string(model::to_string(*tls.endpoint_marking)) : "unset";
    if (tls.endpoint_marking == model::TlsMode::IstioMutual)
        step.because.push_back("no TLS for this port (" + where +
                               "): auto mTLS's endpoint marking decides; the top-level tls.mode "
                               "ISTIO_MUTUAL leaves it to the pod's own sidecar label: " +
                               std::string(resolution::to_string(send)) + " (semantics §4)");
    else
        step.because.push_back("no TLS for this port (" + where + "); the top-level tls.mode " +
                               top +
                               " clears auto mTLS's endpoint marking: plaintext to every "
                               "endpoint (semantics §4)");
}

// A sidecar client that sees the host: the DestinationRule's TLS, or auto mTLS.
void explain_sidecar_send(const resolution::ConfigView& view, const Flow& f, ExplainStep& step) {
    const auto& d = f.decision;
    const auto tls = resolution::cluster_tls(f.rule, f.port, f.subset);
    const std::string source = f.rule ? tls_source(*f.rule, f.port, f.subset) : std::string();
    if (!source.empty())
        step.facts["tlsSource"] = source;
    if (f.subset) {
        step.because.push_back("a VirtualService route sends these clients to subset " +
                               f.subset->name + " (ambient.md §15)");
        step.facts["subset"] = f.subset->name;
    }
    if (d.send == ClientSend::Hbone) {
        step.because.push_back("the endpoint is captured by ztunnel: the sidecar tunnels HBONE "
                               "whatever the DestinationRule says (ambient.md §12)");
        if (d.inner != ClientSend::Plaintext)
            step.because.push_back("the DestinationRule's " +
                                   std::string(resolution::to_string(d.inner)) +
                                   " travels inside the tunnel: the application must terminate it");
    } else if (d.dropped != resolution::TlsDrop::None) {
        step.because.push_back(
            "the DestinationRule asks for " + std::string(model::to_string(*tls.cluster)) + " (" +
            source + ") but istiod drops it (" + std::string(resolution::to_string(d.dropped)) +
            "): plaintext (semantics §4)");
        step.facts["droppedTls"] = std::string(resolution::to_string(d.dropped));
    } else if (tls.cluster) {
        step.because.push_back("the DestinationRule sets tls.mode " +
                               std::string(model::to_string(*tls.cluster)) + " (" + source +
                               "): it wins for every endpoint (semantics §5)");
    } else if (d.by_rule) {
        explain_endpoint_marking(tls, source, d.send, step);
    } else if (f.external) {
        step.because.push_back("no TLS in a DestinationRule, and auto mTLS never applies to "
                               "MESH_EXTERNAL hosts: plaintext (semantics §5)");
    } else {
        step.because.push_back(
            std::string("no TLS for this port in ") +
            (f.rule ? "the DestinationRule" + (source.empty() ? "" : " (" + source + ")")
                    : std::string("any DestinationRule")));
        explain_auto_mtls(view, f, step);
    }
}

ExplainStep send_step(const resolution::ConfigView& view, const Flow& f) {
    ExplainStep step{"send", {}, {}, {}, {}, nlohmann::json::object()};
    const std::string sends(resolution::to_string(f.send));
    step.facts["sends"] = sends;
    if (f.send == ClientSend::Hbone && f.decision.inner != ClientSend::Plaintext)
        step.facts["inner"] = std::string(resolution::to_string(f.decision.inner));
    step.summary = sends;
    if (f.via) {
        step.facts["via"] = {{"namespace", f.via->namespace_name}, {"name", f.via->name}};
        step.decided_by.push_back(object_of(*f.via));
    }
    if (f.dropped) {
        step.summary = "nothing: the connection is dropped";
        step.because.push_back("REGISTRY_ONLY and no cluster for the host (ambient.md §14)");
    } else if (f.hidden_by) {
        step.because.push_back("no cluster for the host: the passthrough cluster, which has no "
                               "TLS at all (ambient.md §14)");
    } else if (f.client == ClientKind::NonMesh || f.client == ClientKind::SidecarBypass) {
        step.because.push_back("the application's bytes, straight to the pod");
    } else if (conflict::is_ambient(f.client)) {
        if (f.via)
            step.because.push_back("ztunnel sends HBONE to the waypoint " + f.via->namespace_name +
                                   "/" + f.via->name +
                                   "; the waypoint sends HBONE to what takes it, else plaintext, "
                                   "and originates only SIMPLE/MUTUAL (ambient.md §12)");
        else
            step.because.push_back("ztunnel ignores DestinationRules: HBONE to what takes it (an "
                                   "ambient pod, a sidecar labelled networking.istio.io/"
                                   "tunnel=http), the application's bytes to the rest "
                                   "(ambient.md §12)");
        step.because.push_back(
            f.send != ClientSend::Hbone ? "the endpoint cannot take HBONE: the application's bytes"
            : f.workload && f.workload->sidecar
                ? "the endpoint takes HBONE: a sidecar labelled networking.istio.io/tunnel=http"
                : "the endpoint takes HBONE");
    } else {
        explain_sidecar_send(view, f, step);
    }
    return step;
}

std::string level_of(const resolution::ConfigView& view, const model::PeerAuthentication& pa) {
    if (!pa.selector.empty())
        return "workload";
    return pa.ref.namespace_name == view.mesh().root_namespace ? "mesh" : "namespace";
}

int level_rank(std::string_view level) {
    return level == "mesh" ? 0 : level == "namespace" ? 1 : level == "workload" ? 2 : 3;
}

// Why a PeerAuthentication that could apply to the endpoint did not decide its mode (semantics §3).
std::string pa_lost_reason(const resolution::ConfigView& view, const model::PeerAuthentication& pa,
                           const Flow& f) {
    const auto& w = *f.workload;
    const auto& mode = f.server_mode;
    const std::string level = level_of(view, pa);
    const auto& root = view.mesh().root_namespace;
    if (level == "workload" && pa.ref.namespace_name == root)
        return "a selector policy in the root namespace applies to nothing (semantics §3)";
    const auto& config = view.config(w.ns);
    const model::PeerAuthentication* holder = level == "mesh" ? view.mesh_peer_authentication()
                                              : level == "namespace"
                                                  ? config.namespace_policy
                                                  : config.workload_policy_for(w.labels);
    if (holder && holder != &pa)
        return "ignored: the older " + name_of(holder->ref) +
               " holds the same scope (semantics §3, MTG205)";
    if (!view.version().modern() && view.version().minor == 4)
        return "Istio 1.4 reads only the v1alpha1 policies (semantics §3)";
    if (f.server == ServerAccept::NoSidecar)
        return w.sidecar ? "the sidecar does not intercept this port: no policy applies to it "
                           "(ambient.md §13)"
                         : "the workload has no sidecar: PeerAuthentication does not apply "
                           "(semantics §3)";
    if (mode.peer_authentication) {
        const std::string winner =
            mode.port_level ? "port" : level_of(view, *mode.peer_authentication);
        if (level_rank(level) < level_rank(winner))
            return "overridden by the " + winner + "-level " +
                   name_of(mode.peer_authentication->ref) +
                   (mode.port_level ? " (portLevelMtls[" + std::to_string(f.target_port) + "])"
                                    : std::string()) +
                   " (semantics §3: port over workload over namespace over mesh)";
    }
    if (pa.mode == model::MtlsMode::Unset)
        return "its mode is UNSET" +
               std::string(level == "workload" ? " and no portLevelMtls entry for port " +
                                                     std::to_string(f.target_port) + " sets one"
                                               : "") +
               ": it changes nothing (semantics §3)";
    return "not chosen (composition: mesh, then namespace, then workload, then portLevelMtls; "
           "semantics §3)";
}

// Every PeerAuthentication that targets the endpoint's scope (mesh, its namespace, its labels).
void list_lost_policies(const resolution::ConfigView& view, const Flow& f, ExplainStep& step) {
    const auto& w = *f.workload;
    const auto root = view.namespace_id(view.mesh().root_namespace);
    std::vector<NsId> scopes{w.ns};
    if (root && *root != w.ns)
        scopes.insert(scopes.begin(), *root);
    for (NsId ns : scopes) {
        for (const auto& pa : view.config(ns).peer_authentications) {
            if (&pa == f.server_mode.peer_authentication)
                continue;
            if (ns != w.ns && !pa.selector.empty())
                continue; // the root's selector policies select nothing anywhere else
            if (!pa.selector.empty() && !pa.selector.subset_of(w.labels))
                continue;
            step.lost.push_back({object_of(pa.ref), pa_lost_reason(view, pa, f)});
        }
    }
}

// Where a legacy policy stands for (service, port) (semantics §3): 0 targeted with the port,
// 1 targeted, 2 namespace-wide, 3 a MeshPolicy; nullopt when it does not apply to them.
std::optional<int> alpha_level(const model::AlphaPolicy& policy, const Flow& f) {
    if (policy.mesh_policy)
        return 3;
    if (policy.targets.empty())
        return 2;
    std::optional<int> level;
    for (const auto& target : policy.targets) {
        if (target.name != f.service->service.ref.name)
            continue;
        if (target.ports.empty())
            level = std::min(level.value_or(1), 1);
        for (const auto& selector : target.ports)
            for (const auto& port : f.service->service.ports)
                if (port.port == f.port &&
                    (selector.number ? *selector.number == port.port
                                     : !selector.name.empty() && selector.name == port.name))
                    level = 0;
    }
    return level;
}

std::string alpha_lost_reason(const resolution::ConfigView& view, const model::AlphaPolicy& policy,
                              int level, const Flow& f) {
    const auto& mode = f.server_mode;
    if (view.version().modern())
        return "v1alpha1 policies were removed in Istio 1.6: ignored (semantics §3)";
    if (policy.mesh_policy && policy.ref.name != "default")
        return "only the MeshPolicy named default counts (semantics §3)";
    if (!f.workload->sidecar)
        return "the workload has no sidecar: policies do not apply (semantics §3)";
    if (mode.peer_authentication || (!mode.alpha_policy && view.version().minor == 5))
        return "Istio 1.5: a PeerAuthentication applies to the workload and overrides the "
               "v1alpha1 policies entirely (semantics §3)";
    if (!mode.alpha_policy)
        return "not chosen (semantics §3)";
    const int winner = alpha_level(*mode.alpha_policy, f).value_or(3);
    if (level > winner)
        return "a more specific policy decides: targeted with the port, then targeted, then "
               "namespace-wide, then the MeshPolicy default (semantics §3)";
    if (level == winner)
        return "the older " + name_of(mode.alpha_policy->ref) +
               " holds the same level (semantics §3)";
    return "not chosen (semantics §3)";
}

// The legacy Policy and MeshPolicy objects that apply to the flow's service port but lost.
void list_lost_alpha_policies(const resolution::ConfigView& view, const Flow& f,
                              ExplainStep& step) {
    if (!f.service)
        return;
    auto consider = [&](const model::AlphaPolicy& policy) {
        if (&policy == f.server_mode.alpha_policy)
            return;
        if (const auto level = alpha_level(policy, f))
            step.lost.push_back(
                {object_of(policy.ref), alpha_lost_reason(view, policy, *level, f)});
    };
    for (const auto& policy : view.config(f.service->ns).policies)
        consider(policy);
    for (const auto& policy : view.mesh_policies())
        consider(policy);
}

ExplainStep server_step(const resolution::ConfigView& view, const Flow& f) {
    ExplainStep step{"server", {}, {}, {}, {}, nlohmann::json::object()};
    const std::string accept(resolution::to_string(f.server));
    step.facts["mode"] = accept;
    if (!f.workload) {
        step.summary = std::string(f.host) + ": " + accept;
        step.because.push_back("a MESH_EXTERNAL ServiceEntry host: no sidecar behind it");
        step.decided_by.push_back(object_of(f.external->ref));
        return step;
    }
    const auto& w = *f.workload;
    const std::string name = view.namespace_name(w.ns) + "/" + w.name;
    const std::string dataplane(conflict::workload_dataplane(w));
    step.summary = name + " port " + std::to_string(f.target_port) + ": " + accept;
    step.facts["workload"] = {
        {"namespace", view.namespace_name(w.ns)}, {"name", w.name}, {"dataplane", dataplane}};
    step.facts["targetPort"] = f.target_port;
    step.because.push_back("the endpoint's dataplane: " + dataplane);
    const auto& mode = f.server_mode;
    if (f.server == ServerAccept::NoSidecar && w.sidecar) {
        step.because.push_back("the sidecar does not intercept target port " +
                               std::to_string(f.target_port) +
                               " (traffic.sidecar.istio.io/includeInboundPorts or "
                               "excludeInboundPorts): plaintext reaches the app (ambient.md §13)");
        step.facts["excludedFromInterception"] = true;
    } else if (f.server == ServerAccept::NoSidecar) {
        step.because.push_back("no sidecar: the workload speaks plaintext only, whatever the "
                               "policies say (semantics §3)");
    }
    if (mode.bypassed)
        step.because.push_back("a STRICT policy that does not protect this port: it skips "
                               "interception (MTG210)");
    if (mode.peer_authentication && f.server != ServerAccept::NoSidecar) {
        const std::string level =
            mode.port_level ? "port" : level_of(view, *mode.peer_authentication);
        step.because.push_back(
            "decided by " + name_of(mode.peer_authentication->ref) + " at the " + level + " level" +
            (mode.port_level ? " (portLevelMtls[" + std::to_string(f.target_port) + "])"
                             : std::string()) +
            " (semantics §3)");
        step.decided_by.push_back(object_of(mode.peer_authentication->ref));
        step.facts["level"] = level;
    } else if (mode.alpha_policy) {
        step.because.push_back("decided by the legacy " + name_of(mode.alpha_policy->ref) +
                               " (semantics §3, Istio 1.4 and 1.5)");
        step.decided_by.push_back(object_of(mode.alpha_policy->ref));
        step.facts["level"] = mode.alpha_policy->mesh_policy ? "mesh" : "namespace-or-service";
    } else if (f.server != ServerAccept::NoSidecar) {
        step.because.push_back("no policy sets a mode here: the default of this Istio version "
                               "(semantics §3)");
    }
    if (f.send == ClientSend::Hbone && w.sidecar)
        step.because.push_back("HBONE reaches the sidecar's tunnel listener (15008), to which "
                               "PeerAuthentication does not apply (ambient-notes §3.2)");
    if (resolution::is_ambient(f.server))
        step.because.push_back("an ambient port: HBONE only (STRICT) or HBONE and plaintext; "
                               "DISABLE means not STRICT (ambient.md §11)");
    list_lost_policies(view, f, step);
    list_lost_alpha_policies(view, f, step);
    return step;
}

// The one-line message of the finding a flow carries, as `analyze` words it for this namespace.
std::string finding_message(const resolution::ConfigView& view, const Flow& f, NsId ns) {
    conflict::FlowFindingCollector collector(view);
    collector.add_for(f, {ns});
    auto findings = collector.take();
    describe_all(findings);
    std::sort(findings.begin(), findings.end(), conflict::finding_less);
    return findings.empty() ? std::string() : findings.front().message;
}

std::string plain_message(const Flow& f) {
    if (f.client == ClientKind::ApiServer && f.verdict == conflict::Verdict::Plaintext)
        return "the port lets the API server's TLS through to the application, which terminates "
               "it: the calls work (with no mesh identity)";
    switch (f.verdict) {
    case conflict::Verdict::Mtls:
        return "the connection is mutually authenticated with mesh identities";
    case conflict::Verdict::Plaintext:
        return "plaintext, which the server port accepts: it works, unauthenticated";
    case conflict::Verdict::Depends:
        if (f.external)
            return "the client originates TLS to a host outside the mesh, which is what a "
                   "SIMPLE/MUTUAL rule is for: it works when the host serves TLS on this port";
        return "it works only if the application speaks the TLS the client originates";
    case conflict::Verdict::Fail:
        return "the server port rejects what the client sends: the connection is reset";
    }
    return {};
}

void fill_verdict(const resolution::ConfigView& view, const Flow& f, NsId ns, ExplainedFlow& out) {
    ExplainStep step{"verdict", {}, {}, {}, {}, nlohmann::json::object()};
    out.verdict = std::string(conflict::to_string(f.verdict));
    if (f.dropped) {
        out.verdict = "FAIL";
        out.message = "the client's sidecar drops the connection: its Sidecar hides the host and "
                      "outboundTrafficPolicy is REGISTRY_ONLY (ambient.md §14)";
        out.fix = std::string(conflict::fix_of(conflict::Code::MTG211));
    } else if (f.code) {
        out.code = std::string(conflict::to_string(*f.code));
        out.message = finding_message(view, f, ns);
        out.fix = std::string(conflict::fix_of(*f.code));
    } else {
        out.message = plain_message(f);
        if (f.hidden_by && f.verdict == conflict::Verdict::Fail) {
            out.message += " (the Sidecar hides the host: one MTG211 warning on it, no error)";
            out.fix = std::string(conflict::fix_of(conflict::Code::MTG211));
        }
    }
    step.summary = out.verdict + (out.code.empty() ? "" : " [" + out.code + "]");
    if (f.dropped)
        step.because.push_back("nothing reaches the server port (" +
                               std::string(resolution::to_string(f.server)) + ")");
    else if (f.client == ClientKind::ApiServer)
        step.because.push_back("the API server sends its own TLS (PLAINTEXT to the mesh), the "
                               "server port is " +
                               std::string(resolution::to_string(f.server)) +
                               " (semantics §6, ambient.md §16)");
    else
        step.because.push_back("the client sends " + std::string(resolution::to_string(f.send)) +
                               ", the server port is " +
                               std::string(resolution::to_string(f.server)) +
                               " (semantics §6, ambient-notes §5.1)");
    if (!out.message.empty())
        step.because.push_back(out.message);
    step.facts["verdict"] = out.verdict;
    step.facts["code"] = out.code.empty() ? nlohmann::json() : nlohmann::json(out.code);
    step.facts["message"] = out.message;
    step.facts["fix"] = out.fix.empty() ? nlohmann::json() : nlohmann::json(out.fix);
    out.steps.push_back(std::move(step));
}

// What one registration makes the API server do with the Service it names (ambient.md §16).
std::string call_role(const model::ApiServerCallee& callee) {
    if (callee.ref.kind == "APIService")
        return "an aggregated API: the API server proxies the requests for its group and version";
    if (callee.ref.kind == "CustomResourceDefinition")
        return "a conversion webhook: the API server calls it to convert the custom resources "
               "between versions";
    return "an admission webhook: the API server calls it for every request its rules match";
}

// "ValidatingWebhookConfiguration opa (webhook check.opa.io) calls Service opa/opa-webhook port
// 443, path /validate (an admission webhook: ...)"
std::string call_text(const model::ApiServerCallRef& call) {
    const auto& callee = *call.callee;
    const auto& to = *call.call;
    std::string out = name_of(callee.ref);
    if (!to.webhook.empty())
        out += " (webhook " + to.webhook + ")";
    out += " calls Service " + to.namespace_name + "/" + to.service + " port " +
           std::to_string(to.port) + (to.path.empty() ? "" : ", path " + to.path);
    return out + " (" + call_role(callee) + ")";
}

// Step 1 of an API server flow: who makes the API server call this port.
ExplainStep api_server_client_step(const Candidate& c) {
    ExplainStep step{"client", {}, {}, {}, {}, nlohmann::json::object()};
    std::vector<std::string> callers;
    nlohmann::json called_by = nlohmann::json::array();
    step.because.push_back("the API server runs outside the mesh: no sidecar, not captured by "
                           "ztunnel (ambient.md §16)");
    for (const auto& call : c.calls) {
        const auto& ref = call.callee->ref;
        step.because.push_back(call_text(call));
        if (std::none_of(step.decided_by.begin(), step.decided_by.end(),
                         [&](const ExplainedObject& o) {
                             return o.kind == ref.kind && o.name == ref.name;
                         })) {
            step.decided_by.push_back(object_of(ref));
            callers.push_back(name_of(ref));
        }
        called_by.push_back(
            {{"kind", ref.kind},
             {"name", ref.name},
             {"webhook",
              call.call->webhook.empty() ? nlohmann::json() : nlohmann::json(call.call->webhook)},
             {"service", {{"namespace", call.call->namespace_name}, {"name", call.call->service}}},
             {"port", call.call->port},
             {"path", call.call->path}});
    }
    step.summary = "the Kubernetes API server (" + std::string(model::api_server_client_name) +
                   "), called through " + join(callers, ", ");
    step.facts = {{"namespace", model::api_server_client_name},
                  {"dataplane", dataplane_of(ClientKind::ApiServer)},
                  {"workloads", nlohmann::json::array()},
                  {"apiServer", true},
                  {"calledBy", std::move(called_by)}};
    return step;
}

// Steps 2 and 3 of an API server flow: no DestinationRule, its own TLS straight to the pod.
void api_server_send_steps(const Flow& f, ExplainedFlow& out) {
    ExplainStep rule{"destinationRule", "none applies", {}, {}, {}, nlohmann::json::object()};
    rule.because.push_back("the API server has no proxy: DestinationRules do not apply "
                           "(ambient.md §16)");
    out.steps.push_back(std::move(rule));
    ExplainStep send{"send", {}, {}, {}, {}, nlohmann::json::object()};
    const std::string sends(resolution::to_string(f.send));
    send.summary = sends + " (the API server's own TLS)";
    send.because.push_back(
        "the API server's own TLS (checked against the registration's caBundle), straight to "
        "the pod's target port " +
        std::to_string(f.target_port) +
        ": to the mesh it is plaintext, with no mesh identity; never Istio mTLS, never HBONE "
        "(ambient.md §16)");
    send.because.push_back("it gets through only where the port is not STRICT: PERMISSIVE, "
                           "DISABLE, an ambient port that is not STRICT, or a port the sidecar "
                           "does not intercept");
    send.facts = {{"sends", sends}, {"ownTls", true}};
    out.steps.push_back(std::move(send));
}

ExplainedFlow explain_flow(const resolution::ConfigView& view, const Asker& asker,
                           const Candidate& c) {
    const Flow& f = c.flow;
    ExplainedFlow out;
    out.client_dataplane = dataplane_of(f.client);
    out.host = std::string(f.host);
    out.port = f.port;
    out.target_port = f.target_port;
    if (f.workload)
        out.workload = ExplainedObject{f.workload->kind, view.namespace_name(f.workload->ns),
                                       f.workload->name};
    if (f.client == ClientKind::ApiServer) {
        // The finding's message names the registrations: hand them back to the flow.
        Flow called = f;
        called.api_server_calls = &c.calls;
        out.steps.push_back(api_server_client_step(c));
        api_server_send_steps(called, out);
        out.steps.push_back(server_step(view, called));
        fill_verdict(view, called, asker.ns, out);
        return out;
    }
    out.steps.push_back(client_step(view, asker, c));
    out.steps.push_back(destination_rule_step(view, asker, c));
    out.steps.push_back(send_step(view, f));
    out.steps.push_back(server_step(view, f));
    fill_verdict(view, f, asker.ns, out);
    return out;
}

// The Service ports the registrations call, as text: "443, 8443".
std::string called_ports(const std::vector<model::ApiServerCallRef>& calls) {
    std::vector<std::uint16_t> ports;
    for (const auto& call : calls)
        ports.push_back(call.call->port);
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    std::vector<std::string> out;
    for (auto p : ports)
        out.push_back(std::to_string(p));
    return join(out, ", ");
}

// Why the API server sends nothing to the host (ambient.md §16), in the order the engine drops
// its flows.
std::string api_server_no_flow_note(const model::Snapshot& snapshot, const Target& target,
                                    std::optional<std::uint16_t> port) {
    if (target.external)
        return "the API server calls Services only (clientConfig.service, spec.service): it does "
               "not call a ServiceEntry host (ambient.md §16)";
    for (model::ServiceId id : target.services) {
        const auto& s = snapshot.services()[id];
        const std::string name = s.service.ref.namespace_name + "/" + s.service.ref.name;
        const auto* calls =
            snapshot.api_server_calls(s.service.ref.namespace_name, s.service.ref.name);
        if (!calls)
            return "the API server does not call this host: no ValidatingWebhookConfiguration, "
                   "MutatingWebhookConfiguration, APIService or CRD conversion webhook of the "
                   "input names Service " +
                   name + " (ambient.md §16)";
        const bool on_port = !port || std::any_of(calls->begin(), calls->end(),
                                                  [&](const model::ApiServerCallRef& c) {
                                                      return c.call->port == *port;
                                                  });
        if (!on_port)
            return "the API server calls Service " + name + " on port " + called_ports(*calls) +
                   " only, not " + std::to_string(*port) + " (ambient.md §16)";
        if (!s.service.selector)
            return "the Service has no selector: its endpoints are unknown (semantics §2)";
        const bool has_port = std::any_of(calls->begin(), calls->end(), [&](const auto& c) {
            return std::any_of(
                s.service.ports.begin(), s.service.ports.end(),
                [&](const model::ServicePort& p) { return p.tcp && p.port == c.call->port; });
        });
        if (!has_port)
            return "the registrations call Service " + name + " on port " + called_ports(*calls) +
                   ", which it does not have as a TCP port: the calls cannot connect";
    }
    return "no workload in the input stands behind the port the API server calls (semantics §2)";
}

// Why no flow came out, in the order the engine drops them.
std::string no_flow_note(const resolution::ConfigView& view, const Target& target,
                         const Asker& asker, std::optional<std::uint16_t> port) {
    const auto& snapshot = view.snapshot();
    if (asker.api_server)
        return api_server_no_flow_note(snapshot, target, port);
    if (target.external) {
        const auto& h = snapshot.external_hosts()[*target.external];
        if (!h.mesh_external)
            return "the ServiceEntry host is MESH_INTERNAL: nothing is known of its endpoints";
        return "no sidecar client in " + view.namespace_name(asker.ns) + " sends to it";
    }
    for (model::ServiceId id : target.services) {
        const auto& s = snapshot.services()[id];
        if (!s.service.selector)
            return "the Service has no selector: its endpoints are unknown (semantics §2)";
        if (!s.analysed_as_server)
            return "Services of kube-system, kube-public and the Istio control plane are not "
                   "analysed as servers (semantics §8)";
        if (s.endpoint_positions.empty())
            return "no workload in the input stands behind the Service (semantics §2)";
    }
    return "no client of " + view.namespace_name(asker.ns) +
           (asker.workloads.empty() ? "" : " (the workload asked about)") +
           " sends to this host: the namespace runs no client the input shows, or none that "
           "reaches a TCP port of it (semantics §8)";
}

std::string find_request(const model::Snapshot& snapshot, const ExplainRequest& request,
                         Asker& asker, Target& target) {
    if (request.from_namespace == model::api_server_client_name) {
        if (!request.workload.empty())
            return "--workload does not apply to --from " + request.from_namespace +
                   ": the API server runs no workload of the input";
        asker.ns = model::api_server_client;
        asker.api_server = true;
    } else if (const auto ns = snapshot.namespace_id(request.from_namespace); !ns) {
        return "namespace \"" + request.from_namespace + "\" not found in the input";
    } else {
        asker.ns = *ns;
    }
    if (!asker.api_server && !request.workload.empty()) {
        const auto slash = request.workload.find('/');
        const std::string wns =
            slash == std::string::npos ? request.from_namespace : request.workload.substr(0, slash);
        const std::string name =
            slash == std::string::npos ? request.workload : request.workload.substr(slash + 1);
        if (wns != request.from_namespace)
            return "--workload " + request.workload + " is not in the --from namespace " +
                   request.from_namespace;
        for (model::WorkloadId id : snapshot.namespaces()[asker.ns].workloads)
            if (snapshot.workloads()[id].name == name && !snapshot.workloads()[id].waypoint)
                asker.workloads.push_back(id);
        if (asker.workloads.empty())
            return "workload \"" + wns + "/" + name + "\" not found in the input";
    }
    auto found = find_target(snapshot, request.host, request.from_namespace);
    if (!found && asker.api_server && request.host.find('.') == std::string::npos)
        return "host \"" + request.host +
               "\": a short name does not resolve for the API server, "
               "which names a Service by its namespace: give NAME.NAMESPACE";
    if (!found) {
        const auto close = close_hosts(snapshot, request.host);
        return "host \"" + request.host + "\" is no Service or ServiceEntry host of the input" +
               (close.empty() ? std::string() : " (did you mean " + join(close, ", ") + "?)");
    }
    target = std::move(*found);
    if (request.port) {
        std::vector<std::string> ports;
        bool known = false;
        for (model::ServiceId id : target.services)
            for (const auto& p : snapshot.services()[id].service.ports)
                if (p.tcp) {
                    known = known || p.port == *request.port;
                    ports.push_back(std::to_string(p.port));
                }
        if (target.external) {
            const auto& h = snapshot.external_hosts()[*target.external];
            known = h.ports.empty() ||
                    std::find(h.ports.begin(), h.ports.end(), *request.port) != h.ports.end();
            for (auto p : h.ports)
                ports.push_back(std::to_string(p));
        }
        if (!known)
            return "host " + target.fqdn + " has no TCP port " + std::to_string(*request.port) +
                   " (its TCP ports: " + (ports.empty() ? "none" : join(ports, ", ")) + ")";
    }
    return {};
}

} // namespace

std::optional<HostPort> parse_host_port(std::string_view text) {
    HostPort out;
    const auto colon = text.rfind(':');
    std::string_view host = text;
    if (colon != std::string_view::npos) {
        const std::string_view digits = text.substr(colon + 1);
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
            value == 0 || value > 65535)
            return std::nullopt;
        out.port = static_cast<std::uint16_t>(value);
        host = text.substr(0, colon);
    }
    if (host.empty() || host.find_first_of(" /:\t") != std::string_view::npos)
        return std::nullopt;
    out.host = std::string(host);
    return out;
}

ExplainResult explain(const model::Snapshot& snapshot, const ExplainRequest& request) noexcept {
    ExplainResult result;
    try {
        result.from_namespace = request.from_namespace;
        result.workload = request.workload;
        result.port = request.port;
        Asker asker;
        Target target;
        result.error = find_request(snapshot, request, asker, target);
        if (!result.error.empty())
            return result;
        result.host = target.fqdn;
        const resolution::ConfigView view(snapshot);
        for (const auto& c : collect(view, target, asker, request.port))
            result.flows.push_back(explain_flow(view, asker, c));
        if (result.flows.empty())
            result.notes.push_back(no_flow_note(view, target, asker, request.port));
    } catch (const std::exception& e) {
        result.flows.clear();
        result.internal_error = e.what();
    } catch (...) {
        result.flows.clear();
        result.internal_error = "unknown error";
    }
    return result;
}

namespace {

nlohmann::json object_json(const ExplainedObject& o) {
    return {{"kind", o.kind}, {"namespace", o.namespace_name}, {"name", o.name}};
}

nlohmann::json step_json(const ExplainStep& step) {
    nlohmann::json j = step.facts;
    j["kind"] = step.kind;
    j["summary"] = step.summary;
    j["because"] = step.because;
    j["decidedBy"] = nlohmann::json::array();
    for (const auto& o : step.decided_by)
        j["decidedBy"].push_back(object_json(o));
    j["lost"] = nlohmann::json::array();
    for (const auto& l : step.lost) {
        auto entry = object_json(l.object);
        entry["reason"] = l.reason;
        j["lost"].push_back(std::move(entry));
    }
    return j;
}

} // namespace

nlohmann::json explain_json(const ExplainResult& result) {
    nlohmann::json flows = nlohmann::json::array();
    for (const auto& f : result.flows) {
        nlohmann::json j = {{"clientNamespace", result.from_namespace},
                            {"clientDataplane", f.client_dataplane},
                            {"host", f.host},
                            {"port", f.port},
                            {"targetPort", f.target_port},
                            {"verdict", f.verdict},
                            {"code", f.code.empty() ? nlohmann::json() : nlohmann::json(f.code)},
                            {"message", f.message},
                            {"fix", f.fix.empty() ? nlohmann::json() : nlohmann::json(f.fix)}};
        if (f.workload)
            j["workload"] = object_json(*f.workload);
        j["steps"] = nlohmann::json::array();
        for (const auto& s : f.steps)
            j["steps"].push_back(step_json(s));
        flows.push_back(std::move(j));
    }
    nlohmann::json out = {{"from", result.from_namespace}, {"host", result.host}};
    out["port"] = result.port ? nlohmann::json(*result.port) : nlohmann::json();
    out["workload"] = result.workload.empty() ? nlohmann::json() : nlohmann::json(result.workload);
    out["flows"] = std::move(flows);
    out["notes"] = result.notes;
    return out;
}

namespace {

constexpr std::string_view step_titles[] = {"Client", "DestinationRule", "Client sends", "Server",
                                            "Verdict"};

std::string step_title(const ExplainStep& step, std::size_t index) {
    return index < std::size(step_titles) ? std::string(step_titles[index]) : step.kind;
}

std::string object_text(const ExplainedObject& o) {
    return o.kind + " " + (o.namespace_name.empty() ? "" : o.namespace_name + "/") + o.name;
}

} // namespace

std::string explain_text(const ExplainResult& result) {
    std::string out =
        "Explaining " + result.from_namespace +
        (result.workload.empty() ? "" : " (workload " + result.workload + ")") + " -> " +
        result.host + (result.port ? ":" + std::to_string(*result.port) : std::string()) + ": " +
        std::to_string(result.flows.size()) + (result.flows.size() == 1 ? " flow\n" : " flows\n");
    for (const auto& note : result.notes)
        out += "  " + note + "\n";
    for (std::size_t i = 0; i < result.flows.size(); ++i) {
        const auto& f = result.flows[i];
        out += "\nFlow " + std::to_string(i + 1) + ": " + result.from_namespace + " (" +
               f.client_dataplane + ") -> " + f.host + ":" + std::to_string(f.port);
        if (f.workload)
            out += " -> " + f.workload->namespace_name + "/" + f.workload->name + ":" +
                   std::to_string(f.target_port);
        out += "\n";
        for (std::size_t s = 0; s < f.steps.size(); ++s) {
            const auto& step = f.steps[s];
            out += "  " + std::to_string(s + 1) + ". " + step_title(step, s) + ": " + step.summary +
                   "\n";
            for (const auto& why : step.because)
                out += "       - " + why + "\n";
            if (!step.lost.empty())
                out += "     Lost:\n";
            for (const auto& l : step.lost)
                out += "       - " + object_text(l.object) + ": " + l.reason + "\n";
        }
        if (!f.fix.empty())
            out += "     Fix: " + f.fix + "\n";
    }
    return out;
}

} // namespace mtlsguard::report
