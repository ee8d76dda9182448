// MTG211: the STRICT services a Sidecar resource hides from its clients (ambient.md §14).
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/conflict/flows.hpp"

#include <map>
#include <set>

namespace mtlsguard::conflict {

// Collects, per Sidecar resource, the Services behind STRICT ports (sidecar or ambient) that it
// hides: its clients send plaintext there through the passthrough cluster, or nothing.
class HiddenServiceCollector {
  public:
    // Records the flow if a Sidecar hides its host and its server port is STRICT.
    void add(const Flow& flow);
    // Sidecars (by namespace and name) and the Services (namespace, name) they hide, sorted.
    using SidecarKey = std::pair<std::string, std::string>;
    struct Hidden {
        model::ObjectRef sidecar;
        bool dropped = false; // REGISTRY_ONLY
        std::set<SidecarKey> services;
    };
    const std::map<SidecarKey, Hidden>& hidden() const noexcept { return hidden_; }
    // One MTG211 warning per Sidecar.
    std::vector<Finding> findings() const;

  private:
    std::map<SidecarKey, Hidden> hidden_;
};

// The MTG211 warning on `sidecar` for `services` (namespace, name), sorted and not empty: the
// first few named in `related`, the total in `detail.number`, the outbound policy in `detail.text`.
Finding hidden_services_finding(const model::ObjectRef& sidecar,
                                const std::set<HiddenServiceCollector::SidecarKey>& services,
                                bool dropped);

} // namespace mtlsguard::conflict
