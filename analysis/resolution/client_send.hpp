// What a client sidecar actually sends to each endpoint of a service port: explicit DR TLS or auto
// mTLS.
#pragma once

#include "analysis/resolution/destination_rule.hpp"
#include "analysis/resolution/server_mode.hpp"

namespace mtlsguard::resolution {

// What goes on the wire. HBONE is ztunnel's mTLS tunnel (to port 15008): ambient.md §12.
enum class ClientSend : std::uint8_t { Plaintext, Simple, Mutual, IstioMutual, Hbone };
std::string_view to_string(ClientSend send) noexcept;
ClientSend send_of(model::TlsMode mode) noexcept;

struct SendDecision {
    ClientSend send = ClientSend::Plaintext;
    bool by_rule = false; // the DestinationRule decided (explicit tls, or its endpoint marking)
    // A mesh- or namespace-wide DISABLE (or legacy policy) that made auto mTLS choose plaintext.
    const model::PeerAuthentication* auto_cause = nullptr;
    const model::AlphaPolicy* auto_alpha_cause = nullptr;
    // The DestinationRule asked for TLS that istiod drops: plaintext instead (semantics §4).
    TlsDrop dropped = TlsDrop::None;
    // With HBONE: the DestinationRule's SIMPLE or MUTUAL travelling inside the tunnel (the app must
    // terminate it); Plaintext when the tunnel carries the app's bytes.
    ClientSend inner = ClientSend::Plaintext;
};

// The target (container) port of a workload behind a service port; 0 when a named port is not
// declared by the workload (the pod is then not an endpoint of that port).
std::uint16_t target_port_of(const model::Workload& workload,
                             const model::ServicePort& port) noexcept;

// Decides, once per (service port, DestinationRule, subset), what a sidecar client sends.
class SidecarClientTls {
  public:
    SidecarClientTls(const ConfigView& view, const model::ServiceRecord& service,
                     const model::ServicePort& port, const model::ConsolidatedRule* rule,
                     const model::Subset* subset);
    // `peer_mode`, when given: peer_authentication_mode(view, workload, target_port).accept,
    // which a caller sending to the endpoint for many client outcomes computes only once.
    SendDecision for_endpoint(const model::Workload& workload, std::uint16_t target_port,
                              std::optional<ServerAccept> peer_mode = std::nullopt) const noexcept;

  private:
    // What reaches a ztunnel-captured endpoint (ambient-notes §4.2).
    SendDecision to_captured() const noexcept;

    const ConfigView& view_;
    ClusterTls tls_;
    bool hbone_ = false; // the cluster tunnels (HBONE) to captured endpoints
    bool explicit_ = false;
    bool plaintext_for_all_ = false;
    bool single_mtls_socket_ = false; // headless / passthrough: one decision for all endpoints
    SendDecision all_;
};

} // namespace mtlsguard::resolution
