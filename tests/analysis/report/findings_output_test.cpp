// Tests report/findings_output: the JSON and text of interfaces.md, and the stable order.
#include "analysis/report/findings_output.hpp"
#include "tests/analysis/support/builders.hpp"

#include <random>

using namespace mtlsguard;
using namespace mtlsguard::test;
using conflict::Code;
using conflict::Finding;

namespace {

// The finding of interfaces.md's example.
Finding example() {
    Finding f;
    f.code = Code::MTG102;
    f.severity = conflict::Severity::Error;
    f.message = "one line, says what breaks and how to fix it";
    f.resource = {"networking.istio.io/v1", "DestinationRule", "full", "httpbin-full-mtls"};
    f.related = {{"security.istio.io/v1", "PeerAuthentication", "full", "httpbin"}};
    conflict::FlowSummary flow;
    flow.client_namespaces = {"full", "partial"};
    flow.host = "httpbin.full.svc.cluster.local";
    flow.port = 8000;
    flow.target_port = 80;
    flow.workload = conflict::WorkloadRef{"full", "httpbin"};
    flow.workload_dataplane = "sidecar";
    flow.client = "ISTIO_MUTUAL";
    flow.server = "DISABLE";
    f.flow = flow;
    return f;
}

Finding simple(Code code, const std::string& kind, const std::string& ns, const std::string& name) {
    Finding f;
    f.code = code;
    f.severity = conflict::severity_of(code);
    f.resource = {"v1", kind, ns, name};
    f.message = "m";
    return f;
}

std::string key(const Finding& f) {
    return std::string(conflict::to_string(f.code)) + " " + f.resource.kind + " " +
           model::display_name(f.resource);
}

} // namespace

TEST_CASE("An object reference prints as apiVersion, kind, namespace and name", "[output]") {
    CHECK(report::to_json(model::ObjectRef{"v1", "Service", "shop", "web"}) ==
          json{{"apiVersion", "v1"}, {"kind", "Service"}, {"namespace", "shop"}, {"name", "web"}});
    // Cluster-scoped objects have no namespace key.
    CHECK(report::to_json(
              model::ObjectRef{"authentication.istio.io/v1alpha1", "MeshPolicy", "", "default"}) ==
          json{{"apiVersion", "authentication.istio.io/v1alpha1"},
               {"kind", "MeshPolicy"},
               {"name", "default"}});
}

TEST_CASE("A finding's JSON has the shape of interfaces.md", "[output]") {
    const json expected = json::parse(R"({
      "code": "MTG102",
      "severity": "error",
      "message": "one line, says what breaks and how to fix it",
      "resource": {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                   "namespace": "full", "name": "httpbin-full-mtls"},
      "related": [{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                   "namespace": "full", "name": "httpbin"}],
      "flow": {"clientNamespaces": ["full", "partial"], "clientSidecar": true,
               "clientDataplane": "sidecar",
               "host": "httpbin.full.svc.cluster.local", "port": 8000, "targetPort": 80,
               "workload": {"namespace": "full", "name": "httpbin", "dataplane": "sidecar"},
               "client": "ISTIO_MUTUAL", "server": "DISABLE"}
    })");
    CHECK(report::to_json(example()) == expected);
}

TEST_CASE("A flow through a waypoint names it, and ambient clients say so (interfaces.md)",
          "[output][ambient]") {
    auto f = example();
    f.flow->client_sidecar = false;
    f.flow->client_dataplane = "ambient";
    f.flow->via = conflict::WorkloadRef{"full", "waypoint"};
    f.flow->workload_dataplane = "ambient-predicted";
    f.flow->client = "HBONE";
    f.flow->server = "AMBIENT_STRICT";
    const auto j = report::to_json(f)["flow"];
    CHECK(j["clientDataplane"] == "ambient");
    CHECK(j["clientSidecar"] == false);
    CHECK(j["via"] == json{{"namespace", "full"}, {"name", "waypoint"}});
    CHECK(j["workload"]["dataplane"] == "ambient-predicted");
    CHECK(j["client"] == "HBONE");
    CHECK(j["server"] == "AMBIENT_STRICT");
}

TEST_CASE("A finding without a flow, related objects or workload leaves them out", "[output]") {
    auto f = simple(Code::MTG208, "MeshPolicy", "", "default");
    const auto j = report::to_json(f);
    CHECK(j.at("related") == json::array());
    CHECK_FALSE(j.contains("flow"));
    CHECK(j.at("severity") == "info");

    auto external = example();
    external.flow->workload.reset();
    external.flow->subset = "v2";
    const auto flow = report::to_json(external).at("flow");
    CHECK_FALSE(flow.contains("workload"));
    CHECK(flow.at("subset") == "v2");
}

TEST_CASE("The findings document lists findings and counts them by severity", "[output]") {
    const std::vector<Finding> findings{
        example(),
        simple(Code::MTG101, "DestinationRule", "a", "x"),
        simple(Code::MTG203, "PeerAuthentication", "a", "default"),
        simple(Code::MTG208, "Policy", "a", "p"),
    };
    const auto doc = report::findings_document(findings);
    CHECK(doc.at("findings").size() == 4);
    CHECK(doc.at("findings")[0] == report::to_json(findings[0]));
    CHECK(doc.at("summary") == json{{"errors", 2}, {"warnings", 1}, {"infos", 1}});
    CHECK(report::findings_document({}) ==
          json{{"findings", json::array()},
               {"summary", {{"errors", 0}, {"warnings", 0}, {"infos", 0}}}});
}

TEST_CASE("Text output is one istioctl-style line per finding", "[output]") {
    auto [finding, line] = GENERATE_COPY(table<Finding, std::string>({
        {example(), "Error [MTG102] (DestinationRule httpbin-full-mtls.full) one line, says what "
                    "breaks and how to fix it"},
        {simple(Code::MTG203, "PeerAuthentication", "shop", "default"),
         "Warning [MTG203] (PeerAuthentication default.shop) m"},
        {simple(Code::MTG208, "MeshPolicy", "", "default"), "Info [MTG208] (MeshPolicy default) m"},
    }));
    CHECK(report::finding_line(finding) == line);
    CHECK(report::findings_text({finding}) == line + "\n");
}

TEST_CASE("findings_text prints the findings in the order given, one per line", "[output]") {
    const std::vector<Finding> findings{simple(Code::MTG101, "DestinationRule", "a", "x"),
                                        simple(Code::MTG208, "Policy", "b", "p")};
    CHECK(report::findings_text(findings) == "Error [MTG101] (DestinationRule x.a) m\n"
                                             "Info [MTG208] (Policy p.b) m\n");
    CHECK(report::findings_text({}).empty());
}

TEST_CASE("Findings sort by severity, then code, then resource", "[output][order]") {
    std::vector<Finding> findings{
        simple(Code::MTG208, "Policy", "a", "p"),
        simple(Code::MTG203, "PeerAuthentication", "b", "default"),
        simple(Code::MTG101, "PeerAuthentication", "a", "default"),
        simple(Code::MTG204, "PeerAuthentication", "a", "w"),
        simple(Code::MTG101, "DestinationRule", "z", "x"),
        simple(Code::MTG102, "DestinationRule", "a", "x"),
        simple(Code::MTG203, "PeerAuthentication", "a", "default"),
        simple(Code::MTG206, "DestinationRule", "a", "x"),
    };
    std::mt19937 random(GENERATE(1u, 2u, 3u, 4u));
    std::shuffle(findings.begin(), findings.end(), random);
    std::sort(findings.begin(), findings.end(), conflict::finding_less);
    std::vector<std::string> order;
    for (const auto& f : findings)
        order.push_back(key(f));
    CHECK(order == std::vector<std::string>{
                       "MTG101 DestinationRule x.z",
                       "MTG101 PeerAuthentication default.a",
                       "MTG102 DestinationRule x.a",
                       "MTG203 PeerAuthentication default.a",
                       "MTG203 PeerAuthentication default.b",
                       "MTG204 PeerAuthentication w.a",
                       "MTG206 DestinationRule x.a",
                       "MTG208 Policy p.a",
                   });
}

TEST_CASE("Analysis output is the same whatever order the objects come in", "[output][order]") {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
        peer_authentication("shop", "typo").selecting({{"app", "wbe"}}).strict(),
        destination_rule("front", "web-off", "web.shop.svc.cluster.local").tls("DISABLE"),
        destination_rule("billing", "plain-mtls", "plain.shop.svc.cluster.local")
            .tls("ISTIO_MUTUAL"),
        kube_namespace("extra").injected(),
    };
    const auto reference = report::findings_document(findings_of(*snapshot_of(objects)));
    REQUIRE(reference.at("findings").size() >= 5);
    std::mt19937 random(GENERATE(7u, 8u, 9u));
    std::shuffle(objects.begin(), objects.end(), random);
    CHECK(report::findings_document(findings_of(*snapshot_of(objects))) == reference);
    // And the document is itself in the stable order: severities never go back up.
    int last = -1;
    for (const auto& f : reference.at("findings")) {
        const std::string severity = f.at("severity");
        const int rank = severity == "error" ? 0 : severity == "warning" ? 1 : 2;
        CHECK(rank >= last);
        last = rank;
    }
}
