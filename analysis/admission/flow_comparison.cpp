// Admission's comparison of the flows a change touches, before and after it (spec §9).
#include "analysis/admission/flow_comparison.hpp"

#include "analysis/conflict/flow_findings.hpp"
#include "analysis/conflict/routes.hpp"
#include "analysis/report/findings_output.hpp"
#include "analysis/report/messages.hpp"
#include "analysis/resolution/virtual_service.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

namespace mtlsguard::admission {
namespace {

using resolution::ConfigView;
using resolution::NsId;

// One flow's identity across the two views: target, port, endpoint, subset, client kind.
using FlowKey = std::tuple<std::uint32_t, std::uint16_t, const model::Workload*, std::string,
                           conflict::ClientKind>;
constexpr std::uint32_t no_workload = 0xffffffffu;

FlowKey key_of(const conflict::Flow& flow, const ConfigView& view) {
    const std::uint32_t target =
        flow.service ? view.service_id(*flow.service)
                     : 0x80000000u | static_cast<std::uint32_t>(
                                         flow.external - view.snapshot().external_hosts().data());
    return {target, flow.port, flow.workload, flow.subset ? flow.subset->name : std::string(),
            flow.client};
}

// Client identities: a namespace, refined to workloads in the changed namespace (whose selector
// DestinationRules, and so client variants, may differ between the two views).
std::vector<std::uint64_t> client_keys(const ConfigView& view, const conflict::FlowClients& who,
                                       std::optional<NsId> changed) {
    std::vector<std::uint64_t> keys;
    auto key = [](NsId ns, std::uint32_t w) { return (std::uint64_t{ns} << 32) | w; };
    if (who.kind == conflict::ClientKind::ApiServer)
        return {key(model::api_server_client, no_workload)};
    if (!who.outcome) {
        for (NsId ns : conflict::client_namespaces(view, who))
            keys.push_back(key(ns, no_workload));
        return keys;
    }
    // The namespaces of the outcome's classes (conflict::sending_classes), from one merge of
    // sorted lists: a generic outcome spans most of the mesh, and expanding it into classes reads
    // every namespace's configuration. Every namespace has a variant, so the two list the same
    // namespaces; only the changed one's classes are needed.
    const auto& outcome = *who.outcome;
    for (NsId ns : resolution::outcome_namespaces(view, outcome, *who.host_clients)) {
        if (who.routed && !std::binary_search(who.routed->begin(), who.routed->end(), ns))
            continue;
        if (!changed || ns != *changed) {
            keys.push_back(key(ns, no_workload));
            continue;
        }
        const auto& variants = view.config(ns).variants;
        auto add_variant = [&](std::size_t v) {
            const auto& workloads = variants[v].workloads;
            if (workloads.empty())
                keys.push_back(key(ns, no_workload));
            for (auto w : workloads)
                keys.push_back(key(ns, w));
        };
        for (const auto& member : outcome.members)
            if (member.ns == ns)
                add_variant(member.variant);
        if (outcome.generic && view.is_mesh_client(ns) && !who.host_clients->answers_for(ns))
            for (std::size_t v = 0; v < variants.size(); ++v)
                add_variant(v);
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
}

// client_keys() remembered for the flows of one target: every port and endpoint of a service
// repeats the same clients (the same outcome, kind and routed namespaces).
class ClientKeyCache {
  public:
    ClientKeyCache(const ConfigView& view, std::optional<NsId> changed)
        : view_(view), changed_(changed) {}
    const std::vector<std::uint64_t>& keys(const conflict::FlowClients& who) {
        if (target_ != who.target) {
            cache_.clear();
            target_ = who.target;
        }
        const auto key = std::make_tuple(who.outcome, who.kind, who.routed);
        auto it = cache_.find(key);
        if (it == cache_.end())
            it = cache_.emplace(key, client_keys(view_, who, changed_)).first;
        return it->second;
    }

  private:
    const ConfigView& view_;
    std::optional<NsId> changed_;
    std::uint32_t target_ = 0xffffffffu;
    std::map<std::tuple<const resolution::ClientOutcome*, conflict::ClientKind,
                        const std::vector<NsId>*>,
             std::vector<std::uint64_t>>
        cache_;
};

std::vector<NsId> namespaces_of(const std::vector<std::uint64_t>& keys) {
    std::vector<NsId> out;
    for (auto k : keys)
        out.push_back(static_cast<NsId>(k >> 32));
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// `skip_hidden`: leave out the flows to hosts a Sidecar hides (EvaluateOptions).
void evaluate(const ConfigView& view, const Touched& touched, const conflict::FlowSink& sink,
              bool skip_hidden = false) {
    conflict::EvaluateOptions options;
    options.skip_hidden = skip_hidden;
    for (auto id : touched.services)
        conflict::evaluate_service(view, id, sink, options);
    for (auto i : touched.external_hosts)
        conflict::evaluate_external_host(view, i, sink);
}

// Routes to undefined subsets (MTG107) after the change, split by client namespace into those the
// change introduces and those that were there before.
void compare_routes(const ConfigView& before, const ConfigView& after, const Touched& touched,
                    std::vector<conflict::Finding>& introduced,
                    std::vector<conflict::Finding>& existing) {
    // The VirtualService by namespace and name (its apiVersion may change), host, port, subset.
    using Key = std::tuple<std::string, std::string, std::string, std::uint16_t, std::string>;
    auto key_of_route = [](const conflict::Finding& f) {
        return Key{f.resource.namespace_name, f.resource.name, f.flow->host, f.flow->port,
                   f.flow->subset};
    };
    // Sorted and unique per key: a finding's namespaces are sorted, so one pass splits them.
    std::map<Key, std::vector<std::string>> was;
    for (auto& f : conflict::undefined_subset_routes(before, touched.services)) {
        auto& names = was[key_of_route(f)];
        const bool first = names.empty();
        std::move(f.flow->client_namespaces.begin(), f.flow->client_namespaces.end(),
                  std::back_inserter(names));
        if (!first) {
            std::sort(names.begin(), names.end());
            names.erase(std::unique(names.begin(), names.end()), names.end());
        }
    }
    static const std::vector<std::string> none;
    for (auto& f : conflict::undefined_subset_routes(after, touched.services)) {
        const auto it = was.find(key_of_route(f));
        const auto& failed = it != was.end() ? it->second : none;
        auto failed_at = failed.begin();
        std::vector<std::string> fresh, old;
        for (auto& ns : f.flow->client_namespaces) {
            while (failed_at != failed.end() && *failed_at < ns)
                ++failed_at;
            (failed_at != failed.end() && *failed_at == ns ? old : fresh).push_back(std::move(ns));
        }
        if (!old.empty()) {
            conflict::Finding copy = f;
            copy.flow->client_namespaces = std::move(old);
            existing.push_back(std::move(copy));
        }
        if (!fresh.empty()) {
            f.flow->client_namespaces = std::move(fresh);
            introduced.push_back(std::move(f));
        }
    }
}

// A FAIL flow is introduced unless it failed before; a flow that only warns (DEPENDS, or a
// failure of non-mesh clients) is new unless it had any finding before.
bool was_problem(const conflict::Flow& flow, bool failed_before, bool warned_before) {
    return flow.verdict == conflict::Verdict::Fail ? failed_before
                                                   : (failed_before || warned_before);
}

// One flow's identity within its target when both views share their client classes: port,
// endpoint, subset, client kind and client outcome. Compact, and only compared target by target.
struct SharedFlowKey {
    std::uint16_t port = 0;
    const model::Workload* workload = nullptr;
    std::string_view subset;
    conflict::ClientKind client = conflict::ClientKind::Sidecar;
    const resolution::ClientOutcome* outcome = nullptr;
    auto operator<=>(const SharedFlowKey&) const = default;
};

SharedFlowKey shared_key_of(const conflict::Flow& flow, const conflict::FlowClients& who) {
    return {flow.port, flow.workload,
            flow.subset ? std::string_view(flow.subset->name) : std::string_view(), flow.client,
            who.outcome};
}

// The flows of one target that carried a code in the view before the change, and whether they
// failed there.
class EarlierProblems {
  public:
    void add(const conflict::Flow& flow, const conflict::FlowClients& who) {
        if (flow.code)
            flows_.emplace_back(shared_key_of(flow, who), flow.verdict == conflict::Verdict::Fail);
    }
    // Call once all of the target's flows were added.
    void seal() { std::sort(flows_.begin(), flows_.end()); }
    // Whether the same flow (any flow with its key) was a problem before.
    bool was_problem(const conflict::Flow& flow, const conflict::FlowClients& who) const {
        const SharedFlowKey key = shared_key_of(flow, who);
        auto it = std::lower_bound(flows_.begin(), flows_.end(), std::make_pair(key, false));
        bool failed = false, warned = false;
        for (; it != flows_.end() && it->first == key; ++it)
            (it->second ? failed : warned) = true;
        return admission::was_problem(flow, failed, warned);
    }
    void clear() { flows_.clear(); }

  private:
    std::vector<std::pair<SharedFlowKey, bool>> flows_;
};

// Whether no two values of `values` (few, or sorted) are equal, without copying them.
template <typename Values, typename Project>
bool all_distinct(const Values& values, const Project& project) {
    const auto less = [&](const auto& a, const auto& b) { return project(a) < project(b); };
    const auto equal = [&](const auto& a, const auto& b) { return project(a) == project(b); };
    if (std::is_sorted(values.begin(), values.end(), less))
        return std::adjacent_find(values.begin(), values.end(), equal) == values.end();
    for (auto a = values.begin(); a != values.end(); ++a)
        for (auto b = std::next(a); b != values.end(); ++b)
            if (equal(*a, *b))
                return false;
    return true;
}

// Whether no two flows towards the service can share a SharedFlowKey: then each flow evaluated in
// one pass (evaluate_service with an earlier view) stands for every flow of its key. Duplicate
// endpoints or ports would merge flows, which only two passes compare exactly. (Subsets cannot:
// a ConsolidatedRule holds one per name, and every subset has one.)
bool flow_keys_unique(const model::ServiceRecord& service) {
    const auto itself = [](const auto& v) { return v; };
    // Ports that are not TCP have no flows: a UDP twin of a TCP port does not count.
    const auto tcp_port = [](const model::ServicePort& p) {
        return p.tcp ? std::uint32_t{p.port} : 0x10000u + std::uint32_t{p.port};
    };
    return all_distinct(service.service.ports, tcp_port) &&
           all_distinct(service.endpoint_positions, itself);
}

// compare_flows() when both views share their client classes: a flow is the same flow in both when
// its target, key and client outcome are. `paired`: the views differ only in PeerAuthentication,
// so with `shortcuts` a service's flows are evaluated once, each with what it was before
// (evaluate_service); otherwise each target is evaluated before, then after.
void compare_shared(const ConfigView& before, const ConfigView& after, const Touched& touched,
                    bool paired, bool shortcuts, conflict::FlowFindingCollector& introduced,
                    conflict::FlowFindingCollector& existing) {
    EarlierProblems earlier;
    const auto before_sink = [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
        earlier.add(flow, who);
    };
    const auto after_sink = [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
        if (flow.code)
            (earlier.was_problem(flow, who) ? existing : introduced).add(flow, who);
    };
    const auto paired_sink = [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
        if (!flow.code)
            return;
        const bool failed = flow.earlier.coded && flow.earlier.verdict == conflict::Verdict::Fail;
        const bool warned = flow.earlier.coded && !failed;
        (was_problem(flow, failed, warned) ? existing : introduced).add(flow, who);
    };
    // Flows to hosts a Sidecar hides carry no code, and in both views the same hosts are hidden.
    const bool skip_hidden = shortcuts;
    const bool one_pass = paired && skip_hidden;
    conflict::EvaluateOptions paired_options, two_pass_options;
    paired_options.earlier = &before;
    paired_options.skip_hidden = true;
    two_pass_options.skip_hidden = skip_hidden;
    for (auto id : touched.services) {
        if (one_pass && flow_keys_unique(after.snapshot().services()[id])) {
            conflict::evaluate_service(after, id, paired_sink, paired_options);
            continue;
        }
        earlier.clear();
        conflict::evaluate_service(before, id, before_sink, two_pass_options);
        earlier.seal();
        conflict::evaluate_service(after, id, after_sink, two_pass_options);
    }
    for (auto i : touched.external_hosts) {
        earlier.clear();
        conflict::evaluate_external_host(before, i, before_sink);
        earlier.seal();
        conflict::evaluate_external_host(after, i, after_sink);
    }
}

// compare_flows() when the views may differ in their client classes: a flow is the same flow in
// both when its FlowKey is, and its clients are compared one by one (client_keys()). `skip_hidden`:
// leave out the flows to hosts a Sidecar hides.
void compare_by_client(const ConfigView& before, const ConfigView& after, const Touched& touched,
                       std::optional<NsId> changed, bool skip_hidden,
                       conflict::FlowFindingCollector& introduced,
                       conflict::FlowFindingCollector& existing) {
    using Keys = std::vector<std::uint64_t>;
    std::map<FlowKey, Keys> failed, warned;
    ClientKeyCache before_keys_of(before, changed), after_keys_of(after, changed);
    evaluate(
        before, touched,
        [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
            // A flow to a host a Sidecar hides carries no code, but it fails when it
            // meets STRICT or is dropped (ambient.md §14): showing the host cannot
            // introduce that failure.
            const bool fails = flow.verdict == conflict::Verdict::Fail || flow.dropped;
            if (!flow.code && !(flow.hidden_by && fails))
                return;
            const auto& keys = before_keys_of.keys(who);
            auto& slot = (fails ? failed : warned)[key_of(flow, before)];
            Keys merged;
            std::set_union(slot.begin(), slot.end(), keys.begin(), keys.end(),
                           std::back_inserter(merged));
            slot = std::move(merged);
        },
        skip_hidden);
    static const Keys none;
    auto at = [&](const std::map<FlowKey, Keys>& map, const FlowKey& key) -> const Keys& {
        auto it = map.find(key);
        return it == map.end() ? none : it->second;
    };
    evaluate(
        after, touched,
        [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
            if (!flow.code)
                return;
            const auto& keys = after_keys_of.keys(who);
            const FlowKey key = key_of(flow, after);
            // Clients for whom this flow was already a problem of the kind that counts.
            Keys before_keys = at(failed, key);
            if (flow.verdict != conflict::Verdict::Fail) {
                const Keys& w = at(warned, key);
                Keys merged;
                std::set_union(before_keys.begin(), before_keys.end(), w.begin(), w.end(),
                               std::back_inserter(merged));
                before_keys = std::move(merged);
            }
            Keys fresh, old;
            std::set_difference(keys.begin(), keys.end(), before_keys.begin(), before_keys.end(),
                                std::back_inserter(fresh));
            std::set_intersection(keys.begin(), keys.end(), before_keys.begin(), before_keys.end(),
                                  std::back_inserter(old));
            introduced.add_for(flow, namespaces_of(fresh));
            existing.add_for(flow, namespaces_of(old));
        },
        skip_hidden);
}

// The collected findings, with the undefined-subset routes when `routes`, described and sorted.
Comparison collect_comparison(conflict::FlowFindingCollector& introduced,
                              conflict::FlowFindingCollector& existing, bool routes,
                              const ConfigView& before, const ConfigView& after,
                              const Touched& touched) {
    Comparison out{introduced.take(),
                   existing.take(),
                   {},
                   introduced.has_error(),
                   introduced.omitted() + existing.omitted()};
    out.codes = introduced.codes();
    out.codes.insert(existing.codes().begin(), existing.codes().end());
    if (routes) {
        const auto first_new = out.introduced.size();
        compare_routes(before, after, touched, out.introduced, out.existing);
        if (out.introduced.size() > first_new)
            out.introduces_error = true;
        for (const auto* list : {&out.introduced, &out.existing})
            for (const auto& f : *list)
                out.codes.insert(f.code);
    }
    report::describe_all(out.introduced);
    report::describe_all(out.existing);
    std::sort(out.introduced.begin(), out.introduced.end(), conflict::finding_less);
    std::sort(out.existing.begin(), out.existing.end(), conflict::finding_less);
    return out;
}

} // namespace

Comparison compare_flows(const ConfigView& before, const ConfigView& after, const Touched& touched,
                         std::optional<NsId> changed, bool routes, bool by_client, bool paired,
                         bool shows_hosts, bool shortcuts) {
    // Warnings name a few client namespaces of each finding (report::short_list).
    conflict::FlowFindingCollector introduced(after, findings_kept, report::names_shown);
    conflict::FlowFindingCollector existing(after, findings_kept, report::names_shown);
    // When neither view changes DestinationRules or the set of client namespaces, both see the
    // very same client classes (the snapshot's precomputed ones): a flow is identified by its
    // key and the client outcome, and no client set has to be expanded.
    const bool shared_clients = !by_client && !before.rules_changed() && !after.rules_changed() &&
                                before.mesh_client_namespaces() == after.mesh_client_namespaces();
    if (shared_clients) {
        compare_shared(before, after, touched, paired, shortcuts, introduced, existing);
    } else {
        // Flows to hosts a Sidecar hides carry no code; they matter only when the change may show
        // the host (below), so other changes leave them out.
        const bool skip_hidden = shortcuts && !shows_hosts;
        compare_by_client(before, after, touched, changed, skip_hidden, introduced, existing);
    }
    return collect_comparison(introduced, existing, routes, before, after, touched);
}

} // namespace mtlsguard::admission
