// Tests model/decode: every kind of spec §1, field errors, modes, controllers, sidecars (§2).
#include "analysis/model/dataplane.hpp"
#include "analysis/model/decode.hpp"
#include "analysis/model/decode_fields.hpp"
#include "analysis/model/json_node.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using model::DecodeOutcome;
using Status = DecodeOutcome::Status;

namespace {

// The smallest object of a kind that decodes: the fields every kind requires, nothing else.
json minimal(const std::string& api_version, const std::string& kind) {
    json object = {{"apiVersion", api_version},
                   {"kind", kind},
                   {"metadata", {{"name", "x"}, {"namespace", "shop"}}}};
    if (kind == "DestinationRule")
        object["spec"] = {{"host", "web"}};
    if (kind == "ConfigMap")
        object = istio_config_map({{"enableAutoMtls", true}});
    if (kind == "Namespace" || kind == "MeshPolicy")
        object["metadata"].erase("namespace");
    return object;
}

DecodeOutcome decode(const json& object) {
    return model::decode_object(object);
}

// A copy: callers usually pass a temporary outcome.
template <typename T> T decoded_as(const DecodeOutcome& outcome) {
    INFO(outcome.error);
    REQUIRE(outcome.status == Status::Decoded);
    REQUIRE(outcome.object.has_value());
    REQUIRE(std::holds_alternative<T>(*outcome.object));
    return std::get<T>(*outcome.object);
}

model::PodLike workload_of(const json& object) {
    return decoded_as<model::PodLike>(decode(object));
}

} // namespace

TEST_CASE("Every kind and apiVersion of semantics §1 decodes into its model type", "[decode]") {
    // Variant indexes of model::DecodedObject.
    constexpr std::size_t pa = 0, dr = 1, alpha = 2, svc = 3, se = 4, podlike = 5, ns = 6, mesh = 7,
                          vs = 10, sidecar_kind = 11;
    auto [api_version, kind, index] = GENERATE_COPY(table<std::string, std::string, std::size_t>({
        {"security.istio.io/v1beta1", "PeerAuthentication", pa},
        {"security.istio.io/v1", "PeerAuthentication", pa},
        {"networking.istio.io/v1alpha3", "DestinationRule", dr},
        {"networking.istio.io/v1beta1", "DestinationRule", dr},
        {"networking.istio.io/v1", "DestinationRule", dr},
        {"authentication.istio.io/v1alpha1", "Policy", alpha},
        {"authentication.istio.io/v1alpha1", "MeshPolicy", alpha},
        {"v1", "Service", svc},
        {"v1", "Namespace", ns},
        {"v1", "Pod", podlike},
        {"apps/v1", "Deployment", podlike},
        {"apps/v1", "StatefulSet", podlike},
        {"apps/v1", "DaemonSet", podlike},
        {"apps/v1", "ReplicaSet", podlike},
        {"extensions/v1beta1", "Deployment", podlike},
        {"batch/v1", "Job", podlike},
        {"batch/v1", "CronJob", podlike},
        {"batch/v1beta1", "CronJob", podlike},
        {"networking.istio.io/v1alpha3", "ServiceEntry", se},
        {"networking.istio.io/v1beta1", "ServiceEntry", se},
        {"networking.istio.io/v1", "ServiceEntry", se},
        {"v1", "ConfigMap", mesh},
        {"networking.istio.io/v1alpha3", "VirtualService", vs},
        {"networking.istio.io/v1beta1", "VirtualService", vs},
        {"networking.istio.io/v1", "VirtualService", vs},
        {"networking.istio.io/v1alpha3", "Sidecar", sidecar_kind},
        {"networking.istio.io/v1beta1", "Sidecar", sidecar_kind},
        {"networking.istio.io/v1", "Sidecar", sidecar_kind},
    }));
    INFO(api_version << " " << kind);
    const auto outcome = decode(minimal(api_version, kind));
    INFO(outcome.error);
    REQUIRE(outcome.status == Status::Decoded);
    CHECK(outcome.object->index() == index);
    CHECK(model::is_known_kind(api_version, kind));
}

TEST_CASE("Decoded Istio objects keep their reference, apiVersion and age", "[decode]") {
    const auto outcome = decode(peer_authentication("shop", "default", "security.istio.io/v1beta1")
                                    .strict()
                                    .created(day(3)));
    const auto& pa = decoded_as<model::PeerAuthentication>(outcome);
    CHECK(pa.ref ==
          model::ObjectRef{"security.istio.io/v1beta1", "PeerAuthentication", "shop", "default"});
    CHECK(pa.age.creation_timestamp == day(3));
    CHECK(pa.age.name == "default");
    CHECK(pa.age.namespace_name == "shop");
}

TEST_CASE("A namespaced object without metadata.namespace goes to the caller's namespace",
          "[decode]") {
    json object = destination_rule("ignored", "web", "web").tls("ISTIO_MUTUAL");
    object["metadata"].erase("namespace");
    CHECK(decoded_as<model::DestinationRule>(model::decode_object(object, "team-a"))
              .ref.namespace_name == "team-a");
    CHECK(decoded_as<model::DestinationRule>(model::decode_object(object)).ref.namespace_name ==
          "default");
}

TEST_CASE("Cluster-scoped MeshPolicy and Namespace have no namespace", "[decode]") {
    json meshpolicy = mesh_policy("default").strict();
    meshpolicy["metadata"]["namespace"] = "istio-system"; // ignored for a cluster-scoped kind
    const auto& alpha = decoded_as<model::AlphaPolicy>(decode(meshpolicy));
    CHECK(alpha.mesh_policy);
    CHECK(alpha.ref.namespace_name.empty());
    const auto& ns = decoded_as<model::Namespace>(decode(kube_namespace("shop").injected()));
    CHECK(ns.name == "shop");
    CHECK(*ns.labels.find("istio-injection") == "enabled");
}

TEST_CASE("Kinds the engine does not use are skipped, not errors", "[decode]") {
    auto [api_version, kind] = GENERATE(table<std::string, std::string>({
        {"networking.istio.io/v2", "VirtualService"},
        {"networking.istio.io/v1", "Gateway"},
        {"networking.istio.io/v2", "Sidecar"},
        {"security.istio.io/v1", "AuthorizationPolicy"},
        {"security.istio.io/v1", "RequestAuthentication"},
        {"networking.istio.io/v2", "DestinationRule"},
        {"authentication.istio.io/v1alpha1", "Other"},
        {"v1", "Secret"},
        {"v1", "ServiceAccount"},
        {"apps/v1", "ControllerRevision"},
        {"rbac.authorization.k8s.io/v1", "ClusterRole"},
        {"example.com/v1", "Deployment"},
    }));
    INFO(api_version << " " << kind);
    const auto outcome = decode(minimal(api_version, kind));
    CHECK(outcome.status == Status::Skipped);
    CHECK_FALSE(outcome.object.has_value());
    CHECK(outcome.error.empty());
    CHECK_FALSE(model::is_known_kind(api_version, kind));
}

TEST_CASE("A ConfigMap other than `istio` is skipped", "[decode]") {
    json cm = istio_config_map({{"enableAutoMtls", false}});
    cm["metadata"]["name"] = "app-settings";
    const auto outcome = decode(cm);
    CHECK(outcome.status == Status::Skipped);
    CHECK_FALSE(outcome.object.has_value());
}

TEST_CASE("A document that is not a Kubernetes object is an error", "[decode]") {
    auto [document, words] = GENERATE(table<json, std::string>({
        {json::array({1, 2}), "not an object"},
        {json("PeerAuthentication"), "not an object"},
        {json{{"kind", "Service"}, {"metadata", {{"name", "x"}}}}, "apiVersion"},
        {json{{"apiVersion", "v1"}, {"metadata", {{"name", "x"}}}}, "kind"},
        {json{{"apiVersion", 1}, {"kind", "Service"}}, "apiVersion"},
        {json{{"apiVersion", "v1"}, {"kind", "Service"}}, "metadata"},
        {json{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"namespace", "a"}}}},
         "metadata.name"},
    }));
    INFO(document.dump());
    const auto outcome = decode(document);
    CHECK(outcome.status == Status::Error);
    CHECK_THAT(outcome.error, Catch::Contains(words));
}

TEST_CASE("Bad field types, unknown enum values and out-of-range ports are errors naming the field",
          "[decode]") {
    auto with = [](json object, const json::json_pointer& where, const json& value) {
        object[where] = value;
        return object;
    };
    const json pa = peer_authentication("shop", "p").selecting({{"app", "web"}});
    const json dr = destination_rule("shop", "d", "web");
    const json svc = service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http");
    const json deploy = deployment("shop", "web").labels({{"app", "web"}});
    const json alpha = policy("shop", "p").target("web").strict();
    const json se = service_entry("shop", "ext", {"api.example.com"});
    const json vs = virtual_service("shop", "v", {"web"}).route("web", "v1");
    const json sc = sidecar("shop", "s").egress({"./*"});
    using ptr = json::json_pointer;
    auto [object, field] = GENERATE_COPY(table<json, std::string>({
        {with(pa, ptr("/spec/mtls/mode"), "STRICTER"), "spec.mtls.mode"},
        {with(pa, ptr("/spec/mtls"), "STRICT"), "spec.mtls"},
        {with(pa, ptr("/spec/mtls/mode"), 1), "spec.mtls.mode"},
        {with(pa, ptr("/spec/portLevelMtls"), {{"0", {{"mode", "STRICT"}}}}),
         "spec.portLevelMtls.0"},
        {with(pa, ptr("/spec/portLevelMtls"), {{"65536", {{"mode", "STRICT"}}}}),
         "spec.portLevelMtls.65536"},
        {with(pa, ptr("/spec/portLevelMtls"), {{"http", {{"mode", "STRICT"}}}}),
         "spec.portLevelMtls.http"},
        {with(pa, ptr("/spec/portLevelMtls"), {{"8080", {{"mode", "ON"}}}}),
         "spec.portLevelMtls.8080.mode"},
        {with(pa, ptr("/spec/portLevelMtls"), {{"8080", "STRICT"}}), "spec.portLevelMtls.8080"},
        {with(pa, ptr("/spec/selector/matchLabels/app"), json::object()),
         "spec.selector.matchLabels.app"},
        {with(dr, ptr("/spec/trafficPolicy/tls/mode"), "TLS"), "spec.trafficPolicy.tls.mode"},
        {with(dr, ptr("/spec/trafficPolicy/tls"), "ISTIO_MUTUAL"), "spec.trafficPolicy.tls"},
        {with(dr, ptr("/spec/host"), 42), "spec.host"},
        {with(dr, ptr("/spec/exportTo"), "."), "spec.exportTo"},
        {with(dr, ptr("/spec/exportTo"), json::array({"*", 3})), "spec.exportTo[1]"},
        {with(dr, ptr("/spec/trafficPolicy/portLevelSettings"),
              json::array({{{"port", {{"number", 70000}}}}})),
         "spec.trafficPolicy.portLevelSettings[0].port.number"},
        {with(dr, ptr("/spec/trafficPolicy/portLevelSettings"),
              json::array({{{"port", {{"number", 0}}}}})),
         "spec.trafficPolicy.portLevelSettings[0].port.number"},
        {with(dr, ptr("/spec/trafficPolicy/portLevelSettings"),
              json::array({{{"port", {{"number", "80"}}}}})),
         "spec.trafficPolicy.portLevelSettings[0].port.number"},
        {with(dr, ptr("/spec/trafficPolicy/portLevelSettings"),
              json::array({{{"port", {{"number", 80}}}, {"tls", {{"mode", "PLAIN"}}}}})),
         "spec.trafficPolicy.portLevelSettings[0].tls.mode"},
        {with(dr, ptr("/spec/subsets"),
              json::array({{{"name", "v1"}, {"trafficPolicy", {{"tls", {{"mode", "X"}}}}}}})),
         "spec.subsets[0].trafficPolicy.tls.mode"},
        {with(svc, ptr("/spec/ports/0/port"), 0), "spec.ports[0].port"},
        {with(svc, ptr("/spec/ports/0/port"), 65536), "spec.ports[0].port"},
        {with(svc, ptr("/spec/ports/0/port"), -80), "spec.ports[0].port"},
        {with(svc, ptr("/spec/ports/0/port"), 80.5), "spec.ports[0].port"},
        {with(svc, ptr("/spec/ports/0/targetPort"), 70000), "spec.ports[0].targetPort"},
        {with(svc, ptr("/spec/ports/0/protocol"), "HTTP"), "spec.ports[0].protocol"},
        {with(svc, ptr("/spec/selector"), json::array({"app"})), "spec.selector"},
        {with(svc, ptr("/spec/ports"), json::object()), "spec.ports"},
        {with(deploy, ptr("/spec/template/spec/containers/0/ports"),
              json::array({{{"containerPort", 0}}})),
         "spec.template.spec.containers[0].ports[0].containerPort"},
        {with(deploy, ptr("/spec/template/metadata/labels"), "app=web"),
         "spec.template.metadata.labels"},
        {with(pod("shop", "web-1"), ptr("/spec/containers/0/ports"),
              json::array({{{"containerPort", "http"}}})),
         "spec.containers[0].ports[0].containerPort"},
        {with(controller("batch/v1", "CronJob", "shop", "nightly"),
              ptr("/spec/jobTemplate/spec/template/spec/containers/0/ports"),
              json::array({{{"containerPort", 99999}}})),
         "spec.jobTemplate.spec.template.spec.containers[0].ports[0].containerPort"},
        {with(alpha, ptr("/spec/peers"), json::array({{{"mtls", {{"mode", "DISABLE"}}}}})),
         "spec.peers[0].mtls.mode"},
        {with(alpha, ptr("/spec/peers"), json::array({{{"mtls", {{"mode", "SOMETIMES"}}}}})),
         "spec.peers[0].mtls.mode"},
        {with(alpha, ptr("/spec/targets/0/ports"), json::array({{{"number", 0}}})),
         "spec.targets[0].ports[0].number"},
        {with(se, ptr("/spec/location"), "ELSEWHERE"), "spec.location"},
        // ambient.md §15: the fields that pick a subset.
        {with(vs, ptr("/spec/hosts"), "web"), "spec.hosts"},
        {with(vs, ptr("/spec/gateways"), json::array({"mesh", 1})), "spec.gateways[1]"},
        {with(vs, ptr("/spec/exportTo"), "."), "spec.exportTo"},
        {with(vs, ptr("/spec/http"), json::object()), "spec.http"},
        {with(vs, ptr("/spec/http/0"), "web"), "spec.http[0]"},
        {with(vs, ptr("/spec/http/0/route/0/destination/host"), 7),
         "spec.http[0].route[0].destination.host"},
        {with(vs, ptr("/spec/http/0/route/0/destination"), json::object()),
         "spec.http[0].route[0].destination.host"},
        {with(vs, ptr("/spec/http/0/route/0"), json{{"weight", 10}}),
         "spec.http[0].route[0].destination"},
        {with(vs, ptr("/spec/http/0/route/0/destination/subset"), json::array()),
         "spec.http[0].route[0].destination.subset"},
        {with(vs, ptr("/spec/http/0/route/0/destination/port/number"), 0),
         "spec.http[0].route[0].destination.port.number"},
        {with(vs, ptr("/spec/http/0/mirror"), "web"), "spec.http[0].mirror"},
        {with(vs, ptr("/spec/http/0/mirrors"), json::array({{{"percentage", 5}}})),
         "spec.http[0].mirrors[0].destination"},
        {with(vs, ptr("/spec/tcp"),
              json::array({{{"route", json::array({{{"destination", {{"port", 80}}}}})}}})),
         "spec.tcp[0].route[0].destination.host"},
        {with(vs, ptr("/spec/tls"), json::array({{{"route", "web"}}})), "spec.tls[0].route"},
        // ambient.md §14: the fields that decide which hosts a sidecar client sees.
        {with(sc, ptr("/spec/egress"), json::object()), "spec.egress"},
        {with(sc, ptr("/spec/egress/0"), "./*"), "spec.egress[0]"},
        {with(sc, ptr("/spec/egress/0/hosts"), "./*"), "spec.egress[0].hosts"},
        {with(sc, ptr("/spec/egress/0/hosts/0"), 7), "spec.egress[0].hosts[0]"},
        {with(sc, ptr("/spec/workloadSelector"), "app=web"), "spec.workloadSelector"},
        {with(sc, ptr("/spec/workloadSelector/labels"), json::array()),
         "spec.workloadSelector.labels"},
        {with(sc, ptr("/spec/outboundTrafficPolicy"), "ALLOW_ANY"), "spec.outboundTrafficPolicy"},
        {with(sc, ptr("/spec/outboundTrafficPolicy/mode"), "SOMETIMES"),
         "spec.outboundTrafficPolicy.mode"},
        {istio_config_map({{"outboundTrafficPolicy", {{"mode", "OPEN"}}}}),
         "data.mesh.outboundTrafficPolicy.mode"},
        {with(se, ptr("/spec/ports/0/number"), 0), "spec.ports[0].number"},
        {with(se, ptr("/spec/hosts"), "api.example.com"), "spec.hosts"},
        {istio_config_map({{"enableAutoMtls", "maybe"}}), "data.mesh.enableAutoMtls"},
        {istio_config_map({{"rootNamespace", 5}}), "data.mesh.rootNamespace"},
        {istio_config_map({{"defaultDestinationRuleExportTo", "*"}}),
         "data.mesh.defaultDestinationRuleExportTo"},
        {with(svc, ptr("/metadata/labels"), json::array()), "metadata.labels"},
    }));
    INFO(object.dump());
    const auto outcome = decode(object);
    REQUIRE(outcome.status == Status::Error);
    CHECK_FALSE(outcome.object.has_value());
    CHECK_THAT(outcome.error, Catch::StartsWith(field));
}

TEST_CASE("A PeerAuthentication decodes its selector, mode and port-level modes", "[decode]") {
    const auto& pa = decoded_as<model::PeerAuthentication>(
        decode(peer_authentication("shop", "web")
                   .selecting({{"app", "web"}, {"tier", "front"}})
                   .strict()
                   .port(8080, "DISABLE")
                   .port(9090, "UNSET")
                   .port(9443, "PERMISSIVE")));
    CHECK(pa.selector == labels_of({{"app", "web"}, {"tier", "front"}}));
    CHECK(pa.mode == model::MtlsMode::Strict);
    CHECK(pa.port_level ==
          std::map<std::uint16_t, model::MtlsMode>{{8080, model::MtlsMode::Disable},
                                                   {9090, model::MtlsMode::Unset},
                                                   {9443, model::MtlsMode::Permissive}});
}

TEST_CASE("PeerAuthentication modes decode one for one, and an omitted mtls or mode is UNSET",
          "[decode]") {
    auto [spec, expected] = GENERATE(table<json, model::MtlsMode>({
        {json::object(), model::MtlsMode::Unset},
        {{{"mtls", json::object()}}, model::MtlsMode::Unset},
        {{{"mtls", {{"mode", "UNSET"}}}}, model::MtlsMode::Unset},
        {{{"mtls", {{"mode", "DISABLE"}}}}, model::MtlsMode::Disable},
        {{{"mtls", {{"mode", "PERMISSIVE"}}}}, model::MtlsMode::Permissive},
        {{{"mtls", {{"mode", "STRICT"}}}}, model::MtlsMode::Strict},
        {{{"selector", {{"matchLabels", json::object()}}}, {"mtls", {{"mode", "STRICT"}}}},
         model::MtlsMode::Strict},
    }));
    json object = peer_authentication("shop", "p");
    object["spec"] = spec;
    INFO(spec.dump());
    const auto& pa = decoded_as<model::PeerAuthentication>(decode(object));
    CHECK(pa.mode == expected);
    CHECK(pa.selector.empty());
}

TEST_CASE("A portLevelMtls entry that is null inherits (UNSET)", "[decode]") {
    json object = peer_authentication("shop", "p").selecting({{"app", "web"}}).strict();
    object["spec"]["portLevelMtls"]["8080"] = nullptr;
    const auto& pa = decoded_as<model::PeerAuthentication>(decode(object));
    CHECK(pa.port_level.at(8080) == model::MtlsMode::Unset);
}

TEST_CASE("In a DestinationRule `tls: {}` means DISABLE and no tls block means no TLS setting",
          "[decode]") {
    auto [traffic_policy, expected] = GENERATE(table<json, model::TlsSetting>({
        {{{"tls", json::object()}}, model::TlsMode::Disable},
        {{{"tls", {{"mode", "DISABLE"}}}}, model::TlsMode::Disable},
        {{{"tls", {{"mode", "SIMPLE"}}}}, model::TlsMode::Simple},
        {{{"tls", {{"mode", "MUTUAL"}}}}, model::TlsMode::Mutual},
        {{{"tls", {{"mode", "ISTIO_MUTUAL"}}}}, model::TlsMode::IstioMutual},
        {{{"connectionPool", {{"tcp", {{"maxConnections", 1}}}}}}, std::nullopt},
        {json::object(), std::nullopt},
    }));
    json object = destination_rule("shop", "d", "web");
    object["spec"]["trafficPolicy"] = traffic_policy;
    INFO(traffic_policy.dump());
    const auto& dr = decoded_as<model::DestinationRule>(decode(object));
    REQUIRE(dr.traffic_policy.has_value());
    CHECK(dr.traffic_policy->tls == expected);
}

TEST_CASE("A DestinationRule decodes host, exportTo, selector, port-level settings and subsets",
          "[decode]") {
    json object = destination_rule("shop", "web", "web", "networking.istio.io/v1alpha3")
                      .tls("ISTIO_MUTUAL")
                      .port_tls(8080, "DISABLE")
                      .port_without_tls(9090)
                      .passthrough()
                      .export_to({".", "front"})
                      .for_clients({{"app", "ui"}})
                      .subset("v1", {{"version", "v1"}})
                      .subset("v2", {{"version", "v2"}}, "SIMPLE");
    object["spec"]["subsets"][1]["trafficPolicy"]["tls"] = json::object();
    const auto& dr = decoded_as<model::DestinationRule>(decode(object));
    CHECK(dr.ref.api_version == "networking.istio.io/v1alpha3");
    CHECK(dr.host == "web"); // resolved to an FQDN only by the index
    CHECK(dr.export_to == std::vector<std::string>{".", "front"});
    REQUIRE(dr.workload_selector.has_value());
    CHECK(*dr.workload_selector == labels_of({{"app", "ui"}}));
    REQUIRE(dr.traffic_policy.has_value());
    CHECK(dr.traffic_policy->tls == model::TlsMode::IstioMutual);
    CHECK(dr.traffic_policy->passthrough_load_balancer);
    REQUIRE(dr.traffic_policy->port_level.size() == 2);
    CHECK(dr.traffic_policy->port_level[0].port == 8080);
    CHECK(dr.traffic_policy->port_level[0].tls == model::TlsMode::Disable);
    CHECK(dr.traffic_policy->port_level[1].port == 9090);
    CHECK_FALSE(dr.traffic_policy->port_level[1].tls.has_value());
    REQUIRE(dr.subsets.size() == 2);
    CHECK(dr.subsets[0].name == "v1");
    CHECK(dr.subsets[0].labels == labels_of({{"version", "v1"}}));
    CHECK_FALSE(dr.subsets[0].traffic_policy.has_value());
    REQUIRE(dr.subsets[1].traffic_policy.has_value());
    CHECK(dr.subsets[1].traffic_policy->tls == model::TlsMode::Disable); // tls: {} is DISABLE
}

TEST_CASE("A VirtualService decodes hosts, gateways, exportTo and every route and mirror "
          "destination (ambient.md §15)",
          "[decode][virtualservice]") {
    json object = virtual_service("shop", "web-routes", {"web", "web.shop.svc.cluster.local"})
                      .gateways({"mesh", "istio-system/public"})
                      .export_to({"."})
                      .route("web", "v1", 8080)
                      .mirror("web", "shadow")
                      .route("db.data.svc.cluster.local", "", 5432, "tcp")
                      .route("web", "tls-v2", 0, "tls")
                      .body();
    object["spec"]["http"][0]["route"].push_back(
        {{"destination", {{"host", "web"}, {"subset", "v2"}}}, {"weight", 10}});
    object["spec"]["http"][1]["mirrors"] = json::array({{{"destination", {{"host", "other"}}}}});
    const auto vs = decoded_as<model::VirtualService>(decode(object));
    CHECK(vs.ref.kind == "VirtualService");
    CHECK(vs.hosts == std::vector<std::string>{"web", "web.shop.svc.cluster.local"});
    CHECK(vs.gateways == std::vector<std::string>{"mesh", "istio-system/public"});
    CHECK(vs.export_to == std::vector<std::string>{"."});
    std::vector<std::string> seen;
    for (const auto& d : vs.destinations)
        seen.push_back(d.path + " " + d.host + " " + d.subset + " " +
                       (d.port ? std::to_string(*d.port) : std::string("-")));
    CHECK(seen == std::vector<std::string>{
                      "spec.http[0].route[0].destination web v1 8080",
                      "spec.http[0].route[1].destination web v2 -",
                      "spec.http[1].route[0].destination web  -",
                      "spec.http[1].mirror web shadow -",
                      "spec.http[1].mirrors[0].destination other  -",
                      "spec.tcp[0].route[0].destination db.data.svc.cluster.local  5432",
                      "spec.tls[0].route[0].destination web tls-v2 -",
                  });
}

TEST_CASE("A VirtualService route's match[].sourceNamespace values narrow its destinations",
          "[decode][virtualservice]") {
    json object = virtual_service("shop", "v", {"web"})
                      .route("web", "a")
                      .route("web", "b")
                      .route("web", "c")
                      .route("web", "d", 0, "tcp")
                      .body();
    object["spec"]["http"][0]["match"] =
        json::array({{{"sourceNamespace", "front"}}, {{"sourceNamespace", "side"}}});
    // One match without a sourceNamespace takes every client.
    object["spec"]["http"][1]["match"] =
        json::array({{{"sourceNamespace", "front"}}, {{"headers", {{"x", {{"exact", "1"}}}}}}});
    object["spec"]["http"][2]["match"] = json::array();
    object["spec"]["tcp"][0]["match"] = json::array({{{"sourceNamespace", "batch"}}});
    object["spec"]["http"][0]["mirror"] = {{"host", "web"}, {"subset", "m"}};
    const auto vs = decoded_as<model::VirtualService>(decode(object));
    std::vector<std::vector<std::string>> sources;
    for (const auto& d : vs.destinations)
        sources.push_back(d.source_namespaces);
    CHECK(sources == std::vector<std::vector<std::string>>{
                         {"front", "side"}, {"front", "side"}, {}, {}, {"batch"}});
    auto with = [&](const char* where, const json& value) {
        json changed = object;
        changed[json::json_pointer(where)] = value;
        return decode(changed).error;
    };
    CHECK(with("/spec/http/0/match/0/sourceNamespace", 3) ==
          "spec.http[0].match[0].sourceNamespace: expected a string, got number");
    CHECK(with("/spec/http/0/match", "front") == "spec.http[0].match: expected a list, got string");
}

TEST_CASE("A VirtualService without a spec routes nothing", "[decode][virtualservice]") {
    const auto vs = decoded_as<model::VirtualService>(
        decode(json{{"apiVersion", "networking.istio.io/v1beta1"},
                    {"kind", "VirtualService"},
                    {"metadata", {{"name", "empty"}, {"namespace", "shop"}}}}));
    CHECK(vs.hosts.empty());
    CHECK(vs.destinations.empty());
}

TEST_CASE("In v1alpha1 peers the first mtls peer decides, and no mtls peer means plaintext only",
          "[decode]") {
    auto [peers, expected] = GENERATE(table<json, model::MtlsMode>({
        {json::array({{{"mtls", json::object()}}}), model::MtlsMode::Strict},
        {json::array({{{"mtls", nullptr}}}), model::MtlsMode::Strict},
        {json::array({{{"mtls", {{"mode", "STRICT"}}}}}), model::MtlsMode::Strict},
        {json::array({{{"mtls", {{"mode", "PERMISSIVE"}}}}}), model::MtlsMode::Permissive},
        // allowTls does not change what the sidecar accepts.
        {json::array({{{"mtls", {{"allowTls", true}}}}}), model::MtlsMode::Strict},
        {json::array({{{"mtls", {{"mode", "PERMISSIVE"}, {"allowTls", true}}}}}),
         model::MtlsMode::Permissive},
        {json::array({{{"jwt", {{"issuer", "x"}}}}, {{"mtls", {{"mode", "PERMISSIVE"}}}}}),
         model::MtlsMode::Permissive},
        {json::array({{{"mtls", {{"mode", "PERMISSIVE"}}}}, {{"mtls", json::object()}}}),
         model::MtlsMode::Permissive},
        {json::array({{{"mtls", json::object()}}, {{"mtls", {{"mode", "PERMISSIVE"}}}}}),
         model::MtlsMode::Strict},
        {json::array({{{"jwt", {{"issuer", "x"}}}}}), model::MtlsMode::Disable},
        {json::array(), model::MtlsMode::Disable},
        {nullptr, model::MtlsMode::Disable},
    }));
    auto kind = GENERATE(as<std::string>{}, "Policy", "MeshPolicy");
    json object = kind == "Policy" ? json(policy("shop", "default")) : json(mesh_policy("default"));
    if (!peers.is_null())
        object["spec"]["peers"] = peers;
    INFO(kind << " peers " << peers.dump());
    const auto& alpha = decoded_as<model::AlphaPolicy>(decode(object));
    CHECK(alpha.mode == expected);
    CHECK(alpha.mesh_policy == (kind == "MeshPolicy"));
}

TEST_CASE("peerIsOptional does not change the mode of a v1alpha1 policy", "[decode]") {
    json object = policy("shop", "default").strict();
    object["spec"]["peerIsOptional"] = true;
    CHECK(decoded_as<model::AlphaPolicy>(decode(object)).mode == model::MtlsMode::Strict);
}

TEST_CASE("A v1alpha1 Policy decodes targets with port numbers and names", "[decode]") {
    json object = policy("shop", "web-policy")
                      .target("web")
                      .target_port("api", 8080)
                      .target_port_name("grpc", "grpc-web")
                      .permissive();
    const auto& alpha = decoded_as<model::AlphaPolicy>(decode(object));
    REQUIRE(alpha.targets.size() == 3);
    CHECK(alpha.targets[0].name == "web");
    CHECK(alpha.targets[0].ports.empty());
    CHECK(alpha.targets[1].name == "api");
    REQUIRE(alpha.targets[1].ports.size() == 1);
    CHECK(alpha.targets[1].ports[0].number == std::optional<std::uint16_t>(8080));
    CHECK(alpha.targets[2].ports[0].name == "grpc-web");
    CHECK_FALSE(alpha.targets[2].ports[0].number.has_value());
}

TEST_CASE("A Service decodes selector, headless, ports, target ports and protocols", "[decode]") {
    json object = service("shop", "web")
                      .selecting({{"app", "web"}})
                      .port(80, 8080, "http")
                      .named_target_port(9090, "grpc-port", "grpc")
                      .port(53, 53, "dns", "UDP")
                      .port(3868, 3868, "diameter", "SCTP")
                      .port(443, 8443, "https", "TCP")
                      .headless();
    object["spec"]["ports"].push_back({{"port", 7000}}); // no targetPort: same as port
    const auto& svc = decoded_as<model::Service>(decode(object));
    REQUIRE(svc.selector.has_value());
    CHECK(*svc.selector == labels_of({{"app", "web"}}));
    CHECK(svc.headless);
    CHECK_FALSE(svc.external_name);
    REQUIRE(svc.ports.size() == 6);
    CHECK(svc.ports[0].target_port_number == std::optional<std::uint16_t>(8080));
    CHECK(svc.ports[0].tcp);
    CHECK(svc.ports[1].target_port_name == "grpc-port");
    CHECK_FALSE(svc.ports[1].target_port_number.has_value());
    CHECK_FALSE(svc.ports[2].tcp);
    CHECK_FALSE(svc.ports[3].tcp);
    CHECK(svc.ports[4].tcp);
    CHECK(svc.ports[5].target_port_number == std::optional<std::uint16_t>(7000));
}

TEST_CASE("A Service without a selector, or with an empty one, has unknown endpoints", "[decode]") {
    json without = service("shop", "external-db").port(5432, 5432);
    json empty = service("shop", "external-db").port(5432, 5432);
    empty["spec"]["selector"] = json::object();
    CHECK_FALSE(decoded_as<model::Service>(decode(without)).selector.has_value());
    CHECK_FALSE(decoded_as<model::Service>(decode(empty)).selector.has_value());
}

TEST_CASE("A ServiceEntry decodes hosts, ports and its location (MESH_EXTERNAL by default)",
          "[decode]") {
    const auto& external = decoded_as<model::ServiceEntry>(decode(service_entry(
        "shop", "api", {"api.example.com", "b.example.com"}, "MESH_EXTERNAL", {443, 8443})));
    CHECK(external.mesh_external);
    CHECK(external.hosts == std::vector<std::string>{"api.example.com", "b.example.com"});
    CHECK(external.ports == std::vector<std::uint16_t>{443, 8443});
    const auto& internal = decoded_as<model::ServiceEntry>(
        decode(service_entry("shop", "vm", {"vm.shop.internal"}, "MESH_INTERNAL")));
    CHECK_FALSE(internal.mesh_external);
    json defaulted = service_entry("shop", "api", {"api.example.com"});
    defaulted["spec"].erase("location");
    CHECK(decoded_as<model::ServiceEntry>(decode(defaulted)).mesh_external);
}

TEST_CASE("The istio ConfigMap's data.mesh decodes as a JSON object or JSON text", "[decode]") {
    const json mesh = {{"rootNamespace", "istio-config"},
                       {"enableAutoMtls", false},
                       {"defaultDestinationRuleExportTo", json::array({"."})},
                       {"trustDomain", "corp.example"},
                       {"defaultConfig", {{"discoveryAddress", "istiod:15012"}}}};
    auto as_text = GENERATE(false, true);
    const auto& config =
        decoded_as<model::MeshConfig>(decode(istio_config_map(as_text ? json(mesh.dump()) : mesh)));
    CHECK(config.root_namespace == std::optional<std::string>("istio-config"));
    CHECK(config.enable_auto_mtls == std::optional<bool>(false));
    CHECK(config.default_destination_rule_export_to ==
          std::optional<std::vector<std::string>>(std::vector<std::string>{"."}));
    CHECK(config.trust_domain == std::optional<std::string>("corp.example"));
}

TEST_CASE("The istio ConfigMap accepts a quoted boolean and leaves unset keys unset", "[decode]") {
    const auto& config =
        decoded_as<model::MeshConfig>(decode(istio_config_map({{"enableAutoMtls", "true"}})));
    CHECK(config.enable_auto_mtls == std::optional<bool>(true));
    CHECK_FALSE(config.root_namespace.has_value());
    CHECK_FALSE(config.default_destination_rule_export_to.has_value());
}

TEST_CASE("A pod is named after its controller through ownerReferences", "[decode]") {
    auto [owner_kind, owner_name, hash, kind, name] =
        GENERATE(table<std::string, std::string, std::string, std::string, std::string>({
            {"ReplicaSet", "reviews-v1-5d8f7c9b4", "5d8f7c9b4", "Deployment", "reviews-v1"},
            {"ReplicaSet", "standalone", "", "ReplicaSet", "standalone"},
            {"ReplicaSet", "orphan-rs-abc", "xyz", "ReplicaSet", "orphan-rs-abc"},
            {"Job", "backup-28391040", "", "CronJob", "backup"},
            {"Job", "migrate-db", "", "Job", "migrate-db"},
            {"StatefulSet", "db", "", "StatefulSet", "db"},
            {"DaemonSet", "node-agent", "", "DaemonSet", "node-agent"},
            {"", "", "", "Pod", "lonely-pod"},
        }));
    auto object = pod("shop", "lonely-pod").labels({{"app", "x"}});
    if (!owner_kind.empty())
        object.owned_by(owner_kind, owner_name);
    if (!hash.empty())
        object.label("pod-template-hash", hash);
    INFO(owner_kind << " " << owner_name);
    const auto workload = workload_of(object);
    CHECK(workload.workload_kind == kind);
    CHECK(workload.workload_name == name);
    CHECK_FALSE(workload.from_template);
    CHECK(workload.namespace_name == "shop");
}

TEST_CASE("Per-pod labels are dropped so that the pods of one controller aggregate", "[decode]") {
    auto object = pod("shop", "web-5d8f7c9b4-abcde")
                      .owned_by("ReplicaSet", "web-5d8f7c9b4")
                      .labels({{"app", "web"},
                               {"pod-template-hash", "5d8f7c9b4"},
                               {"controller-revision-hash", "web-7"},
                               {"statefulset.kubernetes.io/pod-name", "web-0"}});
    CHECK(workload_of(object).labels == labels_of({{"app", "web"}}));
}

TEST_CASE("Pod templates of every controller kind decode with their labels and ports", "[decode]") {
    auto [api_version, kind] = GENERATE(table<std::string, std::string>({
        {"apps/v1", "Deployment"},
        {"apps/v1", "StatefulSet"},
        {"apps/v1", "DaemonSet"},
        {"apps/v1", "ReplicaSet"},
        {"batch/v1", "Job"},
        {"batch/v1", "CronJob"},
    }));
    INFO(kind);
    const auto workload = workload_of(controller(api_version, kind, "shop", "web")
                                          .labels({{"app", "web"}})
                                          .container_port(8080, "http"));
    CHECK(workload.from_template);
    CHECK(workload.workload_kind == kind);
    CHECK(workload.workload_name == "web");
    CHECK(workload.labels == labels_of({{"app", "web"}}));
    REQUIRE(workload.container_ports.size() == 1);
    CHECK(workload.container_ports[0].number == 8080);
    CHECK(workload.container_ports[0].name == "http");
    CHECK_FALSE(workload.sidecar.has_value()); // the namespace decides
}

TEST_CASE("A ReplicaSet or Job object owned by a controller is named after that controller",
          "[decode]") {
    auto rs = controller("apps/v1", "ReplicaSet", "shop", "web-5d8f7c9b4")
                  .owned_by("Deployment", "web")
                  .label("pod-template-hash", "5d8f7c9b4");
    CHECK(workload_of(rs).workload_kind == "Deployment");
    CHECK(workload_of(rs).workload_name == "web");
    auto job =
        controller("batch/v1", "Job", "shop", "nightly-28391040").owned_by("CronJob", "nightly");
    CHECK(workload_of(job).workload_kind == "CronJob");
    CHECK(workload_of(job).workload_name == "nightly");
}

TEST_CASE("A running pod has a sidecar when it carries tlsMode=istio or an istio-proxy container",
          "[decode][sidecar]") {
    SECTION("the injector's tlsMode label") {
        CHECK(workload_of(pod("shop", "a").label("security.istio.io/tlsMode", "istio")).sidecar ==
              true);
    }
    SECTION("an istio-proxy container") {
        CHECK(workload_of(pod("shop", "a").with_proxy_container()).sidecar == true);
    }
    SECTION("tlsMode=disabled and no proxy container") {
        CHECK(
            workload_of(pod("shop", "a").label("security.istio.io/tlsMode", "disabled")).sidecar ==
            false);
    }
    SECTION("nothing at all") {
        CHECK(workload_of(pod("shop", "a").labels({{"app", "a"}})).sidecar == false);
    }
    SECTION("an inject label on a pod that runs no proxy: what runs counts") {
        CHECK(workload_of(pod("shop", "a").inject_label("true")).sidecar == false);
    }
}

TEST_CASE("A pod template has a sidecar when injected, opted in by label, or in an injected "
          "namespace, unless opted out (§2)",
          "[decode][sidecar]") {
    // ns label: "" none, "enabled" istio-injection=enabled, "rev" istio.io/rev, "disabled".
    // label / annotation: the value of sidecar.istio.io/inject, "" when absent.
    auto [ns_label, inject_label, inject_annotation, injected_marker, expected] =
        GENERATE(table<std::string, std::string, std::string, bool, bool>({
            {"", "", "", false, false},
            {"enabled", "", "", false, true},
            {"rev", "", "", false, true},
            {"disabled", "", "", false, false},
            {"", "", "", true, true},
            {"", "true", "", false, true},
            {"", "false", "", false, false},
            {"enabled", "false", "", false, false},
            {"enabled", "", "false", false, false},
            {"rev", "", "false", false, false},
            {"enabled", "", "true", false, true},
            {"enabled", "true", "", false, true},
            // Opting in is done with the label; the annotation alone does not opt a pod in.
            {"", "", "true", false, false},
            // "false" in either place opts out.
            {"", "false", "true", false, false},
            {"enabled", "false", "true", false, false},
        }));
    auto ns = kube_namespace("shop");
    if (ns_label == "enabled")
        ns.injected();
    else if (ns_label == "rev")
        ns.label("istio.io/rev", "canary");
    else if (ns_label == "disabled")
        ns.label("istio-injection", "disabled");
    auto web = deployment("shop", "web").labels({{"app", "web"}});
    if (!inject_label.empty())
        web.inject_label(inject_label);
    if (!inject_annotation.empty())
        web.inject_annotation(inject_annotation);
    if (injected_marker)
        web.with_sidecar();
    INFO("namespace " << ns_label << ", label " << inject_label << ", annotation "
                      << inject_annotation << ", injected " << injected_marker);
    const auto snapshot = snapshot_of({ns, web});
    CHECK(workload_named(*snapshot, "shop", "web").sidecar == expected);
}

TEST_CASE("A template whose inject label says true while its inject annotation says false has no "
          "sidecar (§2)",
          "[decode][sidecar]") {
    const auto snapshot = snapshot_of({kube_namespace("shop"), deployment("shop", "web")
                                                                   .labels({{"app", "web"}})
                                                                   .inject_label("true")
                                                                   .inject_annotation("false")});
    CHECK_FALSE(workload_named(*snapshot, "shop", "web").sidecar);
}

SCENARIO("ambient.md §14: a Sidecar decodes its workloadSelector, egress hosts and outbound policy",
         "[decode][sidecar]") {
    GIVEN("a Sidecar with two egress listeners, one entry without a '/'") {
        const auto sc =
            decoded_as<model::Sidecar>(decode(sidecar("shop", "s", "networking.istio.io/v1beta1")
                                                  .for_workloads({{"app", "web"}})
                                                  .egress({"./*", "bad-entry"})
                                                  .egress({"*/*.example.com"})
                                                  .outbound("REGISTRY_ONLY")
                                                  .created(day(2))));
        THEN("every usable entry is kept, split at its '/'") {
            CHECK(sc.ref ==
                  model::ObjectRef{"networking.istio.io/v1beta1", "Sidecar", "shop", "s"});
            CHECK(sc.age.creation_timestamp == day(2));
            REQUIRE(sc.workload_selector.has_value());
            CHECK(*sc.workload_selector == labels_of({{"app", "web"}}));
            REQUIRE(sc.egress_hosts.size() == 2);
            CHECK(sc.egress_hosts[0].namespace_part == ".");
            CHECK(sc.egress_hosts[0].host == "*");
            CHECK(sc.egress_hosts[1].namespace_part == "*");
            CHECK(sc.egress_hosts[1].host == "*.example.com");
            CHECK(sc.outbound_policy == model::OutboundPolicy::RegistryOnly);
        }
    }
    GIVEN("a Sidecar without egress") {
        const auto sc = decoded_as<model::Sidecar>(decode(sidecar("shop", "s")));
        THEN("it imports everything, as Istio's default listener does") {
            REQUIRE(sc.egress_hosts.size() == 1);
            CHECK(sc.egress_hosts[0].namespace_part == "*");
            CHECK(sc.egress_hosts[0].host == "*");
            CHECK_FALSE(sc.workload_selector.has_value());
            CHECK_FALSE(sc.outbound_policy.has_value());
        }
    }
    GIVEN("a Sidecar whose only egress entry has no '/'") {
        const auto sc = decoded_as<model::Sidecar>(decode(sidecar("shop", "s").egress({"web"})));
        THEN("it imports nothing") {
            CHECK(sc.egress_hosts.empty());
        }
    }
}

TEST_CASE("decode_mesh_config reads a MeshConfig document and names bad fields", "[decode]") {
    const auto good = model::decode_mesh_config(
        {{"rootNamespace", "mesh-root"}, {"enableAutoMtls", true}, {"outboundTrafficPolicy", {}}});
    const auto& config = decoded_as<model::MeshConfig>(good);
    CHECK(config.root_namespace == std::optional<std::string>("mesh-root"));
    CHECK(config.enable_auto_mtls == std::optional<bool>(true));
    CHECK(decoded_as<model::MeshConfig>(model::decode_mesh_config(nullptr))
              .enable_auto_mtls.has_value() == false);
    const auto bad = model::decode_mesh_config({{"enableAutoMtls", 3}});
    CHECK(bad.status == Status::Error);
    CHECK_THAT(bad.error, Catch::StartsWith("mesh.enableAutoMtls"));
    CHECK(model::decode_mesh_config(json::array()).status == Status::Error);
    // ambient.md §14: what sidecars do with hosts a Sidecar resource hides.
    CHECK(decoded_as<model::MeshConfig>(
              model::decode_mesh_config({{"outboundTrafficPolicy", {{"mode", "REGISTRY_ONLY"}}}}))
              .outbound_policy == model::OutboundPolicy::RegistryOnly);
    CHECK_FALSE(config.outbound_policy.has_value());
}

TEST_CASE("§10: pods and pod templates of every kind decode their ambient and interception facts",
          "[decode][ambient]") {
    auto [api_version, kind] = GENERATE(table<std::string, std::string>({
        {"v1", "Pod"},
        {"apps/v1", "Deployment"},
        {"apps/v1", "StatefulSet"},
        {"apps/v1", "DaemonSet"},
        {"apps/v1", "ReplicaSet"},
        {"batch/v1", "Job"},
        {"batch/v1", "CronJob"},
    }));
    INFO(kind);
    json object =
        controller(api_version, kind, "shop", "web")
            .labels(
                {{"istio.io/dataplane-mode", "ambient"}, {"networking.istio.io/tunnel", "http"}})
            .pod_annotation("ambient.istio.io/redirection", "pending")
            .pod_annotation("ambient.istio.io/bypass-inbound-capture", "true")
            .pod_annotation("sidecar.istio.io/status", "{}")
            .pod_annotation("traffic.sidecar.istio.io/excludeInboundPorts", "8080")
            .pod_annotation("traffic.sidecar.istio.io/includeInboundPorts", "")
            .pod_annotation("traffic.sidecar.istio.io/excludeOutboundPorts", "5432")
            .pod_annotation("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0/8")
            .pod_annotation("traffic.sidecar.istio.io/includeOutboundIPRanges", "*");
    json& spec = kind == "Pod"       ? object["spec"]
                 : kind == "CronJob" ? object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                                     : object["spec"]["template"]["spec"];
    spec["hostNetwork"] = true;
    const auto pod = workload_of(object);
    CHECK(pod.labels.find("istio.io/dataplane-mode") != nullptr);
    CHECK(pod.tunnel_http);
    CHECK(pod.bypass_inbound_capture);
    CHECK(pod.sidecar_status);
    CHECK(pod.host_network);
    // The CNI writes the redirection annotation on running pods only.
    CHECK(pod.redirection ==
          (kind == "Pod" ? model::AmbientRedirection::Pending : model::AmbientRedirection::Absent));
    CHECK(pod.interception.exclude_inbound_ports == std::optional<std::string>("8080"));
    CHECK(pod.interception.include_inbound_ports == std::optional<std::string>(""));
    CHECK(pod.interception.exclude_outbound_ports == std::optional<std::string>("5432"));
    CHECK(pod.interception.exclude_outbound_ip_ranges == std::optional<std::string>("10.0.0.0/8"));
    CHECK(pod.interception.include_outbound_ip_ranges == std::optional<std::string>("*"));
}

TEST_CASE("Of a pod's annotations only those the engine reads are kept; the others are still "
          "checked to be strings",
          "[decode]") {
    json object = pod("shop", "web-1")
                      .pod_annotation("kubectl.kubernetes.io/last-applied-configuration",
                                      std::string(3000, 'x'))
                      .pod_annotation("prometheus.io/scrape", "true")
                      .pod_annotation("sidecar.istio.io/status", "{}")
                      .pod_annotation("traffic.sidecar.istio.io/excludeInboundPorts", "9090")
                      .pod_annotation("ambient.istio.io/redirection", "enabled");
    const auto meta =
        model::decoding::decode_meta(model::decoding::JsonNode{&object}, "default", true);
    std::vector<std::string> kept;
    for (const auto& [key, value] : meta.annotations.entries())
        kept.push_back(key);
    CHECK(kept == std::vector<std::string>{"ambient.istio.io/redirection",
                                           "sidecar.istio.io/status",
                                           "traffic.sidecar.istio.io/excludeInboundPorts"});
    const auto decoded = workload_of(object);
    CHECK(decoded.sidecar_status);
    CHECK(decoded.redirection == model::AmbientRedirection::Enabled);
    CHECK(decoded.interception.exclude_inbound_ports == std::optional<std::string>("9090"));

    for (const std::string kind : {"Pod", "Deployment"}) {
        INFO(kind);
        json bad = kind == "Pod" ? json(pod("shop", "web-1")) : json(deployment("shop", "web"));
        json& annotations = kind == "Pod" ? bad["metadata"]["annotations"]
                                          : bad["spec"]["template"]["metadata"]["annotations"];
        annotations["prometheus.io/config"] = {{"scrape", true}};
        const auto outcome = decode(bad);
        CHECK(outcome.status == Status::Error);
        CHECK_THAT(outcome.error, Catch::Contains("annotations.prometheus.io/config: expected a "
                                                  "string"));
    }
}

TEST_CASE("§10: the redirection annotation and the tunnel label decode value by value",
          "[decode][ambient]") {
    auto [redirection, tunnel, expected, http] =
        GENERATE(table<std::string, std::string, model::AmbientRedirection, bool>({
            {"enabled", "http", model::AmbientRedirection::Enabled, true},
            {"pending", "tcp,http", model::AmbientRedirection::Pending, true},
            {"disabled", "tcp", model::AmbientRedirection::Other, false},
            {"", "https", model::AmbientRedirection::Other, false},
        }));
    const auto p = workload_of(pod("shop", "p")
                                   .labels({{"networking.istio.io/tunnel", tunnel}})
                                   .pod_annotation("ambient.istio.io/redirection", redirection));
    CHECK(p.redirection == expected);
    CHECK(p.tunnel_http == http);
    const auto bare = workload_of(pod("shop", "q"));
    CHECK(bare.redirection == model::AmbientRedirection::Absent);
    CHECK_FALSE(bare.host_network);
    CHECK_FALSE(bare.interception.include_inbound_ports.has_value());
}

namespace {

json cni_config_map(const json& data, const std::string& name = "istio-cni-config") {
    return {{"apiVersion", "v1"},
            {"kind", "ConfigMap"},
            {"metadata", {{"name", name}, {"namespace", "istio-system"}}},
            {"data", data}};
}

} // namespace

TEST_CASE("§10: the istio-cni-config ConfigMap decodes its enablement selectors and exclusions",
          "[decode][ambient]") {
    // As the chart renders it (toYaml, here already JSON) and as JSON text.
    const json selectors = json::array(
        {{{"podSelector", {{"matchLabels", {{"istio.io/dataplane-mode", "ambient"}}}}}},
         {{"podSelector",
           {{"matchExpressions", json::array({{{"key", "istio.io/dataplane-mode"},
                                               {"operator", "NotIn"},
                                               {"values", {"none"}}}})}}},
          {"namespaceSelector", {{"matchLabels", {{"istio.io/dataplane-mode", "ambient"}}}}}}});
    const bool as_text = GENERATE(false, true);
    const auto config = decoded_as<model::CniConfig>(decode(cni_config_map(
        {{"AMBIENT_ENABLEMENT_SELECTOR", as_text ? json(selectors.dump()) : selectors},
         {"EXCLUDE_NAMESPACES", "kube-system, legacy,"}})));
    CHECK(config.source_namespace == "istio-system");
    REQUIRE(config.enablement_selectors.has_value());
    CHECK(*config.enablement_selectors == model::default_enablement_selectors());
    CHECK(config.exclude_namespaces ==
          std::optional<std::vector<std::string>>({"kube-system", "legacy"}));
    const auto empty = decoded_as<model::CniConfig>(decode(cni_config_map(json::object())));
    CHECK_FALSE(empty.enablement_selectors.has_value());
    CHECK_FALSE(empty.exclude_namespaces.has_value());
    CHECK(decode(cni_config_map(json::object(), "istio-cni-other")).status == Status::Skipped);
}

TEST_CASE("§10: a malformed istio-cni-config is a decode error naming the field",
          "[decode][ambient]") {
    auto [selectors, field] = GENERATE(table<json, std::string>({
        {json("{not yaml"), "data.AMBIENT_ENABLEMENT_SELECTOR: expected a list"},
        {json::object(), "data.AMBIENT_ENABLEMENT_SELECTOR: expected a list of selectors"},
        {json::array({"x"}), "data.AMBIENT_ENABLEMENT_SELECTOR[0]: expected an object"},
        {json::array({{{"podSelector", "x"}}}),
         "data.AMBIENT_ENABLEMENT_SELECTOR[0].podSelector: expected a label selector"},
        {json::array(
             {{{"podSelector",
                {{"matchExpressions", json::array({{{"key", "k"}, {"operator", "Like"}}})}}}}}),
         "data.AMBIENT_ENABLEMENT_SELECTOR[0].podSelector.matchExpressions[0].operator: unknown"},
        {json::array(
             {{{"namespaceSelector",
                {{"matchExpressions", json::array({{{"key", "k"}, {"operator", "In"}}})}}}}}),
         "data.AMBIENT_ENABLEMENT_SELECTOR[0].namespaceSelector.matchExpressions[0].values: "
         "required"},
        {json::array({{{"podSelector", {{"matchLabels", {{"k", json::object()}}}}}}}),
         "data.AMBIENT_ENABLEMENT_SELECTOR[0].podSelector.matchLabels.k: expected a string"},
    }));
    const auto outcome = decode(cni_config_map({{"AMBIENT_ENABLEMENT_SELECTOR", selectors}}));
    INFO(outcome.error);
    CHECK(outcome.status == Status::Error);
    CHECK_THAT(outcome.error, Catch::StartsWith(field));
}

TEST_CASE("§16: webhook configurations, APIServices and CRD conversions decode the Services the "
          "API server calls, port 443 by default",
          "[decode][apiserver]") {
    auto [object, kind, webhook, port] = GENERATE(table<json, std::string, std::string, int>({
        {webhook_configuration("opa", "opa", "opa-webhook"), "ValidatingWebhookConfiguration",
         "check.opa.example.com", 443},
        {webhook_configuration("opa", "opa", "opa-webhook", 8443), "ValidatingWebhookConfiguration",
         "check.opa.example.com", 8443},
        {webhook_configuration("opa", "opa", "opa-webhook", 9443, "MutatingWebhookConfiguration"),
         "MutatingWebhookConfiguration", "check.opa.example.com", 9443},
        {webhook_configuration("opa", "opa", "opa-webhook", {}, "MutatingWebhookConfiguration",
                               "admissionregistration.k8s.io/v1beta1"),
         "MutatingWebhookConfiguration", "check.opa.example.com", 443},
        {api_service("v1beta1.metrics.k8s.io", "opa", "opa-webhook"), "APIService", "", 443},
        {api_service("v1beta1.metrics.k8s.io", "opa", "opa-webhook", 6443,
                     "apiregistration.k8s.io/v1beta1"),
         "APIService", "", 6443},
        {crd_with_conversion("widgets.example.com", "opa", "opa-webhook"),
         "CustomResourceDefinition", "", 443},
        {crd_with_conversion("widgets.example.com", "opa", "opa-webhook", 8443,
                             "apiextensions.k8s.io/v1beta1"),
         "CustomResourceDefinition", "", 8443},
    }));
    INFO(object.dump());
    CHECK(model::is_known_kind(object["apiVersion"].get<std::string>(), kind));
    const auto callee = decoded_as<model::ApiServerCallee>(decode(object));
    CHECK(callee.ref.kind == kind);
    CHECK(callee.ref.namespace_name.empty()); // cluster-scoped
    REQUIRE(callee.calls.size() == 1);
    CHECK(callee.calls[0].webhook == webhook);
    CHECK(callee.calls[0].namespace_name == "opa");
    CHECK(callee.calls[0].service == "opa-webhook");
    CHECK(callee.calls[0].port == port);
}

TEST_CASE("§16: a clientConfig.url, a local APIService and a CRD without a conversion webhook "
          "call no Service",
          "[decode][apiserver]") {
    json url = webhook_configuration("ext", "opa", "opa-webhook");
    url["webhooks"][0]["clientConfig"] = {{"url", "https://webhook.example.com/validate"}};
    url["webhooks"].push_back(
        {{"name", "second.example.com"},
         {"clientConfig", {{"service", {{"namespace", "a"}, {"name", "b"}}}}}});
    const auto with_url = decoded_as<model::ApiServerCallee>(decode(url));
    REQUIRE(with_url.calls.size() == 1); // the url webhook is left out, the other one stays
    CHECK(with_url.calls[0].webhook == "second.example.com");

    json local = api_service("v1.apps", "x", "y");
    local["spec"].erase("service");
    CHECK(decoded_as<model::ApiServerCallee>(decode(local)).calls.empty());

    json none = crd_with_conversion("widgets.example.com", "opa", "opa-webhook");
    none["spec"]["conversion"] = {{"strategy", "None"}};
    CHECK(decoded_as<model::ApiServerCallee>(decode(none)).calls.empty());

    json empty = webhook_configuration("empty", "a", "b");
    empty.erase("webhooks");
    CHECK(decoded_as<model::ApiServerCallee>(decode(empty)).calls.empty());

    // Versions without a service field, and other groups, are not decoded.
    CHECK_FALSE(
        model::is_known_kind("admissionregistration.k8s.io/v1alpha1", "ValidatingAdmissionPolicy"));
    CHECK_FALSE(model::is_known_kind("apiextensions.k8s.io/v1", "APIService"));
}

TEST_CASE("§16: a malformed webhook configuration, APIService or CRD is a decode error naming "
          "the field",
          "[decode][apiserver]") {
    auto with = [](json object, const json::json_pointer& at, const json& value) {
        object[at] = value;
        return object;
    };
    const json vwc = webhook_configuration("opa", "opa", "opa-webhook");
    const json api = api_service("v1beta1.metrics.k8s.io", "opa", "opa-webhook");
    const json crd = crd_with_conversion("widgets.example.com", "opa", "opa-webhook");
    auto [object, field] = GENERATE_COPY(table<json, std::string>({
        {with(vwc, "/webhooks"_json_pointer, "x"), "webhooks: expected a list"},
        {with(vwc, "/webhooks/0"_json_pointer, 3), "webhooks[0]: expected an object"},
        {with(vwc, "/webhooks/0/name"_json_pointer, ""), "webhooks[0].name: missing"},
        {with(vwc, "/webhooks/0/clientConfig"_json_pointer, nullptr),
         "webhooks[0].clientConfig: missing"},
        {with(vwc, "/webhooks/0/clientConfig"_json_pointer, json::object()),
         "webhooks[0].clientConfig: needs service or url"},
        {with(vwc, "/webhooks/0/clientConfig/service/port"_json_pointer, 70000),
         "webhooks[0].clientConfig.service.port: port 70000 is outside"},
        {with(vwc, "/webhooks/0/clientConfig/service/port"_json_pointer, "https"),
         "webhooks[0].clientConfig.service.port: expected a port number"},
        {with(vwc, "/webhooks/0/clientConfig/service/namespace"_json_pointer, ""),
         "webhooks[0].clientConfig.service.namespace: missing"},
        {with(vwc, "/webhooks/0/clientConfig/service/name"_json_pointer, 7),
         "webhooks[0].clientConfig.service.name: expected a string"},
        {with(api, "/spec/service"_json_pointer, "svc"), "spec.service: expected an object"},
        {with(api, "/spec/service/name"_json_pointer, ""), "spec.service.name: missing"},
        {with(api, "/spec/service/port"_json_pointer, 0), "spec.service.port: port 0 is outside"},
        {with(crd, "/spec/conversion/webhook/clientConfig/service/namespace"_json_pointer, ""),
         "spec.conversion.webhook.clientConfig.service.namespace: missing"},
        {with(crd, "/spec/conversion/webhook"_json_pointer, json::object()),
         "spec.conversion.webhook.clientConfig: missing"},
    }));
    const auto outcome = decode(object);
    INFO(outcome.error);
    CHECK(outcome.status == Status::Error);
    CHECK_THAT(outcome.error, Catch::StartsWith(field));
}
