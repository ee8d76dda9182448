// Which dataplane serves a pod or pod template: sidecar, ambient (ztunnel) or none (ambient.md
// §10).
#pragma once

#include "analysis/model/objects.hpp"

#include <string_view>
#include <vector>

namespace mtlsguard::model {

// The label of waypoint pods (gateway.istio.io/managed=istio.io-mesh-controller).
bool is_waypoint(const Labels& pod_labels) noexcept;

// The istio-cni chart's default ambient.enablementSelectors (1.27+), ORed: pod label
// istio.io/dataplane-mode=ambient; or namespace label istio.io/dataplane-mode=ambient and pod label
// istio.io/dataplane-mode not `none`. Before 1.27 the CNI hard-coded the same rule.
const std::vector<EnablementSelector>& default_enablement_selectors();

// What the CNI agent would decide for a pod without a sidecar (ambient-notes §1.1): whether the
// enablement selectors match it, outside the excluded namespaces (kube-system always) and never
// for hostNetwork. `cni`: the istio-cni ConfigMap if the snapshot has one; its selectors count
// from 1.27, its excluded namespaces always.
bool enablement_selects(const PodLike& pod, const Labels& namespace_labels, IstioVersion version,
                        const CniConfig* cni) noexcept;

struct DataplaneDecision {
    Dataplane dataplane = Dataplane::None;
    bool predicted = false; // ambient by the selectors only, not by the CNI's annotation
    bool pending = false;   // ambient.istio.io/redirection=pending
    bool waypoint = false;  // a waypoint proxy: neither a sidecar server nor a client
    // A sidecar that is also labelled for ambient (MTG212): injection wins.
    bool sidecar_beats_ambient = false;
};

// The classification of ambient-notes §1.4: a waypoint is a proxy; then a sidecar (`sidecar`: the
// semantics §2 decision, injection wins); then ambient by the live annotation; then ambient
// predicted by the selectors; else none. Ambient exists from Istio 1.18 on.
DataplaneDecision classify_dataplane(const PodLike& pod, bool sidecar,
                                     const Labels& namespace_labels, IstioVersion version,
                                     const CniConfig* cni) noexcept;

} // namespace mtlsguard::model
