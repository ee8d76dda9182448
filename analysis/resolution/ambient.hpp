// The ambient data plane (ambient.md §11–12): what a ztunnel-captured port accepts, what ztunnel
// and waypoints send, and when a sidecar client tunnels (HBONE) to a captured pod.
#pragma once

#include "analysis/resolution/client_send.hpp"

namespace mtlsguard::resolution {

// §11, ambient-notes §2.3: A-STRICT (HBONE only) or A-OPEN (HBONE or plaintext) for a target port
// of an ambient workload. DISABLE means "not STRICT"; the bypass annotation opens every port to
// plaintext (ServerMode::bypassed says a STRICT port was opened that way).
ServerMode ambient_server_mode(const ConfigView& view, const model::Workload& workload,
                               std::uint16_t target_port) noexcept;

// Whether an endpoint takes HBONE on port 15008: a captured pod, a waypoint, or a sidecar labelled
// networking.istio.io/tunnel=http. From a waypoint, the labelled sidecar only from 1.23 on
// (#52339).
bool accepts_hbone(const model::Workload& endpoint, model::IstioVersion version,
                   bool from_waypoint) noexcept;

// §12: ztunnel ignores DestinationRules: HBONE to what takes it, the app's bytes to the rest.
SendDecision ztunnel_send(const ConfigView& view, const model::Workload& endpoint) noexcept;

// §12: a waypoint sends HBONE to what takes it, else plaintext; it originates the SIMPLE/MUTUAL of
// the DestinationRule its own namespace sees (1.23+), inside HBONE or not, and ignores DISABLE and
// ISTIO_MUTUAL.
SendDecision waypoint_send(const ConfigView& view, const model::ConsolidatedRule* rule,
                           std::uint16_t service_port, const model::Workload& endpoint) noexcept;

// The waypoint that ambient clients of a service endpoint go through: the Service's (or its
// namespace's), else the endpoint workload's own istio.io/use-waypoint label; nullopt for none.
std::optional<model::ObjectRef> waypoint_for(const ConfigView& view,
                                             const model::ServiceRecord& service,
                                             const model::Workload& endpoint);

} // namespace mtlsguard::resolution
