// Admission of Namespace label changes (ambient.md §17): the flows a relabel introduces.
#include "analysis/admission/namespace_change.hpp"

#include "analysis/conflict/flow_findings.hpp"
#include "analysis/report/messages.hpp"
#include "analysis/resolution/config_view.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>

namespace mtlsguard::admission {
namespace {

using conflict::ClientKind;
using conflict::Flow;
using model::NsId;

constexpr std::array<std::string_view, 2> injection_labels = {"istio-injection", "istio.io/rev"};

template <std::size_t N>
bool any_differs(const std::array<std::string_view, N>& keys, const model::Labels& a,
                 const model::Labels& b) noexcept {
    return std::any_of(keys.begin(), keys.end(), [&](std::string_view key) {
        const std::string* x = a.find(key);
        const std::string* y = b.find(key);
        return (x == nullptr) != (y == nullptr) || (x && *x != *y);
    });
}

// One flow from one client namespace, matched across two snapshots of the same objects: port,
// endpoint WorkloadId, subset, client kind, client namespace. Flows are matched one target (Service
// or ServiceEntry host) at a time, so the target is not part of the key. The subset's name lives in
// the views' configuration, which outlives every key.
using FlowKey = std::tuple<std::uint16_t, std::uint32_t, std::string_view, std::uint8_t, NsId>;
constexpr std::uint32_t no_workload = 0xffffffffu;
constexpr std::uint8_t without_sidecar = 0xff; // none or ambient, in the relabelled namespace

FlowKey key_of(const Flow& flow, const resolution::ConfigView& view, NsId client, NsId changed) {
    const std::uint32_t workload = flow.workload ? view.workload_id(*flow.workload) : no_workload;
    const bool moves = client == changed && flow.client != ClientKind::Sidecar &&
                       flow.client != ClientKind::ApiServer;
    return {flow.port, workload,
            flow.subset ? std::string_view(flow.subset->name) : std::string_view(),
            moves ? without_sidecar : static_cast<std::uint8_t>(flow.client), client};
}

// A Service (by id) or a ServiceEntry host (by index): what one round of the comparison is about.
// The endpoints of a Service in another namespace than the relabelled one are the same in every
// view compared (its namespace's workloads and configuration, and the mesh's, are the snapshot's),
// so they are computed once for all of them (`endpoints`, null otherwise).
struct Target {
    bool external = false;
    std::size_t index = 0;
    std::vector<std::optional<std::vector<conflict::Endpoint>>>* endpoints = nullptr;
};

// Calls `visit(flow, namespaces)` for every flow to `target` with a code that `changed` serves (all
// its client namespaces) or sends (then only `changed` itself). The namespace's clients may call
// any host, but towards the other namespaces' hosts only the client classes that include `changed`
// are evaluated: the relabel changes no other flow there; without `sidecars`, not its sidecar
// client classes either.
template <typename Visit>
void visit_flows(const resolution::ConfigView& view, NsId changed, bool sidecars, Target target,
                 Visit visit) {
    auto sink = [&](const Flow& flow, const conflict::FlowClients& who) {
        if (!flow.code)
            return;
        if (flow.service && flow.service->ns == changed)
            visit(flow, conflict::client_namespaces(view, who));
        else if (conflict::sends_from(view, who, changed))
            visit(flow, std::vector<NsId>{changed});
    };
    if (target.external) {
        conflict::evaluate_external_host(view, target.index, sink, changed, sidecars);
        return;
    }
    const auto id = static_cast<model::ServiceId>(target.index);
    const bool served = view.snapshot().services()[id].ns == changed;
    conflict::EvaluateOptions options;
    options.sender = served ? std::nullopt : std::optional<NsId>(changed);
    options.sidecar_senders = sidecars;
    options.endpoints = target.endpoints;
    conflict::evaluate_service(view, id, sink, options);
}

// At once, no pod gains or loses its sidecar and no configuration changes: the flows the
// namespace's sidecar clients send to other namespaces' hosts are the same on both sides, so the
// "before" side leaves them out and the "after" side counts them as known.
bool same_at_once(const Flow& flow, NsId changed) noexcept {
    return flow.client == ClientKind::Sidecar && (!flow.service || flow.service->ns != changed);
}

// Problems before the change to one target, by flow and client namespace (sorted, for lookups).
struct Before {
    std::vector<FlowKey> failed;
    std::vector<FlowKey> warned;

    bool has(const std::vector<FlowKey>& keys, const FlowKey& key) const {
        return std::binary_search(keys.begin(), keys.end(), key);
    }
};

// One comparison of two relabelled snapshots: flows are evaluated in `before` and matched in
// `after`; what `after` introduces goes to `introduced`, what was a problem already to `existing`
// (when given).
struct Comparison {
    const resolution::ConfigView& before;
    const resolution::ConfigView& after;
    bool at_once;
    conflict::FlowFindingCollector& introduced;
    conflict::FlowFindingCollector* existing;
};

void problems_of(const resolution::ConfigView& view, NsId changed, bool at_once, Target target,
                 Before& out) {
    out.failed.clear();
    out.warned.clear();
    visit_flows(view, changed, !at_once, target,
                [&](const Flow& flow, const std::vector<NsId>& namespaces) {
                    auto& keys = flow.verdict == conflict::Verdict::Fail ? out.failed : out.warned;
                    for (NsId ns : namespaces)
                        keys.push_back(key_of(flow, view, ns, changed));
                });
    std::sort(out.failed.begin(), out.failed.end());
    std::sort(out.warned.begin(), out.warned.end());
}

// Splits the flows of `after` to one target into those the change introduces and those that were
// problems before: a FAIL flow is new unless it failed before; one that only warns is new unless it
// had any finding before (as for every other kind, semantics §9). The before side of the same
// target is evaluated just before, while its records are still in the cache.
void compare_target(const Comparison& c, NsId changed, Target target, Before& before) {
    problems_of(c.before, changed, c.at_once, target, before);
    visit_flows(
        c.after, changed, true, target, [&](const Flow& flow, const std::vector<NsId>& namespaces) {
            std::vector<NsId> fresh, old;
            const bool same = c.at_once && same_at_once(flow, changed);
            for (NsId ns : namespaces) {
                const FlowKey key = key_of(flow, c.after, ns, changed);
                const bool was =
                    same || before.has(before.failed, key) ||
                    (flow.verdict != conflict::Verdict::Fail && before.has(before.warned, key));
                (was ? old : fresh).push_back(ns);
            }
            if (!fresh.empty())
                c.introduced.add_for(flow, fresh);
            if (!old.empty() && c.existing)
                c.existing->add_for(flow, old);
        });
}

// Runs the comparisons target by target, in the order of a whole-mesh evaluation: each
// collector sees its flows in that order, whichever other comparisons run beside it.
void compare_every_target(const model::Snapshot& snapshot, NsId changed,
                          const std::vector<const Comparison*>& comparisons) {
    Before before;
    std::vector<std::optional<std::vector<conflict::Endpoint>>> endpoints;
    const auto run = [&](Target target) {
        for (const Comparison* c : comparisons)
            compare_target(*c, changed, target, before);
    };
    // The root namespace's configuration holds the mesh's policy: its relabel shares nothing.
    const bool shared = changed != comparisons.front()->after.root_namespace_id();
    for (std::size_t id = 0; id < snapshot.services().size(); ++id) {
        endpoints.clear();
        const bool same = shared && snapshot.services()[id].ns != changed;
        run(Target{false, id, same ? &endpoints : nullptr});
    }
    for (std::size_t i = 0; i < snapshot.external_hosts().size(); ++i)
        run(Target{true, i});
}

std::vector<conflict::Finding> finish(std::vector<conflict::Finding> findings) {
    report::describe_all(findings);
    std::sort(findings.begin(), findings.end(), conflict::finding_less);
    return findings;
}

// The snapshot with the namespace relabelled, seen through an overlay: no copy of the snapshot.
resolution::ConfigView relabelled(const model::Snapshot& snapshot, NsId ns,
                                  const model::Labels& labels, model::RelabelTiming timing) {
    return resolution::ConfigView(
        snapshot, std::make_shared<const model::RelabelledNamespace>(
                      model::SnapshotBuilder::relabel_overlay(snapshot, ns, labels, timing)));
}

} // namespace

bool changes_mesh_labels(const model::Labels& before, const model::Labels& after) noexcept {
    return any_differs(mesh_labels, before, after);
}

bool changes_injection_labels(const model::Labels& before, const model::Labels& after) noexcept {
    return any_differs(injection_labels, before, after);
}

RelabelComparison compare_relabel(const model::Snapshot& snapshot, NsId ns,
                                  const model::Labels& before, const model::Labels& after,
                                  std::size_t kept) {
    // What the relabel changes at once (ambient enrolment, waypoints), judged as any change. The
    // snapshot itself is "before" when it already has those labels (the usual case).
    constexpr auto at_once = model::RelabelTiming::AtOnce;
    const resolution::ConfigView was = snapshot.namespaces()[ns].labels == before
                                           ? resolution::ConfigView(snapshot)
                                           : relabelled(snapshot, ns, before, at_once);
    const resolution::ConfigView now = relabelled(snapshot, ns, after, at_once);
    conflict::FlowFindingCollector introduced(now, kept);
    conflict::FlowFindingCollector existing(now, kept);
    const Comparison once{was, now, true, introduced, &existing};
    std::vector<const Comparison*> comparisons{&once};

    // What the injection labels change once the pods are created again: both sides restarted, so
    // that what differs is the labels' doing, not pods that merely predate an earlier relabel.
    constexpr auto restart = model::RelabelTiming::AfterRestart;
    const bool restarts = changes_injection_labels(before, after);
    std::optional<resolution::ConfigView> was_restarted, restarted;
    std::optional<conflict::FlowFindingCollector> later;
    std::optional<Comparison> at_restart;
    if (restarts) {
        was_restarted.emplace(relabelled(snapshot, ns, before, restart));
        restarted.emplace(relabelled(snapshot, ns, after, restart));
        later.emplace(*restarted, kept);
        at_restart.emplace(Comparison{*was_restarted, *restarted, false, *later, nullptr});
        comparisons.push_back(&*at_restart);
    }
    compare_every_target(snapshot, ns, comparisons);

    RelabelComparison out;
    out.introduces_error = introduced.has_error();
    out.omitted = introduced.omitted() + existing.omitted();
    out.codes = introduced.codes();
    out.codes.insert(existing.codes().begin(), existing.codes().end());
    out.introduced = finish(introduced.take());
    out.existing = finish(existing.take());
    if (!restarts)
        return out;
    out.omitted += later->omitted();
    out.codes.insert(later->codes().begin(), later->codes().end());
    out.at_restart = finish(later->take());
    for (auto& f : out.at_restart)
        if (f.severity == conflict::Severity::Error)
            f.severity = conflict::Severity::Warning;
    return out;
}

} // namespace mtlsguard::admission
