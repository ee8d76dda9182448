// What a client sidecar actually sends to each endpoint of a service port: explicit DR TLS or auto
// mTLS.
#include "analysis/resolution/client_send.hpp"

namespace mtlsguard::resolution {

std::string_view to_string(ClientSend send) noexcept {
    switch (send) {
    case ClientSend::Plaintext:
        return "PLAINTEXT";
    case ClientSend::Simple:
        return "SIMPLE";
    case ClientSend::Mutual:
        return "MUTUAL";
    case ClientSend::IstioMutual:
        return "ISTIO_MUTUAL";
    case ClientSend::Hbone:
        return "HBONE";
    }
    return "PLAINTEXT";
}

ClientSend send_of(model::TlsMode mode) noexcept {
    switch (mode) {
    case model::TlsMode::Disable:
        return ClientSend::Plaintext;
    case model::TlsMode::Simple:
        return ClientSend::Simple;
    case model::TlsMode::Mutual:
        return ClientSend::Mutual;
    case model::TlsMode::IstioMutual:
        return ClientSend::IstioMutual;
    }
    return ClientSend::Plaintext;
}

std::uint16_t target_port_of(const model::Workload& workload,
                             const model::ServicePort& port) noexcept {
    if (port.target_port_number)
        return *port.target_port_number;
    for (const auto& p : workload.ports)
        if (p.name == port.target_port_name)
            return p.number;
    return 0;
}

SidecarClientTls::SidecarClientTls(const ConfigView& view, const model::ServiceRecord& service,
                                   const model::ServicePort& port,
                                   const model::ConsolidatedRule* rule, const model::Subset* subset)
    : view_(view), tls_(cluster_tls(rule, port.port, subset)) {
    // Sidecars send HBONE from 1.22 (PILOT_ENABLE_SENDING_HBONE with ambient on), never through
    // an ORIGINAL_DST cluster: headless services and PASSTHROUGH rules (#54921).
    hbone_ = view.version().at_least(22) && !service.service.headless && !tls_.passthrough;
    if (tls_.cluster) {
        explicit_ = true;
        const TlsDrop drop = dropped_tls(tls_, rule, view.version());
        all_ = SendDecision{drop == TlsDrop::None ? send_of(*tls_.cluster) : ClientSend::Plaintext,
                            true, nullptr, nullptr, drop};
        return;
    }
    if (!view.mesh().auto_mtls) {
        plaintext_for_all_ = true;
        return;
    }
    // pilot's BestEffortInferServiceMTLSMode: one mode for the whole service port.
    const bool passthrough = service.service.headless || tls_.passthrough;
    if (passthrough) {
        bool any_plain = false;
        bool any_endpoint = false;
        for (std::uint32_t at : service.endpoint_positions) {
            const auto& w = view.endpoint(service, at);
            if (target_port_of(w, port) == 0)
                continue;
            any_endpoint = true;
            any_plain = any_plain || !w.sidecar;
        }
        if (!any_endpoint || any_plain) {
            plaintext_for_all_ = true;
            return;
        }
    }
    // 1.4 has no PeerAuthentication at all.
    ServerMode service_mode =
        view.version().minor == 4 ? ServerMode{} : namespace_mode(view, service.ns);
    if (!view.version().modern() && !service_mode.peer_authentication) {
        // Legacy: the alpha Policy for the service port, then PERMISSIVE (1.5) or plaintext (1.4).
        if (const auto* policy = alpha_policy_for(view, service, port)) {
            service_mode.alpha_policy = policy;
            service_mode.accept = policy->mode == model::MtlsMode::Disable
                                      ? ServerAccept::Disable
                                      : ServerAccept::Permissive;
        } else if (view.version().minor == 4) {
            service_mode.accept = ServerAccept::Disable;
        }
    }
    if (service_mode.accept == ServerAccept::Disable) {
        plaintext_for_all_ = true;
        all_.auto_cause = service_mode.peer_authentication;
        all_.auto_alpha_cause = service_mode.alpha_policy;
        return;
    }
    if (passthrough) {
        single_mtls_socket_ = true;
        all_ = SendDecision{ClientSend::IstioMutual, false, nullptr, nullptr};
    }
}

SendDecision SidecarClientTls::to_captured() const noexcept {
    const SendDecision hbone{ClientSend::Hbone, explicit_, nullptr, nullptr, all_.dropped};
    if (!explicit_) {
        // Auto mTLS, on or off, whatever the namespace mode: the HBONE socket matches first. Up to
        // 1.25.0 an ISTIO_MUTUAL marking took the tunnel away, and the unmarked pod got plaintext.
        if (tls_.endpoint_marking == model::TlsMode::IstioMutual &&
            !view_.version().at_least(25, 1))
            return SendDecision{ClientSend::Plaintext, true, nullptr, nullptr};
        return hbone;
    }
    // A MUTUAL istiod refuses to build leaves the cluster without any socket, HBONE's included.
    if (all_.dropped == TlsDrop::MutualWithoutCertificates)
        return all_;
    if (all_.dropped == TlsDrop::CredentialNameOnSidecar)
        return hbone;
    switch (*tls_.cluster) {
    case model::TlsMode::Disable:
        return hbone; // DISABLE does not mean plaintext to a captured pod
    case model::TlsMode::IstioMutual:
        // Up to 1.25.0 the endpoint builder dropped the tunnel for ISTIO_MUTUAL: legacy mTLS
        // (#53526, fixed by #54914 in 1.25.1 and 1.26.0, not in 1.24).
        return view_.version().at_least(25, 1) ? hbone : all_;
    case model::TlsMode::Simple:
    case model::TlsMode::Mutual: {
        SendDecision inside = hbone;
        inside.inner = send_of(*tls_.cluster);
        return inside;
    }
    }
    return hbone;
}

SendDecision SidecarClientTls::for_endpoint(const model::Workload& workload,
                                            std::uint16_t target_port,
                                            std::optional<ServerAccept> peer_mode) const noexcept {
    if (hbone_ && workload.dataplane == model::Dataplane::Ambient)
        return to_captured();
    if (explicit_ || single_mtls_socket_)
        return all_;
    if (plaintext_for_all_)
        return SendDecision{ClientSend::Plaintext, false, all_.auto_cause, all_.auto_alpha_cause};
    // Per-endpoint transport socket match on the endpoint's tlsMode metadata. The rule's marking
    // can only clear the pod's own mark (endpoint_builder.go sets meta.TLSMode = "" and nothing
    // else): ISTIO_MUTUAL leaves it to the pod's sidecar label, any other mode clears it
    // (semantics §4).
    if (view_.version().modern() && tls_.endpoint_marking) {
        const bool mtls = *tls_.endpoint_marking == model::TlsMode::IstioMutual && workload.sidecar;
        return SendDecision{mtls ? ClientSend::IstioMutual : ClientSend::Plaintext, true, nullptr,
                            nullptr};
    }
    if (!workload.sidecar)
        return SendDecision{};
    if (view_.version().modern()) {
        if (!peer_mode)
            peer_mode = peer_authentication_mode(view_, workload, target_port).accept;
        if (*peer_mode == ServerAccept::Disable)
            return SendDecision{};
    }
    return SendDecision{ClientSend::IstioMutual, false, nullptr, nullptr};
}

} // namespace mtlsguard::resolution
