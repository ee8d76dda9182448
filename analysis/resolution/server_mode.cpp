// Server side: what a workload's sidecar accepts on one of its ports (PeerAuthentication, legacy
// Policy).
#include "analysis/resolution/server_mode.hpp"

#include "analysis/model/decode_fields.hpp"
#include "analysis/resolution/ambient.hpp"

namespace mtlsguard::resolution {
namespace {

ServerAccept accept_of(model::MtlsMode mode) {
    switch (mode) {
    case model::MtlsMode::Strict:
        return ServerAccept::Strict;
    case model::MtlsMode::Disable:
        return ServerAccept::Disable;
    case model::MtlsMode::Permissive:
    case model::MtlsMode::Unset:
        return ServerAccept::Permissive;
    }
    return ServerAccept::Permissive;
}

// Whether a comma-separated port list (as the annotations write it) holds `port`, or is `*`.
bool port_list_holds(std::string_view list, std::uint16_t port) {
    return model::decoding::list_contains(list, "*") ||
           model::decoding::list_contains(list, std::to_string(port));
}

// Whether a comma-separated CIDR list holds `ipv4` ("*" holds every address; a bare address is a
// /32). IPv6 entries never match an IPv4 address.
bool cidr_list_holds(std::string_view list, std::uint32_t ipv4) {
    return model::decoding::any_list_entry(list, [&](std::string_view entry) {
        if (entry == "*")
            return true;
        const auto slash = entry.find('/');
        int bits = 32;
        if (slash != std::string_view::npos) {
            const std::string_view length = entry.substr(slash + 1);
            bits = length.size() == 1 || length.size() == 2 ? 0 : -1;
            for (char c : length)
                bits = bits >= 0 && c >= '0' && c <= '9' ? bits * 10 + (c - '0') : -1;
        }
        const auto network = model::parse_ipv4(entry.substr(0, slash));
        if (!network || bits < 0 || bits > 32)
            return false;
        const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
        return (*network & mask) == (ipv4 & mask);
    });
}

bool blank(std::string_view text) {
    return text.find_first_not_of(" ,") == std::string_view::npos;
}

bool port_matches(const model::AlphaPortSelector& selector, const model::ServicePort& port) {
    if (selector.number)
        return *selector.number == port.port;
    return !selector.name.empty() && selector.name == port.name;
}

} // namespace

std::string_view to_string(ServerAccept accept) noexcept {
    switch (accept) {
    case ServerAccept::Strict:
        return "STRICT";
    case ServerAccept::Permissive:
        return "PERMISSIVE";
    case ServerAccept::Disable:
        return "DISABLE";
    case ServerAccept::NoSidecar:
        return "NO_SIDECAR";
    case ServerAccept::Unknown:
        return "UNKNOWN";
    case ServerAccept::AmbientStrict:
        return "AMBIENT_STRICT";
    case ServerAccept::AmbientOpen:
        return "AMBIENT_OPEN";
    }
    return "UNKNOWN";
}

ServerMode namespace_mode(const ConfigView& view, NsId ns) noexcept {
    ServerMode out; // PERMISSIVE with no source: the default when no policy exists
    if (const auto* mesh = view.mesh_peer_authentication();
        mesh && mesh->mode != model::MtlsMode::Unset) {
        out.accept = accept_of(mesh->mode);
        out.peer_authentication = mesh;
    }
    const auto& config = view.config(ns);
    if (!config.is_root) {
        if (const auto* nsp = config.namespace_policy; nsp && nsp->mode != model::MtlsMode::Unset) {
            out.accept = accept_of(nsp->mode);
            out.peer_authentication = nsp;
        }
    }
    return out;
}

ServerMode peer_authentication_mode(const ConfigView& view, const model::Workload& workload,
                                    std::uint16_t target_port) noexcept {
    ServerMode out = namespace_mode(view, workload.ns);
    const auto& config = view.config(workload.ns);
    if (config.is_root)
        return out; // selector policies in the root namespace apply to nothing
    const auto* wp = view.workload_policy(workload);
    if (!wp)
        return out;
    if (wp->mode != model::MtlsMode::Unset) {
        out.accept = accept_of(wp->mode);
        out.peer_authentication = wp;
    }
    if (target_port != 0) {
        auto it = wp->port_level.find(target_port);
        if (it != wp->port_level.end() && it->second != model::MtlsMode::Unset) {
            out.accept = accept_of(it->second);
            out.peer_authentication = wp;
            out.port_level = true;
        }
    }
    return out;
}

bool any_peer_authentication_applies(const ConfigView& view,
                                     const model::Workload& workload) noexcept {
    if (view.mesh_peer_authentication())
        return true;
    const auto& config = view.config(workload.ns);
    if (config.is_root)
        return false;
    return config.namespace_policy || view.workload_policy(workload);
}

const model::AlphaPolicy* alpha_policy_for(const ConfigView& view,
                                           const model::ServiceRecord& service,
                                           const model::ServicePort& port) noexcept {
    const auto& policies = view.config(service.ns).policies; // oldest first
    const std::string& name = service.service.ref.name;
    for (const auto& policy : policies)
        for (const auto& target : policy.targets)
            if (target.name == name)
                for (const auto& selector : target.ports)
                    if (port_matches(selector, port))
                        return &policy;
    for (const auto& policy : policies)
        for (const auto& target : policy.targets)
            if (target.name == name && target.ports.empty())
                return &policy;
    for (const auto& policy : policies)
        if (policy.targets.empty())
            return &policy;
    return view.default_mesh_policy();
}

bool intercepts_inbound(const model::Interception& interception, std::uint16_t port) noexcept {
    if (interception.include_inbound_ports &&
        !port_list_holds(*interception.include_inbound_ports, port))
        return false;
    return !(interception.exclude_inbound_ports &&
             port_list_holds(*interception.exclude_inbound_ports, port));
}

std::optional<std::string_view> outbound_bypass(const model::Interception& interception,
                                                std::uint16_t port,
                                                std::optional<std::uint32_t> ipv4) noexcept {
    if (interception.exclude_outbound_ports &&
        port_list_holds(*interception.exclude_outbound_ports, port))
        return "traffic.sidecar.istio.io/excludeOutboundPorts";
    if (ipv4 && interception.exclude_outbound_ip_ranges &&
        cidr_list_holds(*interception.exclude_outbound_ip_ranges, *ipv4))
        return "traffic.sidecar.istio.io/excludeOutboundIPRanges";
    if (interception.include_outbound_ports &&
        port_list_holds(*interception.include_outbound_ports, port))
        return std::nullopt;
    if (!interception.include_outbound_ip_ranges)
        return std::nullopt; // default `*`
    const std::string& include = *interception.include_outbound_ip_ranges;
    if (blank(include))
        return "traffic.sidecar.istio.io/includeOutboundIPRanges";
    if (!ipv4 || cidr_list_holds(include, *ipv4))
        return std::nullopt;
    return "traffic.sidecar.istio.io/includeOutboundIPRanges";
}

ServerMode effective_server_mode(const ConfigView& view, const model::Workload& workload,
                                 std::uint16_t target_port, const model::ServiceRecord& service,
                                 const model::ServicePort& port,
                                 std::optional<ServerMode>* peer) noexcept {
    if (workload.dataplane == model::Dataplane::Ambient && view.version().modern())
        return ambient_server_mode(view, workload, target_port);
    if (!workload.sidecar)
        return ServerMode{ServerAccept::NoSidecar, nullptr, nullptr, false};
    const model::IstioVersion version = view.version();
    if (version.modern()) {
        ServerMode mode = peer_authentication_mode(view, workload, target_port);
        if (peer)
            *peer = mode;
        if (target_port != 0 && !intercepts_inbound(workload.interception, target_port)) {
            // The sidecar never sees this port: plaintext reaches the app, mTLS fails there.
            mode.bypassed = mode.accept == ServerAccept::Strict;
            mode.accept = ServerAccept::NoSidecar;
        }
        return mode;
    }
    if (version.minor == 5) {
        // 1.5: any PeerAuthentication overrides the alpha policies entirely.
        if (any_peer_authentication_applies(view, workload))
            return peer_authentication_mode(view, workload, target_port);
        if (const auto* policy = alpha_policy_for(view, service, port))
            return ServerMode{accept_of(policy->mode), nullptr, policy, false};
        return ServerMode{ServerAccept::Permissive, nullptr, nullptr, false};
    }
    if (const auto* policy = alpha_policy_for(view, service, port))
        return ServerMode{accept_of(policy->mode), nullptr, policy, false};
    return ServerMode{ServerAccept::Disable, nullptr, nullptr, false}; // 1.4: plaintext only
}

} // namespace mtlsguard::resolution
