// VirtualService routes to subsets that the clients' DestinationRule does not define (MTG107).
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/resolution/config_view.hpp"

#include <vector>

namespace mtlsguard::conflict {

// For each of `services`: every mesh-bound VirtualService route (or mirror) that sends sidecar
// clients to a subset the DestinationRule they use for the host does not define. Istio builds no
// cluster for it and the request answers 503 (ambient.md §15). One finding per route destination
// and DestinationRule, on the VirtualService, with the client namespaces; messages not yet set.
std::vector<Finding> undefined_subset_routes(const resolution::ConfigView& view,
                                             const std::vector<model::ServiceId>& services);

} // namespace mtlsguard::conflict
