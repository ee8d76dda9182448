// Tests report/explain: the steps of a flow's decision, what decided each and what lost (spec §3-6,
// ambient.md §14).
#include "analysis/report/explain.hpp"
#include "tests/analysis/support/builders.hpp"

#include <set>

using namespace mtlsguard;
using namespace mtlsguard::test;
using report::ExplainedFlow;
using report::ExplainResult;
using report::ExplainStep;

namespace {

// front/ui and front/ui-canary and shop/web run sidecars; Service web.shop maps 80 -> 8080.
std::vector<json> mesh(const std::vector<json>& extra) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("front", "ui-canary")
            .labels({{"app", "ui"}, {"track", "canary"}})
            .with_sidecar(),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
        deployment("istio-system", "istiod").labels({{"app", "istiod"}}),
    };
    objects.insert(objects.end(), extra.begin(), extra.end());
    return objects;
}

ExplainResult explain_of(const std::vector<json>& objects, const std::string& from,
                         const std::string& host, std::optional<std::uint16_t> port = 80,
                         const std::string& workload = "", model::Settings settings = {}) {
    const auto snapshot = snapshot_of(objects, std::move(settings));
    auto result = report::explain(*snapshot, report::ExplainRequest{from, host, port, workload});
    INFO(result.error << result.internal_error);
    REQUIRE(result.internal_error.empty());
    return result;
}

// The one flow of a result whose client has this dataplane.
const ExplainedFlow& flow_of(const ExplainResult& result,
                             const std::string& dataplane = "sidecar") {
    INFO(report::explain_text(result));
    const auto it = std::find_if(result.flows.begin(), result.flows.end(),
                                 [&](const auto& f) { return f.client_dataplane == dataplane; });
    REQUIRE(it != result.flows.end());
    return *it;
}

const ExplainStep& step_of(const ExplainedFlow& flow, const std::string& kind) {
    const auto it = std::find_if(flow.steps.begin(), flow.steps.end(),
                                 [&](const auto& s) { return s.kind == kind; });
    REQUIRE(it != flow.steps.end());
    return *it;
}

std::vector<std::string> decided_by(const ExplainStep& step) {
    std::vector<std::string> out;
    for (const auto& o : step.decided_by)
        out.push_back(o.namespace_name + "/" + o.name);
    return out;
}

// The reason a named object lost the step; "" when it is not listed.
std::string lost_reason(const ExplainStep& step, const std::string& ns_name) {
    for (const auto& l : step.lost)
        if (l.object.namespace_name + "/" + l.object.name == ns_name)
            return l.reason;
    return "";
}

std::string join_because(const ExplainStep& step) {
    std::string out;
    for (const auto& why : step.because)
        out += why + "\n";
    return out;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("semantics §4: the client namespace's DestinationRule wins over the root's, which is "
          "listed as lost",
          "[explain]") {
    const auto result =
        explain_of(mesh({destination_rule("front", "web-front", "web.shop.svc.cluster.local")
                             .tls("ISTIO_MUTUAL"),
                         destination_rule("istio-system", "everything", "*.local").tls("DISABLE")}),
                   "front", "web.shop");
    CHECK(result.host == "web.shop.svc.cluster.local");
    const auto& flow = flow_of(result);
    const auto& dr = step_of(flow, "destinationRule");
    CHECK(decided_by(dr) == std::vector<std::string>{"front/web-front"});
    CHECK(dr.facts["step"] == 1);
    CHECK(contains(lost_reason(dr, "istio-system/everything"), "comes later in the lookup"));
    CHECK(step_of(flow, "send").facts["sends"] == "ISTIO_MUTUAL");
    CHECK(flow.verdict == "MTLS");
}

TEST_CASE("semantics §4: a rule of the service's namespace exported only to itself is not "
          "exported to the client, and auto mTLS decides",
          "[explain]") {
    const auto result = explain_of(
        mesh({destination_rule("shop", "web-private", "web").tls("DISABLE").export_to({"."})}),
        "front", "web.shop.svc.cluster.local");
    const auto& flow = flow_of(result);
    const auto& dr = step_of(flow, "destinationRule");
    CHECK(dr.summary == "none applies");
    CHECK(contains(lost_reason(dr, "shop/web-private"), "not exported to namespace front"));
    const auto& send = step_of(flow, "send");
    CHECK(send.facts["sends"] == "ISTIO_MUTUAL");
    CHECK(send.facts.value("autoMtls", false));
}

TEST_CASE("semantics §4: workloadSelector rules lose for pods they do not select, and are private "
          "to their namespace",
          "[explain]") {
    const auto objects =
        mesh({destination_rule("front", "canary-only", "web.shop.svc.cluster.local")
                  .for_clients({{"track", "canary"}})
                  .tls("DISABLE"),
              destination_rule("shop", "shop-clients", "web.shop.svc.cluster.local")
                  .for_clients({{"app", "web"}})
                  .tls("DISABLE")});
    SECTION("the workload the selector does not pick") {
        const auto result = explain_of(objects, "front", "web.shop", 80, "front/ui");
        REQUIRE(result.flows.size() == 1);
        const auto& dr = step_of(result.flows[0], "destinationRule");
        CHECK(contains(lost_reason(dr, "front/canary-only"), "does not select"));
        CHECK(contains(lost_reason(dr, "shop/shop-clients"), "private to namespace shop"));
        CHECK(result.flows[0].verdict == "MTLS");
    }
    SECTION("the workload it picks") {
        const auto result = explain_of(objects, "front", "web.shop", 80, "front/ui-canary");
        REQUIRE(result.flows.size() == 1);
        const auto& dr = step_of(result.flows[0], "destinationRule");
        CHECK(decided_by(dr) == std::vector<std::string>{"front/canary-only"});
        CHECK(contains(join_because(dr), "its workloadSelector selects"));
    }
}

TEST_CASE("semantics §4: in one namespace only the most specific host counts; a less specific "
          "rule lost",
          "[explain]") {
    const auto result = explain_of(
        mesh({destination_rule("front", "exact", "web.shop.svc.cluster.local").tls("ISTIO_MUTUAL"),
              destination_rule("front", "wide", "*.shop.svc.cluster.local").tls("DISABLE")}),
        "front", "web.shop");
    const auto& dr = step_of(flow_of(result), "destinationRule");
    CHECK(decided_by(dr) == std::vector<std::string>{"front/exact"});
    CHECK(contains(lost_reason(dr, "front/wide"), "less specific host"));
}

TEST_CASE("semantics §4: a rule in a namespace outside the lookup is not looked up", "[explain]") {
    const auto result =
        explain_of(mesh({deployment("billing", "pay").labels({{"app", "pay"}}).with_sidecar(),
                         destination_rule("billing", "web-billing", "web.shop.svc.cluster.local")
                             .tls("DISABLE")}),
                   "front", "web.shop");
    const auto& dr = step_of(flow_of(result), "destinationRule");
    CHECK(contains(lost_reason(dr, "billing/web-billing"), "not looked up"));
}

TEST_CASE("semantics §3, §6: the workload policy decides; the mesh- and namespace-wide ones lost; "
          "the DISABLE rule towards STRICT fails with MTG101 and its fix",
          "[explain]") {
    const auto result = explain_of(
        mesh({peer_authentication("istio-system", "default").permissive(),
              peer_authentication("shop", "default").disable(),
              peer_authentication("shop", "web-strict").selecting({{"app", "web"}}).strict(),
              destination_rule("front", "web-plain", "web.shop.svc.cluster.local").tls("DISABLE")}),
        "front", "web.shop");
    const auto& flow = flow_of(result);
    const auto& server = step_of(flow, "server");
    CHECK(decided_by(server) == std::vector<std::string>{"shop/web-strict"});
    CHECK(server.facts["level"] == "workload");
    CHECK(server.facts["mode"] == "STRICT");
    CHECK(server.facts["targetPort"] == 8080);
    CHECK(
        contains(lost_reason(server, "istio-system/default"), "overridden by the workload-level"));
    CHECK(contains(lost_reason(server, "shop/default"), "overridden by the workload-level"));
    CHECK(flow.verdict == "FAIL");
    CHECK(flow.code == "MTG101");
    CHECK(flow.fix == conflict::fix_of(conflict::Code::MTG101));
    CHECK_FALSE(flow.message.empty());
    const auto& verdict = step_of(flow, "verdict");
    CHECK(verdict.facts["code"] == "MTG101");
}

TEST_CASE("semantics §3: a portLevelMtls entry decides at the port level; the namespace-wide "
          "policy lost to it",
          "[explain]") {
    const auto result = explain_of(
        mesh({peer_authentication("shop", "default").strict(), peer_authentication("shop", "web")
                                                                   .selecting({{"app", "web"}})
                                                                   .port(8080, "PERMISSIVE")}),
        "front", "web.shop");
    const auto& server = step_of(flow_of(result), "server");
    CHECK(decided_by(server) == std::vector<std::string>{"shop/web"});
    CHECK(server.facts["level"] == "port");
    CHECK(server.facts["mode"] == "PERMISSIVE");
    CHECK(contains(lost_reason(server, "shop/default"), "overridden by the port-level"));
}

TEST_CASE("semantics §5: auto mTLS names the namespace-wide DISABLE policy that made it send "
          "plaintext",
          "[explain]") {
    const auto result =
        explain_of(mesh({peer_authentication("shop", "default").disable(),
                         peer_authentication("shop", "web").selecting({{"app", "web"}}).strict()}),
                   "front", "web.shop");
    const auto& flow = flow_of(result);
    const auto& send = step_of(flow, "send");
    CHECK(send.facts["sends"] == "PLAINTEXT");
    CHECK(decided_by(send) == std::vector<std::string>{"shop/default"});
    CHECK(
        contains(join_because(send), "namespace-wide PeerAuthentication shop/default is DISABLE"));
    CHECK(flow.verdict == "FAIL");
}

TEST_CASE("semantics §5: clients without a sidecar send plaintext and no DestinationRule applies",
          "[explain]") {
    const auto result = explain_of(mesh({deployment("legacy", "curl").labels({{"app", "curl"}}),
                                         peer_authentication("shop", "default").strict()}),
                                   "legacy", "web.shop.svc.cluster.local");
    const auto& flow = flow_of(result, "none");
    CHECK(step_of(flow, "destinationRule").summary == "none applies");
    CHECK(flow.verdict == "FAIL");
    CHECK(flow.code == "MTG203");
}

TEST_CASE("ambient.md §14: a Sidecar that hides the host is named, and every rule for the host "
          "lost to it",
          "[explain]") {
    const auto result = explain_of(mesh({sidecar("front", "default").egress({"./*"}),
                                         destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL"),
                                         peer_authentication("shop", "default").strict()}),
                                   "front", "web.shop");
    const auto& flow = flow_of(result);
    const auto& client = step_of(flow, "client");
    CHECK(decided_by(client) == std::vector<std::string>{"front/default"});
    CHECK(client.facts["outboundTrafficPolicy"] == "ALLOW_ANY");
    const auto& dr = step_of(flow, "destinationRule");
    CHECK(contains(lost_reason(dr, "shop/web"), "hides the host"));
    CHECK(flow.verdict == "FAIL");
    CHECK(flow.code.empty()); // hiding hosts is what a Sidecar is for: MTG211 on it, no error
}

TEST_CASE("Without a port every TCP port of the host is explained; the JSON has the documented "
          "shape",
          "[explain]") {
    auto objects = mesh({});
    objects.push_back(service("shop", "web2")
                          .selecting({{"app", "web"}})
                          .port(80, 8080)
                          .port(81, 8080, "metrics"));
    const auto result = explain_of(objects, "front", "web2.shop", std::nullopt);
    INFO(result.error);
    REQUIRE(result.flows.size() == 2);
    std::set<std::uint16_t> ports;
    for (const auto& f : result.flows)
        ports.insert(f.port);
    CHECK(ports == std::set<std::uint16_t>{80, 81});
    const auto doc = report::explain_json(result);
    CHECK(doc["host"] == "web2.shop.svc.cluster.local");
    CHECK(doc["port"].is_null());
    const auto& first = doc["flows"][0];
    std::vector<std::string> kinds;
    for (const auto& s : first["steps"]) {
        kinds.push_back(s["kind"]);
        CHECK(s["decidedBy"].is_array());
        CHECK(s["lost"].is_array());
        CHECK(s["because"].is_array());
    }
    CHECK(kinds ==
          std::vector<std::string>{"client", "destinationRule", "send", "server", "verdict"});
    CHECK(first["verdict"] == "MTLS");
    CHECK(first["code"].is_null());
    CHECK(contains(report::explain_text(result), "5. Verdict: MTLS"));
}

TEST_CASE("Bad requests name what was not found", "[explain][errors]") {
    const auto objects = mesh({});
    CHECK(explain_of(objects, "nowhere", "web.shop").error ==
          "namespace \"nowhere\" not found in the input");
    CHECK(contains(explain_of(objects, "front", "wbe.shop").error,
                   "did you mean web.shop.svc.cluster.local?"));
    CHECK(explain_of(objects, "front", "web.shop", 9090).error ==
          "host web.shop.svc.cluster.local has no TCP port 9090 (its TCP ports: 80)");
    CHECK(explain_of(objects, "front", "web.shop", 80, "front/nope").error ==
          "workload \"front/nope\" not found in the input");
    CHECK(contains(explain_of(objects, "front", "web.shop", 80, "shop/web").error,
                   "not in the --from namespace"));
}

TEST_CASE("--to is HOST or HOST:PORT with a port from 1 to 65535", "[explain][errors]") {
    using Table = std::tuple<std::string, bool, std::string, int>;
    const auto [text, ok, host, port] = GENERATE(table<std::string, bool, std::string, int>({
        Table{"web", true, "web", 0},
        Table{"web.shop:8080", true, "web.shop", 8080},
        Table{"web:0", false, "", 0},
        Table{"web:65536", false, "", 0},
        Table{"web:http", false, "", 0},
        Table{":80", false, "", 0},
        Table{"web:", false, "", 0},
        Table{"", false, "", 0},
    }));
    INFO(text);
    const auto parsed = report::parse_host_port(text);
    REQUIRE(parsed.has_value() == ok);
    if (ok) {
        CHECK(parsed->host == host);
        CHECK(parsed->port.value_or(0) == port);
    }
}

TEST_CASE("semantics §4: a portLevelSettings entry without tls falls back to auto mTLS, and a "
          "top-level DISABLE clears the endpoint marking",
          "[explain]") {
    const auto result =
        explain_of(mesh({destination_rule("front", "web", "web.shop.svc.cluster.local")
                             .tls("DISABLE")
                             .port_without_tls(80),
                         peer_authentication("shop", "default").strict()}),
                   "front", "web.shop");
    const auto& flow = flow_of(result);
    const auto& send = step_of(flow, "send");
    CHECK(send.facts["tlsSource"] == "trafficPolicy.portLevelSettings[port 80] (no tls)");
    CHECK(contains(join_because(send), "clears auto mTLS's endpoint marking"));
    CHECK(send.facts["sends"] == "PLAINTEXT");
    CHECK(flow.verdict == "FAIL");
}

TEST_CASE("semantics §4: merged DestinationRules are all named, the oldest gives the "
          "trafficPolicy",
          "[explain]") {
    const auto result =
        explain_of(mesh({destination_rule("front", "old", "web.shop.svc.cluster.local")
                             .created(day(1))
                             .tls("ISTIO_MUTUAL"),
                         destination_rule("front", "new", "web.shop.svc.cluster.local")
                             .created(day(2))
                             .tls("DISABLE")}),
                   "front", "web.shop");
    const auto& flow = flow_of(result);
    const auto& dr = step_of(flow, "destinationRule");
    CHECK(decided_by(dr) == std::vector<std::string>{"front/old", "front/new"});
    CHECK(dr.facts["policySource"]["name"] == "old");
    CHECK(dr.lost.empty());
    CHECK(step_of(flow, "send").facts["sends"] == "ISTIO_MUTUAL");
}

TEST_CASE("ambient.md §14: with REGISTRY_ONLY a hidden host's connection is dropped: FAIL with no "
          "code",
          "[explain]") {
    const auto result =
        explain_of(mesh({sidecar("front", "default").egress({"./*"}).outbound("REGISTRY_ONLY")}),
                   "front", "web.shop");
    const auto& flow = flow_of(result);
    CHECK(step_of(flow, "client").facts["outboundTrafficPolicy"] == "REGISTRY_ONLY");
    CHECK(step_of(flow, "send").summary == "nothing: the connection is dropped");
    CHECK(flow.verdict == "FAIL");
    CHECK(flow.code.empty());
    CHECK(contains(flow.message, "REGISTRY_ONLY"));
}

TEST_CASE("ambient.md §15: a subset a VirtualService routes the clients to brings its own TLS",
          "[explain]") {
    const auto result =
        explain_of(mesh({destination_rule("shop", "web", "web")
                             .tls("ISTIO_MUTUAL")
                             .subset("v1", {{"app", "web"}}, "DISABLE"),
                         virtual_service("shop", "web", {"web.shop.svc.cluster.local"})
                             .route("web.shop.svc.cluster.local", "v1")}),
                   "front", "web.shop");
    bool subset_seen = false;
    for (const auto& f : result.flows) {
        const auto& send = step_of(f, "send");
        if (!send.facts.contains("subset"))
            continue;
        subset_seen = true;
        CHECK(send.facts["subset"] == "v1");
        CHECK(send.facts["tlsSource"] == "subsets[v1].trafficPolicy.tls");
        CHECK(send.facts["sends"] == "PLAINTEXT");
        CHECK(decided_by(step_of(f, "destinationRule")) == std::vector<std::string>{"shop/web"});
    }
    CHECK(subset_seen);
}

TEST_CASE("--workload keeps only the flows of that client's kind", "[explain]") {
    const auto objects =
        mesh({deployment("front", "batch").labels({{"app", "batch"}}).inject_label("false")});
    const auto namespace_wide = explain_of(objects, "front", "web.shop");
    std::set<std::string> kinds;
    for (const auto& f : namespace_wide.flows)
        kinds.insert(f.client_dataplane);
    CHECK(kinds == std::set<std::string>{"none", "sidecar"});
    const auto one = explain_of(objects, "front", "web.shop", 80, "front/batch");
    REQUIRE(one.flows.size() == 1);
    CHECK(one.flows[0].client_dataplane == "none");
    CHECK(step_of(one.flows[0], "client").facts["workloads"] == nlohmann::json::array({"batch"}));
}

TEST_CASE("semantics §4: a selector rule in the client's namespace that does not pick these pods "
          "still ends the lookup there: the service namespace's rule lost for that reason",
          "[explain]") {
    const auto result =
        explain_of(mesh({destination_rule("front", "canary-only", "web.shop.svc.cluster.local")
                             .for_clients({{"track", "canary"}})
                             .tls("DISABLE"),
                         destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL")}),
                   "front", "web.shop", 80, "front/ui");
    REQUIRE(result.flows.size() == 1);
    const auto& dr = step_of(result.flows[0], "destinationRule");
    CHECK(dr.summary == "none applies");
    CHECK(contains(lost_reason(dr, "shop/web"), "no fall-through"));
}

TEST_CASE("semantics §4: TLS istiod drops (MUTUAL without certificates) is named, and plaintext "
          "is sent",
          "[explain]") {
    json rule = destination_rule("front", "web", "web.shop.svc.cluster.local").tls("SIMPLE");
    rule["spec"]["trafficPolicy"]["tls"] = {{"mode", "MUTUAL"}};
    const auto result = explain_of(mesh({rule}), "front", "web.shop");
    const auto& send = step_of(flow_of(result), "send");
    CHECK(send.facts["droppedTls"] == "mutual-without-certificates");
    CHECK(send.facts["sends"] == "PLAINTEXT");
    CHECK(contains(join_because(send), "istiod drops it"));
}

TEST_CASE("semantics §5: to a MESH_EXTERNAL ServiceEntry host, auto mTLS never applies; a "
          "ServiceEntry without ports is explained for any port asked",
          "[explain]") {
    const auto objects =
        mesh({service_entry("front", "api", {"api.example.com"}, "MESH_EXTERNAL", {}),
              destination_rule("front", "api", "api.example.com").tls("ISTIO_MUTUAL")});
    const auto result = explain_of(objects, "front", "api.example.com", 443);
    const auto& flow = flow_of(result);
    CHECK_FALSE(flow.workload.has_value());
    CHECK(step_of(flow, "server").facts["mode"] == "NO_SIDECAR");
    CHECK(decided_by(step_of(flow, "server")) == std::vector<std::string>{"front/api"});
    CHECK(flow.code == "MTG103");
    const auto plain = explain_of(mesh({service_entry("front", "api", {"api.example.com"})}),
                                  "front", "api.example.com", 443);
    CHECK(contains(join_because(step_of(flow_of(plain), "send")), "MESH_EXTERNAL"));
}

TEST_CASE("semantics §5: a headless service gets one auto mTLS decision for all endpoints: one "
          "without a sidecar makes it plaintext for all",
          "[explain]") {
    const auto result = explain_of(
        {deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
         deployment("shop", "db").labels({{"app", "db"}}).with_sidecar().container_port(5432),
         deployment("shop", "db-legacy").labels({{"app", "db"}}).container_port(5432),
         service("shop", "db").selecting({{"app", "db"}}).port(5432, 5432, "tcp").headless(),
         peer_authentication("shop", "db").selecting({{"app", "db"}}).strict()},
        "front", "db.shop", 5432);
    bool seen = false;
    for (const auto& f : result.flows) {
        if (!f.workload || f.workload->name != "db" || f.client_dataplane != "sidecar")
            continue;
        seen = true;
        const auto& send = step_of(f, "send");
        CHECK(send.facts["sends"] == "PLAINTEXT");
        CHECK(contains(join_because(send), "headless service: one decision for all endpoints"));
        CHECK(f.verdict == "FAIL");
    }
    CHECK(seen);
}

TEST_CASE("ambient.md §16: --from kube-apiserver explains the API server's call to a webhook "
          "behind a STRICT sidecar port: the registration, its own TLS, the policy, MTG108",
          "[explain][apiserver]") {
    const auto result =
        explain_of(webhook_cluster({peer_authentication("opa", "default").strict()}),
                   "kube-apiserver", "webhook.opa", 443);
    CHECK(result.error.empty());
    REQUIRE(result.flows.size() == 1);
    const auto& flow = flow_of(result, "none");
    CHECK(flow.target_port == 8443);
    const auto& client = step_of(flow, "client");
    CHECK(contains(client.summary, "the Kubernetes API server (kube-apiserver)"));
    CHECK(decided_by(client) == std::vector<std::string>{"/opa-validating"});
    CHECK(client.facts["apiServer"] == true);
    CHECK(client.facts["calledBy"][0]["kind"] == "ValidatingWebhookConfiguration");
    CHECK(client.facts["calledBy"][0]["webhook"] == "check.opa-validating.example.com");
    CHECK(client.facts["calledBy"][0]["port"] == 443);
    CHECK(contains(join_because(client), "calls Service opa/webhook port 443, path /validate "
                                         "(an admission webhook"));
    CHECK(step_of(flow, "destinationRule").summary == "none applies");
    const auto& send = step_of(flow, "send");
    CHECK(send.facts["sends"] == "PLAINTEXT");
    CHECK(send.facts["ownTls"] == true);
    CHECK(contains(join_because(send), "no mesh identity"));
    const auto& server = step_of(flow, "server");
    CHECK(server.facts["mode"] == "STRICT");
    CHECK(decided_by(server) == std::vector<std::string>{"opa/default"});
    CHECK(flow.verdict == "FAIL");
    CHECK(flow.code == "MTG108");
    CHECK(contains(flow.message, "ValidatingWebhookConfiguration opa-validating (webhook "
                                 "check.opa-validating.example.com)"));
    CHECK_FALSE(flow.fix.empty());
    const auto text = report::explain_text(result);
    CHECK(contains(text, "Flow 1: kube-apiserver (none) -> webhook.opa.svc.cluster.local:443 -> "
                         "opa/webhook:8443"));
    CHECK(contains(text, "5. Verdict: FAIL [MTG108]"));
    const auto doc = report::explain_json(result);
    CHECK(doc["from"] == "kube-apiserver");
    CHECK(doc["flows"][0]["clientNamespace"] == "kube-apiserver");
    CHECK(doc["flows"][0]["steps"][0]["calledBy"].size() == 1);
}

TEST_CASE("ambient.md §16: a PERMISSIVE port-level entry lets the API server's TLS through; "
          "every registration that calls the port is named",
          "[explain][apiserver]") {
    const auto result =
        explain_of(webhook_cluster({peer_authentication("opa", "default").strict(),
                                    peer_authentication("opa", "webhook-ports")
                                        .selecting({{"app", "webhook"}})
                                        .port(8443, "PERMISSIVE"),
                                    api_service("v1beta1.metrics.k8s.io", "opa", "webhook"),
                                    crd_with_conversion("widgets.example.com", "opa", "webhook")}),
                   "kube-apiserver", "webhook.opa.svc.cluster.local", 443);
    REQUIRE(result.flows.size() == 1);
    const auto& flow = result.flows[0];
    const auto callers = decided_by(step_of(flow, "client"));
    CHECK(std::set<std::string>(callers.begin(), callers.end()) ==
          std::set<std::string>{"/opa-validating", "/v1beta1.metrics.k8s.io",
                                "/widgets.example.com"});
    const auto because = join_because(step_of(flow, "client"));
    CHECK(contains(because, "an aggregated API"));
    CHECK(contains(because, "a conversion webhook"));
    const auto& server = step_of(flow, "server");
    CHECK(server.facts["mode"] == "PERMISSIVE");
    CHECK(server.facts["level"] == "port");
    CHECK(decided_by(server) == std::vector<std::string>{"opa/webhook-ports"});
    CHECK(contains(lost_reason(server, "opa/default"), "overridden by the port-level"));
    CHECK(flow.verdict == "PLAINTEXT");
    CHECK(flow.code.empty());
    CHECK(contains(flow.message, "the calls work"));
}

TEST_CASE("ambient.md §16, §13: a port the sidecar does not intercept takes the API server's "
          "TLS whatever the policy",
          "[explain][apiserver]") {
    auto objects = webhook_cluster({peer_authentication("opa", "default").strict()});
    objects[1] = json(deployment("opa", "webhook")
                          .labels({{"app", "webhook"}})
                          .with_sidecar()
                          .container_port(8443)
                          .pod_annotation("traffic.sidecar.istio.io/excludeInboundPorts", "8443"));
    const auto result = explain_of(objects, "kube-apiserver", "webhook.opa", 443);
    REQUIRE(result.flows.size() == 1);
    const auto& server = step_of(result.flows[0], "server");
    CHECK(server.facts["mode"] == "NO_SIDECAR");
    CHECK(server.facts["excludedFromInterception"] == true);
    CHECK(result.flows[0].verdict == "PLAINTEXT");
    CHECK(result.flows[0].code.empty());
}

TEST_CASE("ambient.md §16: the API server calls Services of kube-system too, which are not "
          "analysed as servers for the mesh's clients",
          "[explain][apiserver]") {
    const auto result =
        explain_of({json(deployment("kube-system", "metrics-server")
                             .labels({{"k8s-app", "metrics-server"}})
                             .container_port(10250)),
                    json(service("kube-system", "metrics-server")
                             .selecting({{"k8s-app", "metrics-server"}})
                             .port(443, 10250, "https")),
                    api_service("v1beta1.metrics.k8s.io", "kube-system", "metrics-server"),
                    json(peer_authentication("istio-system", "default").strict())},
                   "kube-apiserver", "metrics-server.kube-system", std::nullopt);
    REQUIRE(result.flows.size() == 1);
    CHECK(step_of(result.flows[0], "server").facts["mode"] == "NO_SIDECAR");
    CHECK(result.flows[0].verdict == "PLAINTEXT");
}

TEST_CASE("ambient.md §16: a host the API server does not call, or not on that port, has no flow "
          "and a note that says so",
          "[explain][apiserver]") {
    auto objects = webhook_cluster({peer_authentication("opa", "default").strict()});
    objects[2] = json(service("opa", "webhook")
                          .selecting({{"app", "webhook"}})
                          .port(443, 8443, "https")
                          .port(9090, 9090, "http-metrics"));
    objects.push_back(
        json(service("opa", "other").selecting({{"app", "webhook"}}).port(443, 8443, "https")));
    const auto not_called = explain_of(objects, "kube-apiserver", "other.opa", 443);
    CHECK(not_called.error.empty());
    CHECK(not_called.flows.empty());
    REQUIRE(not_called.notes.size() == 1);
    CHECK(contains(not_called.notes[0], "the API server does not call this host"));
    CHECK(contains(not_called.notes[0], "names Service opa/other"));
    CHECK(contains(report::explain_text(not_called), "kube-apiserver -> other.opa.svc.cluster."
                                                     "local:443: 0 flows"));

    const auto other_port = explain_of(objects, "kube-apiserver", "webhook.opa", 9090);
    CHECK(other_port.flows.empty());
    REQUIRE(other_port.notes.size() == 1);
    CHECK(other_port.notes[0] ==
          "the API server calls Service opa/webhook on port 443 only, not 9090 (ambient.md §16)");

    // Without a port: only the port the API server calls.
    const auto every_port = explain_of(objects, "kube-apiserver", "webhook.opa", std::nullopt);
    REQUIRE(every_port.flows.size() == 1);
    CHECK(every_port.flows[0].port == 443);

    // The namespace's own clients never see the API server's flows.
    for (const auto& f : explain_of(objects, "opa", "webhook.opa", 443).flows)
        CHECK(f.client_dataplane != "none");
}

TEST_CASE("ambient.md §16: --from kube-apiserver takes no --workload, and no short host name",
          "[explain][apiserver][errors]") {
    const auto objects = webhook_cluster();
    CHECK(contains(explain_of(objects, "kube-apiserver", "webhook.opa", 443, "opa/webhook").error,
                   "--workload does not apply to --from kube-apiserver"));
    CHECK(contains(explain_of(objects, "kube-apiserver", "webhook", 443).error,
                   "give NAME.NAMESPACE"));
}
