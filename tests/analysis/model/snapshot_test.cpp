// Tests model/snapshot: mesh settings, workloads, endpoints, clients (§8), DR indexes (§4).
#include "analysis/model/snapshot.hpp"
#include "tests/analysis/support/builders.hpp"

#include <algorithm>
#include <tuple>

using namespace mtlsguard;
using namespace mtlsguard::test;

namespace {

const std::vector<model::ConsolidatedRule>* entries(const model::DrIndex& index,
                                                    const std::string& key) {
    const auto& map = key.find('*') != std::string::npos ? index.wildcard : index.specific;
    auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
}

std::vector<std::string> member_names(const model::ConsolidatedRule& rule) {
    std::vector<std::string> out;
    for (const auto* dr : rule.members)
        out.push_back(dr->ref.name);
    return out;
}

std::vector<std::string> subset_names(const model::ConsolidatedRule& rule) {
    std::vector<std::string> out;
    for (const auto* s : rule.subsets)
        out.push_back(s->name);
    return out;
}

} // namespace

TEST_CASE("Mesh settings default per Istio version", "[snapshot][mesh]") {
    auto [version, auto_mtls] = GENERATE(table<model::IstioVersion, bool>({
        {model::IstioVersion::current(), true},
        {model::IstioVersion{5}, false},
        {model::IstioVersion{4}, false},
    }));
    const auto snapshot = snapshot_of({}, settings_for(version));
    CHECK(snapshot->mesh().auto_mtls == auto_mtls);
    CHECK(snapshot->mesh().root_namespace == "istio-system");
    CHECK(snapshot->mesh().default_dr_export_to == std::vector<std::string>{"*"});
    CHECK_FALSE(snapshot->mesh_config_seen());
}

TEST_CASE("The istio ConfigMap overrides the version defaults", "[snapshot][mesh]") {
    SECTION("auto mTLS turned off on current Istio") {
        const auto snapshot = snapshot_of({auto_mtls(false)});
        CHECK_FALSE(snapshot->mesh().auto_mtls);
        CHECK(snapshot->mesh_config_seen());
    }
    SECTION("auto mTLS turned on in 1.5 (global.mtls.auto=true)") {
        const auto snapshot = snapshot_of({auto_mtls(true)}, settings_for(model::IstioVersion{5}));
        CHECK(snapshot->mesh().auto_mtls);
    }
    SECTION("root namespace and default exportTo") {
        const auto snapshot = snapshot_of(
            {istio_config_map({{"rootNamespace", "istio-config"},
                               {"defaultDestinationRuleExportTo", json::array({"."})}})});
        CHECK(snapshot->mesh().root_namespace == "istio-config");
        CHECK(snapshot->mesh().default_dr_export_to == std::vector<std::string>{"."});
        CHECK(snapshot->mesh().auto_mtls); // untouched
    }
}

TEST_CASE("An explicit mesh config (--mesh-config) beats the istio ConfigMap", "[snapshot][mesh]") {
    model::Settings settings;
    model::MeshConfig override_config;
    override_config.enable_auto_mtls = true;
    override_config.root_namespace = "mesh-root";
    settings.mesh_override = override_config;
    const auto snapshot = snapshot_of(
        {istio_config_map({{"enableAutoMtls", false}, {"rootNamespace", "istio-config"}})},
        settings);
    CHECK(snapshot->mesh().auto_mtls);
    CHECK(snapshot->mesh().root_namespace == "mesh-root");
    CHECK(snapshot->mesh_config_seen());

    SECTION("also when set on the builder after the ConfigMap was added") {
        model::SnapshotBuilder builder;
        REQUIRE_FALSE(builder.add(auto_mtls(false)));
        model::MeshConfig on;
        on.enable_auto_mtls = true;
        builder.set_mesh_override(on);
        CHECK(builder.build()->mesh().auto_mtls);
    }
}

TEST_CASE("A ConfigMap named istio outside the Istio namespace is not the mesh config (§1)",
          "[snapshot][mesh]") {
    const auto snapshot = snapshot_of(
        {istio_config_map({{"enableAutoMtls", false}, {"rootNamespace", "shop"}}, "shop")});
    CHECK(snapshot->mesh().auto_mtls);
    CHECK(snapshot->mesh().root_namespace == "istio-system");
}

TEST_CASE("Pods of one controller aggregate into one workload named after the controller",
          "[snapshot][workloads]") {
    const auto snapshot = snapshot_of({
        pod("shop", "web-5d8f7c9b4-aaaaa")
            .owned_by("ReplicaSet", "web-5d8f7c9b4")
            .labels({{"app", "web"}, {"pod-template-hash", "5d8f7c9b4"}})
            .with_sidecar()
            .container_port(8080, "http"),
        pod("shop", "web-7c6b5a4d3-bbbbb")
            .owned_by("ReplicaSet", "web-7c6b5a4d3")
            .labels({{"app", "web"}, {"pod-template-hash", "7c6b5a4d3"}})
            .with_sidecar()
            .container_port(8080, "http"),
        pod("shop", "db-0").owned_by("StatefulSet", "db").labels({{"app", "db"}}),
    });
    REQUIRE(snapshot->workloads().size() == 2);
    const auto& web = workload_named(*snapshot, "shop", "web");
    CHECK(web.kind == "Deployment");
    CHECK(web.pods == 2);
    CHECK(web.sidecar);
    CHECK(web.labels == labels_of({{"app", "web"}, {"security.istio.io/tlsMode", "istio"}}));
    REQUIRE(web.ports.size() == 1);
    CHECK(web.ports[0].number == 8080);
    const auto& db = workload_named(*snapshot, "shop", "db");
    CHECK(db.kind == "StatefulSet");
    CHECK_FALSE(db.sidecar);
}

TEST_CASE("Running pods beat the pod template of the same controller", "[snapshot][workloads]") {
    // The manifest says no sidecar; the running pod has one: what runs is what counts.
    const auto snapshot = snapshot_of({
        deployment("shop", "web").labels({{"app", "web"}}).inject_label("false"),
        pod("shop", "web-5d8f7c9b4-aaaaa")
            .owned_by("ReplicaSet", "web-5d8f7c9b4")
            .labels({{"app", "web"}, {"pod-template-hash", "5d8f7c9b4"}})
            .with_sidecar(),
        deployment("shop", "api").labels({{"app", "api"}}).with_sidecar(),
    });
    REQUIRE(snapshot->workloads().size() == 2);
    const auto& web = workload_named(*snapshot, "shop", "web");
    CHECK(web.sidecar);
    CHECK(web.pods == 1);
    CHECK(workload_named(*snapshot, "shop", "api").sidecar);
}

TEST_CASE("A Service's endpoints are the workloads of its namespace whose labels contain its "
          "selector",
          "[snapshot][services]") {
    const auto snapshot = snapshot_of({
        deployment("shop", "web-v1").labels({{"app", "web"}, {"version", "v1"}}).with_sidecar(),
        deployment("shop", "web-v2").labels({{"app", "web"}, {"version", "v2"}}),
        deployment("shop", "api").labels({{"app", "api"}}).with_sidecar(),
        deployment("other", "web").labels({{"app", "web"}}).with_sidecar(),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        service("shop", "web-v2").selecting({{"app", "web"}, {"version", "v2"}}).port(80, 8080),
        service("shop", "external-db").port(5432, 5432),
    });
    auto endpoint_names = [&](const std::string& name) {
        std::vector<std::string> out;
        const auto& svc = service_named(*snapshot, "shop", name);
        for (auto at : svc.endpoint_positions)
            out.push_back(snapshot->workloads()[snapshot->endpoint_id(svc, at)].name);
        std::sort(out.begin(), out.end());
        return out;
    };
    CHECK(endpoint_names("web") == std::vector<std::string>{"web-v1", "web-v2"});
    CHECK(endpoint_names("web-v2") == std::vector<std::string>{"web-v2"});
    CHECK(endpoint_names("external-db").empty());
    CHECK_FALSE(service_named(*snapshot, "shop", "external-db").service.selector.has_value());
    CHECK(service_named(*snapshot, "shop", "web").host == "web.shop.svc.cluster.local");
    const auto* by_host = snapshot->services_for_host("web.shop.svc.cluster.local");
    REQUIRE(by_host != nullptr);
    CHECK(by_host->size() == 1);
}

TEST_CASE("Service hosts use the configured cluster domain", "[snapshot][services]") {
    model::Settings settings;
    settings.cluster_domain = "corp.internal";
    const auto snapshot = snapshot_of({service("shop", "web").port(80, 8080)}, settings);
    CHECK(service_named(*snapshot, "shop", "web").host == "web.shop.svc.corp.internal");
    CHECK(snapshot->resolve_host("web", "shop") == "web.shop.svc.corp.internal");
}

TEST_CASE("kube-system, kube-public and Istio control-plane Services are not analysed as servers",
          "[snapshot][services]") {
    auto [ns, label_key, label_value, analysed] =
        GENERATE(table<std::string, std::string, std::string, bool>({
            {"kube-system", "", "", false},
            {"kube-public", "", "", false},
            {"istio-system", "istio", "pilot", false},
            {"istio-system", "istio", "ingressgateway", false},
            {"istio-system", "release", "istio", false},
            {"shop", "istio", "", false},
            {"shop", "release", "stable", true},
            {"istio-system", "", "", true},
            {"shop", "", "", true},
        }));
    auto svc = service(ns, "svc").selecting({{"app", "svc"}}).port(80, 8080);
    if (!label_key.empty())
        svc.label(label_key, label_value);
    INFO(ns << " " << label_key << "=" << label_value);
    const auto snapshot = snapshot_of({svc});
    CHECK(service_named(*snapshot, ns, "svc").analysed_as_server == analysed);
}

TEST_CASE("Client namespaces are classified per §8", "[snapshot][clients]") {
    const auto snapshot = snapshot_of({
        // Runs sidecar workloads: a mesh client.
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        // Runs workloads without a sidecar: a non-mesh client.
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        // Both kinds.
        deployment("mixed", "a").labels({{"app", "a"}}).with_sidecar(),
        deployment("mixed", "b").labels({{"app", "b"}}),
        // No workloads in the input, labelled for injection: assumed to run sidecar clients.
        kube_namespace("labelled").injected(),
        kube_namespace("revisioned").label("istio.io/rev", "canary"),
        // No workloads, holding configuration: assumed sidecar clients.
        destination_rule("with-dr", "d", "web.shop.svc.cluster.local").tls("ISTIO_MUTUAL"),
        peer_authentication("with-pa", "default").strict(),
        policy("with-policy", "default").strict(),
        // No workloads, nothing that says mesh: not a client.
        service("only-service", "s").selecting({{"app", "s"}}).port(80, 80),
        kube_namespace("plain"),
        // The root namespace is not assumed from its configuration alone.
        destination_rule("istio-system", "mesh-wide", "*.local").tls("ISTIO_MUTUAL"),
        // System namespaces are not clients, with or without workloads.
        deployment("kube-system", "coredns").labels({{"k8s-app", "kube-dns"}}),
    });
    CHECK(names_of(*snapshot, snapshot->mesh_client_namespaces()) ==
          std::vector<std::string>{"front", "labelled", "mixed", "revisioned", "with-dr", "with-pa",
                                   "with-policy"});
    CHECK(names_of(*snapshot, snapshot->non_mesh_client_namespaces()) ==
          std::vector<std::string>{"legacy", "mixed"});
}

TEST_CASE("The root namespace is a client namespace when gateways with a sidecar run there",
          "[snapshot][clients]") {
    const auto snapshot = snapshot_of({
        deployment("istio-system", "istio-ingressgateway")
            .labels({{"app", "istio-ingressgateway"}})
            .with_sidecar(),
        // istiod itself runs without a sidecar: it is the control plane, not a non-mesh client.
        deployment("istio-system", "istiod").labels({{"app", "istiod"}, {"istio", "pilot"}}),
    });
    CHECK(names_of(*snapshot, snapshot->mesh_client_namespaces()) ==
          std::vector<std::string>{"istio-system"});
    CHECK(snapshot->non_mesh_client_namespaces().empty());
}

TEST_CASE("A namespace injects when labelled istio-injection=enabled or istio.io/rev",
          "[snapshot][clients]") {
    const auto snapshot = snapshot_of({
        kube_namespace("a").injected(),
        kube_namespace("b").label("istio.io/rev", "1-22"),
        kube_namespace("c").label("istio-injection", "disabled"),
        kube_namespace("d"),
    });
    CHECK(snapshot->namespaces()[ns_id(*snapshot, "a")].injection);
    CHECK(snapshot->namespaces()[ns_id(*snapshot, "b")].injection);
    CHECK_FALSE(snapshot->namespaces()[ns_id(*snapshot, "c")].injection);
    CHECK_FALSE(snapshot->namespaces()[ns_id(*snapshot, "d")].injection);
    CHECK(snapshot->namespaces()[ns_id(*snapshot, "d")].declared);
}

TEST_CASE("A short DestinationRule host becomes <host>.<dr-namespace>.svc.<domain>",
          "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        destination_rule("shop", "short", "web").tls("ISTIO_MUTUAL"),
        destination_rule("shop", "qualified", "api.other.svc.cluster.local").tls("DISABLE"),
        destination_rule("shop", "dotted", "api.other").tls("DISABLE"),
        destination_rule("shop", "wild", "*.other.svc.cluster.local").tls("DISABLE"),
        destination_rule("shop", "all", "*").tls("DISABLE"),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    CHECK(entries(config.local, "web.shop.svc.cluster.local") != nullptr);
    CHECK(entries(config.local, "api.other.svc.cluster.local") != nullptr);
    CHECK(entries(config.local, "api.other") != nullptr); // names with a dot stay as written
    CHECK(entries(config.local, "*.other.svc.cluster.local") != nullptr);
    CHECK(entries(config.local, "*") != nullptr);
    CHECK(config.local.specific.size() == 3);
    CHECK(config.local.wildcard.size() == 2);
    CHECK(snapshot->resolve_host("web", "shop") == "web.shop.svc.cluster.local");
    CHECK(snapshot->resolve_host("*.local", "shop") == "*.local");
}

TEST_CASE("exportTo decides which indexes hold a DestinationRule", "[snapshot][dr-index]") {
    // local: what clients in the namespace see first; exported: what others may see.
    auto [export_to, mesh_default, resolved, in_local, in_exported] =
        GENERATE(table<std::vector<std::string>, std::vector<std::string>, std::vector<std::string>,
                       bool, bool>({
            {{}, {"*"}, {"*"}, true, true},
            {{}, {"."}, {"shop"}, true, false},
            {{"*"}, {"."}, {"*"}, true, true},
            {{"."}, {"*"}, {"shop"}, true, false},
            {{"shop"}, {"*"}, {"shop"}, true, false},
            {{"front"}, {"*"}, {"front"}, false, true},
            {{"front", "."}, {"*"}, {"front", "shop"}, true, true},
            {{"billing", "front"}, {"*"}, {"billing", "front"}, false, true},
        }));
    auto dr = destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL");
    if (!export_to.empty())
        dr.export_to(export_to);
    std::vector<json> objects{dr};
    if (mesh_default != std::vector<std::string>{"*"})
        objects.push_back(istio_config_map({{"defaultDestinationRuleExportTo", mesh_default}}));
    const auto snapshot = snapshot_of(objects);
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    const std::string key = "web.shop.svc.cluster.local";
    INFO("exportTo " << json(export_to).dump() << ", mesh default " << json(mesh_default).dump());
    CHECK((entries(config.local, key) != nullptr) == in_local);
    CHECK((entries(config.exported, key) != nullptr) == in_exported);
    const auto* any = entries(in_local ? config.local : config.exported, key);
    REQUIRE(any != nullptr);
    CHECK(any->front().export_to == resolved);
}

TEST_CASE("A DestinationRule with a workloadSelector is private to its namespace whatever its "
          "exportTo",
          "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        destination_rule("front", "ui-only", "web.shop.svc.cluster.local")
            .for_clients({{"app", "ui"}})
            .export_to({"*"})
            .tls("DISABLE"),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "front"));
    const auto* local = entries(config.local, "web.shop.svc.cluster.local");
    REQUIRE(local != nullptr);
    CHECK(local->front().export_to == std::vector<std::string>{"front"});
    REQUIRE(local->front().selector != nullptr);
    CHECK(*local->front().selector == labels_of({{"app", "ui"}}));
    CHECK(config.exported.empty());
}

TEST_CASE("The root namespace's local index holds only its private rules", "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        destination_rule("istio-system", "public", "*.local").tls("ISTIO_MUTUAL"),
        destination_rule("istio-system", "private", "*.svc.cluster.local")
            .tls("DISABLE")
            .export_to({"."}),
        destination_rule("shop", "public", "*.local").tls("ISTIO_MUTUAL"),
    });
    const auto& root = snapshot->config(ns_id(*snapshot, "istio-system"));
    CHECK(root.is_root);
    CHECK(entries(root.local, "*.local") == nullptr);
    CHECK(entries(root.local, "*.svc.cluster.local") != nullptr);
    CHECK(entries(root.exported, "*.local") != nullptr);
    CHECK(entries(root.exported, "*.svc.cluster.local") == nullptr);
    // Any other namespace sees its public rules locally too.
    const auto& shop = snapshot->config(ns_id(*snapshot, "shop"));
    CHECK_FALSE(shop.is_root);
    CHECK(entries(shop.local, "*.local") != nullptr);
    CHECK(entries(shop.exported, "*.local") != nullptr);
}

TEST_CASE("DestinationRules for the same host and exportTo merge: the oldest trafficPolicy wins "
          "and subsets are concatenated",
          "[snapshot][dr-index]") {
    // Added newest first: age, not input order, decides.
    const auto snapshot = snapshot_of({
        destination_rule("shop", "newer", "web")
            .tls("DISABLE")
            .subset("v2", {{"version", "v2"}})
            .subset("v1", {{"version", "one"}})
            .created(day(5)),
        destination_rule("shop", "older", "web.shop.svc.cluster.local")
            .tls("ISTIO_MUTUAL")
            .subset("v1", {{"version", "v1"}})
            .created(day(1)),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    const auto* merged = entries(config.exported, "web.shop.svc.cluster.local");
    REQUIRE(merged != nullptr);
    REQUIRE(merged->size() == 1);
    const auto& rule = merged->front();
    CHECK(member_names(rule) == std::vector<std::string>{"older", "newer"});
    REQUIRE(rule.policy_source != nullptr);
    CHECK(rule.policy_source->ref.name == "older");
    REQUIRE(rule.traffic_policy() != nullptr);
    CHECK(rule.traffic_policy()->tls == model::TlsMode::IstioMutual);
    CHECK(subset_names(rule) == std::vector<std::string>{"v1", "v2"});
    // The duplicate subset name keeps the older rule's definition.
    CHECK(rule.subsets[0]->labels == labels_of({{"version", "v1"}}));
}

TEST_CASE("Equal creation times merge in name order", "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        destination_rule("shop", "b-rule", "web").tls("DISABLE").created(day(1)),
        destination_rule("shop", "a-rule", "web").tls("ISTIO_MUTUAL").created(day(1)),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    const auto* merged = entries(config.local, "web.shop.svc.cluster.local");
    REQUIRE(merged != nullptr);
    REQUIRE(merged->size() == 1);
    CHECK(merged->front().policy_source->ref.name == "a-rule");
}

TEST_CASE("DestinationRules for the same host with different exportTo stay separate",
          "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        destination_rule("shop", "for-front", "web")
            .tls("ISTIO_MUTUAL")
            .export_to({"front"})
            .created(day(1)),
        destination_rule("shop", "for-billing", "web")
            .tls("DISABLE")
            .export_to({"billing"})
            .created(day(2)),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    const auto* both = entries(config.exported, "web.shop.svc.cluster.local");
    REQUIRE(both != nullptr);
    REQUIRE(both->size() == 2);
    CHECK(member_names((*both)[0]) == std::vector<std::string>{"for-front"});
    CHECK(member_names((*both)[1]) == std::vector<std::string>{"for-billing"});
    CHECK((*both)[0].exported_to("front"));
    CHECK_FALSE((*both)[0].exported_to("billing"));
}

TEST_CASE("Different hosts never merge, even when one is a wildcard covering the other",
          "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        destination_rule("shop", "exact", "web").tls("ISTIO_MUTUAL").created(day(1)),
        destination_rule("shop", "wild", "*.shop.svc.cluster.local").tls("DISABLE").created(day(2)),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    CHECK(member_names(entries(config.local, "web.shop.svc.cluster.local")->front()) ==
          std::vector<std::string>{"exact"});
    CHECK(member_names(entries(config.local, "*.shop.svc.cluster.local")->front()) ==
          std::vector<std::string>{"wild"});
}

TEST_CASE("Client pods that match the same selector rules form one client variant",
          "[snapshot][dr-index]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("front", "ui-canary")
            .labels({{"app", "ui"}, {"track", "canary"}})
            .with_sidecar(),
        deployment("front", "worker").labels({{"app", "worker"}}).with_sidecar(),
        destination_rule("front", "canary-only", "web.shop.svc.cluster.local")
            .for_clients({{"track", "canary"}})
            .tls("DISABLE"),
    });
    const auto& config = snapshot->config(ns_id(*snapshot, "front"));
    REQUIRE(config.variants.size() == 2);
    CHECK(config.variants[0].selector_rules.empty());
    CHECK(config.variants[0].workloads.size() == 2); // ui and worker
    REQUIRE(config.variants[1].selector_rules.size() == 1);
    CHECK(config.variants[1].selector_rules[0]->ref.name == "canary-only");
    REQUIRE(config.variants[1].workloads.size() == 1);
    // Positions in the namespace's workloads, not WorkloadIds.
    const auto& front = snapshot->namespaces()[ns_id(*snapshot, "front")];
    CHECK(snapshot->workloads()[front.workloads[config.variants[1].workloads[0]]].name ==
          "ui-canary");
}

TEST_CASE("Every namespace's configuration has its default client variant, with pods or without",
          "[snapshot][dr-index]") {
    // Admission's client keys list an outcome's namespaces without reading their configurations
    // (flow_comparison.cpp), which counts on this.
    const auto snapshot = snapshot_of({
        kube_namespace("empty"),
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        destination_rule("rules", "only", "web.shop.svc.cluster.local").tls("DISABLE"),
        peer_authentication("istio-system", "default").strict(),
    });
    REQUIRE(snapshot->namespaces().size() >= 5);
    for (model::NsId ns = 0; ns < snapshot->namespaces().size(); ++ns) {
        INFO(snapshot->config(ns).name);
        CHECK_FALSE(snapshot->config(ns).variants.empty());
    }
    const model::NsId front = ns_id(*snapshot, "front");
    for (auto timing : {model::RelabelTiming::AtOnce, model::RelabelTiming::AfterRestart}) {
        const auto relabelled = model::SnapshotBuilder::relabel_namespace(
            *snapshot, front, labels_of({{"istio-injection", "enabled"}}), timing);
        CHECK_FALSE(relabelled->config(front).variants.empty());
    }
}

TEST_CASE("Namespaces are known from every object that lives in them", "[snapshot]") {
    const auto snapshot = snapshot_of({
        peer_authentication("a", "default").strict(),
        destination_rule("b", "d", "x").tls("DISABLE"),
        service("c", "s").port(80, 80),
        deployment("d", "w"),
        mesh_policy("default").strict(),
    });
    for (const std::string name : {"a", "b", "c", "d", "istio-system"})
        CHECK(snapshot->namespace_id(name).has_value());
    CHECK(snapshot->mesh_policies().size() == 1);
    CHECK(snapshot->has_alpha_policies());
    CHECK(snapshot->object_count() == 5);
}

TEST_CASE("§10: pods of one controller in different dataplane states are different workloads",
          "[snapshot][workloads][ambient]") {
    auto replica = [](const std::string& name) {
        return pod("mesh", name)
            .owned_by("ReplicaSet", "web-5d8f")
            .labels({{"app", "web"}, {"pod-template-hash", "5d8f"}});
    };
    const auto snapshot = snapshot_of({
        kube_namespace("mesh").label("istio.io/dataplane-mode", "ambient"),
        replica("web-5d8f-a").pod_annotation("ambient.istio.io/redirection", "enabled"),
        replica("web-5d8f-b").pod_annotation("ambient.istio.io/redirection", "enabled"),
        replica("web-5d8f-c"), // not captured yet: predicted
        replica("web-5d8f-d").pod_annotation("ambient.istio.io/redirection", "pending"),
    });
    REQUIRE(snapshot->workloads().size() == 3);
    std::vector<std::tuple<bool, bool, std::uint32_t>> states; // predicted, pending, pods
    for (const auto& w : snapshot->workloads()) {
        CHECK(w.name == "web");
        CHECK(w.kind == "Deployment");
        CHECK(w.dataplane == model::Dataplane::Ambient);
        states.emplace_back(w.ambient_predicted, w.ambient_pending, w.pods);
    }
    std::sort(states.begin(), states.end());
    CHECK(states == std::vector<std::tuple<bool, bool, std::uint32_t>>{
                        {false, false, 2}, {false, true, 1}, {true, false, 1}});
}

TEST_CASE("§10: the interception annotations and tunnel label are kept on the workload",
          "[snapshot][workloads][ambient]") {
    const auto snapshot = snapshot_of({
        deployment("mesh", "web")
            .labels({{"app", "web"}, {"networking.istio.io/tunnel", "http"}})
            .with_sidecar()
            .pod_annotation("traffic.sidecar.istio.io/excludeInboundPorts", "8080,9090")
            .pod_annotation("traffic.sidecar.istio.io/includeInboundPorts", "")
            .pod_annotation("ambient.istio.io/bypass-inbound-capture", "true"),
    });
    const auto& w = workload_named(*snapshot, "mesh", "web");
    CHECK(w.sidecar);
    CHECK(w.tunnel_http);
    CHECK(w.bypass_inbound_capture);
    CHECK(w.interception.exclude_inbound_ports == std::optional<std::string>("8080,9090"));
    CHECK(w.interception.include_inbound_ports == std::optional<std::string>(""));
    CHECK_FALSE(w.interception.exclude_outbound_ports.has_value());
}

TEST_CASE("§10: client namespaces: sidecar, ambient and no proxy", "[snapshot][clients][ambient]") {
    const auto snapshot = snapshot_of({
        // Only ambient workloads: an ambient client namespace, no longer a non-mesh one.
        kube_namespace("amb").label("istio.io/dataplane-mode", "ambient"),
        deployment("amb", "a").labels({{"app", "a"}}),
        // Some ambient (by pod label), some plain: both.
        deployment("half", "a").labels({{"app", "a"}, {"istio.io/dataplane-mode", "ambient"}}),
        deployment("half", "b").labels({{"app", "b"}}),
        // A live captured pod.
        pod("live", "p").pod_annotation("ambient.istio.io/redirection", "enabled"),
        // A waypoint alone is no client.
        kube_namespace("wp").label("istio.io/dataplane-mode", "ambient"),
        deployment("wp", "waypoint")
            .labels({{"gateway.istio.io/managed", "istio.io-mesh-controller"}})
            .with_proxy_container(),
        // Sidecars.
        deployment("side", "s").labels({{"app", "s"}}).with_sidecar(),
        // System namespaces are not clients (and kube-system is never ambient).
        deployment("kube-public", "x").labels({{"istio.io/dataplane-mode", "ambient"}}),
    });
    CHECK(names_of(*snapshot, snapshot->ambient_client_namespaces()) ==
          std::vector<std::string>{"amb", "half", "live"});
    CHECK(names_of(*snapshot, snapshot->non_mesh_client_namespaces()) ==
          std::vector<std::string>{"half"});
    CHECK(names_of(*snapshot, snapshot->mesh_client_namespaces()) ==
          std::vector<std::string>{"side"});
    const auto& amb = snapshot->namespaces()[ns_id(*snapshot, "amb")];
    CHECK(amb.dataplane_mode == std::optional<std::string>("ambient"));
    CHECK(amb.has_ambient_workloads);
    CHECK_FALSE(amb.has_plain_workloads);
}

TEST_CASE("§10: a Service uses the waypoint its label names, else its namespace's",
          "[snapshot][services][ambient]") {
    auto [what, ns_labels, svc_labels, expected] =
        GENERATE(table<std::string, LabelMap, LabelMap, std::string>({
            {"namespace label", {{"istio.io/use-waypoint", "wp"}}, {}, "mesh/wp"},
            {"service label beats namespace label",
             {{"istio.io/use-waypoint", "wp"}},
             {{"istio.io/use-waypoint", "own"}},
             "mesh/own"},
            {"service label none opts out",
             {{"istio.io/use-waypoint", "wp"}},
             {{"istio.io/use-waypoint", "none"}},
             ""},
            {"waypoint in another namespace",
             {},
             {{"istio.io/use-waypoint", "wp"}, {"istio.io/use-waypoint-namespace", "gw"}},
             "gw/wp"},
            {"no label", {}, {}, ""},
        }));
    INFO(what);
    json ns = kube_namespace("mesh");
    for (const auto& [k, v] : ns_labels)
        ns["metadata"]["labels"][k] = v;
    json svc = service("mesh", "web").selecting({{"app", "web"}}).port(80, 8080);
    for (const auto& [k, v] : svc_labels)
        svc["metadata"]["labels"][k] = v;
    const auto snapshot = snapshot_of({ns, svc});
    const auto& record = service_named(*snapshot, "mesh", "web");
    const std::string got =
        record.waypoint ? record.waypoint->namespace_name + "/" + record.waypoint->name : "";
    CHECK(got == expected);
    if (record.waypoint)
        CHECK(record.waypoint->kind == "Gateway");
    const auto& ns_record = snapshot->namespaces()[ns_id(*snapshot, "mesh")];
    const bool labelled = ns_labels.count("istio.io/use-waypoint") > 0;
    CHECK(ns_record.use_waypoint.has_value() == labelled);
}

namespace {

// What the dataplane classes of a snapshot look like, for comparing two snapshots.
std::vector<std::string> dataplane_picture(const model::Snapshot& s) {
    std::vector<std::string> out;
    for (const auto& ns : s.namespaces())
        out.push_back("ns " + ns.name + " mode=" + ns.dataplane_mode.value_or("-") +
                      " waypoint=" + ns.use_waypoint.value_or("-") +
                      " both=" + std::to_string(ns.sidecar_and_ambient) +
                      " sidecar=" + std::to_string(ns.has_sidecar_workloads) +
                      " ambient=" + std::to_string(ns.has_ambient_workloads) +
                      " plain=" + std::to_string(ns.has_plain_workloads));
    for (const auto& w : s.workloads())
        out.push_back(
            "workload " + s.namespaces()[w.ns].name + "/" + w.name + " " +
            std::string(model::to_string(w.dataplane)) + " predicted=" +
            std::to_string(w.ambient_predicted) + " pending=" + std::to_string(w.ambient_pending) +
            " waypoint=" + std::to_string(w.waypoint) +
            " beats=" + std::to_string(w.sidecar_beats_ambient) +
            " pods=" + std::to_string(w.pods) + " template=" + std::to_string(w.from_template) +
            " hostNetwork=" + std::to_string(w.host_network) +
            " ownInjection=" + (w.own_injection ? std::to_string(*w.own_injection) : "-"));
    for (const auto& svc : s.services())
        out.push_back("service " + svc.host + " waypoint=" +
                      (svc.waypoint ? display_name(*svc.waypoint) : std::string("-")));
    for (const auto* list : {&s.mesh_client_namespaces(), &s.non_mesh_client_namespaces(),
                             &s.ambient_client_namespaces(), &s.captured_client_namespaces(),
                             &s.predicted_ambient_client_namespaces()})
        out.push_back("clients " + [&] {
            std::string line;
            for (auto id : *list)
                line += " " + s.namespaces()[id].name;
            return line;
        }());
    return out;
}

} // namespace

TEST_CASE("§10: an incremental update classifies dataplanes as a full build does",
          "[snapshot][ambient][incremental]") {
    // Objects by namespace; the change relabels one namespace and its pods.
    const std::vector<json> other = {
        kube_namespace("other").label("istio.io/dataplane-mode", "ambient"),
        deployment("other", "a").labels({{"app", "a"}}),
        service("other", "a").selecting({{"app", "a"}}).port(80, 80),
    };
    auto [what, before, after] =
        GENERATE_COPY(table<std::string, std::vector<json>, std::vector<json>>({
            {"a namespace enrols in ambient",
             {kube_namespace("mesh"), deployment("mesh", "w").labels({{"app", "w"}})},
             {kube_namespace("mesh").label("istio.io/dataplane-mode", "ambient"),
              deployment("mesh", "w").labels({{"app", "w"}})}},
            {"a pod is captured",
             {kube_namespace("mesh").label("istio.io/dataplane-mode", "ambient"), pod("mesh", "p")},
             {kube_namespace("mesh").label("istio.io/dataplane-mode", "ambient"),
              pod("mesh", "p").pod_annotation("ambient.istio.io/redirection", "enabled")}},
            {"a namespace gets injection too",
             {kube_namespace("mesh").label("istio.io/dataplane-mode", "ambient"),
              deployment("mesh", "w").labels({{"app", "w"}})},
             {kube_namespace("mesh").injected().label("istio.io/dataplane-mode", "ambient"),
              deployment("mesh", "w").labels({{"app", "w"}})}},
            {"a namespace starts using a waypoint",
             {kube_namespace("mesh"), service("mesh", "s").selecting({{"app", "s"}}).port(80, 80)},
             {kube_namespace("mesh").label("istio.io/use-waypoint", "wp"),
              service("mesh", "s").selecting({{"app", "s"}}).port(80, 80)}},
        }));
    INFO(what);
    // Namespace by namespace, as build_update promises to equal ("mesh" before "other").
    auto with = [&](const std::vector<json>& mesh) {
        std::vector<json> all = mesh;
        all.insert(all.end(), other.begin(), other.end());
        return all;
    };
    const auto previous = snapshot_of(with(before));
    model::SnapshotBuilder update;
    for (const auto& object : after)
        REQUIRE_FALSE(update.add(object).has_value());
    const auto updated = update.build_update(*previous, {"mesh"});
    REQUIRE(updated != nullptr);
    const auto scratch = snapshot_of(with(after));
    CHECK(dataplane_picture(*updated) == dataplane_picture(*scratch));
}

TEST_CASE("An incremental update shares the unchanged namespaces' workload and Service records "
          "and renumbers their ids",
          "[snapshot][incremental]") {
    // Namespace by namespace, as build_update promises to equal; "mesh" gains a workload, so the
    // ids of "zeta", after it, move up by one.
    const std::vector<json> alpha = {
        deployment("alpha", "a").labels({{"app", "a"}}),
        service("alpha", "a").selecting({{"app", "a"}}).port(80, 80),
    };
    const std::vector<json> mesh_before = {deployment("mesh", "m").labels({{"app", "m"}})};
    const std::vector<json> mesh_after = {deployment("mesh", "m").labels({{"app", "m"}}),
                                          deployment("mesh", "n").labels({{"app", "n"}})};
    const std::vector<json> zeta = {
        deployment("zeta", "y").labels({{"app", "y"}}),
        deployment("zeta", "z").labels({{"app", "z"}}).with_sidecar(),
        service("zeta", "z").selecting({{"app", "z"}}).port(80, 8080),
    };
    auto with = [&](const std::vector<json>& mesh) {
        std::vector<json> all = alpha;
        all.insert(all.end(), mesh.begin(), mesh.end());
        all.insert(all.end(), zeta.begin(), zeta.end());
        return all;
    };
    const auto previous = snapshot_of(with(mesh_before));
    model::SnapshotBuilder update;
    for (const auto& object : mesh_after)
        REQUIRE_FALSE(update.add(object).has_value());
    const auto updated = update.build_update(*previous, {"mesh"});
    REQUIRE(updated != nullptr);

    const auto id = [&](const model::Snapshot& s, const std::string& ns) {
        return *s.namespace_id(ns);
    };
    // The unchanged namespaces' records are the previous snapshot's own, not copies.
    for (const std::string ns : {"alpha", "zeta"}) {
        INFO(ns);
        CHECK(updated->workloads().block(id(*updated, ns)) ==
              previous->workloads().block(id(*previous, ns)));
        CHECK(updated->services().block(id(*updated, ns)) ==
              previous->services().block(id(*previous, ns)));
    }
    CHECK(updated->workloads().block(id(*updated, "mesh")) !=
          previous->workloads().block(id(*previous, "mesh")));
    // Yet every id names its workload: zeta's moved, and its Service's endpoint follows.
    CHECK(updated->namespaces()[id(*updated, "zeta")].workloads ==
          std::vector<model::WorkloadId>{3, 4});
    for (model::WorkloadId w = 0; w < updated->workloads().size(); ++w)
        CHECK(updated->workload_id(updated->workloads()[w]) == w);
    const auto& z = service_named(*updated, "zeta", "z");
    REQUIRE(z.endpoint_positions.size() == 1);
    CHECK(updated->workloads()[updated->endpoint_id(z, z.endpoint_positions[0])].name == "z");
    CHECK(dataplane_picture(*updated) == dataplane_picture(*snapshot_of(with(mesh_after))));
}

TEST_CASE("§10: a change to the istio-cni ConfigMap's namespace rebuilds everything",
          "[snapshot][ambient][incremental]") {
    const json cni = {{"apiVersion", "v1"},
                      {"kind", "ConfigMap"},
                      {"metadata", {{"name", "istio-cni-config"}, {"namespace", "istio-system"}}},
                      {"data", {{"EXCLUDE_NAMESPACES", "mesh"}}}};
    const auto previous = snapshot_of({cni, deployment("mesh", "w")});
    REQUIRE(previous->cni_config().has_value());
    model::SnapshotBuilder with_cni;
    REQUIRE_FALSE(with_cni.add(cni).has_value());
    CHECK(with_cni.build_update(*previous, {"istio-system"}) == nullptr);
    model::SnapshotBuilder without_cni; // the ConfigMap was deleted
    CHECK(without_cni.build_update(*previous, {"istio-system"}) == nullptr);
    model::SnapshotBuilder elsewhere;
    REQUIRE_FALSE(elsewhere.add(json(deployment("mesh", "w"))).has_value());
    const auto updated = elsewhere.build_update(*previous, {"mesh"});
    REQUIRE(updated != nullptr);
    CHECK(updated->cni_config().has_value());
}

TEST_CASE("§16: the objects the API server calls are cluster-wide: indexed by Service, kept by an "
          "update elsewhere, and a change to them rebuilds everything",
          "[snapshot][apiserver][incremental]") {
    const json vwc = webhook_configuration("opa-validating", "opa", "webhook");
    const json apis = api_service("v1beta1.metrics.k8s.io", "opa", "webhook", 6443);
    const auto previous = snapshot_of({vwc, apis, deployment("mesh", "w")});
    CHECK(model::object_namespace(model::DecodedObject(model::ApiServerCallee{})).empty());
    REQUIRE(previous->api_server_callees().size() == 2);
    CHECK(previous->api_server_callees()[0].ref.kind == "APIService"); // by kind, then name
    const auto* calls = previous->api_server_calls("opa", "webhook");
    REQUIRE(calls != nullptr);
    REQUIRE(calls->size() == 2);
    CHECK(previous->api_server_calls("opa", "other") == nullptr);

    model::SnapshotBuilder with_callee;
    REQUIRE_FALSE(with_callee.add(vwc).has_value());
    CHECK(with_callee.build_update(*previous, {"mesh"}) == nullptr);
    model::SnapshotBuilder elsewhere;
    REQUIRE_FALSE(elsewhere.add(json(deployment("mesh", "w"))).has_value());
    const auto updated = elsewhere.build_update(*previous, {"mesh"});
    REQUIRE(updated != nullptr);
    CHECK(updated->api_server_callees().size() == 2);
    REQUIRE(updated->api_server_calls("opa", "webhook") != nullptr);
    CHECK(updated->api_server_calls("opa", "webhook")->size() == 2);
    CHECK(updated->object_count() == previous->object_count());
}

namespace {

std::vector<std::string> virtual_service_names(const model::Snapshot& snapshot,
                                               const std::string& ns) {
    std::vector<std::string> out;
    if (auto id = snapshot.namespace_id(ns))
        for (const auto& vs : snapshot.config(*id).virtual_services)
            out.push_back(vs.ref.name);
    return out;
}

std::vector<std::string> namespace_names(const model::Snapshot& snapshot,
                                         const std::vector<model::NsId>& ids) {
    std::vector<std::string> out;
    for (model::NsId id : ids)
        out.push_back(snapshot.namespaces()[id].name);
    return out;
}

} // namespace

TEST_CASE("§15: VirtualServices are kept in their namespace's config, oldest first",
          "[snapshot][virtualservice]") {
    const auto snapshot = snapshot_of({
        virtual_service("shop", "newer", {"web"}).route("web", "v1").created(day(5)),
        virtual_service("shop", "older", {"web"}).route("web", "v2").created(day(2)),
        virtual_service("edge", "only", {"*"}).gateways({"istio-system/public"}),
    });
    CHECK(virtual_service_names(*snapshot, "shop") == std::vector<std::string>{"older", "newer"});
    REQUIRE(snapshot->namespace_id("edge").has_value());
    CHECK(virtual_service_names(*snapshot, "edge") == std::vector<std::string>{"only"});
    // A namespace holding only VirtualServices is not assumed to run clients: §8 names
    // DestinationRules and policies.
    CHECK(snapshot->mesh_client_namespaces().empty());
    CHECK(snapshot->object_count() == 3);
}

TEST_CASE("§15: an incremental update carries a namespace's changed VirtualServices",
          "[snapshot][virtualservice][incremental]") {
    const std::vector<json> other = {
        kube_namespace("other"),
        virtual_service("other", "stays", {"a"}).route("a", "v1"),
    };
    auto all = [&](const json& vs) {
        std::vector<json> objects{kube_namespace("mesh"), vs};
        objects.insert(objects.end(), other.begin(), other.end());
        return objects;
    };
    const auto previous =
        snapshot_of(all(virtual_service("mesh", "before", {"w"}).route("w", "v1")));
    model::SnapshotBuilder update;
    REQUIRE_FALSE(update.add(kube_namespace("mesh")).has_value());
    REQUIRE_FALSE(update.add(virtual_service("mesh", "after", {"w"}).route("w", "v2")).has_value());
    const auto updated = update.build_update(*previous, {"mesh"});
    REQUIRE(updated != nullptr);
    CHECK(virtual_service_names(*updated, "mesh") == std::vector<std::string>{"after"});
    CHECK(virtual_service_names(*updated, "other") == std::vector<std::string>{"stays"});
    // The namespaces holding VirtualServices, as views start from them.
    CHECK(namespace_names(*updated, updated->virtual_service_config_namespaces()) ==
          std::vector<std::string>{"mesh", "other"});
    model::SnapshotBuilder emptying;
    REQUIRE_FALSE(emptying.add(kube_namespace("mesh")).has_value());
    const auto emptied = emptying.build_update(*previous, {"mesh"});
    REQUIRE(emptied != nullptr);
    CHECK(namespace_names(*emptied, emptied->virtual_service_config_namespaces()) ==
          std::vector<std::string>{"other"});
    CHECK(
        updated->object_count() ==
        snapshot_of(all(virtual_service("mesh", "after", {"w"}).route("w", "v2")))->object_count());
}

SCENARIO("ambient.md §14: an incremental update of Sidecar resources gives what a full build "
         "gives",
         "[snapshot][sidecar][incremental]") {
    // shop/web is STRICT; front/ui and front/ui-canary are its sidecar clients.
    const std::vector<json> shop = {
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
    };
    const std::vector<json> front = {
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("front", "ui-canary")
            .labels({{"app", "ui"}, {"track", "canary"}})
            .with_sidecar(),
    };
    const json hide_all = sidecar("front", "default").egress({"./*"});
    const json hide_canary =
        sidecar("front", "canary").for_workloads({{"track", "canary"}}).egress({"./*"});
    const json root_hides = sidecar("istio-system", "default").egress({"./*"});
    auto [what, changed, before, after] =
        GENERATE_COPY(table<std::string, std::string, std::vector<json>, std::vector<json>>({
            {"a namespace gets a Sidecar", "front", {}, {hide_all}},
            {"a namespace loses its Sidecar", "front", {hide_all}, {}},
            {"a selector Sidecar is added next to the default",
             "front",
             {hide_all},
             {hide_all, hide_canary}},
            {"the root namespace gets a default Sidecar", "istio-system", {}, {root_hides}},
            {"the root namespace loses its default Sidecar", "istio-system", {root_hides}, {}},
        }));
    GIVEN(what) {
        // Namespace by namespace, as build_update promises to equal.
        auto all = [&](const std::vector<json>& sidecars) {
            std::vector<json> objects;
            auto add_namespace = [&](const std::string& ns, const std::vector<json>& others) {
                objects.insert(objects.end(), others.begin(), others.end());
                for (const auto& s : sidecars)
                    if (s["metadata"]["namespace"] == ns)
                        objects.push_back(s);
            };
            add_namespace("front", front);
            add_namespace("istio-system", {});
            add_namespace("shop", shop);
            return objects;
        };
        const auto previous = snapshot_of(all(before));
        model::SnapshotBuilder update;
        for (const auto& object : all(after))
            if (object["metadata"]["namespace"] == changed)
                REQUIRE_FALSE(update.add(object).has_value());
        const auto updated = update.build_update(*previous, {changed});
        REQUIRE(updated != nullptr);
        const auto scratch = snapshot_of(all(after));
        THEN("the matrix and the findings are the same") {
            CHECK(namespace_names(*updated, updated->sidecar_config_namespaces()) ==
                  namespace_names(*scratch, scratch->sidecar_config_namespaces()));
            CHECK(matrix_rows(*updated) == matrix_rows(*scratch));
            CHECK(codes_of(findings_of(*updated)) == codes_of(findings_of(*scratch)));
            CHECK(matrix_rows(*updated) != matrix_rows(*previous));
        }
    }
}

namespace {

// ambient.md §17: apps runs a live sidecar pod `old` (injected), a live pod `plain` without one,
// a pod `opted` that opts out of injection and Service api; tools shows ztunnel at work.
std::vector<json> relabel_cluster(const LabelMap& apps_labels) {
    auto apps = kube_namespace("apps");
    for (const auto& [k, v] : apps_labels)
        apps.label(k, v);
    return {
        json(apps),
        pod("apps", "old").labels({{"app", "old"}}).with_sidecar(),
        pod("apps", "plain").labels({{"app", "plain"}}),
        pod("apps", "opted").labels({{"app", "opted"}}).inject_label("false"),
        service("apps", "api").selecting({{"app", "plain"}}).port(80, 8080),
        kube_namespace("tools"),
        pod("tools", "probe").pod_annotation("ambient.istio.io/redirection", "enabled"),
    };
}

const model::Workload& in(const model::Snapshot& s, const std::string& name) {
    return workload_named(s, "apps", name);
}

} // namespace

TEST_CASE("ambient.md §17: enrolling a namespace in ambient captures its running pods without a "
          "sidecar at once; sidecars stay",
          "[snapshot][relabel]") {
    const auto before = snapshot_of(relabel_cluster({}));
    const auto after = model::SnapshotBuilder::relabel_namespace(
        *before, ns_id(*before, "apps"), labels_of({{"istio.io/dataplane-mode", "ambient"}}),
        model::RelabelTiming::AtOnce);
    CHECK(in(*after, "old").sidecar);
    CHECK(in(*after, "old").sidecar_beats_ambient);
    for (const std::string name : {"plain", "opted"}) {
        INFO(name);
        CHECK(in(*before, name).dataplane == model::Dataplane::None);
        CHECK(in(*after, name).dataplane == model::Dataplane::Ambient);
        CHECK_FALSE(in(*after, name).ambient_predicted); // tools shows the CNI at work
    }
    const model::NsId apps = ns_id(*after, "apps");
    CHECK(after->namespaces()[apps].has_captured_workloads);
    CHECK_FALSE(after->namespaces()[apps].has_plain_workloads);
    CHECK(std::count(after->captured_client_namespaces().begin(),
                     after->captured_client_namespaces().end(), apps) == 1);
    CHECK(std::count(before->non_mesh_client_namespaces().begin(),
                     before->non_mesh_client_namespaces().end(), apps) == 1);
    CHECK(std::count(after->non_mesh_client_namespaces().begin(),
                     after->non_mesh_client_namespaces().end(), apps) == 0);
    // Ids stay, so that flows can be matched across the two snapshots.
    CHECK(after->workloads().size() == before->workloads().size());
    CHECK(after->services().size() == before->services().size());
}

TEST_CASE("ambient.md §17: without any pod the CNI has captured, a relabel only predicts capture",
          "[snapshot][relabel]") {
    auto objects = relabel_cluster({});
    objects.pop_back(); // tools/probe
    const auto before = snapshot_of(objects);
    const auto after = model::SnapshotBuilder::relabel_namespace(
        *before, ns_id(*before, "apps"), labels_of({{"istio.io/dataplane-mode", "ambient"}}),
        model::RelabelTiming::AtOnce);
    CHECK(in(*after, "plain").dataplane == model::Dataplane::Ambient);
    CHECK(in(*after, "plain").ambient_predicted);
}

TEST_CASE("ambient.md §17: leaving ambient releases captured pods at once", "[snapshot][relabel]") {
    auto objects = relabel_cluster({{"istio.io/dataplane-mode", "ambient"}});
    objects[2] = json(pod("apps", "plain")
                          .labels({{"app", "plain"}})
                          .pod_annotation("ambient.istio.io/redirection", "enabled"));
    const auto before = snapshot_of(objects);
    REQUIRE(in(*before, "plain").dataplane == model::Dataplane::Ambient);
    for (const std::string mode : {"", "none"}) {
        INFO("dataplane-mode=" << mode);
        const auto after = model::SnapshotBuilder::relabel_namespace(
            *before, ns_id(*before, "apps"),
            mode.empty() ? model::Labels{} : labels_of({{"istio.io/dataplane-mode", mode}}),
            model::RelabelTiming::AtOnce);
        CHECK(in(*after, "plain").dataplane == model::Dataplane::None);
        CHECK_FALSE(in(*after, "old").sidecar_beats_ambient);
    }
}

TEST_CASE("ambient.md §17: injection labels act on running pods only when they restart",
          "[snapshot][relabel]") {
    const auto before = snapshot_of(relabel_cluster({}));
    const model::NsId apps = ns_id(*before, "apps");
    const auto injected = labels_of({{"istio-injection", "enabled"}});
    const auto now = model::SnapshotBuilder::relabel_namespace(*before, apps, injected,
                                                               model::RelabelTiming::AtOnce);
    CHECK_FALSE(in(*now, "plain").sidecar);
    CHECK_FALSE(now->namespaces()[apps].injection);
    const auto later = model::SnapshotBuilder::relabel_namespace(
        *before, apps, injected, model::RelabelTiming::AfterRestart);
    CHECK(in(*later, "plain").sidecar);
    CHECK_FALSE(in(*later, "opted").sidecar); // its own sidecar.istio.io/inject=false
    CHECK(in(*later, "old").sidecar);
    // Removing the label: the running sidecar stays; at restart it goes.
    const auto labelled = snapshot_of(relabel_cluster({{"istio-injection", "enabled"}}));
    const auto removed_now = model::SnapshotBuilder::relabel_namespace(
        *labelled, apps, {}, model::RelabelTiming::AtOnce);
    CHECK(in(*removed_now, "old").sidecar);
    const auto removed_later = model::SnapshotBuilder::relabel_namespace(
        *labelled, apps, {}, model::RelabelTiming::AfterRestart);
    CHECK_FALSE(in(*removed_later, "old").sidecar);
    CHECK(removed_later->config(apps).variants[0].workloads.empty());
}

TEST_CASE("ambient.md §17: istio.io/use-waypoint on the namespace switches its Services at once",
          "[snapshot][relabel]") {
    auto objects = relabel_cluster({});
    objects.push_back(service("apps", "own")
                          .selecting({{"app", "old"}})
                          .port(80, 8080)
                          .label("istio.io/use-waypoint", "none"));
    const auto before = snapshot_of(objects);
    const model::NsId apps = ns_id(*before, "apps");
    const auto after = model::SnapshotBuilder::relabel_namespace(
        *before, apps, labels_of({{"istio.io/use-waypoint", "shared"}}),
        model::RelabelTiming::AtOnce);
    const auto& api = after->services()[service_id(*after, "apps", "api")];
    REQUIRE(api.waypoint.has_value());
    CHECK(api.waypoint->name == "shared");
    CHECK(api.waypoint->namespace_name == "apps");
    CHECK_FALSE(before->services()[service_id(*before, "apps", "api")].waypoint.has_value());
    // A Service's own label beats its namespace's.
    CHECK_FALSE(after->services()[service_id(*after, "apps", "own")].waypoint.has_value());
}
