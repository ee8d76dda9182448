// Tests report/messages: the one-line message of every finding code, and short lists.
#include "analysis/report/messages.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using conflict::Code;
using conflict::Finding;

namespace {

model::ObjectRef dr_ref() {
    return {"networking.istio.io/v1", "DestinationRule", "front", "web-tls"};
}
model::ObjectRef pa_ref() {
    return {"security.istio.io/v1", "PeerAuthentication", "shop", "default"};
}

Finding flow_finding(Code code, const model::ObjectRef& on, const std::string& client,
                     const std::string& server, bool sidecar = true) {
    Finding f;
    f.code = code;
    f.severity = conflict::severity_of(code);
    f.resource = on;
    conflict::FlowSummary flow;
    flow.client_namespaces = {"front", "partial"};
    flow.client_sidecar = sidecar;
    flow.host = "web.shop.svc.cluster.local";
    flow.port = 80;
    flow.target_port = 8080;
    flow.workload = conflict::WorkloadRef{"shop", "web"};
    flow.client = client;
    flow.server = server;
    f.flow = flow;
    return f;
}

Finding object_finding(Code code, const model::ObjectRef& on, const std::string& text,
                       long number = 0, std::vector<model::ObjectRef> related = {}) {
    Finding f;
    f.code = code;
    f.severity = conflict::severity_of(code);
    f.resource = on;
    f.related = std::move(related);
    f.detail = conflict::Detail{text, number};
    return f;
}

} // namespace

TEST_CASE("short_list shows a few names and counts the rest", "[messages]") {
    using Names = std::vector<std::string>;
    auto [names, shown, expected] = GENERATE(table<Names, std::size_t, std::string>({
        {Names{}, 3, ""},
        {Names{"a"}, 3, "a"},
        {Names{"a", "b", "c"}, 3, "a, b, c"},
        {Names{"a", "b", "c", "d", "e"}, 3, "a, b, c and 2 more"},
        {Names{"a", "b"}, 1, "a and 1 more"},
    }));
    CHECK(report::short_list(names, shown) == expected);
}

TEST_CASE("short_list counts the names admission left out of a finding in its \"more\"",
          "[messages]") {
    using Names = std::vector<std::string>;
    CHECK(report::short_list(Names{"a", "b", "c"}, 3, 847) == "a, b, c and 847 more");
    CHECK(report::short_list(Names{"a"}, 3, 2) == "a and 2 more");
    CHECK(report::short_list(Names{"a", "b", "c"}, 3, 0) == "a, b, c");
}

TEST_CASE("Flow messages say who sends what to which port, what breaks, and the fix",
          "[messages][flows]") {
    auto [code, on, client, server, sidecar, parts] = GENERATE(
        table<Code, std::string, std::string, std::string, bool, std::vector<std::string>>({
            {Code::MTG101,
             "DestinationRule",
             "PLAINTEXT",
             "STRICT",
             true,
             {"Sidecar clients in front, partial", "send plaintext", "STRICT", "reset",
              "ISTIO_MUTUAL in this DestinationRule"}},
            {Code::MTG101,
             "PeerAuthentication",
             "PLAINTEXT",
             "STRICT",
             true,
             {"Sidecar clients in front, partial", "enable auto mTLS", "PERMISSIVE"}},
            {Code::MTG102,
             "DestinationRule",
             "ISTIO_MUTUAL",
             "DISABLE",
             true,
             {"Istio mTLS", "accepts only plaintext (DISABLE)", "503",
              "remove ISTIO_MUTUAL from this DestinationRule"}},
            {Code::MTG102,
             "PeerAuthentication",
             "ISTIO_MUTUAL",
             "DISABLE",
             true,
             {"Istio mTLS", "PERMISSIVE or STRICT"}},
            {Code::MTG103,
             "DestinationRule",
             "ISTIO_MUTUAL",
             "NO_SIDECAR",
             true,
             {"no sidecar", "inject a sidecar"}},
            {Code::MTG104,
             "DestinationRule",
             "SIMPLE",
             "STRICT",
             true,
             {"one-way TLS (SIMPLE)", "client certificate", "ISTIO_MUTUAL"}},
            {Code::MTG201,
             "DestinationRule",
             "MUTUAL",
             "STRICT",
             true,
             {"(MUTUAL)", "mesh CA", "ISTIO_MUTUAL"}},
            {Code::MTG202,
             "DestinationRule",
             "SIMPLE",
             "PERMISSIVE",
             true,
             {"originate SIMPLE TLS", "PERMISSIVE", "application terminates TLS"}},
            {Code::MTG203,
             "PeerAuthentication",
             "PLAINTEXT",
             "STRICT",
             false,
             {"Clients without a sidecar in front, partial", "STRICT", "lock-down"}},
        }));
    const auto f =
        flow_finding(code, on == "DestinationRule" ? dr_ref() : pa_ref(), client, server, sidecar);
    const std::string message = report::describe(f);
    INFO(conflict::to_string(code) << " on " << on << ": " << message);
    CHECK(message.find('\n') == std::string::npos);
    CHECK_THAT(message, Catch::Contains(
                            "web.shop.svc.cluster.local:80 (workload shop/web, target port 8080)"));
    for (const auto& part : parts)
        CHECK_THAT(message, Catch::Contains(part));
}

TEST_CASE("A flow through a subset names the subset; an equal target port is not repeated",
          "[messages][flows]") {
    auto f = flow_finding(Code::MTG101, dr_ref(), "PLAINTEXT", "STRICT");
    f.flow->subset = "v2";
    f.flow->target_port = 80;
    const std::string message = report::describe(f);
    CHECK_THAT(message,
               Catch::Contains("web.shop.svc.cluster.local:80 (workload shop/web) via subset v2"));
}

TEST_CASE("Long client lists are shortened in messages", "[messages][flows]") {
    auto f = flow_finding(Code::MTG101, dr_ref(), "PLAINTEXT", "STRICT");
    f.flow->client_namespaces = {"a", "b", "c", "d", "e", "f"};
    CHECK_THAT(report::describe(f), Catch::StartsWith("Sidecar clients in a, b, c and 3 more "));
}

TEST_CASE("Object messages explain what is ignored or matches nothing", "[messages][objects]") {
    const model::ObjectRef older{"security.istio.io/v1", "PeerAuthentication", "shop", "older"};
    const model::ObjectRef svc{"v1", "Service", "shop", "web"};
    const model::ObjectRef alpha{"authentication.istio.io/v1alpha1", "Policy", "shop", "p"};
    const model::ObjectRef meshpolicy{"authentication.istio.io/v1alpha1", "MeshPolicy", "", "mesh"};
    const model::ObjectRef older_dr{"networking.istio.io/v1", "DestinationRule", "front", "first"};
    auto [finding, parts] = GENERATE_COPY(table<Finding, std::vector<std::string>>({
        {object_finding(Code::MTG204, pa_ref(), "8080, 9090", 80),
         {"portLevelMtls key 80", "8080, 9090", "container ports, not Service ports"}},
        {object_finding(Code::MTG204, alpha, "grpc", 0, {svc}),
         {"port selector grpc", "Service web.shop"}},
        {object_finding(Code::MTG205, pa_ref(), "namespace-wide", 0, {older}),
         {"namespace-wide", "older.shop", "oldest"}},
        {object_finding(Code::MTG205, pa_ref(), "workload", 2, {older}),
         {"ignored for 2 of its workloads", "older.shop"}},
        {object_finding(Code::MTG205, pa_ref(), "workload", 0, {older}),
         {"ignored for all its workloads"}},
        {object_finding(Code::MTG205, dr_ref(), "host:web.shop.svc.cluster.local", 0, {older_dr}),
         {"trafficPolicy is ignored", "first.front", "web.shop.svc.cluster.local"}},
        {object_finding(Code::MTG205, meshpolicy, "meshpolicy-name"),
         {"only the MeshPolicy named default applies"}},
        {object_finding(Code::MTG205, alpha, "target:web", 0, {alpha}),
         {"Service web", "older Policy p.shop"}},
        {object_finding(Code::MTG206, pa_ref(), "root-selector"),
         {"root namespace applies to nothing"}},
        {object_finding(Code::MTG206, pa_ref(), "no-workload"), {"matches no workload"}},
        {object_finding(Code::MTG206, alpha, "target:gone"), {"target gone names no Service"}},
        {object_finding(Code::MTG206, dr_ref(), "host:x.example.com"),
         {"host x.example.com matches no Service or ServiceEntry"}},
        {object_finding(Code::MTG207, pa_ref(), ""), {"TIS0503", "DISABLE", "auto mTLS is off"}},
        {object_finding(Code::MTG208, meshpolicy, ""), {"v1alpha1 MeshPolicy", "Istio 1.6"}},
        {object_finding(Code::MTG209, pa_ref(), "mesh-wide"),
         {"portLevelMtls on a mesh-wide PeerAuthentication", "workload selector"}},
        // ambient.md §14: a few hidden services by name, then a count.
        {object_finding(Code::MTG211,
                        model::ObjectRef{"networking.istio.io/v1", "Sidecar", "front", "default"},
                        "ALLOW_ANY", 5, {svc, older_dr}),
         {"hides STRICT services web.shop, first.front and 3 more", "passthrough cluster",
          "egress[].hosts"}},
        {object_finding(Code::MTG211,
                        model::ObjectRef{"networking.istio.io/v1", "Sidecar", "front", "default"},
                        "REGISTRY_ONLY", 1, {svc}),
         {"hides STRICT service web.shop from", "REGISTRY_ONLY", "dropped"}},
        {object_finding(Code::MTG212, model::ObjectRef{"v1", "Namespace", "", "shop"},
                        "istio-injection=enabled"),
         {"sidecar injection (istio-injection=enabled)", "ambient", "injection wins"}},
        {object_finding(Code::MTG212, model::ObjectRef{"apps/v1", "Deployment", "shop", "web"},
                        "pod label istio.io/dataplane-mode=ambient"),
         {"Deployment is labelled for ambient (pod label", "gets a sidecar",
          "sidecar.istio.io/inject=false"}},
    }));
    const std::string message = report::describe(finding);
    INFO(conflict::to_string(finding.code) << ": " << message);
    CHECK(message.find('\n') == std::string::npos);
    for (const auto& part : parts)
        CHECK_THAT(message, Catch::Contains(part));
}

TEST_CASE("Messages never contain a newline, even from detail text", "[messages]") {
    auto f = object_finding(Code::MTG204, pa_ref(), "8080,\n9090\r\t", 80);
    const auto message = report::describe(f);
    CHECK(message.find_first_of("\n\r\t") == std::string::npos);
    CHECK_THAT(message, Catch::Contains("8080,"));
}

TEST_CASE("describe_all fills in only the messages that are missing", "[messages]") {
    std::vector<Finding> findings{object_finding(Code::MTG208, pa_ref(), ""),
                                  object_finding(Code::MTG208, pa_ref(), "")};
    findings[1].message = "kept as it is";
    report::describe_all(findings);
    CHECK_FALSE(findings[0].message.empty());
    CHECK(findings[1].message == "kept as it is");
}

TEST_CASE("Every finding the engine produces has a one-line message", "[messages]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
        peer_authentication("shop", "web").selecting({{"app", "web"}}).port(80, "DISABLE"),
        peer_authentication("shop", "typo").selecting({{"app", "wbe"}}).strict(),
        destination_rule("front", "web-off", "web.shop.svc.cluster.local").tls("DISABLE"),
        destination_rule("front", "plain-mtls", "plain.shop.svc.cluster.local").tls("ISTIO_MUTUAL"),
        destination_rule("front", "nothing", "nothing.example.com").tls("SIMPLE"),
    });
    const auto findings = findings_of(*snapshot);
    CHECK(codes_of(findings) ==
          std::vector<std::string>{"MTG101", "MTG103", "MTG203", "MTG204", "MTG206"});
    for (const auto& f : findings) {
        INFO(conflict::to_string(f.code) << " " << model::display_name(f.resource));
        CHECK_FALSE(f.message.empty());
        CHECK(f.message.find('\n') == std::string::npos);
    }
}

TEST_CASE("§16: MTG108 names the caller and the service port, and gives the fix for its data plane",
          "[messages][apiserver]") {
    auto [server, plane_fix] = GENERATE(table<std::string, std::string>({
        {"STRICT", "sidecar.istio.io/inject: \"false\""},
        {"AMBIENT_STRICT", "istio.io/dataplane-mode: none"},
    }));
    Finding f = flow_finding(Code::MTG108, pa_ref(), "PLAINTEXT", server, false);
    f.flow->client_namespaces = {"kube-apiserver"};
    f.flow->client_dataplane = "none";
    f.related = {{"admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "opa"}};
    f.detail.text = "ValidatingWebhookConfiguration opa (webhook validate.opa.io)";
    const std::string message = report::describe(f);
    INFO(message);
    CHECK_THAT(message, Catch::StartsWith("The Kubernetes API server calls "
                                          "ValidatingWebhookConfiguration opa (webhook "
                                          "validate.opa.io) at web.shop.svc.cluster.local:80"));
    CHECK_THAT(message, Catch::Contains("make port 8080 PERMISSIVE") &&
                            Catch::Contains(plane_fix) && Catch::Contains("cluster-wide"));
    CHECK(message.find('\n') == std::string::npos);
}
