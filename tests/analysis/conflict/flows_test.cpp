// Tests conflict/flows: the §6 verdict table cell by cell, its codes, and client flows (§7, §8).
#include "analysis/conflict/flows.hpp"
#include "analysis/conflict/routes.hpp"
#include "analysis/model/decode.hpp"
#include "tests/analysis/support/builders.hpp"

#include <set>

using namespace mtlsguard;
using namespace mtlsguard::test;
using conflict::Verdict;
using resolution::ClientSend;
using resolution::ServerAccept;

namespace {

// shop/web (sidecar) and shop/plain (no sidecar) behind Services web and plain (80 -> 8080);
// front/ui is a sidecar client, legacy/batch a client without a sidecar.
std::vector<json> cluster(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
        service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080, "http"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

const std::string web = "web.shop.svc.cluster.local";
const std::string plain = "plain.shop.svc.cluster.local";

std::string code_text(std::optional<conflict::Code> code) {
    return code ? std::string(conflict::to_string(*code)) : "";
}

std::vector<std::string> refs(const std::vector<model::ObjectRef>& list) {
    std::vector<std::string> out;
    for (const auto& r : list)
        out.push_back(r.kind + " " + model::display_name(r));
    return out;
}

// The client kind of the sidecar-era tables: sidecar clients or clients without a proxy.
conflict::ClientKind kind_of(bool sidecar) {
    return sidecar ? conflict::ClientKind::Sidecar : conflict::ClientKind::NonMesh;
}

} // namespace

TEST_CASE("The verdict table of §6, cell by cell", "[flows][verdict]") {
    auto [send, server, verdict] = GENERATE(table<ClientSend, ServerAccept, Verdict>({
        {ClientSend::Plaintext, ServerAccept::Strict, Verdict::Fail},
        {ClientSend::Plaintext, ServerAccept::Permissive, Verdict::Plaintext},
        {ClientSend::Plaintext, ServerAccept::Disable, Verdict::Plaintext},
        {ClientSend::Plaintext, ServerAccept::NoSidecar, Verdict::Plaintext},
        {ClientSend::Simple, ServerAccept::Strict, Verdict::Fail},
        {ClientSend::Simple, ServerAccept::Permissive, Verdict::Depends},
        {ClientSend::Simple, ServerAccept::Disable, Verdict::Depends},
        {ClientSend::Simple, ServerAccept::NoSidecar, Verdict::Depends},
        {ClientSend::Mutual, ServerAccept::Strict, Verdict::Depends},
        {ClientSend::Mutual, ServerAccept::Permissive, Verdict::Depends},
        {ClientSend::Mutual, ServerAccept::Disable, Verdict::Depends},
        {ClientSend::Mutual, ServerAccept::NoSidecar, Verdict::Depends},
        {ClientSend::IstioMutual, ServerAccept::Strict, Verdict::Mtls},
        {ClientSend::IstioMutual, ServerAccept::Permissive, Verdict::Mtls},
        {ClientSend::IstioMutual, ServerAccept::Disable, Verdict::Fail},
        {ClientSend::IstioMutual, ServerAccept::NoSidecar, Verdict::Fail},
        // A server whose mode cannot be known: nothing fails for certain.
        {ClientSend::Plaintext, ServerAccept::Unknown, Verdict::Plaintext},
        {ClientSend::Simple, ServerAccept::Unknown, Verdict::Depends},
        {ClientSend::Mutual, ServerAccept::Unknown, Verdict::Depends},
        {ClientSend::IstioMutual, ServerAccept::Unknown, Verdict::Depends},
    }));
    INFO(resolution::to_string(send) << " to " << resolution::to_string(server));
    CHECK(conflict::verdict_of(send, server) == verdict);
}

TEST_CASE("Each cell of the table carries its catalogue code", "[flows][codes]") {
    // "" = no finding. FAIL cells are errors (or MTG203 for clients without a sidecar), DEPENDS
    // cells warnings.
    auto [sidecar, send, server, code] =
        GENERATE(table<bool, ClientSend, ServerAccept, std::string>({
            {true, ClientSend::Plaintext, ServerAccept::Strict, "MTG101"},
            {true, ClientSend::Plaintext, ServerAccept::Permissive, ""},
            {true, ClientSend::Plaintext, ServerAccept::Disable, ""},
            {true, ClientSend::Plaintext, ServerAccept::NoSidecar, ""},
            {true, ClientSend::Simple, ServerAccept::Strict, "MTG104"},
            {true, ClientSend::Simple, ServerAccept::Permissive, "MTG202"},
            {true, ClientSend::Simple, ServerAccept::Disable, "MTG202"},
            {true, ClientSend::Simple, ServerAccept::NoSidecar, "MTG202"},
            {true, ClientSend::Mutual, ServerAccept::Strict, "MTG201"},
            {true, ClientSend::Mutual, ServerAccept::Permissive, "MTG202"},
            {true, ClientSend::Mutual, ServerAccept::Disable, "MTG202"},
            {true, ClientSend::Mutual, ServerAccept::NoSidecar, "MTG202"},
            {true, ClientSend::IstioMutual, ServerAccept::Strict, ""},
            {true, ClientSend::IstioMutual, ServerAccept::Permissive, ""},
            {true, ClientSend::IstioMutual, ServerAccept::Disable, "MTG102"},
            {true, ClientSend::IstioMutual, ServerAccept::NoSidecar, "MTG103"},
            {false, ClientSend::Plaintext, ServerAccept::Strict, "MTG203"},
            {false, ClientSend::Plaintext, ServerAccept::Permissive, ""},
            {false, ClientSend::Plaintext, ServerAccept::Disable, ""},
            {false, ClientSend::Plaintext, ServerAccept::NoSidecar, ""},
            {true, ClientSend::Plaintext, ServerAccept::Unknown, ""},
            {true, ClientSend::IstioMutual, ServerAccept::Unknown, ""},
        }));
    INFO((sidecar ? "sidecar " : "plain ")
         << resolution::to_string(send) << " to " << resolution::to_string(server));
    CHECK(code_text(conflict::code_of(kind_of(sidecar), send, server, false)) == code);
    if (!code.empty()) {
        const auto severity =
            conflict::severity_of(*conflict::code_of(kind_of(sidecar), send, server, false));
        const bool fails = conflict::verdict_of(send, server) == Verdict::Fail;
        // FAIL is an error, DEPENDS a warning; a non-mesh client's FAIL is a lock-down warning.
        CHECK(severity ==
              (fails && sidecar ? conflict::Severity::Error : conflict::Severity::Warning));
    }
}

TEST_CASE("Towards a MESH_EXTERNAL host only Istio mTLS is a finding", "[flows][codes]") {
    auto [send, code] = GENERATE(table<ClientSend, std::string>({
        {ClientSend::Plaintext, ""},
        {ClientSend::Simple, ""},
        {ClientSend::Mutual, ""},
        {ClientSend::IstioMutual, "MTG103"},
    }));
    CHECK(code_text(conflict::code_of(conflict::ClientKind::Sidecar, send, ServerAccept::NoSidecar,
                                      true)) == code);
}

TEST_CASE("Verdicts print as the matrix prints them", "[flows]") {
    CHECK(conflict::to_string(Verdict::Mtls) == "MTLS");
    CHECK(conflict::to_string(Verdict::Plaintext) == "PLAINTEXT");
    CHECK(conflict::to_string(Verdict::Fail) == "FAIL");
    CHECK(conflict::to_string(Verdict::Depends) == "DEPENDS");
}

TEST_CASE("With defaults every flow works: auto mTLS to sidecars, plaintext to the rest",
          "[flows]") {
    const auto snapshot = snapshot_of(cluster());
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "front", true, web, "web") == "ISTIO_MUTUAL PERMISSIVE MTLS");
    CHECK(flow_of(rows, "front", true, plain, "plain") == "PLAINTEXT NO_SIDECAR PLAINTEXT");
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT PERMISSIVE PLAINTEXT");
    CHECK(flow_of(rows, "legacy", false, plain, "plain") == "PLAINTEXT NO_SIDECAR PLAINTEXT");
    // shop runs sidecar and plain workloads, so it is both kinds of client.
    CHECK(flow_of(rows, "shop", true, web, "web") == "ISTIO_MUTUAL PERMISSIVE MTLS");
    CHECK(flow_of(rows, "shop", false, web, "web") == "PLAINTEXT PERMISSIVE PLAINTEXT");
    // A non-mesh client is never shown as a sidecar client and vice versa.
    CHECK(flow_of(rows, "legacy", true, web, "web") == "no row");
    CHECK(flow_of(rows, "front", false, web, "web") == "no row");
    CHECK(findings_of(*snapshot).empty());
}

TEST_CASE("A STRICT server rejects clients without a sidecar, a warning naming their namespaces",
          "[flows][seeds]") {
    const auto snapshot = snapshot_of(cluster({peer_authentication("shop", "default").strict()}));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "front", true, web, "web") == "ISTIO_MUTUAL STRICT MTLS");
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(codes_of(findings) == std::vector<std::string>{"MTG203"});
    const auto lockdown = with_code(findings, "MTG203");
    REQUIRE(lockdown.size() == 1);
    CHECK(lockdown[0].severity == conflict::Severity::Warning);
    CHECK(lockdown[0].resource.kind == "PeerAuthentication");
    CHECK(lockdown[0].resource.name == "default");
    REQUIRE(lockdown[0].flow.has_value());
    CHECK(lockdown[0].flow->client_namespaces == std::vector<std::string>{"legacy", "shop"});
    CHECK_FALSE(lockdown[0].flow->client_sidecar);
    CHECK(lockdown[0].flow->client == "PLAINTEXT");
    CHECK(lockdown[0].flow->server == "STRICT");
}

TEST_CASE("A DestinationRule DISABLE towards a STRICT workload is an error on both objects",
          "[flows][seeds]") {
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "web-strict").selecting({{"app", "web"}}).strict(),
        destination_rule("front", "no-tls", web).tls("DISABLE"),
    }));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG101") ==
          std::vector<std::string>{"DestinationRule no-tls.front",
                                   "PeerAuthentication web-strict.shop"});
    for (const auto& f : with_code(findings, "MTG101")) {
        CHECK(f.severity == conflict::Severity::Error);
        CHECK(f.flow->client_namespaces == std::vector<std::string>{"front"});
        CHECK(f.flow->port == 80);
        CHECK(f.flow->target_port == 8080);
        REQUIRE(f.flow->workload.has_value());
        CHECK(f.flow->workload->name == "web");
        CHECK(refs(f.related).size() == 1);
    }
    const auto on_rule = with_code(findings, "MTG101")[0];
    CHECK(refs(on_rule.related) == std::vector<std::string>{"PeerAuthentication web-strict.shop"});
}

TEST_CASE("A DestinationRule ISTIO_MUTUAL towards a DISABLE workload is MTG102", "[flows][seeds]") {
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "web-off").selecting({{"app", "web"}}).disable(),
        destination_rule("shop", "web-mtls", "web").tls("ISTIO_MUTUAL"),
    }));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "front", true, web, "web") == "ISTIO_MUTUAL DISABLE FAIL");
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT DISABLE PLAINTEXT");
    CHECK(reported_on(findings_of(*snapshot), "MTG102") ==
          std::vector<std::string>{"DestinationRule web-mtls.shop",
                                   "PeerAuthentication web-off.shop"});
}

TEST_CASE("A DestinationRule ISTIO_MUTUAL towards a workload without a sidecar is MTG103 on the "
          "rule only",
          "[flows][seeds]") {
    const auto snapshot =
        snapshot_of(cluster({destination_rule("front", "plain-mtls", plain).tls("ISTIO_MUTUAL")}));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, plain, "plain") ==
          "ISTIO_MUTUAL NO_SIDECAR FAIL");
    const auto findings = with_code(findings_of(*snapshot), "MTG103");
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].resource.kind == "DestinationRule");
    CHECK(findings[0].related.empty());
    CHECK(findings[0].flow->server == "NO_SIDECAR");
}

TEST_CASE("Originating TLS from a sidecar yields MTG104, MTG201 or MTG202 by server mode",
          "[flows]") {
    auto [rule_tls, server_mode, row, code] =
        GENERATE(table<std::string, std::string, std::string, std::string>({
            {"SIMPLE", "STRICT", "SIMPLE STRICT FAIL", "MTG104"},
            {"SIMPLE", "PERMISSIVE", "SIMPLE PERMISSIVE DEPENDS", "MTG202"},
            {"SIMPLE", "DISABLE", "SIMPLE DISABLE DEPENDS", "MTG202"},
            {"MUTUAL", "STRICT", "MUTUAL STRICT DEPENDS", "MTG201"},
            {"MUTUAL", "PERMISSIVE", "MUTUAL PERMISSIVE DEPENDS", "MTG202"},
        }));
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "default").mode(server_mode),
        destination_rule("front", "tls-origination", web).tls(rule_tls),
    }));
    INFO(rule_tls << " to " << server_mode);
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") == row);
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, code) ==
          std::vector<std::string>{"DestinationRule tls-origination.front",
                                   "PeerAuthentication default.shop"});
}

TEST_CASE("Clients without a sidecar send plaintext whatever DestinationRules say", "[flows]") {
    const auto snapshot = snapshot_of(cluster({
        destination_rule("legacy", "legacy-mtls", web).tls("ISTIO_MUTUAL"),
        destination_rule("shop", "shop-mtls", "web").tls("ISTIO_MUTUAL"),
    }));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT PERMISSIVE PLAINTEXT");
    CHECK(flow_of(rows, "front", true, web, "web") == "ISTIO_MUTUAL PERMISSIVE MTLS");
}

TEST_CASE("Auto mTLS corner case §5.4 a: namespace DISABLE with a workload STRICT fails",
          "[flows][auto]") {
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "ns-off").disable(),
        peer_authentication("shop", "web-strict").selecting({{"app", "web"}}).strict(),
    }));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
    const auto findings = with_code(findings_of(*snapshot), "MTG101");
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].resource.name == "web-strict");
    CHECK(refs(findings[0].related) == std::vector<std::string>{"PeerAuthentication ns-off.shop"});
    CHECK(findings[0].flow->client_namespaces == std::vector<std::string>{"front", "shop"});
}

TEST_CASE("Auto mTLS corner case §5.4 b: a headless service with a DISABLE workload fails",
          "[flows][auto]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "db-a").labels({{"app", "db"}, {"shard", "a"}}).with_sidecar(),
        deployment("shop", "db-b").labels({{"app", "db"}, {"shard", "b"}}).with_sidecar(),
        service("shop", "db").selecting({{"app", "db"}}).port(5432, 5432).headless(),
        peer_authentication("shop", "b-off").selecting({{"shard", "b"}}).disable(),
    });
    const auto rows = matrix_rows(*snapshot);
    const std::string db = "db.shop.svc.cluster.local";
    CHECK(flow_of(rows, "front", true, db, "db-a") == "ISTIO_MUTUAL PERMISSIVE MTLS");
    CHECK(flow_of(rows, "front", true, db, "db-b") == "ISTIO_MUTUAL DISABLE FAIL");
    CHECK(reported_on(findings_of(*snapshot), "MTG102") ==
          std::vector<std::string>{"PeerAuthentication b-off.shop"});
}

TEST_CASE("Semantics §4: ISTIO_MUTUAL with a port entry without tls falls back to auto mTLS, so "
          "workloads without a sidecar get plaintext and nothing fails",
          "[flows][auto]") {
    const auto snapshot = snapshot_of(cluster({
        destination_rule("shop", "plain-rule", "plain").tls("ISTIO_MUTUAL").port_without_tls(80),
    }));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, plain, "plain") ==
          "PLAINTEXT NO_SIDECAR PLAINTEXT");
    CHECK(reported_on(findings_of(*snapshot), "MTG103").empty());
}

TEST_CASE("Semantics §4: a DestinationRule MUTUAL without certificates is dropped by istiod, so "
          "sidecar clients send plaintext and fail against STRICT",
          "[flows][dropped-tls]") {
    json rule = destination_rule("shop", "web-rule", "web");
    rule["spec"]["trafficPolicy"]["tls"] = {{"mode", "MUTUAL"}}; // no clientCertificate, privateKey
    const auto snapshot =
        snapshot_of(cluster({peer_authentication("shop", "default").strict(), rule}));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG101") ==
          std::vector<std::string>{"DestinationRule web-rule.shop",
                                   "PeerAuthentication default.shop"});
    CHECK(reported_on(findings, "MTG201").empty());
    for (const auto& f : with_code(findings, "MTG101"))
        if (f.resource.kind == "DestinationRule")
            CHECK(f.message.find("Istio rejects this DestinationRule") != std::string::npos);
}

TEST_CASE("Auto mTLS corner case §5.4 d: DISABLE with a port entry without tls fails towards "
          "STRICT workloads",
          "[flows][auto]") {
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "default").strict(),
        destination_rule("shop", "web-rule", "web").tls("DISABLE").port_without_tls(80),
    }));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
    CHECK(reported_on(findings_of(*snapshot), "MTG101") ==
          std::vector<std::string>{"DestinationRule web-rule.shop",
                                   "PeerAuthentication default.shop"});
}

TEST_CASE("Legacy §7: a MeshPolicy with mtls {} and auto mTLS off makes every sidecar client "
          "fail (IST0113)",
          "[flows][legacy]") {
    const auto snapshot = snapshot_of(cluster({mesh_policy("default").strict()}),
                                      settings_for(model::IstioVersion{5}));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG101") == std::vector<std::string>{"MeshPolicy default"});
    CHECK(reported_on(findings, "MTG203") == std::vector<std::string>{"MeshPolicy default"});

    SECTION("a root DestinationRule ISTIO_MUTUAL for *.local fixes the sidecar clients") {
        const auto fixed = snapshot_of(
            cluster({mesh_policy("default").strict(),
                     destination_rule("istio-system", "default", "*.local").tls("ISTIO_MUTUAL")}),
            settings_for(model::IstioVersion{5}));
        CHECK(flow_of(matrix_rows(*fixed), "front", true, web, "web") ==
              "ISTIO_MUTUAL STRICT MTLS");
        CHECK(with_code(findings_of(*fixed), "MTG101").empty());
    }
}

TEST_CASE("Legacy §7: ISTIO_MUTUAL towards a plaintext-only Policy is MTG102 (the 503 of the "
          "walkthrough)",
          "[flows][legacy]") {
    const auto snapshot =
        snapshot_of(cluster({
                        policy("shop", "web-plaintext").target("web").plaintext_only(),
                        destination_rule("front", "web-mtls", web).tls("ISTIO_MUTUAL"),
                    }),
                    settings_for(model::IstioVersion{5}));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") ==
          "ISTIO_MUTUAL DISABLE FAIL");
    CHECK(reported_on(findings_of(*snapshot), "MTG102") ==
          std::vector<std::string>{"DestinationRule web-mtls.front", "Policy web-plaintext.shop"});
}

namespace {

// shop/web-v1 and web-v2 (sidecars, STRICT) behind shop/web; front/ui and side/app are sidecar
// clients; the DR sends ISTIO_MUTUAL, but DISABLE through subset v2.
std::vector<json> subset_cluster(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("side", "app").labels({{"app", "side"}}).with_sidecar(),
        deployment("shop", "web-v1").labels({{"app", "web"}, {"version", "v1"}}).with_sidecar(),
        deployment("shop", "web-v2").labels({{"app", "web"}, {"version", "v2"}}).with_sidecar(),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
        destination_rule("shop", "web", "web")
            .tls("ISTIO_MUTUAL")
            .subset("v1", {{"version", "v1"}})
            .subset("v2", {{"version", "v2"}}, "DISABLE"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

} // namespace

TEST_CASE("§15: a subset with its own TLS gets flows of its own, for its endpoints only, when a "
          "VirtualService routes there",
          "[flows][subset]") {
    const auto snapshot =
        snapshot_of(subset_cluster({virtual_service("shop", "web", {"web"}).route("web", "v2")}));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "front", true, web, "web-v2", "v2") == "PLAINTEXT STRICT FAIL");
    CHECK(flow_of(rows, "front", true, web, "web-v1", "v2") == "no row");
    CHECK(flow_of(rows, "front", true, web, "web-v1", "v1") == "no row"); // same as the service
    CHECK(flow_of(rows, "front", true, web, "web-v2") == "ISTIO_MUTUAL STRICT MTLS");
    const auto findings = with_code(findings_of(*snapshot), "MTG101");
    REQUIRE_FALSE(findings.empty());
    for (const auto& f : findings)
        CHECK(f.flow->subset == "v2");
}

TEST_CASE("§15: a subset no VirtualService route uses carries no traffic: no flows, no finding",
          "[flows][subset]") {
    // No VirtualService at all, one that routes to another subset, one that routes to the
    // service without a subset, one for another host.
    auto extra = GENERATE(
        std::vector<json>{},
        std::vector<json>{virtual_service("shop", "web", {"web"}).route("web", "v1")},
        std::vector<json>{virtual_service("shop", "web", {"web"}).route("web")},
        std::vector<json>{virtual_service("shop", "plain", {"plain"}).route("plain", "v2")});
    const auto snapshot = snapshot_of(subset_cluster(extra));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "front", true, web, "web-v2", "v2") == "no row");
    CHECK(flow_of(rows, "front", true, web, "web-v2") == "ISTIO_MUTUAL STRICT MTLS");
    CHECK(with_code(findings_of(*snapshot), "MTG101").empty());
}

TEST_CASE("§15: an ISTIO_MUTUAL subset towards pods without a sidecar fails only where routed",
          "[flows][subset]") {
    // The false denial this section fixes: an unused subset reported as MTG103.
    const std::vector<json> base{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080, "http"),
        destination_rule("shop", "plain", "plain")
            .subset("mtls", {{"app", "plain"}}, "ISTIO_MUTUAL"),
    };
    CHECK(with_code(findings_of(*snapshot_of(base)), "MTG103").empty());
    auto routed = base;
    routed.push_back(virtual_service("front", "to-plain", {"plain.shop.svc.cluster.local"})
                         .route("plain.shop.svc.cluster.local", "mtls"));
    const auto snapshot = snapshot_of(routed);
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, plain, "plain", "mtls") ==
          "ISTIO_MUTUAL NO_SIDECAR FAIL");
    const auto findings = with_code(findings_of(*snapshot), "MTG103");
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].flow->subset == "mtls");
    CHECK(findings[0].flow->client_namespaces == std::vector<std::string>{"front"});
}

TEST_CASE("§15: subset flows go only to the client namespaces the VirtualService is exported to",
          "[flows][subset]") {
    auto [export_to, expected] =
        GENERATE(table<std::vector<std::string>, std::vector<std::string>>({
            {{}, {"front", "shop", "side"}},
            {{"*"}, {"front", "shop", "side"}},
            {{"."}, {"shop"}},
            {{"side"}, {"side"}},
            {{".", "front"}, {"front", "shop"}},
        }));
    auto vs = virtual_service("shop", "web", {"web"}).route("web", "v2");
    if (!export_to.empty())
        vs.export_to(export_to);
    const auto snapshot = snapshot_of(subset_cluster({vs}));
    const auto rows = matrix_rows(*snapshot);
    std::vector<std::string> routed;
    for (const std::string ns : {"front", "shop", "side"})
        if (flow_of(rows, ns, true, web, "web-v2", "v2") == "PLAINTEXT STRICT FAIL")
            routed.push_back(ns);
    CHECK(routed == expected);
    const auto findings = with_code(findings_of(*snapshot), "MTG101");
    REQUIRE_FALSE(findings.empty());
    for (const auto& f : findings)
        CHECK(f.flow->client_namespaces == expected);
    // Everybody keeps the service-level cluster too.
    for (const std::string ns : {"front", "shop", "side"})
        CHECK(flow_of(rows, ns, true, web, "web-v2") == "ISTIO_MUTUAL STRICT MTLS");
}

TEST_CASE("§15: a VirtualService bound only to gateways does not route sidecar clients",
          "[flows][subset]") {
    auto [gateways, routes] = GENERATE(table<std::vector<std::string>, bool>({
        {{"istio-system/public"}, false},
        {{"public", "istio-system/internal"}, false},
        {{"mesh"}, true},
        {{"istio-system/public", "mesh"}, true},
    }));
    const auto snapshot = snapshot_of(subset_cluster(
        {virtual_service("shop", "web", {"web"}).gateways(gateways).route("web", "v2")}));
    CHECK((flow_of(matrix_rows(*snapshot), "front", true, web, "web-v2", "v2") ==
           "PLAINTEXT STRICT FAIL") == routes);
}

TEST_CASE("§15: the VirtualService's hosts must match the service, and the destination must be it",
          "[flows][subset]") {
    auto [vs, routes] = GENERATE(table<json, bool>({
        {virtual_service("shop", "web", {"web"}).route("web", "v2"), true},
        // Short names resolve in the VirtualService's namespace.
        {virtual_service("front", "web", {"web"}).route("web", "v2"), false},
        {virtual_service("front", "web", {"web.shop.svc.cluster.local"})
             .route("web.shop.svc.cluster.local", "v2"),
         true},
        {virtual_service("front", "web", {"*.shop.svc.cluster.local"})
             .route("web.shop.svc.cluster.local", "v2"),
         true},
        {virtual_service("front", "web", {"*"}).route("web.shop.svc.cluster.local", "v2"), true},
        {virtual_service("front", "web", {"other.shop.svc.cluster.local"})
             .route("web.shop.svc.cluster.local", "v2"),
         false},
        // A mirror is a destination too; tcp and tls routes count.
        {virtual_service("shop", "web", {"web"}).mirror("web", "v2"), true},
        {virtual_service("shop", "web", {"web"}).route("web", "v2", 0, "tcp"), true},
        {virtual_service("shop", "web", {"web"}).route("web", "v2", 0, "tls"), true},
        // A destination port picks that service port only.
        {virtual_service("shop", "web", {"web"}).route("web", "v2", 80), true},
        {virtual_service("shop", "web", {"web"}).route("web", "v2", 81), false},
    }));
    INFO(vs.dump());
    const auto snapshot = snapshot_of(subset_cluster({vs}));
    CHECK((flow_of(matrix_rows(*snapshot), "front", true, web, "web-v2", "v2") ==
           "PLAINTEXT STRICT FAIL") == routes);
}

TEST_CASE("§15: a route whose matches name source namespaces sends only their clients",
          "[flows][subset]") {
    json vs = virtual_service("shop", "web", {"web"}).route("web", "v2").route("web", "v3").body();
    vs["spec"]["http"][0]["match"] = json::array({{{"sourceNamespace", "side"}}});
    vs["spec"]["http"][1]["match"] = json::array({{{"sourceNamespace", "front"}}});
    const auto snapshot = snapshot_of(subset_cluster({vs}));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "side", true, web, "web-v2", "v2") == "PLAINTEXT STRICT FAIL");
    CHECK(flow_of(rows, "front", true, web, "web-v2", "v2") == "no row");
    CHECK(flow_of(rows, "shop", true, web, "web-v2", "v2") == "no row");
    // The undefined subset v3 fails only for front, the one namespace its route takes.
    const auto findings = with_code(findings_of(*snapshot), "MTG107");
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].flow->subset == "v3");
    CHECK(findings[0].flow->client_namespaces == std::vector<std::string>{"front"});
}

TEST_CASE(
    "§15: a subset's portLevelSettings entry replaces its TLS for that port, even without tls",
    "[flows][subset]") {
    // Pods without a sidecar; the service-level cluster sends plaintext (DISABLE).
    const json mtls_but_81 = {
        {"tls", {{"mode", "ISTIO_MUTUAL"}}},
        {"portLevelSettings",
         json::array({{{"port", {{"number", 81}}}, {"tls", {{"mode", "DISABLE"}}}},
                      {{"port", {{"number", 82}}},
                       {"connectionPool", {{"tcp", {{"maxConnections", 5}}}}}}})}};
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "plain")
            .selecting({{"app", "plain"}})
            .port(80, 8080, "a")
            .port(81, 8080, "b")
            .port(82, 8080, "c"),
        destination_rule("shop", "plain", "plain")
            .tls("DISABLE")
            .subset_policy("s", {{"app", "plain"}}, mtls_but_81),
        virtual_service("shop", "plain", {"plain"}).route("plain", "s"),
    });
    const auto rows = matrix_rows(*snapshot);
    auto port_row = [&](int port) {
        for (const auto& r : rows)
            if (r.client_namespace == "front" && r.subset == "s" && r.port == port)
                return r.client + " " + r.server + " " + r.verdict;
        return std::string("no row");
    };
    CHECK(port_row(80) == "ISTIO_MUTUAL NO_SIDECAR FAIL");
    CHECK(port_row(81) == "no row"); // DISABLE, as the service-level cluster
    CHECK(port_row(82) == "PLAINTEXT NO_SIDECAR PLAINTEXT"); // no TLS: auto mTLS, no sidecar
}

TEST_CASE("§15 MTG107: a route to a subset the clients' DestinationRule does not define is an "
          "error on the VirtualService",
          "[flows][subset][MTG107]") {
    SECTION("the DR lacks the subset") {
        const auto snapshot = snapshot_of(
            subset_cluster({virtual_service("shop", "web", {"web"}).route("web", "v3")}));
        const auto findings = with_code(findings_of(*snapshot), "MTG107");
        REQUIRE(findings.size() == 1);
        const auto& f = findings[0];
        CHECK(f.severity == conflict::Severity::Error);
        CHECK(f.resource.kind == "VirtualService");
        CHECK(refs(f.related) == std::vector<std::string>{"DestinationRule web.shop"});
        CHECK(f.flow->subset == "v3");
        CHECK(f.flow->host == web);
        CHECK(f.flow->client_namespaces == std::vector<std::string>{"front", "shop", "side"});
        CHECK_THAT(f.message, Catch::Contains("subset v3") && Catch::Contains("503") &&
                                  Catch::Contains("spec.http[0].route[0].destination"));
    }
    SECTION("only the clients that see no DR with the subset") {
        // side has its own DR for the host without subsets; the VS is exported everywhere.
        const auto snapshot = snapshot_of(subset_cluster(
            {destination_rule("side", "mine", "web.shop.svc.cluster.local").tls("ISTIO_MUTUAL"),
             virtual_service("shop", "web", {"web"}).route("web", "v2")}));
        const auto findings = with_code(findings_of(*snapshot), "MTG107");
        REQUIRE(findings.size() == 1);
        CHECK(findings[0].flow->client_namespaces == std::vector<std::string>{"side"});
        CHECK(refs(findings[0].related) == std::vector<std::string>{"DestinationRule mine.side"});
    }
    SECTION("no DR at all") {
        const auto snapshot =
            snapshot_of(cluster({virtual_service("front", "web", {"web.shop.svc.cluster.local"})
                                     .export_to({"."})
                                     .route("web.shop.svc.cluster.local", "v1")}));
        const auto findings = with_code(findings_of(*snapshot), "MTG107");
        REQUIRE(findings.size() == 1);
        CHECK(findings[0].related.empty());
        CHECK(findings[0].flow->client_namespaces == std::vector<std::string>{"front"});
    }
    SECTION("a defined subset, or a gateway-only VirtualService, is fine") {
        CHECK(with_code(findings_of(*snapshot_of(subset_cluster(
                            {virtual_service("shop", "web", {"web"}).route("web", "v1")}))),
                        "MTG107")
                  .empty());
        CHECK(with_code(
                  findings_of(*snapshot_of(subset_cluster({virtual_service("shop", "web", {"web"})
                                                               .gateways({"istio-system/public"})
                                                               .route("web", "v3")}))),
                  "MTG107")
                  .empty());
    }
}

TEST_CASE("§15 MTG107: the client namespaces are in name order when a view adds a namespace the "
          "snapshot lacks",
          "[flows][subset][MTG107]") {
    const auto snapshot =
        snapshot_of(subset_cluster({virtual_service("shop", "web", {"web"}).route("web", "v3")}));
    // "aaa" holds a policy, so the view counts it a sidecar client namespace; the snapshot
    // numbers its namespaces in name order, and the view numbers "aaa" after all of them.
    const auto policy =
        model::decode_object(peer_authentication("aaa", "default").permissive().body());
    REQUIRE(policy.object);
    const auto config = model::build_namespace_config(
        "aaa", {std::get<model::PeerAuthentication>(*policy.object)}, {}, {}, {}, {}, *snapshot);
    const resolution::ConfigView view(*snapshot, config, false);
    REQUIRE(view.is_mesh_client(*view.namespace_id("aaa")));
    const auto findings =
        conflict::undefined_subset_routes(view, {service_id(*snapshot, "shop", "web")});
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].flow->client_namespaces ==
          std::vector<std::string>{"aaa", "front", "shop", "side"});
}

TEST_CASE("ambient.md §14: evaluate_service with skip_hidden hands over every flow but those of "
          "the clients a Sidecar hides the host from, in the same order",
          "[flows][sidecar]") {
    // front's Sidecar hides shop; side's hides all but its own namespace and shop; the root's
    // default Sidecar hides everything but the root's and the client's own namespace from the
    // namespaces without their own; quiet has sidecar clients and no Sidecar.
    const auto snapshot = snapshot_of(subset_cluster({
        sidecar("front", "default").egress({"./*"}),
        sidecar("side", "default").egress({"./*", "shop/*"}),
        sidecar("istio-system", "default").egress({"./*", "istio-system/*"}),
        deployment("quiet", "app").labels({{"app", "quiet"}}).with_sidecar(),
        deployment("open", "app").labels({{"app", "open"}}).with_sidecar(),
        sidecar("open", "default").egress({"*/*"}),
    }));
    const resolution::ConfigView view(*snapshot);
    std::size_t hidden_flows = 0;
    for (std::size_t id = 0; id < snapshot->services().size(); ++id) {
        auto flows_of = [&](bool skip_hidden) {
            std::vector<std::string> out;
            conflict::EvaluateOptions options;
            options.skip_hidden = skip_hidden;
            conflict::evaluate_service(
                view, static_cast<model::ServiceId>(id),
                [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
                    if (flow.hidden_by) {
                        ++hidden_flows;
                        if (skip_hidden)
                            out.push_back("hidden flow handed over");
                        return;
                    }
                    out.push_back(std::to_string(static_cast<int>(flow.client)) + " " +
                                  std::to_string(flow.port) + " " +
                                  (flow.workload ? flow.workload->name : "") + " " +
                                  std::to_string(reinterpret_cast<std::uintptr_t>(who.outcome)));
                },
                options);
            return out;
        };
        INFO(snapshot->services()[id].host);
        CHECK(flows_of(true) == flows_of(false));
    }
    CHECK(hidden_flows > 0); // the cluster does hide hosts
}

TEST_CASE("Client namespaces that get the same answer are aggregated in one finding", "[flows]") {
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "default").strict(),
        destination_rule("shop", "web-off", "web").tls("DISABLE"),
        kube_namespace("a").injected(),
        kube_namespace("b").injected(),
    }));
    const auto findings = with_code(findings_of(*snapshot), "MTG101");
    REQUIRE(findings.size() == 2); // on the DestinationRule and on the PeerAuthentication
    for (const auto& f : findings)
        CHECK(f.flow->client_namespaces == std::vector<std::string>{"a", "b", "front", "shop"});
}

TEST_CASE("Only TCP service ports carry mTLS; UDP and SCTP ports have no flows", "[flows]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "dns").labels({{"app", "dns"}}).with_sidecar(),
        service("shop", "dns")
            .selecting({{"app", "dns"}})
            .port(53, 53, "dns-udp", "UDP")
            .port(3868, 3868, "sctp", "SCTP")
            .port(5353, 5353, "dns-tcp", "TCP"),
        peer_authentication("shop", "default").strict(),
        destination_rule("front", "dns-off", "dns.shop.svc.cluster.local").tls("DISABLE"),
    });
    std::set<int> ports; // one row per client namespace: front and shop
    for (const auto& r : matrix_rows(*snapshot))
        ports.insert(r.port);
    CHECK(ports == std::set<int>{5353});
}

TEST_CASE("Services with no selector, in kube-system or of the control plane get no flows",
          "[flows]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("kube-system", "dns").labels({{"k8s-app", "dns"}}),
        deployment("istio-system", "istiod").labels({{"app", "istiod"}, {"istio", "pilot"}}),
        service("kube-system", "kube-dns").selecting({{"k8s-app", "dns"}}).port(53, 53),
        service("istio-system", "istiod")
            .selecting({{"app", "istiod"}})
            .port(15012, 15012)
            .label("istio", "pilot"),
        service("shop", "external-db").port(5432, 5432),
        destination_rule("front", "everything", "*").tls("ISTIO_MUTUAL"),
    });
    CHECK(matrix_rows(*snapshot).empty());
    CHECK(codes_of(findings_of(*snapshot)) == std::vector<std::string>{});
}

TEST_CASE("A named target port the workload does not declare is not an endpoint of that port",
          "[flows]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "web")
            .labels({{"app", "web"}})
            .with_sidecar()
            .container_port(8080, "http"),
        service("shop", "web")
            .selecting({{"app", "web"}})
            .named_target_port(80, "http")
            .named_target_port(9090, "metrics"),
    });
    std::set<std::pair<int, int>> ports;
    for (const auto& r : matrix_rows(*snapshot))
        ports.emplace(r.port, r.target_port);
    CHECK(ports == std::set<std::pair<int, int>>{{80, 8080}});
}

TEST_CASE("ServiceEntry MESH_EXTERNAL hosts: ISTIO_MUTUAL is MTG103, SIMPLE is fine",
          "[flows][external]") {
    auto [rule_tls, verdict, code] = GENERATE(table<std::string, std::string, std::string>({
        {"ISTIO_MUTUAL", "FAIL", "MTG103"},
        {"SIMPLE", "DEPENDS", ""},
        {"", "PLAINTEXT", ""},
    }));
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        service_entry("front", "api", {"api.example.com"}),
    };
    if (!rule_tls.empty())
        objects.push_back(destination_rule("istio-system", "mesh", "*").tls(rule_tls));
    const auto snapshot = snapshot_of(objects);
    const auto row = row_of(matrix_rows(*snapshot), "front", true, "api.example.com", "");
    REQUIRE(row.has_value());
    CHECK(row->verdict == verdict);
    const auto findings = findings_of(*snapshot);
    if (code.empty()) {
        CHECK(with_code(findings, "MTG103").empty());
    } else {
        CHECK(reported_on(findings, code) ==
              std::vector<std::string>{"DestinationRule mesh.istio-system"});
    }
}

TEST_CASE("A MESH_INTERNAL or wildcard ServiceEntry host has no flows", "[flows][external]") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        service_entry("front", "vm", {"vm.internal"}, "MESH_INTERNAL"),
        service_entry("front", "wild", {"*.example.com"}),
        destination_rule("front", "mtls", "*").tls("ISTIO_MUTUAL"),
    });
    CHECK(matrix_rows(*snapshot).empty());
}

TEST_CASE("evaluate_service hands every flow to the sink with its deciding objects", "[flows]") {
    const auto snapshot = snapshot_of(cluster({
        peer_authentication("shop", "default").strict(),
        destination_rule("front", "web-off", web).tls("DISABLE"),
    }));
    const resolution::ConfigView view(*snapshot);
    std::vector<std::string> seen;
    conflict::evaluate_service(view, service_id(*snapshot, "shop", "web"),
                               [&](const conflict::Flow& flow, const conflict::FlowClients& who) {
                                   const bool sidecar =
                                       flow.client == conflict::ClientKind::Sidecar;
                                   std::string line = sidecar ? "sidecar" : "plain";
                                   line += " " + std::string(resolution::to_string(flow.send));
                                   line += " " + code_text(flow.code);
                                   if (const auto* dr = conflict::deciding_rule(flow))
                                       line += " by " + dr->ref.name;
                                   CHECK((who.outcome == nullptr) == !sidecar);
                                   seen.push_back(line);
                               });
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::string>{"plain PLAINTEXT MTG203", "sidecar ISTIO_MUTUAL ",
                                           "sidecar PLAINTEXT MTG101 by web-off"});
}

TEST_CASE("With no server-side object (1.4 defaults to plaintext) a conflict is reported on the "
          "DestinationRule only",
          "[flows][legacy]") {
    const auto snapshot =
        snapshot_of(cluster({destination_rule("front", "web-mtls", web).tls("ISTIO_MUTUAL")}),
                    settings_for(model::IstioVersion{4}));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") ==
          "ISTIO_MUTUAL DISABLE FAIL");
    const auto findings = with_code(findings_of(*snapshot), "MTG102");
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].resource.name == "web-mtls");
    CHECK(findings[0].related.empty());
}

TEST_CASE("§13: a port the sidecar does not intercept takes plaintext whatever the policy says, "
          "and Istio mTLS fails there",
          "[flows][interception]") {
    auto [annotation, value] = GENERATE(table<std::string, std::string>({
        {"traffic.sidecar.istio.io/excludeInboundPorts", "9090, 8080"},
        {"traffic.sidecar.istio.io/includeInboundPorts", "9090"},
        {"traffic.sidecar.istio.io/includeInboundPorts", ""},
    }));
    INFO(annotation << ": \"" << value << "\"");
    auto objects = cluster({peer_authentication("shop", "default").strict()});
    objects[2] = deployment("shop", "web")
                     .labels({{"app", "web"}})
                     .with_sidecar()
                     .pod_annotation(annotation, value)
                     .container_port(8080);
    const auto snapshot = snapshot_of(objects);
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT NO_SIDECAR PLAINTEXT");
    CHECK(flow_of(rows, "front", true, web, "web") == "ISTIO_MUTUAL NO_SIDECAR FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG210") ==
          std::vector<std::string>{"PeerAuthentication default.shop"});
    const auto mtls = with_code(findings, "MTG103");
    REQUIRE(mtls.size() == 1);
    CHECK(mtls[0].message.find("does not intercept") != std::string::npos);
    // The intercepted sibling service keeps its STRICT verdicts.
    CHECK(flow_of(rows, "legacy", false, plain, "plain") == "PLAINTEXT NO_SIDECAR PLAINTEXT");
}

TEST_CASE("§13: an intercepted port keeps the sidecar's mode", "[flows][interception]") {
    auto objects = cluster({peer_authentication("shop", "default").strict()});
    objects[2] = deployment("shop", "web")
                     .labels({{"app", "web"}})
                     .with_sidecar()
                     .pod_annotation("traffic.sidecar.istio.io/excludeInboundPorts", "15020,9090")
                     .container_port(8080);
    const auto snapshot = snapshot_of(objects);
    CHECK(flow_of(matrix_rows(*snapshot), "legacy", false, web, "web") == "PLAINTEXT STRICT FAIL");
    CHECK(reported_on(findings_of(*snapshot), "MTG210").empty());
}

TEST_CASE("§13: sidecar clients whose pods skip the sidecar for a port send plaintext there, and "
          "a STRICT port is a warning for them, never an error",
          "[flows][interception]") {
    auto [annotation, value] = GENERATE(table<std::string, std::string>({
        {"traffic.sidecar.istio.io/excludeOutboundPorts", "443,80"},
        {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.96.0.0/12"},
        {"traffic.sidecar.istio.io/includeOutboundIPRanges", ""},
    }));
    INFO(annotation << ": \"" << value << "\"");
    auto objects = cluster(
        {peer_authentication("shop", "default").strict(), deployment("front", "reports")
                                                              .labels({{"app", "reports"}})
                                                              .with_sidecar()
                                                              .pod_annotation(annotation, value)});
    objects[4] = service("shop", "web")
                     .selecting({{"app", "web"}})
                     .port(80, 8080, "http")
                     .cluster_ip("10.96.12.34");
    const auto snapshot = snapshot_of(objects);
    const auto rows = matrix_rows(*snapshot);
    // The namespace's other pods still go through their sidecars.
    CHECK(flow_of(rows, "front", true, web, "web") == "ISTIO_MUTUAL STRICT MTLS");
    CHECK(bypass_flow_of(rows, "front", web, "web") == "PLAINTEXT STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    const auto bypass = with_code(findings, "MTG101");
    REQUIRE(bypass.size() == 1);
    CHECK(bypass[0].severity == conflict::Severity::Warning);
    CHECK(bypass[0].flow->client_bypass == annotation);
    CHECK(bypass[0].flow->client_namespaces == std::vector<std::string>{"front"});
    CHECK_THAT(bypass[0].message, Catch::Contains("skip their sidecar") &&
                                      Catch::Contains(annotation) &&
                                      Catch::Contains("if they call it"));
}

TEST_CASE("§13, §14: pods that skip their sidecar are not hidden from a host by their namespace's "
          "Sidecar resource, nor dropped by REGISTRY_ONLY: their plaintext still meets STRICT",
          "[flows][interception][sidecar-resource]") {
    // The namespace's own Sidecar, or the root namespace's default for every namespace.
    const std::string hider = GENERATE(std::string("front"), std::string("istio-system"));
    const std::string outbound = GENERATE(std::string("ALLOW_ANY"), std::string("REGISTRY_ONLY"));
    INFO("Sidecar in " << hider << ", outboundTrafficPolicy " << outbound);
    auto objects =
        cluster({peer_authentication("shop", "default").strict(),
                 sidecar(hider, "default").egress({"./*"}).outbound(outbound),
                 deployment("front", "reports")
                     .labels({{"app", "reports"}})
                     .with_sidecar()
                     .pod_annotation("traffic.sidecar.istio.io/excludeOutboundPorts", "80")});
    const auto snapshot = snapshot_of(objects);
    CHECK(bypass_flow_of(matrix_rows(*snapshot), "front", web, "web") == "PLAINTEXT STRICT FAIL");
    const auto bypass = with_code(findings_of(*snapshot), "MTG101");
    REQUIRE(bypass.size() == 1);
    CHECK(bypass[0].flow->client_bypass == "traffic.sidecar.istio.io/excludeOutboundPorts");
    CHECK(bypass[0].severity == conflict::Severity::Warning);
}

TEST_CASE("§13: an outbound exclusion that does not cover the destination changes nothing",
          "[flows][interception]") {
    auto [annotation, value] = GENERATE(table<std::string, std::string>({
        {"traffic.sidecar.istio.io/excludeOutboundPorts", "5432"},
        {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "169.254.169.254/32"},
        {"traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8"},
        // Without the Service's cluster IP (a manifest not yet applied) ranges prove nothing.
        {"traffic.sidecar.istio.io/includeOutboundIPRanges", "172.16.0.0/12"},
    }));
    INFO(annotation << ": \"" << value << "\"");
    const bool with_ip = value != "172.16.0.0/12";
    auto objects = cluster(
        {peer_authentication("shop", "default").strict(), deployment("front", "reports")
                                                              .labels({{"app", "reports"}})
                                                              .with_sidecar()
                                                              .pod_annotation(annotation, value)});
    if (with_ip)
        objects[4] = service("shop", "web")
                         .selecting({{"app", "web"}})
                         .port(80, 8080, "http")
                         .cluster_ip("10.96.12.34");
    const auto snapshot = snapshot_of(objects);
    CHECK(bypass_flow_of(matrix_rows(*snapshot), "front", web, "web") == "no row");
    CHECK(with_code(findings_of(*snapshot), "MTG101").empty());
}

TEST_CASE("§13: a headless service is dialled at the pod, so the target port is what an "
          "exclusion must name",
          "[flows][interception]") {
    auto objects =
        cluster({peer_authentication("shop", "default").strict(),
                 deployment("front", "reports")
                     .labels({{"app", "reports"}})
                     .with_sidecar()
                     .pod_annotation("traffic.sidecar.istio.io/excludeOutboundPorts", "8080")});
    objects[4] =
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http").headless();
    const auto snapshot = snapshot_of(objects);
    CHECK(bypass_flow_of(matrix_rows(*snapshot), "front", web, "web") == "PLAINTEXT STRICT FAIL");
}

TEST_CASE("Issue 16: a DestinationRule that sets TLS for other ports only shares the conflict of "
          "the port it leaves to auto mTLS, as Istio 1.5's analyzer reported it",
          "[flows][attribution]") {
    json rule = destination_rule("shop", "web-admin", "web");
    rule["spec"]["trafficPolicy"]["portLevelSettings"] =
        json::array({{{"port", {{"number", 9090}}}, {"tls", {{"mode", "ISTIO_MUTUAL"}}}}});
    const auto snapshot = snapshot_of(
        cluster({auto_mtls(false), peer_authentication("shop", "default").strict(), rule}));
    CHECK(flow_of(matrix_rows(*snapshot), "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
    CHECK(reported_on(findings_of(*snapshot), "MTG101") ==
          std::vector<std::string>{"DestinationRule web-admin.shop",
                                   "PeerAuthentication default.shop"});

    SECTION("a rule with a top-level tls decides, and is named as before") {
        rule["spec"]["trafficPolicy"]["tls"] = {{"mode", "DISABLE"}};
        const auto again = snapshot_of(
            cluster({auto_mtls(false), peer_authentication("shop", "default").strict(), rule}));
        CHECK(reported_on(findings_of(*again), "MTG101") ==
              std::vector<std::string>{"DestinationRule web-admin.shop",
                                       "PeerAuthentication default.shop"});
    }
    SECTION("a rule with no TLS at all is not named") {
        json bare = destination_rule("shop", "web-pool", "web").traffic_policy_without_tls();
        const auto again = snapshot_of(
            cluster({auto_mtls(false), peer_authentication("shop", "default").strict(), bare}));
        CHECK(reported_on(findings_of(*again), "MTG101") ==
              std::vector<std::string>{"PeerAuthentication default.shop"});
    }
}

namespace {

const std::string webhook = "webhook.opa.svc.cluster.local";

} // namespace

TEST_CASE(
    "§16: the API server's calls fail only on STRICT ports (its own TLS is plaintext to Istio)",
    "[flows][codes][apiserver]") {
    auto [server, verdict, code] = GENERATE(table<ServerAccept, Verdict, std::string>({
        {ServerAccept::Strict, Verdict::Fail, "MTG108"},
        {ServerAccept::AmbientStrict, Verdict::Fail, "MTG108"},
        {ServerAccept::Permissive, Verdict::Plaintext, ""},
        {ServerAccept::Disable, Verdict::Plaintext, ""},
        {ServerAccept::NoSidecar, Verdict::Plaintext, ""},
        {ServerAccept::AmbientOpen, Verdict::Plaintext, ""},
        {ServerAccept::Unknown, Verdict::Plaintext, ""},
    }));
    INFO(resolution::to_string(server));
    CHECK(conflict::verdict_of(ClientSend::Plaintext, server) == verdict);
    CHECK(code_text(conflict::code_of(conflict::ClientKind::ApiServer, ClientSend::Plaintext,
                                      server, false)) == code);
    CHECK(conflict::to_string(conflict::ClientKind::ApiServer) == "none");
}

TEST_CASE("§16: a webhook behind a STRICT sidecar is MTG108, an error on the PeerAuthentication "
          "naming the webhook configuration",
          "[flows][apiserver]") {
    const auto snapshot =
        snapshot_of(webhook_cluster({peer_authentication("opa", "default").strict()}));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "kube-apiserver", false, webhook, "webhook") == "PLAINTEXT STRICT FAIL");
    CHECK(flow_of(rows, "opa", true, webhook, "webhook") == "ISTIO_MUTUAL STRICT MTLS");
    const auto row = row_of(rows, "kube-apiserver", false, webhook, "webhook");
    REQUIRE(row);
    CHECK(row->client_dataplane == "none");
    CHECK(row->target_port == 8443);

    const auto findings = findings_of(*snapshot);
    CHECK(codes_of(findings) == std::vector<std::string>{"MTG108"});
    const auto broken = with_code(findings, "MTG108");
    REQUIRE(broken.size() == 1);
    CHECK(broken[0].severity == conflict::Severity::Error);
    CHECK(broken[0].resource.kind == "PeerAuthentication");
    CHECK(model::display_name(broken[0].resource) == "default.opa");
    CHECK(refs(broken[0].related) ==
          std::vector<std::string>{"ValidatingWebhookConfiguration opa-validating"});
    REQUIRE(broken[0].flow.has_value());
    CHECK(broken[0].flow->client_namespaces == std::vector<std::string>{"kube-apiserver"});
    CHECK_FALSE(broken[0].flow->client_sidecar);
    CHECK(broken[0].flow->client_dataplane == "none");
    CHECK(broken[0].flow->port == 443);
    CHECK(broken[0].flow->target_port == 8443);
    CHECK_THAT(broken[0].message,
               Catch::Contains("ValidatingWebhookConfiguration opa-validating (webhook "
                               "check.opa-validating.example.com)") &&
                   Catch::Contains("webhook.opa.svc.cluster.local:443") &&
                   Catch::Contains("PERMISSIVE") && Catch::Contains("sidecar.istio.io/inject"));
}

TEST_CASE("§16: a webhook behind a STRICT ambient pod is MTG108 too (istio/istio#52874)",
          "[flows][apiserver][ambient]") {
    const auto snapshot = snapshot_of({
        kube_namespace("opa").label("istio.io/dataplane-mode", "ambient"),
        pod("opa", "webhook")
            .labels({{"app", "webhook"}})
            .pod_annotation("ambient.istio.io/redirection", "enabled")
            .container_port(8443),
        service("opa", "webhook").selecting({{"app", "webhook"}}).port(443, 8443, "https"),
        webhook_configuration("opa-mutating", "opa", "webhook", 443,
                              "MutatingWebhookConfiguration"),
        peer_authentication("opa", "default").strict(),
    });
    CHECK(flow_of(matrix_rows(*snapshot), "kube-apiserver", false, webhook, "webhook") ==
          "PLAINTEXT AMBIENT_STRICT FAIL");
    const auto findings = findings_of(*snapshot);
    CHECK(reported_on(findings, "MTG108") ==
          std::vector<std::string>{"PeerAuthentication default.opa"});
    const auto broken = with_code(findings, "MTG108");
    REQUIRE(broken.size() == 1);
    CHECK(broken[0].severity == conflict::Severity::Error);
    CHECK(refs(broken[0].related) ==
          std::vector<std::string>{"MutatingWebhookConfiguration opa-mutating"});
    CHECK_THAT(broken[0].message,
               Catch::Contains("ztunnel") && Catch::Contains("istio.io/dataplane-mode: none"));
}

TEST_CASE(
    "§16: PERMISSIVE on the webhook's target port, a url webhook or another port fire nothing",
    "[flows][apiserver]") {
    json url = webhook_configuration("external", "opa", "webhook");
    url["webhooks"][0]["clientConfig"] = {{"url", "https://opa.example.com/validate"}};
    auto [objects, why] = GENERATE_COPY(table<std::vector<json>, std::string>({
        {webhook_cluster({peer_authentication("opa", "default").permissive()}), "PERMISSIVE"},
        {webhook_cluster({peer_authentication("opa", "default").strict(),
                          peer_authentication("opa", "webhook-port")
                              .selecting({{"app", "webhook"}})
                              .port(8443, "PERMISSIVE")}),
         "portLevelMtls PERMISSIVE on the target port"},
        {webhook_cluster({peer_authentication("istio-system", "default").strict(),
                          peer_authentication("opa", "default").permissive()}),
         "the namespace's PERMISSIVE beats the mesh's STRICT"},
        {{kube_namespace("opa").injected(),
          deployment("opa", "webhook")
              .labels({{"app", "webhook"}})
              .with_sidecar()
              .container_port(8443),
          service("opa", "webhook").selecting({{"app", "webhook"}}).port(443, 8443, "https"), url,
          peer_authentication("opa", "default").strict()},
         "a clientConfig.url is outside the mesh"},
        {{kube_namespace("opa").injected(),
          deployment("opa", "webhook")
              .labels({{"app", "webhook"}})
              .with_sidecar()
              .container_port(8443),
          service("opa", "webhook").selecting({{"app", "webhook"}}).port(443, 8443, "https"),
          webhook_configuration("opa-validating", "opa", "webhook", 9443),
          peer_authentication("opa", "default").strict()},
         "the webhook calls a port the Service does not have"},
    }));
    INFO(why);
    const auto snapshot = snapshot_of(objects);
    CHECK(with_code(findings_of(*snapshot), "MTG108").empty());
}

TEST_CASE("§16: a mesh-wide STRICT reaches webhooks, APIServices and conversion webhooks alike",
          "[flows][apiserver]") {
    auto callee = GENERATE(as<json>{}, webhook_configuration("opa-validating", "opa", "webhook"),
                           api_service("v1beta1.custom.metrics.k8s.io", "opa", "webhook"),
                           crd_with_conversion("widgets.example.com", "opa", "webhook"));
    INFO(callee.dump());
    const auto snapshot = snapshot_of({
        kube_namespace("opa").injected(),
        deployment("opa", "webhook")
            .labels({{"app", "webhook"}})
            .with_sidecar()
            .container_port(8443),
        service("opa", "webhook").selecting({{"app", "webhook"}}).port(443, 8443, "https"),
        callee,
        peer_authentication("istio-system", "default").strict(),
    });
    const auto broken = with_code(findings_of(*snapshot), "MTG108");
    REQUIRE(broken.size() == 1);
    CHECK(model::display_name(broken[0].resource) == "default.istio-system");
    REQUIRE(broken[0].related.size() == 1);
    CHECK(broken[0].related[0].kind == callee["kind"]);
    CHECK(broken[0].related[0].name == callee["metadata"]["name"]);
}

TEST_CASE("§16: services not analysed as servers still get the API server's flows; istiod's "
          "webhook has no sidecar, so nothing fires",
          "[flows][apiserver]") {
    const auto snapshot = snapshot_of({
        deployment("istio-system", "istiod")
            .labels({{"app", "istiod"}, {"istio", "pilot"}})
            .container_port(15017),
        service("istio-system", "istiod")
            .selecting({{"app", "istiod"}})
            .port(443, 15017, "https-webhook")
            .port(15012, 15012)
            .label("istio", "pilot"),
        webhook_configuration("istio-validator-istio-system", "istio-system", "istiod"),
        peer_authentication("istio-system", "default").strict(),
    });
    const auto rows = matrix_rows(*snapshot);
    REQUIRE(rows.size() == 1); // the called port only, and only the API server as its client
    CHECK(rows[0].client_namespace == "kube-apiserver");
    CHECK(rows[0].port == 443);
    CHECK(rows[0].client + " " + rows[0].server + " " + rows[0].verdict ==
          "PLAINTEXT NO_SIDECAR PLAINTEXT");
    CHECK(with_code(findings_of(*snapshot), "MTG108").empty());
}

TEST_CASE("Analysis keeping three client names per finding finds the same findings and counts "
          "the other names",
          "[flows][analyze]") {
    // Six sidecar client namespaces send plaintext (a root DISABLE rule) to a STRICT server.
    std::vector<json> objects{
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
        peer_authentication("shop", "strict").strict(),
        destination_rule("istio-system", "plain", "*.local").tls("DISABLE"),
    };
    for (int i = 0; i < 6; ++i)
        objects.push_back(deployment("client-" + std::to_string(i), "app").with_sidecar());
    const auto snapshot = snapshot_of(objects);
    const auto all = analyze(*snapshot);
    const auto counted = analyze(*snapshot, 3);
    REQUIRE(all.internal_error.empty());
    REQUIRE(counted.internal_error.empty());
    REQUIRE(all.findings.size() == counted.findings.size());
    bool some_shortened = false;
    for (std::size_t i = 0; i < all.findings.size(); ++i) {
        const auto& whole = all.findings[i];
        const auto& short_one = counted.findings[i];
        CHECK(whole.code == short_one.code);
        CHECK(whole.severity == short_one.severity);
        if (!whole.flow || !short_one.flow)
            continue;
        const auto& names = whole.flow->client_namespaces;
        const auto& kept = short_one.flow->client_namespaces;
        CHECK(kept.size() == std::min<std::size_t>(names.size(), 3));
        CHECK(kept.size() + short_one.flow->client_namespaces_omitted == names.size());
        CHECK(std::equal(kept.begin(), kept.end(), names.begin()));
        some_shortened = some_shortened || names.size() > 3;
    }
    CHECK(some_shortened);
}
