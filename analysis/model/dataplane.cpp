// Which dataplane serves a pod or pod template: sidecar, ambient (ztunnel) or none (ambient.md
// §10).
#include "analysis/model/dataplane.hpp"

#include <algorithm>

namespace mtlsguard::model {
namespace {

constexpr std::string_view dataplane_mode = "istio.io/dataplane-mode";

bool requirement_matches(const LabelRequirement& r, const Labels& labels) noexcept {
    const std::string* value = labels.find(r.key);
    const bool listed =
        value && std::find(r.values.begin(), r.values.end(), *value) != r.values.end();
    switch (r.op) {
    case LabelRequirement::Operator::In:
        return listed;
    case LabelRequirement::Operator::NotIn:
        return !listed; // an absent label is "not in", as in Kubernetes
    case LabelRequirement::Operator::Exists:
        return value != nullptr;
    case LabelRequirement::Operator::DoesNotExist:
        return value == nullptr;
    }
    return false;
}

} // namespace

bool LabelSelector::matches(const Labels& labels) const noexcept {
    if (!match_labels.subset_of(labels))
        return false;
    return std::all_of(match_expressions.begin(), match_expressions.end(),
                       [&](const LabelRequirement& r) { return requirement_matches(r, labels); });
}

bool is_waypoint(const Labels& pod_labels) noexcept {
    const std::string* managed = pod_labels.find("gateway.istio.io/managed");
    return managed && *managed == "istio.io-mesh-controller";
}

const std::vector<EnablementSelector>& default_enablement_selectors() {
    static const std::vector<EnablementSelector> selectors = [] {
        EnablementSelector by_pod;
        by_pod.pod_selector.match_labels = Labels({{std::string(dataplane_mode), "ambient"}});
        EnablementSelector by_namespace;
        by_namespace.pod_selector.match_expressions.push_back(LabelRequirement{
            std::string(dataplane_mode), LabelRequirement::Operator::NotIn, {"none"}});
        by_namespace.namespace_selector.match_labels =
            Labels({{std::string(dataplane_mode), "ambient"}});
        return std::vector<EnablementSelector>{by_pod, by_namespace};
    }();
    return selectors;
}

bool enablement_selects(const PodLike& pod, const Labels& namespace_labels, IstioVersion version,
                        const CniConfig* cni) noexcept {
    if (!version.at_least(18) || pod.host_network || pod.namespace_name == "kube-system")
        return false;
    if (cni && cni->exclude_namespaces) {
        const auto& excluded = *cni->exclude_namespaces;
        if (std::find(excluded.begin(), excluded.end(), pod.namespace_name) != excluded.end())
            return false;
    }
    // Operators can change the selectors from 1.27 on; before, the default rule was hard-coded.
    const auto& selectors = cni && cni->enablement_selectors && version.at_least(27)
                                ? *cni->enablement_selectors
                                : default_enablement_selectors();
    return std::any_of(selectors.begin(), selectors.end(), [&](const EnablementSelector& s) {
        return s.pod_selector.matches(pod.labels) && s.namespace_selector.matches(namespace_labels);
    });
}

DataplaneDecision classify_dataplane(const PodLike& pod, bool sidecar,
                                     const Labels& namespace_labels, IstioVersion version,
                                     const CniConfig* cni) noexcept {
    DataplaneDecision d;
    if (is_waypoint(pod.labels)) {
        d.waypoint = true;
        return d;
    }
    const bool selected = enablement_selects(pod, namespace_labels, version, cni);
    if (sidecar) {
        d.dataplane = Dataplane::Sidecar;
        d.sidecar_beats_ambient = selected;
        return d;
    }
    if (!version.at_least(18))
        return d;
    if (!pod.from_template && (pod.redirection == AmbientRedirection::Enabled ||
                               pod.redirection == AmbientRedirection::Pending)) {
        d.dataplane = Dataplane::Ambient; // the CNI's own record: authoritative
        d.pending = pod.redirection == AmbientRedirection::Pending;
        return d;
    }
    if (selected) {
        d.dataplane = Dataplane::Ambient; // a template, or a pod the CNI has not annotated yet
        d.predicted = true;
    }
    return d;
}

} // namespace mtlsguard::model
