// MTG211: the STRICT services a Sidecar resource hides from its clients (ambient.md §14).
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/conflict/flows.hpp"

#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

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
    // What the Sidecar `key` hides, if it hides any STRICT Service. The Sidecars and Services
    // the flows point at must still be alive.
    std::optional<Hidden> hidden(const SidecarKey& key) const;
    // One MTG211 warning per Sidecar.
    std::vector<Finding> findings() const;

  private:
    // Kept by pointer, as the flows came (one Sidecar hides thousands of Services in a large
    // mesh): names are looked up only for the findings.
    struct Entry {
        const model::Sidecar* sidecar = nullptr;
        bool dropped = false;
        std::vector<const model::ServiceRecord*> services; // may repeat
    };
    // The entries of each Sidecar (by namespace and name), in the order they were first seen.
    std::map<SidecarKey, std::vector<std::size_t>> by_key() const;
    Hidden hidden_of(const std::vector<std::size_t>& entries) const;

    std::vector<Entry> entries_;
    std::unordered_map<const model::Sidecar*, std::size_t> index_;
    const model::Sidecar* last_sidecar_ = nullptr;
    std::size_t last_ = 0;
};

// The MTG211 warning on `sidecar` for `services` (namespace, name), sorted and not empty: the
// first few named in `related`, the total in `detail.number`, the outbound policy in `detail.text`.
Finding hidden_services_finding(const model::ObjectRef& sidecar,
                                const std::set<HiddenServiceCollector::SidecarKey>& services,
                                bool dropped);

} // namespace mtlsguard::conflict
