// Admission of Namespace label changes (ambient.md §17): the flows a relabel introduces.
#include "analysis/admission/namespace_change.hpp"

#include "analysis/conflict/flow_findings.hpp"
#include "analysis/report/messages.hpp"
#include "analysis/resolution/config_view.hpp"

#include <algorithm>
#include <array>
#include <memory>
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

// One flow from one client namespace, matched across two snapshots of the same objects: target
// (ServiceId, or external_target | host index), port, endpoint WorkloadId, subset, client kind,
// client namespace.
using FlowKey =
    std::tuple<std::uint32_t, std::uint16_t, std::uint32_t, std::string, std::uint8_t, NsId>;
constexpr std::uint32_t no_workload = 0xffffffffu;
constexpr std::uint8_t without_sidecar = 0xff; // none or ambient, in the relabelled namespace

FlowKey key_of(const Flow& flow, const resolution::ConfigView& view, NsId client, NsId changed) {
    const model::Snapshot& snapshot = view.snapshot();
    const std::uint32_t target =
        flow.service
            ? view.service_id(*flow.service)
            : conflict::external_target |
                  static_cast<std::uint32_t>(flow.external - snapshot.external_hosts().data());
    const std::uint32_t workload = flow.workload ? view.workload_id(*flow.workload) : no_workload;
    const bool moves = client == changed && flow.client != ClientKind::Sidecar &&
                       flow.client != ClientKind::ApiServer;
    return {target,
            flow.port,
            workload,
            flow.subset ? flow.subset->name : std::string(),
            moves ? without_sidecar : static_cast<std::uint8_t>(flow.client),
            client};
}

// Calls `visit(flow, namespaces)` for every flow with a code that `changed` serves (all its
// client namespaces) or sends (then only `changed` itself), in the order of a whole-mesh
// evaluation. The namespace's clients may call any host, but towards the other namespaces'
// hosts only the client classes that include `changed` are evaluated: the relabel changes no
// other flow there; without `sidecars`, not its sidecar client classes either.
template <typename Visit>
void visit_flows(const resolution::ConfigView& view, NsId changed, bool sidecars, Visit visit) {
    auto sink = [&](const Flow& flow, const conflict::FlowClients& who) {
        if (!flow.code)
            return;
        if (flow.service && flow.service->ns == changed)
            visit(flow, conflict::client_namespaces(view, who));
        else if (conflict::sends_from(view, who, changed))
            visit(flow, std::vector<NsId>{changed});
    };
    const model::Snapshot& snapshot = view.snapshot();
    for (model::ServiceId id = 0; id < snapshot.services().size(); ++id) {
        const bool served = snapshot.services()[id].ns == changed;
        conflict::EvaluateOptions options;
        options.sender = served ? std::nullopt : std::optional<NsId>(changed);
        options.sidecar_senders = sidecars;
        conflict::evaluate_service(view, id, sink, options);
    }
    for (std::size_t i = 0; i < snapshot.external_hosts().size(); ++i)
        conflict::evaluate_external_host(view, i, sink, changed, sidecars);
}

// At once, no pod gains or loses its sidecar and no configuration changes: the flows the
// namespace's sidecar clients send to other namespaces' hosts are the same on both sides, so the
// "before" side leaves them out and the "after" side counts them as known.
bool same_at_once(const Flow& flow, NsId changed) noexcept {
    return flow.client == ClientKind::Sidecar && (!flow.service || flow.service->ns != changed);
}

// Problems before the change, by flow and client namespace.
struct Before {
    std::set<FlowKey> failed;
    std::set<FlowKey> warned;
};

Before problems_of(const resolution::ConfigView& view, NsId changed, bool at_once) {
    Before out;
    visit_flows(view, changed, !at_once,
                [&](const Flow& flow, const std::vector<NsId>& namespaces) {
                    auto& set = flow.verdict == conflict::Verdict::Fail ? out.failed : out.warned;
                    for (NsId ns : namespaces)
                        set.insert(key_of(flow, view, ns, changed));
                });
    return out;
}

// Splits the flows of `after` into those the change introduces and those that were problems
// before: a FAIL flow is new unless it failed before; one that only warns is new unless it had
// any finding before (as for every other kind, semantics §9).
void split_flows(const resolution::ConfigView& view, NsId changed, const Before& before,
                 bool at_once, conflict::FlowFindingCollector& introduced,
                 conflict::FlowFindingCollector* existing) {
    visit_flows(view, changed, true, [&](const Flow& flow, const std::vector<NsId>& namespaces) {
        std::vector<NsId> fresh, old;
        const bool same = at_once && same_at_once(flow, changed);
        for (NsId ns : namespaces) {
            const FlowKey key = key_of(flow, view, ns, changed);
            const bool was = same || before.failed.count(key) > 0 ||
                             (flow.verdict != conflict::Verdict::Fail && before.warned.count(key));
            (was ? old : fresh).push_back(ns);
        }
        if (!fresh.empty())
            introduced.add_for(flow, fresh);
        if (!old.empty() && existing)
            existing->add_for(flow, old);
    });
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

// What the relabel changes at once (ambient enrolment, waypoints): judged as any change.
void compare_at_once(const model::Snapshot& snapshot, NsId ns, const model::Labels& before,
                     const model::Labels& after, std::size_t kept, RelabelComparison& out) {
    constexpr auto at_once = model::RelabelTiming::AtOnce;
    // The snapshot itself is "before" when it already has those labels (the usual case).
    const Before was = snapshot.namespaces()[ns].labels == before
                           ? problems_of(resolution::ConfigView(snapshot), ns, true)
                           : problems_of(relabelled(snapshot, ns, before, at_once), ns, true);
    const resolution::ConfigView view = relabelled(snapshot, ns, after, at_once);
    conflict::FlowFindingCollector introduced(view, kept);
    conflict::FlowFindingCollector existing(view, kept);
    split_flows(view, ns, was, true, introduced, &existing);
    out.introduces_error = introduced.has_error();
    out.omitted = introduced.omitted() + existing.omitted();
    out.codes = introduced.codes();
    out.codes.insert(existing.codes().begin(), existing.codes().end());
    out.introduced = finish(introduced.take());
    out.existing = finish(existing.take());
}

// What the injection labels change once the pods are created again: both sides restarted, so
// that what differs is the labels' doing, not pods that merely predate an earlier relabel.
void compare_at_restart(const model::Snapshot& snapshot, NsId ns, const model::Labels& before,
                        const model::Labels& after, std::size_t kept, RelabelComparison& out) {
    constexpr auto restart = model::RelabelTiming::AfterRestart;
    const Before was = problems_of(relabelled(snapshot, ns, before, restart), ns, false);
    const resolution::ConfigView view = relabelled(snapshot, ns, after, restart);
    conflict::FlowFindingCollector later(view, kept);
    split_flows(view, ns, was, false, later, nullptr);
    out.omitted += later.omitted();
    out.codes.insert(later.codes().begin(), later.codes().end());
    out.at_restart = finish(later.take());
    for (auto& f : out.at_restart)
        if (f.severity == conflict::Severity::Error)
            f.severity = conflict::Severity::Warning;
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
    RelabelComparison out;
    compare_at_once(snapshot, ns, before, after, kept, out);
    if (changes_injection_labels(before, after))
        compare_at_restart(snapshot, ns, before, after, kept, out);
    return out;
}

} // namespace mtlsguard::admission
