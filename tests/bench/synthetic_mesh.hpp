// Deterministic generator of synthetic Istio meshes (Kubernetes objects as JSON) for benchmarks.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>

namespace mtlsguard::bench {

// The size of the mesh. The counts of Namespace, Service, Pod, DestinationRule and
// PeerAuthentication objects emitted are exactly these numbers; the `istio` ConfigMap, a few
// dozen ServiceEntries, and the Sidecars and VirtualServices of the fractions below come on top
// (emitted last, so that the objects before them do not depend on these fractions).
struct MeshShape {
    int namespaces = 1000; // including istio-system
    int services = 10000;
    int pods = 50000;
    int destination_rules = 5000;
    int peer_authentications = 2000; // including the mesh-wide one in istio-system
    double sidecar_fraction = 0.85;  // share of namespaces that are injected
    // Share of namespaces in ambient mode (taken from the others): their pods are captured by
    // ztunnel, and one in four of them sends its services through a waypoint.
    double ambient_fraction = 0.10;
    // Share of injected namespaces with a namespace-wide Sidecar resource that narrows egress to
    // the namespace itself, istio-system and a few namespaces it calls (one in ten of them also
    // has a workloadSelector Sidecar for one service).
    double sidecar_resource_fraction = 0.20;
    // Share of services with a VirtualService (timeouts and retries); every DestinationRule with
    // subsets gets one too, splitting traffic between its subsets.
    double virtual_service_fraction = 0.05;
    std::uint64_t seed = 42;
};

// Annotation set on the DestinationRules deliberately written to contradict the PeerAuthentications
// (value "conflict"), so that a benchmark can compare the findings with what was planted.
inline constexpr const char* planted_conflict_annotation = "bench.mtls-guard.io/expect";

// Calls `emit` once per Kubernetes object, in creation order, as the JSON the API server would
// return. Objects are built one at a time so a caller can decode and drop them; only a compact
// plan (a few bytes per namespace and service) is kept in memory. The output depends only on
// `shape` (seed included), not on the standard library. Throws std::invalid_argument for shapes
// that cannot be built (negative counts, services without an application namespace, ...).
void generate_synthetic_mesh(const MeshShape& shape,
                             const std::function<void(nlohmann::json&&)>& emit);

} // namespace mtlsguard::bench
