// Which sidecar clients a VirtualService route sends to a DestinationRule subset (ambient.md §15).
#pragma once

#include "analysis/resolution/config_view.hpp"

#include <string>
#include <vector>

namespace mtlsguard::resolution {

// One route destination (or mirror) towards a host, of a VirtualService that sidecars apply.
struct HostRoute {
    const model::VirtualService* virtual_service = nullptr;
    NsId vs_namespace = 0;
    const model::RouteDestination* destination = nullptr;
};

// Whether a VirtualService applies to sidecars: `gateways` empty or naming `mesh`.
bool binds_to_mesh(const model::VirtualService& vs) noexcept;

// Whether a VirtualService of namespace `vs_ns` is visible to clients in `client_ns`: exportTo
// empty or `*`, `.` for its own namespace, or the client namespace by name.
bool exported_to(const model::VirtualService& vs, std::string_view vs_ns,
                 std::string_view client_ns) noexcept;

// Whether a route applies to sidecar clients in `client_ns`: its VirtualService is exported there
// and its match conditions do not name only other source namespaces.
bool route_applies_to(const ConfigView& view, const HostRoute& route,
                      std::string_view client_ns) noexcept;

// The destinations with a subset, towards `host`, of every mesh-bound VirtualService whose `hosts`
// match `host` (short names resolve in the VirtualService's namespace, wildcards match).
std::vector<HostRoute> subset_routes_to(const ConfigView& view, const std::string& host);

// Whether a route applies to service port `port` (a destination without a port: every port).
bool route_on_port(const HostRoute& route, std::uint16_t port) noexcept;

// Of `namespaces` (sorted), those whose sidecar clients a route of `routes` sends to subset
// `subset` on service port `port`.
std::vector<NsId> routed_namespaces(const ConfigView& view, const std::vector<HostRoute>& routes,
                                    std::string_view subset, std::uint16_t port,
                                    const std::vector<NsId>& namespaces);

} // namespace mtlsguard::resolution
