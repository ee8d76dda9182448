// Tests resolution/destination_rule: the DestinationRule a client uses and its TLS (spec §4).
#include "analysis/resolution/destination_rule.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using resolution::ConfigView;

namespace {

// front/ui, billing/pay and shop/web run sidecars; Service web.shop maps 80 -> 8080.
std::vector<json> mesh(const std::vector<json>& rules) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("front", "ui-canary")
            .labels({{"app", "ui"}, {"track", "canary"}})
            .with_sidecar(),
        deployment("billing", "pay").labels({{"app", "pay"}}).with_sidecar(),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
    };
    objects.insert(objects.end(), rules.begin(), rules.end());
    return objects;
}

const std::string web_host = "web.shop.svc.cluster.local";

// The name of the DestinationRule a client (namespace, or one workload's variant) uses for the
// host of a service in `service_ns`, "none" for no rule, "not a client" when the class is absent.
std::string rule_for(const model::Snapshot& snapshot, const std::string& client_ns,
                     const std::string& client_workload = "", const std::string& host = web_host,
                     const std::string& service_ns = "shop") {
    const ConfigView view(snapshot);
    const auto clients = resolution::resolve_host_clients(view, host, ns_id(snapshot, service_ns));
    const auto client = ns_id(snapshot, client_ns);
    std::uint16_t variant = 0;
    if (!client_workload.empty()) {
        const auto& w = workload_named(snapshot, client_ns, client_workload);
        // Variants hold positions in the namespace's workloads.
        const auto id = snapshot.workloads().position_of(w);
        const auto& variants = view.config(client).variants;
        bool found = false;
        for (std::size_t v = 0; v < variants.size(); ++v)
            if (std::find(variants[v].workloads.begin(), variants[v].workloads.end(), id) !=
                variants[v].workloads.end()) {
                variant = static_cast<std::uint16_t>(v);
                found = true;
            }
        REQUIRE(found);
    }
    std::string answer = "not a client";
    std::vector<const resolution::ClientOutcome*> outcomes;
    clients.for_each_outcome(
        [&](const resolution::ClientOutcome& outcome) { outcomes.push_back(&outcome); });
    for (const auto* each : outcomes) {
        const auto& outcome = *each;
        const auto members = resolution::expand_members(view, outcome, clients);
        if (std::find(members.begin(), members.end(), resolution::ClientClass{client, variant}) ==
            members.end())
            continue;
        INFO("client class in several outcomes");
        REQUIRE(answer == "not a client");
        if (!outcome.rule)
            answer = "none";
        else
            answer = (outcome.rule->policy_source ? outcome.rule->policy_source
                                                  : outcome.rule->members.front())
                         ->ref.name;
    }
    return answer;
}

std::string rule_with(const std::vector<json>& rules, const std::string& client_ns,
                      const std::string& client_workload = "") {
    return rule_for(*snapshot_of(mesh(rules)), client_ns, client_workload);
}

std::string text(const model::TlsSetting& tls) {
    return tls ? std::string(model::to_string(*tls)) : "auto";
}

} // namespace

TEST_CASE("candidate_keys lists the host, then wildcards from the longest suffix, then *", "[dr]") {
    CHECK(resolution::candidate_keys(web_host) ==
          std::vector<std::string>{web_host, "*.shop.svc.cluster.local", "*.svc.cluster.local",
                                   "*.cluster.local", "*.local", "*"});
    CHECK(resolution::candidate_keys("api.example.com") ==
          std::vector<std::string>{"api.example.com", "*.example.com", "*.com", "*"});
}

TEST_CASE("Without any DestinationRule no client has one", "[dr][lookup]") {
    CHECK(rule_with({}, "front") == "none");
    CHECK(rule_with({}, "shop") == "none");
}

TEST_CASE("A DestinationRule in the client namespace wins over the service and root namespaces",
          "[dr][lookup]") {
    const std::vector<json> rules{
        destination_rule("front", "front-web", web_host).tls("DISABLE"),
        destination_rule("shop", "shop-web", "web").tls("ISTIO_MUTUAL"),
        destination_rule("istio-system", "mesh", "*.local").tls("ISTIO_MUTUAL"),
    };
    const auto snapshot = snapshot_of(mesh(rules));
    CHECK(rule_for(*snapshot, "front") == "front-web");
    CHECK(rule_for(*snapshot, "billing") == "shop-web");
    CHECK(rule_for(*snapshot, "shop") == "shop-web");
}

TEST_CASE("A wildcard DestinationRule in the client namespace beats an exact one in the service "
          "namespace",
          "[dr][lookup]") {
    auto wildcard = GENERATE(as<std::string>{}, "*", "*.local", "*.svc.cluster.local",
                             "*.shop.svc.cluster.local");
    INFO(wildcard);
    CHECK(rule_with({destination_rule("front", "front-wild", wildcard).tls("DISABLE"),
                     destination_rule("shop", "shop-exact", "web").tls("ISTIO_MUTUAL")},
                    "front") == "front-wild");
}

TEST_CASE("A private DestinationRule in the client namespace applies to its own clients",
          "[dr][lookup]") {
    const auto snapshot = snapshot_of(
        mesh({destination_rule("front", "front-private", web_host).tls("DISABLE").export_to({"."}),
              destination_rule("shop", "shop-private", "web").tls("SIMPLE").export_to({"."})}));
    CHECK(rule_for(*snapshot, "front") == "front-private");
    CHECK(rule_for(*snapshot, "shop") == "shop-private");
    CHECK(rule_for(*snapshot, "billing") == "none");
}

TEST_CASE("Without a rule of its own a client uses the service namespace's exported rule, then "
          "the root's",
          "[dr][lookup]") {
    SECTION("the service namespace's rule") {
        CHECK(rule_with({destination_rule("shop", "shop-web", "web").tls("ISTIO_MUTUAL"),
                         destination_rule("istio-system", "mesh", "*.local").tls("DISABLE")},
                        "front") == "shop-web");
    }
    SECTION("the root namespace's rule when the service namespace has none") {
        CHECK(rule_with({destination_rule("istio-system", "mesh", "*.local").tls("DISABLE")},
                        "front") == "mesh");
    }
    SECTION("the root namespace's rule when the service namespace's is private") {
        CHECK(rule_with(
                  {destination_rule("shop", "shop-web", "web").tls("ISTIO_MUTUAL").export_to({"."}),
                   destination_rule("istio-system", "mesh", "*.local").tls("DISABLE")},
                  "front") == "mesh");
    }
    SECTION("a private root rule reaches nobody outside the root namespace") {
        CHECK(rule_with({destination_rule("istio-system", "mesh", "*.local")
                             .tls("DISABLE")
                             .export_to({"."})},
                        "front") == "none");
    }
    SECTION("a rule in an unrelated namespace is never used") {
        CHECK(rule_with({destination_rule("billing", "billing-web", web_host).tls("DISABLE")},
                        "front") == "none");
    }
}

TEST_CASE("Only the most specific host of the service namespace is considered, with no retry of "
          "a less specific one",
          "[dr][lookup]") {
    const std::vector<json> rules{
        destination_rule("shop", "exact-for-billing", "web").tls("DISABLE").export_to({"billing"}),
        destination_rule("shop", "wild-for-all", "*.shop.svc.cluster.local").tls("SIMPLE"),
        destination_rule("istio-system", "mesh", "*.local").tls("ISTIO_MUTUAL"),
    };
    const auto snapshot = snapshot_of(mesh(rules));
    CHECK(rule_for(*snapshot, "billing") == "exact-for-billing");
    // The exact host is not exported to front: step 2 yields nothing, step 3 (root) answers.
    CHECK(rule_for(*snapshot, "front") == "mesh");

    SECTION("and with no root rule, nothing") {
        const auto without_root = snapshot_of(mesh({rules[0], rules[1]}));
        CHECK(rule_for(*without_root, "front") == "none");
    }
}

TEST_CASE("The root namespace's rules follow the same most-specific-host rule", "[dr][lookup]") {
    const auto snapshot = snapshot_of(
        mesh({destination_rule("istio-system", "svc-for-billing", "*.svc.cluster.local")
                  .tls("DISABLE")
                  .export_to({"billing"}),
              destination_rule("istio-system", "local-for-all", "*.local").tls("ISTIO_MUTUAL")}));
    CHECK(rule_for(*snapshot, "billing") == "svc-for-billing");
    CHECK(rule_for(*snapshot, "front") == "none");
}

TEST_CASE("exportTo to named namespaces reaches exactly those namespaces", "[dr][lookup]") {
    const auto snapshot = snapshot_of(
        mesh({destination_rule("shop", "for-front", "web").tls("ISTIO_MUTUAL").export_to({"front"}),
              kube_namespace("other").injected()}));
    CHECK(rule_for(*snapshot, "front") == "for-front");
    CHECK(rule_for(*snapshot, "billing") == "none");
    CHECK(rule_for(*snapshot, "other") == "none");
    // Exported only elsewhere: the service namespace's own clients do not see it either.
    CHECK(rule_for(*snapshot, "shop") == "none");
}

TEST_CASE("Several rules for one host with different exportTo each reach their namespaces",
          "[dr][lookup]") {
    const auto snapshot = snapshot_of(mesh(
        {destination_rule("shop", "for-front", "web").tls("ISTIO_MUTUAL").export_to({"front"}),
         destination_rule("shop", "for-billing", "web").tls("DISABLE").export_to({"billing"})}));
    CHECK(rule_for(*snapshot, "front") == "for-front");
    CHECK(rule_for(*snapshot, "billing") == "for-billing");
}

TEST_CASE("An exact host beats any wildcard, and among wildcards the longest suffix wins",
          "[dr][lookup]") {
    auto [hosts, expected] = GENERATE(table<std::vector<std::string>, std::string>({
        {{"*", "*.local", "*.svc.cluster.local", "*.shop.svc.cluster.local", web_host}, web_host},
        // A short host in the client namespace names a service of the client namespace.
        {{"web"}, "none"},
        {{"*", "*.local", "*.svc.cluster.local", "*.shop.svc.cluster.local"},
         "*.shop.svc.cluster.local"},
        {{"*", "*.local", "*.svc.cluster.local"}, "*.svc.cluster.local"},
        {{"*", "*.local"}, "*.local"},
        {{"*"}, "*"},
        {{"*.other.svc.cluster.local", "*.com"}, "none"},
        {{"web.other.svc.cluster.local"}, "none"},
    }));
    std::vector<json> rules;
    for (const auto& host : hosts)
        rules.push_back(
            destination_rule("front", host == "*" ? "star" : host, host).tls("DISABLE"));
    INFO(json(hosts).dump());
    const std::string got = rule_with(rules, "front");
    CHECK(got == (expected == "*" ? "star" : expected));
}

TEST_CASE("Host specificity applies in the service namespace too", "[dr][lookup]") {
    CHECK(rule_with({destination_rule("shop", "all", "*").tls("DISABLE"),
                     destination_rule("shop", "cluster", "*.cluster.local").tls("SIMPLE")},
                    "front") == "cluster");
}

TEST_CASE("A workloadSelector rule applies to the client pods it selects, and the others get no "
          "rule from that host",
          "[dr][lookup][selector]") {
    const std::vector<json> selector_rule{
        destination_rule("front", "canary-only", web_host)
            .for_clients({{"track", "canary"}})
            .tls("DISABLE"),
        destination_rule("shop", "shop-web", "web").tls("ISTIO_MUTUAL"),
    };
    SECTION("the key holds only the selector rule") {
        const auto snapshot = snapshot_of(mesh(selector_rule));
        CHECK(rule_for(*snapshot, "front", "ui-canary") == "canary-only");
        // No fall-through to the service namespace's rule.
        CHECK(rule_for(*snapshot, "front", "ui") == "none");
        CHECK(rule_for(*snapshot, "billing") == "shop-web");
    }
    SECTION("with a selector-less rule for the same host beside it") {
        auto rules = selector_rule;
        rules.push_back(destination_rule("front", "front-web", web_host).tls("SIMPLE"));
        const auto snapshot = snapshot_of(mesh(rules));
        CHECK(rule_for(*snapshot, "front", "ui-canary") == "canary-only");
        CHECK(rule_for(*snapshot, "front", "ui") == "front-web");
    }
}

TEST_CASE("A workloadSelector rule in another namespace applies to nobody there",
          "[dr][lookup][selector]") {
    CHECK(rule_with({destination_rule("shop", "web-for-canary", "web")
                         .for_clients({{"track", "canary"}})
                         .tls("DISABLE")},
                    "front", "ui-canary") == "none");
}

TEST_CASE("choose_for_variant picks a matching selector rule, else the last selector-less rule",
          "[dr][selector]") {
    const auto snapshot = snapshot_of(
        mesh({destination_rule("front", "a-plain", web_host).tls("SIMPLE").created(day(1)),
              destination_rule("front", "b-plain", web_host)
                  .tls("MUTUAL")
                  .export_to({"front", "billing"})
                  .created(day(2)),
              destination_rule("front", "canary", web_host)
                  .for_clients({{"track", "canary"}})
                  .tls("DISABLE")
                  .created(day(3))}));
    const auto& config = snapshot->config(ns_id(*snapshot, "front"));
    const auto& entries = config.local.specific.at(web_host);
    REQUIRE(entries.size() == 3);
    REQUIRE(config.variants.size() == 2);
    const auto* plain = resolution::choose_for_variant(entries, &config.variants[0]);
    REQUIRE(plain != nullptr);
    CHECK(plain->members.front()->ref.name == "b-plain");
    const auto* canary = resolution::choose_for_variant(entries, &config.variants[1]);
    REQUIRE(canary != nullptr);
    CHECK(canary->members.front()->ref.name == "canary");
    CHECK(resolution::choose_for_variant(entries, nullptr) == plain);
}

TEST_CASE("Namespaces without a rule of their own are one generic class", "[dr][lookup]") {
    const auto snapshot =
        snapshot_of(mesh({destination_rule("front", "front-web", web_host).tls("DISABLE"),
                          kube_namespace("a").injected(), kube_namespace("b").injected()}));
    const ConfigView view(*snapshot);
    const auto clients = resolution::resolve_host_clients(view, web_host, ns_id(*snapshot, "shop"));
    CHECK(names_of(*snapshot, clients.resolved) == std::vector<std::string>{"front"});
    const resolution::ClientOutcome* generic = nullptr;
    for (const auto& outcome : clients.outcomes)
        if (outcome.generic)
            generic = &outcome;
    REQUIRE(generic != nullptr);
    CHECK(generic->rule == nullptr);
    std::vector<std::string> members;
    for (const auto& c : resolution::expand_members(view, *generic, clients))
        members.push_back(snapshot->namespaces()[c.ns].name);
    CHECK(members == std::vector<std::string>{"a", "b", "billing", "shop"});
}

TEST_CASE("outcome_namespaces lists the namespaces of expand_members' classes, once each",
          "[dr][lookup]") {
    // Selector rules split namespaces into variants: each namespace must still come once.
    const auto snapshot =
        snapshot_of(mesh({destination_rule("front", "front-web", web_host).tls("DISABLE"),
                          destination_rule("front", "canary-only", web_host)
                              .for_clients({{"track", "canary"}})
                              .tls("SIMPLE"),
                          kube_namespace("a").injected(), kube_namespace("b").injected()}));
    const ConfigView view(*snapshot);
    const auto clients = resolution::resolve_host_clients(view, web_host, ns_id(*snapshot, "shop"));
    REQUIRE(!clients.outcomes.empty());
    clients.for_each_outcome([&](const resolution::ClientOutcome& outcome) {
        std::vector<model::NsId> expected;
        for (const auto& c : resolution::expand_members(view, outcome, clients))
            if (expected.empty() || expected.back() != c.ns)
                expected.push_back(c.ns);
        CHECK(resolution::outcome_namespaces(view, outcome, clients) == expected);
    });
}

TEST_CASE("A matching port entry replaces the top-level TLS, a subset overrides or inherits, "
          "and the endpoint marking differs",
          "[dr][cluster-tls]") {
    // "auto" is no TLS setting (auto mTLS decides).
    auto [description, traffic_policy, subset_policy, cluster, marking] =
        GENERATE(table<std::string, json, json, std::string, std::string>({
            {"top-level only",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}}},
             nullptr,
             "ISTIO_MUTUAL",
             "ISTIO_MUTUAL"},
            {"tls: {} is DISABLE", {{"tls", json::object()}}, nullptr, "DISABLE", "DISABLE"},
            {"no tls anywhere", {{"connectionPool", json::object()}}, nullptr, "auto", "auto"},
            {"a port entry with tls replaces the top level",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}},
              {"portLevelSettings",
               json::array({{{"port", {{"number", 80}}}, {"tls", {{"mode", "DISABLE"}}}}})}},
             nullptr,
             "DISABLE",
             "DISABLE"},
            {"a port entry without tls leaves no TLS, but endpoints keep the top-level mark",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}},
              {"portLevelSettings", json::array({{{"port", {{"number", 80}}}}})}},
             nullptr,
             "auto",
             "ISTIO_MUTUAL"},
            {"the mirror with DISABLE at the top level",
             {{"tls", {{"mode", "DISABLE"}}},
              {"portLevelSettings", json::array({{{"port", {{"number", 80}}}}})}},
             nullptr,
             "auto",
             "DISABLE"},
            {"the mirror with SIMPLE at the top level",
             {{"tls", {{"mode", "SIMPLE"}}},
              {"portLevelSettings", json::array({{{"port", {{"number", 80}}}}})}},
             nullptr,
             "auto",
             "SIMPLE"},
            {"a port entry for another port changes nothing",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}},
              {"portLevelSettings",
               json::array({{{"port", {{"number", 9090}}}, {"tls", {{"mode", "DISABLE"}}}}})}},
             nullptr,
             "ISTIO_MUTUAL",
             "ISTIO_MUTUAL"},
            {"only the first entry for the port counts",
             {{"portLevelSettings",
               json::array({{{"port", {{"number", 80}}}, {"tls", {{"mode", "SIMPLE"}}}},
                            {{"port", {{"number", 80}}}, {"tls", {{"mode", "ISTIO_MUTUAL"}}}}})}},
             nullptr,
             "SIMPLE",
             "SIMPLE"},
            {"a port entry sets TLS under a top level without it",
             {{"portLevelSettings",
               json::array({{{"port", {{"number", 80}}}, {"tls", {{"mode", "MUTUAL"}}}}})}},
             nullptr,
             "MUTUAL",
             "MUTUAL"},
            {"a subset's tls overrides",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}}},
             {{"tls", {{"mode", "DISABLE"}}}},
             "DISABLE",
             "DISABLE"},
            {"a subset without tls inherits",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}}},
             {{"connectionPool", json::object()}},
             "ISTIO_MUTUAL",
             "ISTIO_MUTUAL"},
            {"a subset's tls applies under a rule without tls",
             {{"connectionPool", json::object()}},
             {{"tls", {{"mode", "SIMPLE"}}}},
             "SIMPLE",
             "SIMPLE"},
            {"a subset port entry without tls leaves no TLS; endpoints fall back to the rule",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}}},
             {{"tls", {{"mode", "SIMPLE"}}},
              {"portLevelSettings", json::array({{{"port", {{"number", 80}}}}})}},
             "auto",
             "SIMPLE"},
            {"a subset port entry with tls wins",
             {{"tls", {{"mode", "ISTIO_MUTUAL"}}}},
             {{"portLevelSettings",
               json::array({{{"port", {{"number", 80}}}, {"tls", {{"mode", "MUTUAL"}}}}})}},
             "MUTUAL",
             "MUTUAL"},
        }));
    json rule = destination_rule("shop", "web", "web");
    rule["spec"]["trafficPolicy"] = traffic_policy;
    if (!subset_policy.is_null())
        rule["spec"]["subsets"] = json::array(
            {{{"name", "v1"}, {"labels", {{"version", "v1"}}}, {"trafficPolicy", subset_policy}}});
    INFO(description << "\n" << rule["spec"].dump());
    const auto snapshot = snapshot_of({rule});
    const auto& consolidated =
        snapshot->config(ns_id(*snapshot, "shop")).local.specific.at(web_host).front();
    const model::Subset* subset = consolidated.subsets.empty() ? nullptr : consolidated.subsets[0];
    const auto tls = resolution::cluster_tls(&consolidated, 80, subset);
    CHECK(text(tls.cluster) == cluster);
    CHECK(text(tls.endpoint_marking) == marking);
}

TEST_CASE("cluster_tls without a rule is automatic, and PASSTHROUGH is reported",
          "[dr][cluster-tls]") {
    const auto none = resolution::cluster_tls(nullptr, 80, nullptr);
    CHECK_FALSE(none.cluster.has_value());
    CHECK_FALSE(none.endpoint_marking.has_value());
    CHECK_FALSE(none.passthrough);
    const auto snapshot = snapshot_of({destination_rule("shop", "web", "web").passthrough()});
    const auto& rule =
        snapshot->config(ns_id(*snapshot, "shop")).local.specific.at(web_host).front();
    CHECK(resolution::cluster_tls(&rule, 80, nullptr).passthrough);
}

TEST_CASE("A merged rule takes its TLS from the oldest DestinationRule's trafficPolicy",
          "[dr][cluster-tls]") {
    const auto snapshot = snapshot_of(
        mesh({destination_rule("shop", "newer", "web").tls("DISABLE").created(day(6)),
              destination_rule("shop", "older", "web").tls("ISTIO_MUTUAL").created(day(1))}));
    CHECK(rule_for(*snapshot, "front") == "older");
    const auto& rule =
        snapshot->config(ns_id(*snapshot, "shop")).exported.specific.at(web_host).front();
    CHECK(text(resolution::cluster_tls(&rule, 80, nullptr).cluster) == "ISTIO_MUTUAL");
}

TEST_CASE("A client in the root namespace sees only the root's private rules first",
          "[dr][lookup][root]") {
    auto with_gateway = [](std::vector<json> rules) {
        rules.push_back(deployment("istio-system", "ingressgateway")
                            .labels({{"app", "ingressgateway"}})
                            .with_sidecar());
        return snapshot_of(mesh(rules));
    };
    SECTION("a public root rule is found in step 3, after the service namespace's") {
        const auto snapshot =
            with_gateway({destination_rule("istio-system", "mesh", "*.local").tls("DISABLE"),
                          destination_rule("shop", "shop-web", "web").tls("ISTIO_MUTUAL")});
        CHECK(rule_for(*snapshot, "istio-system") == "shop-web");
    }
    SECTION("a private root rule wins in step 1") {
        const auto snapshot =
            with_gateway({destination_rule("istio-system", "gateway-only", "*.local")
                              .tls("DISABLE")
                              .export_to({"."}),
                          destination_rule("shop", "shop-web", "web").tls("ISTIO_MUTUAL")});
        CHECK(rule_for(*snapshot, "istio-system") == "gateway-only");
        CHECK(rule_for(*snapshot, "front") == "shop-web");
    }
    SECTION("a public root rule alone reaches the root's clients too") {
        const auto snapshot =
            with_gateway({destination_rule("istio-system", "mesh", "*.local").tls("DISABLE")});
        CHECK(rule_for(*snapshot, "istio-system") == "mesh");
    }
}

TEST_CASE("Semantics §4: dropped_tls names the TLS blocks istiod builds as no TLS",
          "[dr][cluster-tls][dropped-tls]") {
    auto [tls, selector, version, drop] =
        GENERATE(table<json, bool, model::IstioVersion, resolution::TlsDrop>({
            {json{{"mode", "MUTUAL"}}, false, model::IstioVersion::current(),
             resolution::TlsDrop::MutualWithoutCertificates},
            {json{{"mode", "MUTUAL"}}, true, model::IstioVersion::current(),
             resolution::TlsDrop::MutualWithoutCertificates},
            {json{{"mode", "MUTUAL"}}, false, model::IstioVersion{5},
             resolution::TlsDrop::MutualWithoutCertificates},
            {json{{"mode", "MUTUAL"}, {"clientCertificate", "c"}, {"privateKey", "k"}}, false,
             model::IstioVersion::current(), resolution::TlsDrop::None},
            {json{{"mode", "SIMPLE"}, {"credentialName", "ca"}}, false,
             model::IstioVersion::current(), resolution::TlsDrop::CredentialNameOnSidecar},
            {json{{"mode", "MUTUAL"}, {"credentialName", "client"}}, false,
             model::IstioVersion::current(), resolution::TlsDrop::CredentialNameOnSidecar},
            // A rule with a workloadSelector is meant for the sidecars it selects: they load it.
            {json{{"mode", "SIMPLE"}, {"credentialName", "ca"}}, true,
             model::IstioVersion::current(), resolution::TlsDrop::None},
            {json{{"mode", "SIMPLE"}, {"credentialName", "configmap://ca"}}, false,
             model::IstioVersion::current(), resolution::TlsDrop::None},
            {json{{"mode", "ISTIO_MUTUAL"}}, false, model::IstioVersion::current(),
             resolution::TlsDrop::None},
            {json{{"mode", "DISABLE"}}, false, model::IstioVersion::current(),
             resolution::TlsDrop::None},
        }));
    json rule = destination_rule("shop", "web", "web");
    rule["spec"]["trafficPolicy"]["tls"] = tls;
    if (selector)
        rule["spec"]["workloadSelector"]["matchLabels"] = {{"app", "ui"}};
    INFO(rule["spec"].dump() << " on " << model::to_string(version));
    const auto snapshot = snapshot_of({rule});
    const auto& config = snapshot->config(ns_id(*snapshot, "shop"));
    const auto& consolidated = config.local.specific.at(web_host).front();
    const auto cluster = resolution::cluster_tls(&consolidated, 80, nullptr);
    CHECK(resolution::dropped_tls(cluster, &consolidated, version) == drop);
}
