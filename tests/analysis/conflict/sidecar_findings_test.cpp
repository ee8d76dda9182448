// Tests conflict/sidecar_findings: flows to hosts a Sidecar resource hides, their matrix rows and
// the one MTG211 warning per Sidecar (ambient.md §14).
#include "analysis/conflict/sidecar_findings.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;

namespace {

// front/ui is a sidecar client; shop/web (sidecar) serves Service web (80 -> 8080) under a STRICT
// namespace policy.
std::vector<json> cluster(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
        peer_authentication("shop", "default").strict(),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

const std::string web = "web.shop.svc.cluster.local";

std::string hidden_by(const std::vector<MatrixRow>& rows, const std::string& client_ns) {
    const auto row = row_of(rows, client_ns, true, web, "web");
    if (!row)
        return "no row";
    return row->hidden_by_name.empty() ? "-" : row->hidden_by_namespace + "/" + row->hidden_by_name;
}

} // namespace

SCENARIO("ambient.md §14: what front's sidecar sends to STRICT web depends on its Sidecar",
         "[sidecar][ambient-14]") {
    auto [context, objects, flow, hider, codes] = GENERATE(
        table<std::string, std::vector<json>, std::string, std::string, std::vector<std::string>>({
            {"no Sidecar: auto mTLS", {}, "ISTIO_MUTUAL STRICT MTLS", "-", {}},
            {"a Sidecar importing shop/*",
             {sidecar("front", "default").egress({"shop/*"})},
             "ISTIO_MUTUAL STRICT MTLS",
             "-",
             {}},
            {"a Sidecar importing only its own namespace: passthrough plaintext, a warning",
             {sidecar("front", "default").egress({"./*"})},
             "PLAINTEXT STRICT FAIL",
             "front/default",
             {"MTG211"}},
            {"the same with REGISTRY_ONLY: dropped, no row, still a warning",
             {sidecar("front", "default").egress({"./*"}).outbound("REGISTRY_ONLY")},
             "no row",
             "no row",
             {"MTG211"}},
            {"REGISTRY_ONLY from the mesh config",
             {sidecar("front", "default").egress({"./*"}),
              istio_config_map({{"outboundTrafficPolicy", {{"mode", "REGISTRY_ONLY"}}}})},
             "no row",
             "no row",
             {"MTG211"}},
            {"a hidden host gets no DestinationRule, even one that would fail",
             {sidecar("front", "default").egress({"~/*"}),
              destination_rule("front", "web", web).tls("DISABLE")},
             "PLAINTEXT STRICT FAIL",
             "front/default",
             {"MTG211"}},
            {"a visible host keeps its DestinationRule",
             {sidecar("front", "default").egress({"*/*"}),
              destination_rule("front", "web", web).tls("DISABLE")},
             "PLAINTEXT STRICT FAIL",
             "-",
             {"MTG101"}},
            {"the root namespace's default hides it from front",
             {sidecar("istio-system", "default").egress({"./*", "istio-system/*"})},
             "PLAINTEXT STRICT FAIL",
             "istio-system/default",
             {"MTG211"}},
            {"a Sidecar of another namespace changes nothing for front",
             {sidecar("shop", "default").egress({"./*"})},
             "ISTIO_MUTUAL STRICT MTLS",
             "-",
             {}},
        }));
    GIVEN(context) {
        const auto snapshot = snapshot_of(cluster(objects));
        const auto rows = matrix_rows(*snapshot);
        const auto findings = findings_of(*snapshot);
        THEN("front sends " << flow << ", hidden by " << hider) {
            CHECK(flow_of(rows, "front", true, web, "web") == flow);
            CHECK(hidden_by(rows, "front") == hider);
            // Hiding hosts is what a Sidecar is for: never MTG101, never an error.
            CHECK(codes_of(findings) == codes);
        }
    }
}

SCENARIO("ambient.md §14: the root namespace's default Sidecar reads ./ as each client's own "
         "namespace",
         "[sidecar][ambient-14]") {
    GIVEN("a root default importing ./* and shop's own sidecar client") {
        const auto snapshot = snapshot_of(cluster({
            sidecar("istio-system", "default").egress({"./*"}),
            deployment("shop", "cart").labels({{"app", "cart"}}).with_sidecar(),
        }));
        const auto rows = matrix_rows(*snapshot);
        THEN("shop's clients see web, front's do not") {
            CHECK(flow_of(rows, "shop", true, web, "web") == "ISTIO_MUTUAL STRICT MTLS");
            CHECK(flow_of(rows, "front", true, web, "web") == "PLAINTEXT STRICT FAIL");
        }
    }
}

SCENARIO("ambient.md §14: MTG211 is one warning per Sidecar naming a few STRICT services it "
         "hides, then a count",
         "[sidecar][ambient-14][MTG211]") {
    std::vector<json> objects{sidecar("front", "default").egress({"./*"})};
    for (const std::string name : {"a", "b", "c", "d", "e"}) {
        objects.push_back(
            deployment("shop", name).labels({{"app", name}}).with_sidecar().container_port(8080));
        objects.push_back(service("shop", name).selecting({{"app", name}}).port(80, 8080));
    }
    // Not STRICT: hidden too, but plaintext works there, so it is not named.
    objects.push_back(deployment("open", "o").labels({{"app", "o"}}).with_sidecar());
    objects.push_back(service("open", "o").selecting({{"app", "o"}}).port(80, 8080));
    const auto snapshot = snapshot_of(cluster(objects));
    const auto findings = with_code(findings_of(*snapshot), "MTG211");
    REQUIRE(findings.size() == 1);
    const auto& f = findings.front();
    CHECK(f.severity == conflict::Severity::Warning);
    CHECK(f.resource.kind == "Sidecar");
    CHECK(model::display_name(f.resource) == "default.front");
    CHECK(f.related.size() == 3);
    CHECK(f.detail.number == 6); // a..e and web
    CHECK(f.message.find("a.shop, b.shop, c.shop and 3 more") != std::string::npos);
    CHECK(f.message.find("passthrough") != std::string::npos);
    CHECK(f.message.find("o.open") == std::string::npos);
}

SCENARIO("ambient.md §14: ambient and non-mesh clients ignore Sidecar resources",
         "[sidecar][ambient-14]") {
    const auto snapshot = snapshot_of(cluster({
        sidecar("legacy", "default").egress({"./*"}),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
    }));
    const auto rows = matrix_rows(*snapshot);
    CHECK(flow_of(rows, "legacy", false, web, "web") == "PLAINTEXT STRICT FAIL");
    CHECK(with_code(findings_of(*snapshot), "MTG211").empty());
    CHECK_FALSE(with_code(findings_of(*snapshot), "MTG203").empty());
}

SCENARIO("ambient.md §14: a hidden flow's matrix row names the Sidecar in JSON and in text",
         "[sidecar][ambient-14][matrix]") {
    const auto snapshot = snapshot_of(cluster({sidecar("front", "default").egress({"./*"})}));
    const auto rows = matrix_rows(*snapshot);
    const auto json_rows = matrix_json(rows).at("rows");
    std::size_t hidden = 0;
    for (const auto& row : json_rows)
        if (row.contains("hiddenBy")) {
            ++hidden;
            CHECK(row.at("clientNamespace") == "front");
            CHECK(row.at("hiddenBy") == json{{"namespace", "front"}, {"name", "default"}});
        }
    CHECK(hidden == 1);
    CHECK(matrix_text(rows).find(web + ":80 hidden by Sidecar front/default: passthrough") !=
          std::string::npos);
}
