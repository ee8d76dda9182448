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
    std::vector<std::string> keys; // computed on the first VirtualService only
    const auto& snapshot = view.snapshot();
    for (NsId ns : view.virtual_service_namespaces()) {
        const auto& config = view.config(ns);
        for (const auto& vs : config.virtual_services) {
            if (!binds_to_mesh(vs))
                continue;
            if (keys.empty())
                keys = candidate_keys(host);
            const bool matches = std::any_of(vs.hosts.begin(), vs.hosts.end(), [&](const auto& h) {
                return std::find(keys.begin(), keys.end(), snapshot.resolve_host(h, config.name)) !=
                       keys.end();
            });
            if (!matches)
                continue;
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
