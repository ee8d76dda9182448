// Findings about single objects: ignored duplicates, selectors and hosts that match nothing, legacy
// use.
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/resolution/config_view.hpp"

namespace mtlsguard::conflict {

// Checks the configuration of every namespace, or only of `only` (plus the mesh-level checks when
// `only` is the root namespace or `mesh_level` is set).
std::vector<Finding> check_objects(const resolution::ConfigView& view,
                                   std::optional<resolution::NsId> only = std::nullopt,
                                   bool mesh_level = true);

} // namespace mtlsguard::conflict
