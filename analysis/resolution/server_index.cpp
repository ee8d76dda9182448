// The endpoints of every Service port with what each accepts, listed once per snapshot.
#include "analysis/resolution/server_index.hpp"

#include "analysis/resolution/client_send.hpp"

#include <functional>

namespace mtlsguard::resolution {
namespace {

// One endpoint of a service port, seen in `view` and, if given, in `earlier`.
Endpoint endpoint_of(const ConfigView& view, const ConfigView* earlier, const model::Workload& w,
                     std::uint16_t target, const model::ServiceRecord& service,
                     const model::ServicePort& port) {
    // The PeerAuthentication mode comes with the server mode where that is built on it; auto
    // mTLS computes it itself for the rare other endpoints (SidecarClientTls::for_endpoint).
    const auto accept_of = [](const std::optional<ServerMode>& mode) {
        return mode ? std::optional<ServerAccept>(mode->accept) : std::nullopt;
    };
    std::optional<ServerMode> peer;
    Endpoint ep{&w, target, effective_server_mode(view, w, target, service, port, &peer),
                {}, {},     {}};
    ep.peer = accept_of(peer);
    if (!earlier)
        return ep;
    peer.reset();
    ep.earlier = effective_server_mode(*earlier, w, target, service, port, &peer).accept;
    ep.earlier_peer = accept_of(peer);
    return ep;
}

// list_endpoints without the index: every endpoint's modes resolved in the views.
void resolve_endpoints(const ConfigView& view, const ConfigView* earlier,
                       const model::ServiceRecord& service, const model::ServicePort& port,
                       std::vector<Endpoint>& out) {
    out.clear();
    for (std::uint32_t at : service.endpoint_positions) {
        const auto& w = view.endpoint(service, at);
        const std::uint16_t target = target_port_of(w, port);
        if (target == 0 || w.waypoint)
            continue; // not an endpoint of the port
        out.push_back(endpoint_of(view, earlier, w, target, service, port));
    }
}

// The snapshot's endpoints of the port, when `view` resolves the Service's servers as the
// snapshot does.
const std::vector<Endpoint>* indexed(const ConfigView& view, const model::ServiceRecord& service,
                                     const model::ServicePort& port) {
    if (!view.shares_servers(service.ns))
        return nullptr;
    return view.snapshot().server_index().find(view.snapshot(), service, port);
}

// The Services of one namespace, resolved in the snapshot's own view.
std::shared_ptr<const std::vector<ServerIndex::Ports>>
index_namespace(const ConfigView& view, const model::Snapshot& snapshot, NsId ns) {
    auto out = std::make_shared<std::vector<ServerIndex::Ports>>();
    const auto& ids = snapshot.namespaces()[ns].services;
    out->reserve(ids.size());
    for (model::ServiceId id : ids) {
        const model::ServiceRecord& service = snapshot.services()[id];
        auto& ports = out->emplace_back(service.service.ports.size());
        for (std::size_t p = 0; p < ports.size(); ++p)
            resolve_endpoints(view, nullptr, service, service.service.ports[p], ports[p]);
    }
    return out;
}

// Whether the previous snapshot's servers can hold in `snapshot` at all: the same Istio version,
// the same root namespace configuration (the mesh-wide policy), and no MeshPolicy (the endpoints
// would point into the previous snapshot's copy of the list).
bool servers_carry_over(const model::Snapshot& snapshot, const model::Snapshot& previous) {
    if (!previous.has_server_index() ||
        previous.settings().version != snapshot.settings().version ||
        previous.mesh().root_namespace != snapshot.mesh().root_namespace ||
        !previous.mesh_policies().empty() || !snapshot.mesh_policies().empty())
        return false;
    const auto root = snapshot.namespace_id(snapshot.mesh().root_namespace);
    const auto before = previous.namespace_id(snapshot.mesh().root_namespace);
    if (root.has_value() != before.has_value())
        return false;
    return !root || &previous.config(*before) == &snapshot.config(*root);
}

// Whether the previous snapshot's servers of namespace `ns` hold in `snapshot`, given that they
// can (servers_carry_over): its workload and Service blocks and configuration are shared, not
// rebuilt.
bool carries_over(const model::Snapshot& snapshot, const model::Snapshot& previous, NsId ns) {
    return ns < previous.namespaces().size() && ns < previous.server_index().by_namespace.size() &&
           &previous.config(ns) == &snapshot.config(ns) &&
           previous.workloads().block(ns) == snapshot.workloads().block(ns) &&
           previous.services().block(ns) == snapshot.services().block(ns) &&
           previous.namespaces()[ns].name == snapshot.namespaces()[ns].name;
}

} // namespace

void list_endpoints(const ConfigView& view, const ConfigView* earlier,
                    const model::ServiceRecord& service, const model::ServicePort& port,
                    std::vector<Endpoint>& out) {
    const std::vector<Endpoint>* now = indexed(view, service, port);
    // Without a relabel overlay of the Service's namespace in `view`, both views list the same
    // workloads in the same order, so the earlier view's list lines up with this one.
    const std::vector<Endpoint>* before = earlier && !view.overlays_workloads_of(service.ns)
                                              ? indexed(*earlier, service, port)
                                              : nullptr;
    if (!before) {
        if (now && !earlier) {
            out = *now;
            return;
        }
        resolve_endpoints(view, earlier, service, port, out);
        return;
    }
    if (now)
        out = *now;
    else
        resolve_endpoints(view, nullptr, service, port, out);
    const auto lines_up = [&] {
        for (std::size_t i = 0; i < out.size(); ++i)
            if (out[i].workload != (*before)[i].workload ||
                out[i].target_port != (*before)[i].target_port)
                return false;
        return true;
    };
    if (out.size() != before->size() || !lines_up()) {
        resolve_endpoints(view, earlier, service, port, out); // never expected: resolve both
        return;
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i].earlier = (*before)[i].mode.accept;
        out[i].earlier_peer = (*before)[i].peer;
    }
}

const std::vector<Endpoint>* ServerIndex::find(const model::Snapshot& snapshot,
                                               const model::ServiceRecord& service,
                                               const model::ServicePort& port) const noexcept {
    const auto position = snapshot.services().find_position(service);
    if (!position || service.ns >= by_namespace.size() || !by_namespace[service.ns])
        return nullptr;
    const auto& services = *by_namespace[service.ns];
    const auto p = model::position_in(service.service.ports, port);
    if (*position >= services.size() || !p)
        return nullptr;
    const auto& listed = services[*position];
    return *p < listed.size() ? &listed[*p] : nullptr;
}

std::shared_ptr<const ServerIndex> index_servers(const model::Snapshot& snapshot,
                                                 const model::Snapshot* previous) {
    auto index = std::make_shared<ServerIndex>();
    const std::size_t count = snapshot.namespaces().size();
    index->by_namespace.resize(count);
    const ConfigView view(snapshot);
    const bool carry = previous && servers_carry_over(snapshot, *previous);
    for (NsId ns = 0; ns < count; ++ns) {
        if (snapshot.namespaces()[ns].services.empty())
            continue;
        if (carry && carries_over(snapshot, *previous, ns))
            index->by_namespace[ns] = previous->server_index().by_namespace[ns];
        else
            index->by_namespace[ns] = index_namespace(view, snapshot, ns);
    }
    return index;
}

} // namespace mtlsguard::resolution
