// The finding codes of the public catalogue, their severities and names.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace mtlsguard::conflict {

enum class Severity : std::uint8_t { Error, Warning, Info };

enum class Code : std::uint8_t {
    MTG101, // sidecar clients send plaintext to a STRICT port
    MTG102, // ISTIO_MUTUAL to a port that accepts only plaintext
    MTG103, // ISTIO_MUTUAL to workloads without a sidecar
    MTG104, // SIMPLE TLS to a STRICT port
    MTG105, // ztunnel or a waypoint sends plaintext to a STRICT sidecar port without HBONE
    MTG106, // sidecar clients send what an ambient port rejects (legacy mTLS, plaintext)
    MTG107, // a VirtualService routes to a subset their DestinationRule does not define (503)
    MTG108, // the API server calls a webhook, aggregated API or conversion webhook on a STRICT port
    MTG201, // MUTUAL with user certificates to a STRICT port
    MTG202, // SIMPLE/MUTUAL to a port that passes TLS to the application
    MTG203, // STRICT port with non-mesh clients
    MTG204, // portLevelMtls key (or legacy port) matching no target port
    MTG205, // ignored duplicate policy or DR
    MTG206, // selects nothing / host matches no service
    MTG207, // mesh-wide DISABLE, auto mTLS off, no mesh-wide DR DISABLE
    MTG208, // v1alpha1 in use
    MTG209, // portLevelMtls on a mesh- or namespace-wide PeerAuthentication
    MTG210, // a STRICT policy does not protect a port that skips interception
    MTG211, // a Sidecar resource hides STRICT services from its clients (passthrough or dropped)
    MTG212, // labelled both for sidecar injection and for ambient (injection wins)
    MTG213, // PeerAuthentication DISABLE on ambient workloads is ignored
};

std::string_view to_string(Code code) noexcept;
std::string_view to_string(Severity severity) noexcept;
Severity severity_of(Code code) noexcept;
// Every code, in catalogue order.
std::vector<Code> all_codes();
// The catalogue's one-line meaning of a code, and the usual fix (for SARIF rules and docs).
std::string_view summary_of(Code code) noexcept;
std::string_view fix_of(Code code) noexcept;

} // namespace mtlsguard::conflict
