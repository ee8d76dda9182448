// Which sidecar clients a VirtualService route sends to a DestinationRule subset (ambient.md §15).
#include "analysis/resolution/virtual_service.hpp"

#include "analysis/resolution/destination_rule.hpp"

#include <algorithm>

namespace mtlsguard::resolution {

bool binds_to_mesh(const model::VirtualService& vs) noexcept {
    return vs.gateways.empty() ||
           std::find(vs.gateways.begin(), vs.gateways.end(), "mesh") != vs.gateways.end();
}

bool exported_to(const model::VirtualService& vs, std::string_view vs_ns,
                 std::string_view client_ns) noexcept {
    if (vs.export_to.empty())
        return true;
    return std::any_of(vs.export_to.begin(), vs.export_to.end(), [&](const std::string& entry) {
        return entry == "*" || (entry == "." && client_ns == vs_ns) || entry == client_ns;
    });
}

bool route_applies_to(const ConfigView& view, const HostRoute& route,
                      std::string_view client_ns) noexcept {
    const auto& sources = route.destination->source_namespaces;
    return exported_to(*route.virtual_service, view.namespace_name(route.vs_namespace),
                       client_ns) &&
           (sources.empty() ||
            std::find(sources.begin(), sources.end(), client_ns) != sources.end());
}

std::vector<HostRoute> subset_routes_to(const ConfigView& view, const std::string& host) {
    std::vector<HostRoute> out;
    if (view.virtual_service_namespaces().empty())
        return out;
    // The namespaces whose mesh-bound VirtualServices name a key matching the host: from the
    // snapshot's index, except the namespace the view replaces, whose own index is read instead.
    const auto& snapshot = view.snapshot();
    const auto replaced = view.overridden_namespace();
    // Most meshes name FQDNs only: then the host is the one key, and most services have none.
    const bool wildcards = snapshot.virtual_service_wildcard_hosts() ||
                           (replaced && view.config(*replaced).virtual_service_wildcard_host);
    const auto keys = wildcards ? candidate_keys(host) : std::vector<std::string>{host};
    std::vector<NsId> namespaces;
    for (const auto& key : keys)
        if (const auto* list = snapshot.virtual_service_namespaces_for(key))
            for (NsId ns : *list)
                if (!replaced || ns != *replaced)
                    namespaces.push_back(ns);
    if (replaced && !view.config(*replaced).virtual_services_by_host.empty())
        namespaces.push_back(*replaced);
    if (namespaces.empty())
        return out;
    std::sort(namespaces.begin(), namespaces.end());
    namespaces.erase(std::unique(namespaces.begin(), namespaces.end()), namespaces.end());
    std::vector<std::uint32_t> positions;
    for (NsId ns : namespaces) {
        const auto& config = view.config(ns);
        positions.clear();
        for (const auto& key : keys)
            if (auto it = config.virtual_services_by_host.find(key);
                it != config.virtual_services_by_host.end())
                positions.insert(positions.end(), it->second.begin(), it->second.end());
        std::sort(positions.begin(), positions.end());
        positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
        for (std::uint32_t i : positions) {
            const auto& vs = config.virtual_services[i];
            for (const auto& destination : vs.destinations)
                if (!destination.subset.empty() &&
                    snapshot.resolve_host(destination.host, config.name) == host)
                    out.push_back(HostRoute{&vs, ns, &destination});
        }
    }
    return out;
}

bool route_on_port(const HostRoute& route, std::uint16_t port) noexcept {
    return !route.destination->port || *route.destination->port == port;
}

std::vector<NsId> routed_namespaces(const ConfigView& view, const std::vector<HostRoute>& routes,
                                    std::string_view subset, std::uint16_t port,
                                    const std::vector<NsId>& namespaces) {
    std::vector<NsId> out;
    for (NsId ns : namespaces) {
        const std::string& client = view.namespace_name(ns);
        const bool routed = std::any_of(routes.begin(), routes.end(), [&](const HostRoute& r) {
            return r.destination->subset == subset && route_on_port(r, port) &&
                   route_applies_to(view, r, client);
        });
        if (routed)
            out.push_back(ns);
    }
    return out;
}

} // namespace mtlsguard::resolution
