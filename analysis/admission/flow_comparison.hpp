// Admission's comparison of the flows a change touches, before and after it (spec §9).
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/resolution/config_view.hpp"

#include <cstddef>
#include <optional>
#include <set>
#include <vector>

namespace mtlsguard::admission {

// The flows a change can touch: services by id, ServiceEntry hosts by index.
struct Touched {
    std::vector<model::ServiceId> services;
    std::vector<std::size_t> external_hosts;
};

struct Comparison {
    std::vector<conflict::Finding> introduced; // problems the change creates
    std::vector<conflict::Finding> existing;   // problems that were there before
    std::set<conflict::Code> codes;            // every code seen, also beyond the findings kept
    bool introduces_error = false;
    std::size_t omitted = 0;
};

// Findings kept per severity: more than the API server would show as warnings anyway.
inline constexpr std::size_t findings_kept = 32;

// The touched flows' findings in `before` and `after` (a view of the snapshot with the change
// applied; `changed`: the namespace whose configuration it overrides), split into those the change
// introduces and those that were there before. `routes`: also compare routes to undefined
// subsets. `by_client`: compare flows client by client even when both views share the snapshot's
// client classes (a VirtualService changes which of a class's namespaces a subset flow has).
// `paired`: the views differ only in PeerAuthentication objects. `shows_hosts`: the views may
// differ in which hosts a Sidecar hides (a Sidecar change). `shortcuts`: see AdmissionSettings.
Comparison compare_flows(const resolution::ConfigView& before, const resolution::ConfigView& after,
                         const Touched& touched, std::optional<resolution::NsId> changed,
                         bool routes, bool by_client, bool paired, bool shows_hosts,
                         bool shortcuts);

} // namespace mtlsguard::admission
