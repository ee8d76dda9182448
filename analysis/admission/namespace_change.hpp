// Admission of Namespace label changes (ambient.md §17): the flows a relabel introduces.
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/model/snapshot.hpp"

#include <array>
#include <set>
#include <string_view>
#include <vector>

namespace mtlsguard::admission {

// The namespace labels that decide its dataplane or waypoint. Public because the webhook
// registration (deploy/, charts/) sends the API server's Namespace updates to mtls-guard only when
// one of them changes, and tests/deploy checks that its matchCondition names exactly these.
inline constexpr std::array<std::string_view, 4> mesh_labels = {
    "istio-injection", "istio.io/rev", "istio.io/dataplane-mode", "istio.io/use-waypoint"};

// Whether the change touches one of `mesh_labels` (set, removed or given another value).
bool changes_mesh_labels(const model::Labels& before, const model::Labels& after) noexcept;
// Whether it touches istio-injection or istio.io/rev, which act only when pods are created.
bool changes_injection_labels(const model::Labels& before, const model::Labels& after) noexcept;

struct RelabelComparison {
    // At once (ambient enrolment, waypoints): judged like any other change (semantics §9).
    std::vector<conflict::Finding> introduced;
    std::vector<conflict::Finding> existing;
    // Introduced only once the namespace's pods restart (injection labels): never a denial.
    std::vector<conflict::Finding> at_restart;
    std::set<conflict::Code> codes;
    bool introduces_error = false; // among `introduced`
    std::size_t omitted = 0;
};

// Compares the flows the namespace `ns` serves or sends with its labels `before` and `after`,
// each applied to `snapshot`; keeps at most `kept` findings per severity and list. Flows are
// matched by Service (or ServiceEntry host), port, endpoint workload, subset and client
// namespace; the relabelled namespace's clients without a sidecar count as one kind, since a
// relabel moves them between none and ambient. The relabelled snapshots are overlays (no copy),
// and towards other namespaces' hosts only the namespace's own client classes are evaluated:
// still O(hosts) per snapshot compared, but not O(hosts × client classes).
RelabelComparison compare_relabel(const model::Snapshot& snapshot, model::NsId ns,
                                  const model::Labels& before, const model::Labels& after,
                                  std::size_t kept);

} // namespace mtlsguard::admission
