// The endpoints of every Service port with what each accepts, listed once per snapshot.
#pragma once

#include "analysis/resolution/server_mode.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace mtlsguard::resolution {

// One endpoint of a service port: the workload, the port its pods listen on, and what it accepts.
struct Endpoint {
    const model::Workload* workload;
    std::uint16_t target_port;
    ServerMode mode;
    // The port's PeerAuthentication mode, which auto mTLS reads (sidecar endpoints, 1.6+ only):
    // the same for every client outcome, so computed once.
    std::optional<ServerAccept> peer;
    // What the port accepts in the earlier view, when there is one, and its PeerAuthentication
    // mode there.
    std::optional<ServerAccept> earlier, earlier_peer;
};

// The endpoints of one service port with their server modes, in the order of the Service's
// endpoint_positions; waypoints are proxies, not servers. `earlier`: a view whose server modes
// each endpoint also carries. `out` is cleared first, so that one vector serves every port. A
// view that shares the snapshot's servers for the Service's namespace (ConfigView::
// shares_servers) reads them from the snapshot's ServerIndex instead of resolving them again.
void list_endpoints(const ConfigView& view, const ConfigView* earlier,
                    const model::ServiceRecord& service, const model::ServicePort& port,
                    std::vector<Endpoint>& out);

// Every Service port's endpoints as the snapshot itself resolves them. A relabel evaluates every
// Service for one namespace's clients, and a mesh-wide change compares every Service with the
// snapshot: at Kubernetes' limit, resolving the servers again was a quarter of either.
struct ServerIndex {
    using Ports = std::vector<std::vector<Endpoint>>; // by port, in the Service's order
    // By namespace, the namespace's Services in the order of its id list. Shared with the next
    // snapshot where the namespace, the root namespace and the settings stay as they were: the
    // endpoints point into the namespace's workload block and configuration, which are shared too.
    std::vector<std::shared_ptr<const std::vector<Ports>>> by_namespace;

    // The snapshot's endpoints of `port` (one of `service`'s), if `service` is the snapshot's own
    // record (not a relabel overlay's copy).
    const std::vector<Endpoint>* find(const model::Snapshot& snapshot,
                                      const model::ServiceRecord& service,
                                      const model::ServicePort& port) const noexcept;
};

} // namespace mtlsguard::resolution
