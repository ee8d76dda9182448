// The ambient data plane (ambient.md §11–12): what a ztunnel-captured port accepts, what ztunnel
// and waypoints send, and when a sidecar client tunnels (HBONE) to a captured pod.
#include "analysis/resolution/ambient.hpp"

namespace mtlsguard::resolution {
namespace {

bool strict(model::MtlsMode mode) {
    return mode == model::MtlsMode::Strict;
}
bool open(model::MtlsMode mode) {
    return mode == model::MtlsMode::Permissive || mode == model::MtlsMode::Disable;
}

// istiod's convertedSelectorPeerAuthentications with a workload policy whose mode is UNSET under
// a STRICT mesh or namespace: only a PERMISSIVE port entry builds the merged policy (which then
// also exempts the DISABLE entries); DISABLE entries alone are ignored. Before the merging fix
// (1.24.3 / 1.25.0, #54073) the static STRICT policy was attached as well and won: no exception.
bool unset_policy_opens_port(const model::PeerAuthentication& policy, model::MtlsMode port_mode,
                             model::IstioVersion version) {
    if (!version.at_least(24, 3) || !open(port_mode))
        return false;
    if (port_mode == model::MtlsMode::Permissive)
        return true;
    for (const auto& [port, mode] : policy.port_level)
        if (mode == model::MtlsMode::Permissive)
            return true;
    return false;
}

// Whether a waypoint originates this DestinationRule TLS towards a backend (1.23+, #51085).
std::optional<ClientSend> waypoint_originated(const ConfigView& view,
                                              const model::ConsolidatedRule* rule,
                                              std::uint16_t service_port) {
    if (!rule || !view.version().at_least(23))
        return std::nullopt;
    const ClusterTls tls = cluster_tls(rule, service_port, nullptr);
    if (!tls.cluster ||
        (*tls.cluster != model::TlsMode::Simple && *tls.cluster != model::TlsMode::Mutual))
        return std::nullopt; // DISABLE: nothing needed; ISTIO_MUTUAL: not supported, ignored
    return send_of(*tls.cluster);
}

} // namespace

ServerMode ambient_server_mode(const ConfigView& view, const model::Workload& workload,
                               std::uint16_t target_port) noexcept {
    ServerMode out{ServerAccept::AmbientOpen, nullptr, nullptr, false};
    bool is_strict = false;
    auto decide = [&](const model::PeerAuthentication* policy, bool strict_now) {
        is_strict = strict_now;
        out.peer_authentication = policy;
    };
    // Mesh, then namespace: a mode that is not UNSET decides (DISABLE and PERMISSIVE alike).
    if (const auto* mesh = view.mesh_peer_authentication();
        mesh && mesh->mode != model::MtlsMode::Unset)
        decide(mesh, strict(mesh->mode));
    const auto& config = view.config(workload.ns);
    if (!config.is_root)
        if (const auto* ns = config.namespace_policy; ns && ns->mode != model::MtlsMode::Unset)
            decide(ns, strict(ns->mode));
    const auto* wl = config.is_root ? nullptr : view.workload_policy(workload);
    if (wl) {
        const bool base_strict = is_strict;
        if (wl->mode != model::MtlsMode::Unset)
            decide(wl, strict(wl->mode));
        auto entry = target_port ? wl->port_level.find(target_port) : wl->port_level.end();
        if (entry != wl->port_level.end() && entry->second != model::MtlsMode::Unset) {
            const model::MtlsMode port_mode = entry->second;
            bool port_strict = is_strict;
            if (strict(wl->mode))
                port_strict = !open(port_mode);
            else if (open(wl->mode))
                port_strict = strict(port_mode);
            else if (base_strict)
                port_strict = !unset_policy_opens_port(*wl, port_mode, view.version());
            else
                port_strict = strict(port_mode);
            if (port_strict != is_strict) {
                out.port_level = true;
                decide(wl, port_strict);
            }
        }
    }
    if (is_strict && workload.bypass_inbound_capture) {
        // Plaintext skips ztunnel and reaches the app: STRICT is not enforced for it.
        out.bypassed = true;
        is_strict = false;
    }
    out.accept = is_strict ? ServerAccept::AmbientStrict : ServerAccept::AmbientOpen;
    return out;
}

bool accepts_hbone(const model::Workload& endpoint, model::IstioVersion version,
                   bool from_waypoint) noexcept {
    if (endpoint.dataplane == model::Dataplane::Ambient || endpoint.waypoint)
        return true;
    if (endpoint.dataplane == model::Dataplane::Sidecar && endpoint.tunnel_http)
        return !from_waypoint || version.at_least(23);
    return false;
}

SendDecision ztunnel_send(const ConfigView& view, const model::Workload& endpoint) noexcept {
    SendDecision out;
    if (accepts_hbone(endpoint, view.version(), false))
        out.send = ClientSend::Hbone;
    return out;
}

SendDecision waypoint_send(const ConfigView& view, const model::ConsolidatedRule* rule,
                           std::uint16_t service_port, const model::Workload& endpoint) noexcept {
    SendDecision out;
    const auto originated = waypoint_originated(view, rule, service_port);
    out.by_rule = originated.has_value();
    if (accepts_hbone(endpoint, view.version(), true)) {
        out.send = ClientSend::Hbone;
        if (originated)
            out.inner = *originated;
    } else if (originated) {
        out.send = *originated;
    }
    return out;
}

std::optional<model::ObjectRef> waypoint_for(const ConfigView& view,
                                             const model::ServiceRecord& service,
                                             const model::Workload& endpoint) {
    if (service.waypoint)
        return service.waypoint;
    // Else ztunnel picks an endpoint, and goes through that workload's own waypoint if it has one.
    if (!endpoint.names_waypoint)
        return std::nullopt;
    const std::string* name = endpoint.labels.find("istio.io/use-waypoint");
    if (!name || name->empty() || *name == "none")
        return std::nullopt;
    const std::string* ns = endpoint.labels.find("istio.io/use-waypoint-namespace");
    return model::ObjectRef{"gateway.networking.k8s.io/v1", "Gateway",
                            ns && !ns->empty() ? *ns : view.namespace_name(endpoint.ns), *name};
}

} // namespace mtlsguard::resolution
