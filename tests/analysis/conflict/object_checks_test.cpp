// Tests conflict/object_checks: the single-object findings MTG204 to MTG209.
#include "analysis/conflict/object_checks.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;

namespace {

// shop/web (sidecar) listens on 8080 behind Service web (80 -> 8080, named http).
std::vector<json> shop(const std::vector<json>& more) {
    std::vector<json> objects{
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

std::vector<conflict::Finding> checks(const std::vector<json>& objects,
                                      model::Settings settings = {}) {
    const auto snapshot = snapshot_of(objects, std::move(settings));
    const resolution::ConfigView view(*snapshot);
    return conflict::check_objects(view);
}

// "CODE Kind name.namespace" for every finding, sorted.
std::vector<std::string> summary(const std::vector<conflict::Finding>& findings) {
    std::vector<std::string> out;
    for (const auto& f : findings)
        out.push_back(std::string(conflict::to_string(f.code)) + " " + f.resource.kind + " " +
                      model::display_name(f.resource));
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> summary(const std::vector<json>& objects, model::Settings settings = {}) {
    return summary(checks(objects, std::move(settings)));
}

using Lines = std::vector<std::string>;

} // namespace

TEST_CASE("A clean configuration has no object findings", "[object-checks]") {
    CHECK(summary(shop({peer_authentication("shop", "default").strict(),
                        peer_authentication("shop", "web")
                            .selecting({{"app", "web"}})
                            .port(8080, "PERMISSIVE"),
                        destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL")}))
              .empty());
}

TEST_CASE("MTG204: a portLevelMtls key that is no target port of the selected workloads",
          "[object-checks][MTG204]") {
    const auto findings = checks(shop({peer_authentication("shop", "web")
                                           .selecting({{"app", "web"}})
                                           .strict()
                                           .port(80, "PERMISSIVE")
                                           .port(8080, "PERMISSIVE")}));
    REQUIRE(summary(findings) == Lines{"MTG204 PeerAuthentication web.shop"});
    CHECK(findings[0].severity == conflict::Severity::Warning);
    CHECK(findings[0].detail.number == 80);
    CHECK(findings[0].detail.text == "8080");
}

TEST_CASE("MTG204 counts both declared container ports and the target ports Services use",
          "[object-checks][MTG204]") {
    // The workload declares no port; the Service targets 8080.
    const auto snapshot_objects = std::vector<json>{
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar(),
        deployment("shop", "api").labels({{"app", "api"}}).with_sidecar().container_port(9000),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        peer_authentication("shop", "both").selecting({{"tier", "x"}}).port(9000, "DISABLE"),
        peer_authentication("shop", "web").selecting({{"app", "web"}}).port(8080, "DISABLE"),
        peer_authentication("shop", "web-wrong")
            .selecting({{"app", "web"}})
            .port(9000, "DISABLE")
            .created(day(9)),
    };
    const auto findings = summary(snapshot_objects);
    CHECK(std::count(findings.begin(), findings.end(), "MTG204 PeerAuthentication web.shop") == 0);
    CHECK(std::count(findings.begin(), findings.end(),
                     "MTG204 PeerAuthentication web-wrong.shop") == 1);
}

TEST_CASE("MTG204 is not guessed when nothing is known about the workload's ports",
          "[object-checks][MTG204]") {
    CHECK(
        summary(
            {deployment("shop", "job").labels({{"app", "job"}}).with_sidecar(),
             peer_authentication("shop", "job").selecting({{"app", "job"}}).port(1234, "DISABLE")})
            .empty());
}

TEST_CASE("MTG204: a legacy Policy port selector that names no port of its Service",
          "[object-checks][MTG204]") {
    auto [selector, flagged] = GENERATE(table<json, bool>({
        {{{"name", "http"}}, false},
        {{{"number", 80}}, false},
        {{{"name", "grpc"}}, true},
        {{{"number", 8080}}, true}, // a target port, not a Service port
    }));
    json alpha = policy("shop", "web-port").strict();
    alpha["spec"]["targets"] = json::array({{{"name", "web"}, {"ports", json::array({selector})}}});
    INFO(selector.dump());
    const auto findings = checks(shop({alpha}), settings_for(model::IstioVersion{5}));
    const auto mtg204 = with_code(findings, "MTG204");
    CHECK(mtg204.size() == (flagged ? 1u : 0u));
    if (flagged) {
        CHECK(mtg204[0].resource.name == "web-port");
        REQUIRE(mtg204[0].related.size() == 1);
        CHECK(mtg204[0].related[0].kind == "Service");
        CHECK(mtg204[0].related[0].name == "web");
    }
}

TEST_CASE("MTG205: a newer namespace- or mesh-wide PeerAuthentication is ignored",
          "[object-checks][MTG205]") {
    auto ns = GENERATE(as<std::string>{}, "shop", "istio-system");
    const auto findings = checks(shop({
        peer_authentication(ns, "newer").strict().created(day(5)),
        peer_authentication(ns, "older").permissive().created(day(1)),
    }));
    INFO(ns);
    REQUIRE(summary(findings) == Lines{"MTG205 PeerAuthentication newer." + ns});
    CHECK(findings[0].related.at(0).name == "older");
    CHECK(findings[0].detail.text == (ns == "shop" ? "namespace-wide" : "mesh-wide"));
}

TEST_CASE("MTG205: a newer workload PeerAuthentication selecting the same workloads is ignored",
          "[object-checks][MTG205]") {
    const auto findings = checks(shop({
        peer_authentication("shop", "web-new").selecting({{"app", "web"}}).strict().created(day(7)),
        peer_authentication("shop", "web-old")
            .selecting({{"app", "web"}})
            .disable()
            .created(day(2)),
    }));
    REQUIRE(summary(findings) == Lines{"MTG205 PeerAuthentication web-new.shop"});
    CHECK(findings[0].related.at(0).name == "web-old");
    CHECK(findings[0].detail.number == 0); // ignored for all its workloads
}

TEST_CASE("MTG205: a merged DestinationRule whose trafficPolicy is ignored",
          "[object-checks][MTG205]") {
    SECTION("a newer rule with its own trafficPolicy") {
        const auto findings = checks(shop({
            destination_rule("shop", "newer", "web").tls("DISABLE").created(day(3)),
            destination_rule("shop", "older", "web").tls("ISTIO_MUTUAL").created(day(1)),
        }));
        REQUIRE(summary(findings) == Lines{"MTG205 DestinationRule newer.shop"});
        CHECK(findings[0].related.at(0).name == "older");
    }
    SECTION("a newer rule that only adds subsets is fine") {
        CHECK(summary(
                  shop({
                      destination_rule("shop", "subsets", "web")
                          .subset("v1", {{"version", "v1"}})
                          .created(day(3)),
                      destination_rule("shop", "older", "web").tls("ISTIO_MUTUAL").created(day(1)),
                  }))
                  .empty());
    }
    SECTION("rules with different exportTo do not merge and are not flagged") {
        CHECK(
            summary(
                shop({
                    destination_rule("shop", "a", "web").tls("DISABLE").export_to({"front"}),
                    destination_rule("shop", "b", "web").tls("ISTIO_MUTUAL").export_to({"billing"}),
                }))
                .empty());
    }
}

TEST_CASE("MTG205 and MTG208 for v1alpha1 policies", "[object-checks][MTG205][MTG208]") {
    const auto findings =
        checks(shop({
                   mesh_policy("default").strict(),
                   mesh_policy("mesh-wide").permissive(),
                   policy("shop", "default").strict().created(day(1)),
                   policy("shop", "default-2").permissive().created(day(2)),
                   policy("shop", "web-a").target("web").strict().created(day(1)),
                   policy("shop", "web-b").target("web").permissive().created(day(2)),
               }),
               settings_for(model::IstioVersion{5}));
    CHECK(summary(findings) == Lines{
                                   "MTG205 MeshPolicy mesh-wide",
                                   "MTG205 Policy default-2.shop",
                                   "MTG205 Policy web-b.shop",
                                   "MTG208 MeshPolicy default",
                                   "MTG208 MeshPolicy mesh-wide",
                                   "MTG208 Policy default-2.shop",
                                   "MTG208 Policy default.shop",
                                   "MTG208 Policy web-a.shop",
                                   "MTG208 Policy web-b.shop",
                               });
    for (const auto& f : with_code(findings, "MTG208"))
        CHECK(f.severity == conflict::Severity::Info);
}

TEST_CASE("MTG206: a PeerAuthentication selector that matches no workload",
          "[object-checks][MTG206]") {
    const auto findings =
        checks(shop({peer_authentication("shop", "typo").selecting({{"app", "wbe"}}).strict()}));
    REQUIRE(summary(findings) == Lines{"MTG206 PeerAuthentication typo.shop"});
    CHECK(findings[0].severity == conflict::Severity::Info);
    CHECK(findings[0].detail.text == "no-workload");
}

TEST_CASE("MTG206: a PeerAuthentication with a selector in the root namespace",
          "[object-checks][MTG206]") {
    const auto findings = checks(
        shop({peer_authentication("istio-system", "web").selecting({{"app", "web"}}).strict()}));
    REQUIRE(summary(findings) == Lines{"MTG206 PeerAuthentication web.istio-system"});
    CHECK(findings[0].detail.text == "root-selector");
}

TEST_CASE("MTG206: a DestinationRule host that matches no Service or ServiceEntry",
          "[object-checks][MTG206]") {
    auto [host, flagged] = GENERATE(table<std::string, bool>({
        {"web", false},
        {"web.shop.svc.cluster.local", false},
        {"*.shop.svc.cluster.local", false},
        {"*.local", false},
        {"*", false},
        {"api.example.com", false},
        {"*.example.com", false},
        {"wbe", true},
        {"web.other.svc.cluster.local", true},
        {"*.other.svc.cluster.local", true},
        {"*.example.org", true},
    }));
    INFO(host);
    const auto found = summary(shop({destination_rule("shop", "rule", host).tls("ISTIO_MUTUAL"),
                                     service_entry("shop", "api", {"api.example.com"})}));
    CHECK(found == (flagged ? Lines{"MTG206 DestinationRule rule.shop"} : Lines{}));
}

TEST_CASE("MTG206: a legacy Policy target that names no Service", "[object-checks][MTG206]") {
    CHECK(summary(shop({policy("shop", "ghost").target("gone").strict()}),
                  settings_for(model::IstioVersion{4})) ==
          Lines{"MTG206 Policy ghost.shop", "MTG208 Policy ghost.shop"});
}

TEST_CASE("MTG207: mesh-wide DISABLE with auto mTLS off and no mesh-wide DestinationRule DISABLE",
          "[object-checks][MTG207]") {
    auto [description, extra, flagged] = GENERATE(table<std::string, std::vector<json>, bool>({
        {"no DestinationRule", {auto_mtls(false)}, true},
        {"a root rule for *.local DISABLE",
         {auto_mtls(false), destination_rule("istio-system", "off", "*.local").tls("DISABLE")},
         false},
        {"a root rule for *.cluster.local DISABLE",
         {auto_mtls(false),
          destination_rule("istio-system", "off", "*.cluster.local").tls("DISABLE")},
         false},
        {"a root rule for * DISABLE",
         {auto_mtls(false), destination_rule("istio-system", "off", "*").tls("DISABLE")},
         false},
        {"a root rule that is private",
         {auto_mtls(false),
          destination_rule("istio-system", "off", "*.local").tls("DISABLE").export_to({"."})},
         true},
        {"a root rule with ISTIO_MUTUAL",
         {auto_mtls(false), destination_rule("istio-system", "on", "*.local").tls("ISTIO_MUTUAL")},
         true},
        {"a rule in another namespace",
         {auto_mtls(false), destination_rule("shop", "off", "*.local").tls("DISABLE")},
         true},
        {"a root rule for one namespace only",
         {auto_mtls(false),
          destination_rule("istio-system", "off", "*.shop.svc.cluster.local").tls("DISABLE")},
         true},
        {"auto mTLS on", std::vector<json>{}, false},
    }));
    auto objects = extra;
    objects.push_back(peer_authentication("istio-system", "mesh").disable());
    INFO(description);
    const auto findings = checks(shop(objects));
    const auto mtg207 = with_code(findings, "MTG207");
    REQUIRE(mtg207.size() == (flagged ? 1u : 0u));
    if (flagged) {
        CHECK(mtg207[0].resource.name == "mesh");
        CHECK(mtg207[0].resource.namespace_name == "istio-system");
        CHECK(mtg207[0].severity == conflict::Severity::Info);
    }
}

TEST_CASE("MTG207 needs the mesh-wide mode to be DISABLE", "[object-checks][MTG207]") {
    auto mode = GENERATE(as<std::string>{}, "PERMISSIVE", "STRICT", "UNSET");
    CHECK(with_code(checks(shop({auto_mtls(false),
                                 peer_authentication("istio-system", "mesh").mode(mode)})),
                    "MTG207")
              .empty());
    // A namespace-wide DISABLE is not mesh-wide.
    CHECK(with_code(checks(shop({auto_mtls(false), peer_authentication("shop", "ns").disable()})),
                    "MTG207")
              .empty());
}

TEST_CASE("MTG209: portLevelMtls on a mesh- or namespace-wide PeerAuthentication",
          "[object-checks][MTG209]") {
    auto [ns, scope] = GENERATE(table<std::string, std::string>({
        {"shop", "namespace-wide"},
        {"istio-system", "mesh-wide"},
    }));
    json pa = peer_authentication(ns, "default").strict();
    pa["spec"]["portLevelMtls"]["8080"]["mode"] = "DISABLE";
    const auto findings = checks(shop({pa}));
    REQUIRE(summary(findings) == Lines{"MTG209 PeerAuthentication default." + ns});
    CHECK(findings[0].severity == conflict::Severity::Warning);
    CHECK(findings[0].detail.text == scope);
}

TEST_CASE("Istio 1.4 ignores PeerAuthentication, so no PeerAuthentication checks apply",
          "[object-checks]") {
    CHECK(summary(shop({peer_authentication("shop", "typo").selecting({{"app", "x"}}).strict()}),
                  settings_for(model::IstioVersion{4}))
              .empty());
}

TEST_CASE("check_objects can be limited to one namespace", "[object-checks]") {
    const auto snapshot = snapshot_of(shop({
        peer_authentication("shop", "typo").selecting({{"app", "wbe"}}).strict(),
        peer_authentication("other", "typo").selecting({{"app", "wbe"}}).strict(),
        mesh_policy("not-default").strict(),
    }));
    const resolution::ConfigView view(*snapshot);
    CHECK(summary(conflict::check_objects(view, ns_id(*snapshot, "shop"), false)) ==
          Lines{"MTG206 PeerAuthentication typo.shop"});
    CHECK(summary(conflict::check_objects(view, ns_id(*snapshot, "shop"), true)) ==
          Lines{"MTG205 MeshPolicy not-default", "MTG206 PeerAuthentication typo.shop",
                "MTG208 MeshPolicy not-default"});
}

TEST_CASE("§10: MTG212 warns when a namespace or workload is labelled for sidecar injection and "
          "for ambient",
          "[object-checks][ambient]") {
    const json ambient_injected =
        kube_namespace("both").injected().label("istio.io/dataplane-mode", "ambient");
    auto [what, objects, expected] =
        GENERATE_COPY(table<std::string, std::vector<json>, std::vector<std::string>>({
            {"a namespace with both labels (its pods are not reported again)",
             {ambient_injected, deployment("both", "web").labels({{"app", "web"}})},
             {"MTG212 Namespace both"}},
            {"a revision label counts as injection",
             {kube_namespace("both")
                  .label("istio.io/rev", "canary")
                  .label("istio.io/dataplane-mode", "ambient")},
             {"MTG212 Namespace both"}},
            {"a pod labelled ambient in an injected namespace",
             {kube_namespace("side").injected(),
              deployment("side", "web").labels({{"istio.io/dataplane-mode", "ambient"}})},
             {"MTG212 Deployment web.side"}},
            {"a pod labelled ambient in a namespace with both labels is named too",
             {ambient_injected, controller("apps/v1", "StatefulSet", "both", "db")
                                    .labels({{"istio.io/dataplane-mode", "ambient"}})},
             {"MTG212 Namespace both", "MTG212 StatefulSet db.both"}},
            {"a pod opted in to injection in an ambient namespace",
             {kube_namespace("amb").label("istio.io/dataplane-mode", "ambient"),
              deployment("amb", "web").inject_label("true")},
             {"MTG212 Deployment web.amb"}},
            {"an injected pod in an ambient namespace that opts out of ambient",
             {kube_namespace("amb").label("istio.io/dataplane-mode", "ambient"),
              deployment("amb", "web")
                  .inject_label("true")
                  .labels({{"istio.io/dataplane-mode", "none"}})},
             {}},
            {"ambient alone",
             {kube_namespace("amb").label("istio.io/dataplane-mode", "ambient"),
              deployment("amb", "web")},
             {}},
            {"injection alone", {kube_namespace("side").injected(), deployment("side", "web")}, {}},
            {"kube-system is never ambient",
             {kube_namespace("kube-system"), deployment("kube-system", "dns")
                                                 .inject_label("true")
                                                 .labels({{"istio.io/dataplane-mode", "ambient"}})},
             {}},
        }));
    INFO(what);
    const auto findings = checks(objects);
    CHECK(summary(findings) == expected);
    for (const auto& f : findings)
        CHECK(f.severity == conflict::Severity::Warning);
    // Before ambient existed, nothing to say.
    CHECK(summary(objects, settings_for(model::IstioVersion{17})).empty());
}
