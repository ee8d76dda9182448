// Admission of Sidecar resources (ambient.md §14, §17): which hosts a change shows or hides.
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/resolution/config_view.hpp"

#include <string>
#include <vector>

namespace mtlsguard::admission {

// What a change of the Sidecar `name` in namespace `ns` does to the hosts its clients see.
struct SidecarReach {
    // Services and ServiceEntry hosts (by index) that some client class sees after the change and
    // did not see before. Only there can the change introduce a failure: a hidden host's flows
    // carry no code, and a host seen in both views gets the same DestinationRule in both.
    std::vector<model::ServiceId> shown_services;
    std::vector<std::size_t> shown_external_hosts;
    // Whether only the sidecar clients of `ns` can see differently: false for a Sidecar in the
    // root namespace, whose default is the mesh's.
    bool own_clients_only = true;
    // The MTG211 warning for the STRICT Services the Sidecar hides after the change and did not
    // hide before; empty when there are none.
    std::vector<conflict::Finding> newly_hidden;
};

// `before` and `after` differ only in the Sidecars of namespace `ns` (after's overridden one).
SidecarReach sidecar_reach(const resolution::ConfigView& before,
                           const resolution::ConfigView& after, const std::string& ns,
                           const std::string& name);

} // namespace mtlsguard::admission
