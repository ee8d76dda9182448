// Server side: what a workload's sidecar accepts on one of its ports (PeerAuthentication, legacy
// Policy).
#pragma once

#include "analysis/resolution/config_view.hpp"

namespace mtlsguard::resolution {

// What a server port accepts; NO_SIDECAR speaks plaintext only, UNKNOWN cannot be known.
// AMBIENT_STRICT / AMBIENT_OPEN: a ztunnel-captured port that takes HBONE only, or HBONE and
// plaintext (ambient.md §11).
enum class ServerAccept : std::uint8_t {
    Strict,
    Permissive,
    Disable,
    NoSidecar,
    Unknown,
    AmbientStrict,
    AmbientOpen
};
constexpr bool is_ambient(ServerAccept accept) noexcept {
    return accept == ServerAccept::AmbientStrict || accept == ServerAccept::AmbientOpen;
}
std::string_view to_string(ServerAccept accept) noexcept;

struct ServerMode {
    ServerAccept accept = ServerAccept::Permissive;
    // The object that decided the mode, if any (defaults have none).
    const model::PeerAuthentication* peer_authentication = nullptr;
    const model::AlphaPolicy* alpha_policy = nullptr;
    bool port_level = false; // decided by a portLevelMtls entry
    // A STRICT port that skips interception: an ambient port opened by
    // ambient.istio.io/bypass-inbound-capture, or a sidecar port excluded from inbound capture.
    bool bypassed = false;
};

// The composed PeerAuthentication mode of a workload port (pilot's ComposePeerAuthentication).
// `target_port` is the workload's container port; 0 when unknown.
ServerMode peer_authentication_mode(const ConfigView& view, const model::Workload& workload,
                                    std::uint16_t target_port) noexcept;

// The mode a namespace's services get from mesh- and namespace-wide PeerAuthentication only
// (pilot's GetNamespaceMutualTLSMode, which auto mTLS reads). Mesh- or namespace-wide source.
ServerMode namespace_mode(const ConfigView& view, NsId ns) noexcept;

// Whether any PeerAuthentication (mesh, namespace or workload) applies to the workload.
bool any_peer_authentication_applies(const ConfigView& view,
                                     const model::Workload& workload) noexcept;

// The legacy v1alpha1 policy for a (service, service port): targeted with port, targeted,
// namespace-wide, then the MeshPolicy named default. Nullptr when none applies.
const model::AlphaPolicy* alpha_policy_for(const ConfigView& view,
                                           const model::ServiceRecord& service,
                                           const model::ServicePort& port) noexcept;

// Whether a sidecar intercepts inbound traffic to a target port (ambient.md §13):
// traffic.sidecar.istio.io/includeInboundPorts (default `*`, "" intercepts nothing) less
// excludeInboundPorts. A port it does not intercept behaves as if there were no sidecar.
bool intercepts_inbound(const model::Interception& interception, std::uint16_t port) noexcept;

// Why a sidecar client's connection to a destination port and (if known) IPv4 address leaves the
// pod without its sidecar (ambient.md §13), as istio-iptables orders its ISTIO_OUTPUT rules:
// excludeOutboundPorts, excludeOutboundIPRanges, then includeOutboundPorts captures, then
// includeOutboundIPRanges (default `*`; "" captures nothing). Returns the deciding annotation,
// or nullopt when the sidecar captures it, or when only an unknown address could say.
std::optional<std::string_view> outbound_bypass(const model::Interception& interception,
                                                std::uint16_t port,
                                                std::optional<std::uint32_t> ipv4) noexcept;

// The effective mode of the endpoint workload's target port, reached through (service, port),
// under the rules of the configured Istio version. `peer`, if given, receives
// peer_authentication_mode(view, workload, target_port) when the answer was built on it (sidecar
// workloads from 1.6), for auto mTLS to reuse (SidecarClientTls::for_endpoint).
ServerMode effective_server_mode(const ConfigView& view, const model::Workload& workload,
                                 std::uint16_t target_port, const model::ServiceRecord& service,
                                 const model::ServicePort& port,
                                 std::optional<ServerMode>* peer = nullptr) noexcept;

} // namespace mtlsguard::resolution
