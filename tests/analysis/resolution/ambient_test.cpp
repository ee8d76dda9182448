// Tests resolution/ambient: ambient ports (§11), ztunnel, waypoint and sidecar clients (§12).
#include "analysis/resolution/ambient.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;

namespace {

// bank/ledger is a captured pod (the CNI's annotation) behind Service ledger (80 -> 8080);
// front/ui a sidecar client, mall/shopper an ambient client, legacy/batch a client without proxy.
std::vector<json> mesh(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        kube_namespace("bank").label("istio.io/dataplane-mode", "ambient"),
        pod("bank", "ledger")
            .labels({{"app", "ledger"}})
            .pod_annotation("ambient.istio.io/redirection", "enabled")
            .container_port(8080),
        service("bank", "ledger").selecting({{"app", "ledger"}}).port(80, 8080, "http"),
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        pod("mall", "shopper")
            .labels({{"app", "shopper"}})
            .pod_annotation("ambient.istio.io/redirection", "enabled"),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

const std::string ledger = "ledger.bank.svc.cluster.local";

model::Settings version(const std::string& text) {
    model::Settings settings;
    settings.version = *model::parse_istio_version(text);
    return settings;
}

std::string ambient_mode(const std::vector<json>& objects, std::uint16_t port = 8080,
                         const std::string& istio = "current") {
    const auto snapshot = snapshot_of(mesh(objects), version(istio));
    const resolution::ConfigView view(*snapshot);
    const auto& w = workload_named(*snapshot, "bank", "ledger");
    REQUIRE(w.dataplane == model::Dataplane::Ambient);
    return std::string(
        resolution::to_string(resolution::ambient_server_mode(view, w, port).accept));
}

// "client server verdict" of the row for one client namespace of a dataplane kind.
std::string flow(const std::vector<MatrixRow>& rows, const std::string& client_ns,
                 const std::string& dataplane, const std::string& host,
                 const std::string& workload) {
    for (const auto& r : rows)
        if (r.client_namespace == client_ns && r.client_dataplane == dataplane && r.host == host &&
            r.workload_name == workload && r.subset.empty())
            return r.client + " " + r.server + " " + r.verdict +
                   (r.via_name.empty() ? "" : " via " + r.via_namespace + "/" + r.via_name);
    return "no row";
}

json bank_policy(const std::string& mode) {
    return peer_authentication("bank", "default").mode(mode);
}

} // namespace

TEST_CASE("§11: an ambient port is AMBIENT_STRICT or AMBIENT_OPEN from the policy chain",
          "[ambient][server]") {
    auto [context, objects, want] = GENERATE(table<std::string, std::vector<json>, std::string>({
        {"no policy at all", {}, "AMBIENT_OPEN"},
        {"mesh STRICT",
         {peer_authentication("istio-system", "default").strict()},
         "AMBIENT_STRICT"},
        {"namespace STRICT", {bank_policy("STRICT")}, "AMBIENT_STRICT"},
        {"namespace PERMISSIVE over mesh STRICT",
         {peer_authentication("istio-system", "default").strict(), bank_policy("PERMISSIVE")},
         "AMBIENT_OPEN"},
        {"namespace UNSET inherits mesh STRICT",
         {peer_authentication("istio-system", "default").strict(), bank_policy("UNSET")},
         "AMBIENT_STRICT"},
        // DISABLE is not supported in ambient: it means "not STRICT".
        {"namespace DISABLE", {bank_policy("DISABLE")}, "AMBIENT_OPEN"},
        {"workload STRICT under a PERMISSIVE namespace",
         {bank_policy("PERMISSIVE"),
          peer_authentication("bank", "ledger").selecting({{"app", "ledger"}}).strict()},
         "AMBIENT_STRICT"},
        {"workload DISABLE under a STRICT namespace",
         {bank_policy("STRICT"),
          peer_authentication("bank", "ledger").selecting({{"app", "ledger"}}).disable()},
         "AMBIENT_OPEN"},
        {"a selector policy in the root namespace applies to nothing",
         {peer_authentication("istio-system", "ledger").selecting({{"app", "ledger"}}).strict()},
         "AMBIENT_OPEN"},
    }));
    INFO(context);
    CHECK(ambient_mode(objects) == want);
}

TEST_CASE("§11 (ambient-notes §2.3): port-level entries merge as istiod builds ztunnel's policies",
          "[ambient][server][port-level]") {
    auto [context, objects, port, istio,
          want] = GENERATE(table<std::string, std::vector<json>, int, std::string, std::string>({
        {"STRICT workload, PERMISSIVE port",
         {peer_authentication("bank", "w")
              .selecting({{"app", "ledger"}})
              .strict()
              .port(8080, "PERMISSIVE")},
         8080,
         "current",
         "AMBIENT_OPEN"},
        {"STRICT workload, DISABLE port",
         {peer_authentication("bank", "w")
              .selecting({{"app", "ledger"}})
              .strict()
              .port(8080, "DISABLE")},
         8080,
         "current",
         "AMBIENT_OPEN"},
        {"STRICT workload, another port",
         {peer_authentication("bank", "w")
              .selecting({{"app", "ledger"}})
              .strict()
              .port(9090, "PERMISSIVE")},
         8080,
         "current",
         "AMBIENT_STRICT"},
        {"PERMISSIVE workload, STRICT port",
         {peer_authentication("bank", "w")
              .selecting({{"app", "ledger"}})
              .permissive()
              .port(8080, "STRICT")},
         8080,
         "current",
         "AMBIENT_STRICT"},
        {"UNSET workload under STRICT namespace, PERMISSIVE port",
         {bank_policy("STRICT"),
          peer_authentication("bank", "w").selecting({{"app", "ledger"}}).port(8080, "PERMISSIVE")},
         8080,
         "current",
         "AMBIENT_OPEN"},
        // Only a PERMISSIVE entry builds the merged policy; DISABLE entries alone are ignored.
        {"UNSET workload under STRICT namespace, only a DISABLE port",
         {bank_policy("STRICT"),
          peer_authentication("bank", "w").selecting({{"app", "ledger"}}).port(8080, "DISABLE")},
         8080,
         "current",
         "AMBIENT_STRICT"},
        {"UNSET workload under STRICT namespace, DISABLE port beside a PERMISSIVE one",
         {bank_policy("STRICT"), peer_authentication("bank", "w")
                                     .selecting({{"app", "ledger"}})
                                     .port(8080, "DISABLE")
                                     .port(9090, "PERMISSIVE")},
         8080,
         "current",
         "AMBIENT_OPEN"},
        // Before #54073 (1.24.3 / 1.25.0) the static STRICT policy was attached too, and won.
        {"UNSET workload under STRICT namespace, PERMISSIVE port, 1.24.2",
         {bank_policy("STRICT"),
          peer_authentication("bank", "w").selecting({{"app", "ledger"}}).port(8080, "PERMISSIVE")},
         8080,
         "1.24.2",
         "AMBIENT_STRICT"},
        {"UNSET workload under STRICT namespace, PERMISSIVE port, 1.24.3",
         {bank_policy("STRICT"),
          peer_authentication("bank", "w").selecting({{"app", "ledger"}}).port(8080, "PERMISSIVE")},
         8080,
         "1.24.3",
         "AMBIENT_OPEN"},
        {"UNSET workload under PERMISSIVE namespace, STRICT port",
         {bank_policy("PERMISSIVE"),
          peer_authentication("bank", "w").selecting({{"app", "ledger"}}).port(8080, "STRICT")},
         8080,
         "current",
         "AMBIENT_STRICT"},
    }));
    INFO(context);
    CHECK(ambient_mode(objects, static_cast<std::uint16_t>(port), istio) == want);
}

TEST_CASE("§11: the bypass annotation opens a STRICT ambient port to plaintext, and says so",
          "[ambient][server][bypass]") {
    auto objects = mesh({bank_policy("STRICT")});
    objects[1] = pod("bank", "ledger")
                     .labels({{"app", "ledger"}})
                     .pod_annotation("ambient.istio.io/redirection", "enabled")
                     .pod_annotation("ambient.istio.io/bypass-inbound-capture", "true")
                     .container_port(8080);
    const auto snapshot = snapshot_of(objects);
    const resolution::ConfigView view(*snapshot);
    const auto mode =
        resolution::ambient_server_mode(view, workload_named(*snapshot, "bank", "ledger"), 8080);
    CHECK(mode.accept == resolution::ServerAccept::AmbientOpen);
    CHECK(mode.bypassed);
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG210") ==
          std::vector<std::string>{"PeerAuthentication default.bank"});
    CHECK(reported_on(findings, "MTG203").empty());
    CHECK(flow(matrix_rows(*snapshot), "legacy", "none", ledger, "ledger") ==
          "PLAINTEXT AMBIENT_OPEN PLAINTEXT");
}

TEST_CASE("§11: a DISABLE policy on ambient workloads is an info finding (MTG213)",
          "[ambient][server][disable]") {
    const auto findings = findings_of(*snapshot_of(mesh({bank_policy("DISABLE")})));
    CHECK(reported_on(findings, "MTG213") ==
          std::vector<std::string>{"PeerAuthentication default.bank"});
    CHECK(with_code(findings, "MTG213").front().severity == conflict::Severity::Info);
}

TEST_CASE("§12: clients without a proxy are reset by a STRICT ambient port (MTG203, a warning)",
          "[ambient][client][non-mesh]") {
    const auto snapshot = snapshot_of(mesh({bank_policy("STRICT")}));
    CHECK(flow(matrix_rows(*snapshot), "legacy", "none", ledger, "ledger") ==
          "PLAINTEXT AMBIENT_STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG203") ==
          std::vector<std::string>{"PeerAuthentication default.bank"});
    CHECK(with_code(findings, "MTG203").front().severity == conflict::Severity::Warning);
}

TEST_CASE("§12: ztunnel sends HBONE to what takes it and the app's bytes to the rest, whatever "
          "the DestinationRules say",
          "[ambient][client][ztunnel]") {
    const auto snapshot = snapshot_of(mesh({
        bank_policy("STRICT"),
        // ztunnel ignores DestinationRules, in its own namespace or anywhere.
        destination_rule("mall", "everything-off", "*.local").tls("DISABLE"),
        destination_rule("shop", "everything-mtls", "*.local").tls("ISTIO_MUTUAL"),
        deployment("shop", "old").labels({{"app", "old"}}).with_sidecar().container_port(8080),
        deployment("shop", "new")
            .labels({{"app", "new"}, {"networking.istio.io/tunnel", "http"}})
            .with_sidecar()
            .container_port(8080),
        deployment("shop", "lax").labels({{"app", "lax"}}).with_sidecar().container_port(8080),
        deployment("shop", "bare").labels({{"app", "bare"}}).container_port(8080),
        service("shop", "old").selecting({{"app", "old"}}).port(80, 8080),
        service("shop", "new").selecting({{"app", "new"}}).port(80, 8080),
        service("shop", "lax").selecting({{"app", "lax"}}).port(80, 8080),
        service("shop", "bare").selecting({{"app", "bare"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
        peer_authentication("shop", "lax").selecting({{"app", "lax"}}).permissive(),
    }));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow(rows, "mall", "ambient", ledger, "ledger") == "HBONE AMBIENT_STRICT MTLS");
    CHECK(flow(rows, "mall", "ambient", fqdn("new", "shop"), "new") == "HBONE STRICT MTLS");
    CHECK(flow(rows, "mall", "ambient", fqdn("old", "shop"), "old") == "PLAINTEXT STRICT FAIL");
    CHECK(flow(rows, "mall", "ambient", fqdn("lax", "shop"), "lax") ==
          "PLAINTEXT PERMISSIVE PLAINTEXT");
    CHECK(flow(rows, "mall", "ambient", fqdn("bare", "shop"), "bare") ==
          "PLAINTEXT NO_SIDECAR PLAINTEXT");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG105") ==
          std::vector<std::string>{"PeerAuthentication default.shop"});
    for (const auto& f : with_code(findings, "MTG105"))
        CHECK(f.flow->client_namespaces == std::vector<std::string>{"bank", "mall"});
}

TEST_CASE("§12 (ambient-notes §4.2): what a sidecar client sends to a captured pod",
          "[ambient][client][sidecar]") {
    auto [context, rule, istio, want,
          code] = GENERATE(table<std::string, std::string, std::string, std::string, std::string>({
        {"auto mTLS", "", "current", "HBONE AMBIENT_STRICT MTLS", ""},
        {"DR DISABLE", "DISABLE", "current", "HBONE AMBIENT_STRICT MTLS", ""},
        {"DR ISTIO_MUTUAL, 1.25.1+", "ISTIO_MUTUAL", "current", "HBONE AMBIENT_STRICT MTLS", ""},
        {"DR ISTIO_MUTUAL, 1.25 (newest patch)", "ISTIO_MUTUAL", "1.25",
         "HBONE AMBIENT_STRICT MTLS", ""},
        {"DR ISTIO_MUTUAL, 1.25.0", "ISTIO_MUTUAL", "1.25.0", "ISTIO_MUTUAL AMBIENT_STRICT FAIL",
         "MTG106"},
        {"DR ISTIO_MUTUAL, 1.24 (never fixed)", "ISTIO_MUTUAL", "1.24",
         "ISTIO_MUTUAL AMBIENT_STRICT FAIL", "MTG106"},
        {"DR SIMPLE travels inside HBONE", "SIMPLE", "current", "HBONE AMBIENT_STRICT DEPENDS",
         "MTG202"},
        // Before 1.22 sidecars do not send HBONE: auto mTLS sees a pod without a sidecar.
        {"auto mTLS, 1.21", "", "1.21", "PLAINTEXT AMBIENT_STRICT FAIL", "MTG106"},
    }));
    INFO(context);
    std::vector<json> objects{bank_policy("STRICT")};
    if (!rule.empty())
        objects.push_back(destination_rule("front", "ledger", ledger).tls(rule));
    const auto snapshot = snapshot_of(mesh(objects), version(istio));
    CHECK(flow(matrix_rows(*snapshot), "front", "sidecar", ledger, "ledger") == want);
    const auto codes = codes_of(findings_of(*snapshot));
    CHECK(std::find(codes.begin(), codes.end(), "MTG103") == codes.end());
    CHECK(std::find(codes.begin(), codes.end(), "MTG101") == codes.end());
    if (!code.empty())
        CHECK(std::find(codes.begin(), codes.end(), code) != codes.end());
    else
        CHECK(std::find(codes.begin(), codes.end(), "MTG106") == codes.end());
}

TEST_CASE("§12 (ambient-notes §4.2): sidecars never tunnel to headless or PASSTHROUGH services",
          "[ambient][client][sidecar][headless]") {
    auto [context, headless, rule, mode, want] =
        GENERATE(table<std::string, bool, std::string, std::string, std::string>({
            {"headless, auto mTLS, STRICT", true, "", "STRICT", "PLAINTEXT AMBIENT_STRICT FAIL"},
            {"headless, auto mTLS, PERMISSIVE", true, "", "PERMISSIVE",
             "PLAINTEXT AMBIENT_OPEN PLAINTEXT"},
            {"headless, DR ISTIO_MUTUAL, PERMISSIVE", true, "ISTIO_MUTUAL", "PERMISSIVE",
             "ISTIO_MUTUAL AMBIENT_OPEN FAIL"},
            {"headless, DR DISABLE, STRICT", true, "DISABLE", "STRICT",
             "PLAINTEXT AMBIENT_STRICT FAIL"},
            {"PASSTHROUGH rule, STRICT", false, "PASSTHROUGH", "STRICT",
             "PLAINTEXT AMBIENT_STRICT FAIL"},
        }));
    INFO(context);
    auto objects = mesh({bank_policy(mode)});
    auto svc = service("bank", "ledger").selecting({{"app", "ledger"}}).port(80, 8080, "http");
    json svc_json = svc;
    if (headless)
        svc_json["spec"]["clusterIP"] = "None";
    objects[2] = svc_json;
    if (rule == "PASSTHROUGH")
        objects.push_back(destination_rule("front", "ledger", ledger).passthrough());
    else if (!rule.empty())
        objects.push_back(destination_rule("front", "ledger", ledger).tls(rule));
    const auto snapshot = snapshot_of(objects);
    CHECK(flow(matrix_rows(*snapshot), "front", "sidecar", ledger, "ledger") == want);
    if (want.ends_with("FAIL"))
        CHECK_FALSE(with_code(findings_of(*snapshot), "MTG106").empty());
}

TEST_CASE("§12: a waypoint applies the DestinationRule of its own namespace, originating only "
          "SIMPLE and MUTUAL",
          "[ambient][client][waypoint]") {
    auto [context, rule_ns, mode, want] =
        GENERATE(table<std::string, std::string, std::string, std::string>({
            {"no rule", "", "", "HBONE AMBIENT_STRICT MTLS via bank/waypoint"},
            {"SIMPLE in the waypoint's namespace", "bank", "SIMPLE",
             "HBONE AMBIENT_STRICT DEPENDS via bank/waypoint"},
            {"ISTIO_MUTUAL in the waypoint's namespace is ignored", "bank", "ISTIO_MUTUAL",
             "HBONE AMBIENT_STRICT MTLS via bank/waypoint"},
            {"DISABLE in the waypoint's namespace is ignored", "bank", "DISABLE",
             "HBONE AMBIENT_STRICT MTLS via bank/waypoint"},
            {"SIMPLE in the client's namespace is not the waypoint's", "mall", "SIMPLE",
             "HBONE AMBIENT_STRICT MTLS via bank/waypoint"},
        }));
    INFO(context);
    std::vector<json> objects{bank_policy("STRICT")};
    auto objects_all = mesh(objects);
    json svc = service("bank", "ledger").selecting({{"app", "ledger"}}).port(80, 8080, "http");
    svc["metadata"]["labels"]["istio.io/use-waypoint"] = "waypoint";
    objects_all[2] = svc;
    objects_all.push_back(pod("bank", "waypoint-7d9f")
                              .labels({{"gateway.istio.io/managed", "istio.io-mesh-controller"},
                                       {"gateway.networking.k8s.io/gateway-name", "waypoint"}})
                              .with_proxy_container());
    if (!rule_ns.empty())
        objects_all.push_back(
            destination_rule(rule_ns, "ledger", "ledger.bank.svc.cluster.local").tls(mode));
    const auto snapshot = snapshot_of(objects_all);
    CHECK(flow(matrix_rows(*snapshot), "mall", "ambient", ledger, "ledger") == want);
    // Sidecar clients do not go through the destination's waypoint.
    CHECK(flow(matrix_rows(*snapshot), "front", "sidecar", ledger, "ledger").find("via") ==
          std::string::npos);
}

TEST_CASE("§12: without a waypoint of the Service's, ambient clients go through the one the "
          "destination workload's own istio.io/use-waypoint label names",
          "[ambient][client][waypoint]") {
    auto [labels, want] = GENERATE(table<LabelMap, std::string>({
        {{{"app", "ledger"}}, "HBONE AMBIENT_STRICT MTLS"},
        {{{"app", "ledger"}, {"istio.io/use-waypoint", "own"}},
         "HBONE AMBIENT_STRICT MTLS via bank/own"},
        {{{"app", "ledger"},
          {"istio.io/use-waypoint", "own"},
          {"istio.io/use-waypoint-namespace", "gw"}},
         "HBONE AMBIENT_STRICT MTLS via gw/own"},
        {{{"app", "ledger"}, {"istio.io/use-waypoint", "none"}}, "HBONE AMBIENT_STRICT MTLS"},
    }));
    auto objects = mesh({bank_policy("STRICT")});
    objects[1] = pod("bank", "ledger")
                     .labels(labels)
                     .pod_annotation("ambient.istio.io/redirection", "enabled")
                     .container_port(8080);
    const auto snapshot = snapshot_of(objects);
    CHECK(flow(matrix_rows(*snapshot), "mall", "ambient", ledger, "ledger") == want);
}

TEST_CASE("§12: a waypoint sends plaintext to a STRICT sidecar that cannot take HBONE (MTG105), "
          "and HBONE to one labelled for it from 1.23",
          "[ambient][client][waypoint]") {
    auto [tunnel, istio, want] = GENERATE(table<bool, std::string, std::string>({
        {false, "current", "PLAINTEXT STRICT FAIL via shop/waypoint"},
        {true, "current", "HBONE STRICT MTLS via shop/waypoint"},
        {true, "1.23", "HBONE STRICT MTLS via shop/waypoint"},
        {true, "1.22", "PLAINTEXT STRICT FAIL via shop/waypoint"},
    }));
    INFO((tunnel ? "tunnel label, " : "no tunnel label, ") << istio);
    LabelMap labels{{"app", "web"}};
    if (tunnel)
        labels["networking.istio.io/tunnel"] = "http";
    auto objects = mesh({
        kube_namespace("shop").label("istio.io/use-waypoint", "waypoint"),
        deployment("shop", "web").labels(labels).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
        pod("shop", "waypoint-5c8d")
            .labels({{"gateway.istio.io/managed", "istio.io-mesh-controller"}})
            .with_proxy_container(),
    });
    const auto snapshot = snapshot_of(objects, version(istio));
    CHECK(flow(matrix_rows(*snapshot), "mall", "ambient", fqdn("web", "shop"), "web") == want);
    const bool fails = want.find("FAIL") != std::string::npos;
    CHECK(with_code(findings_of(*snapshot), "MTG105").empty() == !fails);
}

TEST_CASE("§10: a failure that rests on a predicted capture is a warning, and says so",
          "[ambient][predicted]") {
    auto objects = mesh(
        {bank_policy("STRICT"), destination_rule("front", "ledger", ledger).tls("ISTIO_MUTUAL")});
    // A template in an ambient namespace: predicted, not annotated by the CNI.
    objects[1] = deployment("bank", "ledger").labels({{"app", "ledger"}}).container_port(8080);
    const auto snapshot = snapshot_of(objects, version("1.24"));
    const auto& w = workload_named(*snapshot, "bank", "ledger");
    REQUIRE(w.dataplane == model::Dataplane::Ambient);
    REQUIRE(w.ambient_predicted);
    const auto findings = with_code(findings_of(*snapshot), "MTG106");
    REQUIRE_FALSE(findings.empty());
    for (const auto& f : findings) {
        CHECK(f.severity == conflict::Severity::Warning);
        CHECK(f.message.find("predicted") != std::string::npos);
        CHECK(f.flow->workload_dataplane == "ambient-predicted");
    }
}

TEST_CASE("§10: a failure that rests on predicted ambient clients is a warning too",
          "[ambient][predicted][client]") {
    // mall's shopper is a template in an ambient namespace: predicted, not annotated.
    auto objects = mesh({
        kube_namespace("mall").label("istio.io/dataplane-mode", "ambient"),
        deployment("shop", "old").labels({{"app", "old"}}).with_sidecar().container_port(8080),
        service("shop", "old").selecting({{"app", "old"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
    });
    objects[4] = deployment("mall", "shopper").labels({{"app", "shopper"}});
    const auto snapshot = snapshot_of(objects);
    CHECK(names_of(*snapshot, snapshot->predicted_ambient_client_namespaces()) ==
          std::vector<std::string>{"mall"});
    CHECK(names_of(*snapshot, snapshot->captured_client_namespaces()) ==
          std::vector<std::string>{"bank"});
    const auto findings = with_code(findings_of(*snapshot), "MTG105");
    REQUIRE(findings.size() == 2);
    for (const auto& f : findings) {
        const bool predicted = f.flow->client_namespaces == std::vector<std::string>{"mall"};
        CHECK(f.severity == (predicted ? conflict::Severity::Warning : conflict::Severity::Error));
        CHECK((f.message.find("predicted") != std::string::npos) == predicted);
    }
}
