// Tests model/dataplane: which pods are sidecar, ambient or none (ambient.md §10).
#include "analysis/model/dataplane.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;

namespace {

using model::Dataplane;

// The one workload of namespace `ns` named `name`, from a snapshot of `objects`.
model::Workload classified(const std::vector<json>& objects, const std::string& ns,
                           const std::string& name,
                           model::IstioVersion version = model::IstioVersion::current()) {
    const auto snapshot = snapshot_of(objects, settings_for(version));
    return workload_named(*snapshot, ns, name);
}

json ambient_namespace(const std::string& name) {
    return kube_namespace(name).label("istio.io/dataplane-mode", "ambient");
}

// The istio-cni chart's ConfigMap with the selectors already turned from YAML into JSON.
json cni_config_map(const json& selectors, const std::string& exclude = "",
                    const std::string& ns = "istio-system") {
    json data = {{"AMBIENT_ENABLED", "true"}};
    if (!selectors.is_null())
        data["AMBIENT_ENABLEMENT_SELECTOR"] = selectors;
    if (!exclude.empty())
        data["EXCLUDE_NAMESPACES"] = exclude;
    return {{"apiVersion", "v1"},
            {"kind", "ConfigMap"},
            {"metadata", {{"name", "istio-cni-config"}, {"namespace", ns}}},
            {"data", data}};
}

struct Expected {
    Dataplane dataplane;
    bool predicted;
    bool pending;
};

} // namespace

TEST_CASE("§10: a workload is exactly one of sidecar, ambient or none", "[dataplane]") {
    const json ambient_ns = ambient_namespace("mesh");
    const json injected_ambient_ns =
        kube_namespace("mesh").injected().label("istio.io/dataplane-mode", "ambient");
    const json plain_ns = kube_namespace("mesh");
    auto [what, ns, workload, expected] = GENERATE_COPY(table<std::string, json, json, Expected>({
        {"injection beats ambient labels (namespace injects, namespace ambient)",
         injected_ambient_ns,
         deployment("mesh", "w"),
         {Dataplane::Sidecar, false, false}},
        {"injection beats ambient labels (pod inject=true, pod ambient)",
         plain_ns,
         deployment("mesh", "w")
             .inject_label("true")
             .labels({{"istio.io/dataplane-mode", "ambient"}}),
         {Dataplane::Sidecar, false, false}},
        {"a live pod injected (sidecar.istio.io/status) is a sidecar even if annotated enabled",
         ambient_ns,
         pod("mesh", "w")
             .pod_annotation("sidecar.istio.io/status", "{}")
             .pod_annotation("ambient.istio.io/redirection", "enabled"),
         {Dataplane::Sidecar, false, false}},
        {"pod label none in an ambient namespace",
         ambient_ns,
         deployment("mesh", "w").labels({{"istio.io/dataplane-mode", "none"}}),
         {Dataplane::None, false, false}},
        {"pod label ambient in an unlabelled namespace",
         plain_ns,
         deployment("mesh", "w").labels({{"istio.io/dataplane-mode", "ambient"}}),
         {Dataplane::Ambient, true, false}},
        {"a template in an ambient namespace is predicted",
         ambient_ns,
         deployment("mesh", "w"),
         {Dataplane::Ambient, true, false}},
        {"a live pod without the annotation in an ambient namespace is predicted",
         ambient_ns,
         pod("mesh", "w"),
         {Dataplane::Ambient, true, false}},
        {"a live pod annotated enabled is ambient, whatever its labels",
         plain_ns,
         pod("mesh", "w")
             .labels({{"istio.io/dataplane-mode", "none"}})
             .pod_annotation("ambient.istio.io/redirection", "enabled"),
         {Dataplane::Ambient, false, false}},
        {"a live pod annotated pending is ambient and pending",
         ambient_ns,
         pod("mesh", "w").pod_annotation("ambient.istio.io/redirection", "pending"),
         {Dataplane::Ambient, false, true}},
        {"an unknown redirection value only predicts",
         plain_ns,
         pod("mesh", "w").pod_annotation("ambient.istio.io/redirection", "disabled"),
         {Dataplane::None, false, false}},
        {"a template annotated enabled (copied from a pod) only predicts",
         plain_ns,
         deployment("mesh", "w").pod_annotation("ambient.istio.io/redirection", "enabled"),
         {Dataplane::None, false, false}},
        {"no label anywhere", plain_ns, deployment("mesh", "w"), {Dataplane::None, false, false}},
        {"namespace label none means nothing special",
         kube_namespace("mesh").label("istio.io/dataplane-mode", "none"),
         deployment("mesh", "w").labels({{"istio.io/dataplane-mode", "ambient"}}),
         {Dataplane::Ambient, true, false}},
    }));
    INFO(what);
    const auto w = classified({ns, workload}, "mesh", "w");
    CHECK(w.dataplane == expected.dataplane);
    CHECK(w.sidecar == (expected.dataplane == Dataplane::Sidecar));
    CHECK(w.ambient_predicted == expected.predicted);
    CHECK(w.ambient_pending == expected.pending);
}

TEST_CASE("§10: kube-system and hostNetwork pods are never predicted ambient", "[dataplane]") {
    auto [what, objects, ns] = GENERATE(table<std::string, std::vector<json>, std::string>({
        {"kube-system, labelled ambient twice",
         {ambient_namespace("kube-system"),
          deployment("kube-system", "w").labels({{"istio.io/dataplane-mode", "ambient"}})},
         "kube-system"},
        {"hostNetwork pod label ambient",
         {[] {
             json d = deployment("mesh", "w").labels({{"istio.io/dataplane-mode", "ambient"}});
             d["spec"]["template"]["spec"]["hostNetwork"] = true;
             return d;
         }()},
         "mesh"},
        {"hostNetwork in an ambient namespace",
         {ambient_namespace("mesh"),
          [] {
              json d = deployment("mesh", "w");
              d["spec"]["template"]["spec"]["hostNetwork"] = true;
              return d;
          }()},
         "mesh"},
    }));
    INFO(what);
    CHECK(classified(objects, ns, "w").dataplane == Dataplane::None);
}

TEST_CASE("§10: a waypoint is a proxy, neither a sidecar server nor a client", "[dataplane]") {
    const auto snapshot = snapshot_of({
        ambient_namespace("mesh"),
        deployment("mesh", "waypoint")
            .labels({{"gateway.istio.io/managed", "istio.io-mesh-controller"}})
            .with_proxy_container(),
    });
    const auto& w = workload_named(*snapshot, "mesh", "waypoint");
    CHECK(w.waypoint);
    CHECK(w.dataplane == Dataplane::None);
    CHECK_FALSE(w.sidecar);
    CHECK(snapshot->ambient_client_namespaces().empty());
    CHECK(snapshot->non_mesh_client_namespaces().empty());
    CHECK(snapshot->mesh_client_namespaces().empty());
}

TEST_CASE("§10: ambient exists from Istio 1.18 on", "[dataplane]") {
    auto [version, expected] = GENERATE(table<std::string, Dataplane>({
        {"1.5", Dataplane::None},
        {"1.17", Dataplane::None},
        {"1.18", Dataplane::Ambient},
        {"1.24", Dataplane::Ambient},
        {"current", Dataplane::Ambient},
    }));
    INFO("--istio-version " << version);
    const auto w =
        classified({deployment("mesh", "w").labels({{"istio.io/dataplane-mode", "ambient"}})},
                   "mesh", "w", *model::parse_istio_version(version));
    CHECK(w.dataplane == expected);
}

TEST_CASE("§10: from 1.27 the istio-cni-config selectors replace the defaults", "[dataplane]") {
    const json custom = json::array(
        {{{"podSelector", {{"matchLabels", {{"mesh", "yes"}}}}}},
         {{"podSelector",
           {{"matchExpressions",
             json::array({{{"key", "tier"}, {"operator", "In"}, {"values", {"gold"}}}})}}},
          {"namespaceSelector", {{"matchLabels", {{"zone", "a"}}}}}}});
    auto [what, version, config, ns_labels, pod_labels, expected] =
        GENERATE_COPY(table<std::string, std::string, json, LabelMap, LabelMap, Dataplane>({
            {"custom pod selector",
             "1.27",
             cni_config_map(custom),
             {},
             {{"mesh", "yes"}},
             Dataplane::Ambient},
            {"the default label no longer enrols",
             "1.27",
             cni_config_map(custom),
             {},
             {{"istio.io/dataplane-mode", "ambient"}},
             Dataplane::None},
            {"the default namespace label no longer enrols",
             "current",
             cni_config_map(custom),
             {{"istio.io/dataplane-mode", "ambient"}},
             {},
             Dataplane::None},
            {"pod and namespace selector both match",
             "1.28",
             cni_config_map(custom),
             {{"zone", "a"}},
             {{"tier", "gold"}},
             Dataplane::Ambient},
            {"only the pod half matches",
             "1.28",
             cni_config_map(custom),
             {{"zone", "b"}},
             {{"tier", "gold"}},
             Dataplane::None},
            {"before 1.27 the defaults hold",
             "1.26",
             cni_config_map(custom),
             {},
             {{"istio.io/dataplane-mode", "ambient"}},
             Dataplane::Ambient},
            {"before 1.27 custom selectors do nothing",
             "1.26",
             cni_config_map(custom),
             {},
             {{"mesh", "yes"}},
             Dataplane::None},
            {"a ConfigMap without the key keeps the defaults",
             "1.27",
             cni_config_map(nullptr),
             {},
             {{"istio.io/dataplane-mode", "ambient"}},
             Dataplane::Ambient},
            {"an empty selector list enrols nothing",
             "1.27",
             cni_config_map(json::array()),
             {},
             {{"istio.io/dataplane-mode", "ambient"}},
             Dataplane::None},
            {"a ConfigMap outside the Istio namespace is not the CNI's",
             "1.27",
             cni_config_map(custom, "", "elsewhere"),
             {},
             {{"istio.io/dataplane-mode", "ambient"}},
             Dataplane::Ambient},
            {"EXCLUDE_NAMESPACES skips the namespace",
             "1.24",
             cni_config_map(nullptr, "kube-system, mesh"),
             {},
             {{"istio.io/dataplane-mode", "ambient"}},
             Dataplane::None},
        }));
    INFO(what << " (--istio-version " << version << ")");
    json ns = kube_namespace("mesh");
    for (const auto& [k, v] : ns_labels)
        ns["metadata"]["labels"][k] = v;
    const auto w = classified({config, ns, deployment("mesh", "w").labels(pod_labels)}, "mesh", "w",
                              *model::parse_istio_version(version));
    CHECK(w.dataplane == expected);
}

TEST_CASE("§10: label selectors match as Kubernetes matches them", "[dataplane]") {
    using Op = model::LabelRequirement::Operator;
    auto [op, values, labels, expected] =
        GENERATE(table<Op, std::vector<std::string>, LabelMap, bool>({
            {Op::In, {"a", "b"}, {{"k", "b"}}, true},
            {Op::In, {"a"}, {}, false},
            {Op::NotIn, {"a"}, {}, true},
            {Op::NotIn, {"a"}, {{"k", "a"}}, false},
            {Op::Exists, {}, {{"k", ""}}, true},
            {Op::Exists, {}, {}, false},
            {Op::DoesNotExist, {}, {}, true},
            {Op::DoesNotExist, {}, {{"k", "x"}}, false},
        }));
    model::LabelSelector selector;
    selector.match_expressions.push_back(model::LabelRequirement{"k", op, values});
    CHECK(selector.matches(labels_of(labels)) == expected);
    CHECK(model::LabelSelector{}.matches(labels_of(labels)));
}
