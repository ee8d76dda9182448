// Tests resolution/client_send: what a sidecar client sends to each endpoint (spec §5).
#include "analysis/resolution/client_send.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using resolution::ConfigView;

namespace {

// Service web.shop (80 -> 8080) has two endpoints: web-mesh (sidecar) and web-plain (none).
// front/ui is a sidecar client.
std::vector<json> shop(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "web-mesh")
            .labels({{"app", "web"}, {"track", "mesh"}})
            .with_sidecar()
            .container_port(8080),
        deployment("shop", "web-plain")
            .labels({{"app", "web"}, {"track", "plain"}})
            .container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

const resolution::ClientOutcome&
outcome_for(const ConfigView& view, const resolution::HostClients& clients, model::NsId client) {
    std::vector<const resolution::ClientOutcome*> outcomes;
    clients.for_each_outcome(
        [&](const resolution::ClientOutcome& outcome) { outcomes.push_back(&outcome); });
    for (const auto* outcome : outcomes) {
        const auto members = resolution::expand_members(view, *outcome, clients);
        if (std::find(members.begin(), members.end(), resolution::ClientClass{client, 0}) !=
            members.end())
            return *outcome;
    }
    FAIL("the namespace is not a sidecar client");
    return clients.outcomes.front();
}

struct Sent {
    std::string send;
    bool by_rule = false;
    std::string cause; // the mesh/namespace policy that made auto mTLS choose plaintext
};

// What front's sidecars send to every endpoint of a service port, by workload name.
std::map<std::string, Sent> sends(const model::Snapshot& snapshot, const std::string& svc_ns,
                                  const std::string& svc_name, int port,
                                  const std::string& subset_name = "",
                                  const std::string& client_ns = "front") {
    const ConfigView view(snapshot);
    const auto& svc = service_named(snapshot, svc_ns, svc_name);
    const auto clients = resolution::resolve_host_clients(view, svc.host, svc.ns);
    const auto& outcome = outcome_for(view, clients, ns_id(snapshot, client_ns));
    const model::Subset* subset = nullptr;
    if (!subset_name.empty()) {
        REQUIRE(outcome.rule != nullptr);
        for (const auto* s : outcome.rule->subsets)
            if (s->name == subset_name)
                subset = s;
        REQUIRE(subset != nullptr);
    }
    const auto& service_port = port_of(svc, port);
    const resolution::SidecarClientTls tls(view, svc, service_port, outcome.rule, subset);
    std::map<std::string, Sent> out;
    for (auto at : svc.endpoint_positions) {
        const auto& w = snapshot.workloads()[snapshot.endpoint_id(svc, at)];
        const auto decision = tls.for_endpoint(w, resolution::target_port_of(w, service_port));
        Sent sent{std::string(resolution::to_string(decision.send)), decision.by_rule, ""};
        if (decision.auto_cause)
            sent.cause = decision.auto_cause->ref.name;
        else if (decision.auto_alpha_cause)
            sent.cause = decision.auto_alpha_cause->ref.name;
        out[w.name] = sent;
    }
    return out;
}

std::map<std::string, std::string> sends_to_web(const std::vector<json>& more,
                                                model::Settings settings = {}) {
    std::map<std::string, std::string> out;
    for (const auto& [name, sent] :
         sends(*snapshot_of(shop(more), std::move(settings)), "shop", "web", 80))
        out[name] = sent.send;
    return out;
}

using Sends = std::map<std::string, std::string>;

} // namespace

TEST_CASE("send_of maps DestinationRule TLS modes to what goes on the wire", "[client-send]") {
    CHECK(resolution::send_of(model::TlsMode::Disable) == resolution::ClientSend::Plaintext);
    CHECK(resolution::send_of(model::TlsMode::Simple) == resolution::ClientSend::Simple);
    CHECK(resolution::send_of(model::TlsMode::Mutual) == resolution::ClientSend::Mutual);
    CHECK(resolution::send_of(model::TlsMode::IstioMutual) == resolution::ClientSend::IstioMutual);
    CHECK(resolution::to_string(resolution::ClientSend::IstioMutual) == "ISTIO_MUTUAL");
    CHECK(resolution::to_string(resolution::ClientSend::Plaintext) == "PLAINTEXT");
}

TEST_CASE("An explicit DestinationRule tls.mode wins for every endpoint",
          "[client-send][explicit]") {
    auto [mode, wire] = GENERATE(table<std::string, std::string>({
        {"DISABLE", "PLAINTEXT"},
        {"SIMPLE", "SIMPLE"},
        {"MUTUAL", "MUTUAL"},
        {"ISTIO_MUTUAL", "ISTIO_MUTUAL"},
    }));
    // Whatever auto mTLS and the server policies would have chosen.
    auto [context, extra] = GENERATE(table<std::string, std::vector<json>>({
        {"auto mTLS on", std::vector<json>{}},
        {"auto mTLS off", {auto_mtls(false)}},
        {"a namespace-wide DISABLE", {peer_authentication("shop", "default").disable()}},
        {"a workload STRICT",
         {peer_authentication("shop", "w").selecting({{"app", "web"}}).strict()}},
    }));
    INFO(mode << " with " << context);
    auto objects = extra;
    objects.push_back(destination_rule("shop", "web", "web").tls(mode));
    const auto sent = sends(*snapshot_of(shop(objects)), "shop", "web", 80);
    REQUIRE(sent.size() == 2);
    for (const auto& [workload, s] : sent) {
        INFO(workload);
        CHECK(s.send == wire);
        CHECK(s.by_rule);
    }
}

TEST_CASE("With no DestinationRule TLS and auto mTLS off, clients send plaintext",
          "[client-send][auto]") {
    auto rule = GENERATE(as<std::string>{}, "none", "without tls");
    std::vector<json> more{auto_mtls(false), peer_authentication("shop", "default").strict()};
    if (rule == "without tls")
        more.push_back(destination_rule("shop", "web", "web").traffic_policy_without_tls());
    INFO(rule);
    const auto sent = sends(*snapshot_of(shop(more)), "shop", "web", 80);
    CHECK(sent.at("web-mesh").send == "PLAINTEXT");
    CHECK(sent.at("web-plain").send == "PLAINTEXT");
    CHECK_FALSE(sent.at("web-mesh").by_rule);
}

TEST_CASE("Auto mTLS decides per endpoint, mTLS only to sidecars that do not DISABLE the port",
          "[client-send][auto]") {
    SECTION("by default") {
        CHECK(sends_to_web({}) == Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
    }
    SECTION("a DestinationRule without tls leaves the choice to auto mTLS") {
        CHECK(sends_to_web({destination_rule("shop", "web", "web").traffic_policy_without_tls()}) ==
              Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
    }
    SECTION("a workload DISABLE") {
        CHECK(sends_to_web({peer_authentication("shop", "mesh-off")
                                .selecting({{"track", "mesh"}})
                                .disable()}) ==
              Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
    }
    SECTION("a port-level DISABLE on the endpoint's target port") {
        CHECK(sends_to_web({peer_authentication("shop", "mesh-port")
                                .selecting({{"track", "mesh"}})
                                .strict()
                                .port(8080, "DISABLE")}) ==
              Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
    }
    SECTION("a port-level DISABLE keyed by the Service port does not count") {
        CHECK(sends_to_web({peer_authentication("shop", "mesh-port")
                                .selecting({{"track", "mesh"}})
                                .port(80, "DISABLE")}) ==
              Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
    }
    SECTION("a workload STRICT") {
        CHECK(sends_to_web({peer_authentication("shop", "mesh-strict")
                                .selecting({{"track", "mesh"}})
                                .strict()}) ==
              Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
    }
}

TEST_CASE("A namespace- or mesh-wide DISABLE makes auto mTLS send plaintext to every endpoint",
          "[client-send][auto]") {
    auto [description, policies,
          cause] = GENERATE(table<std::string, std::vector<json>, std::string>({
        {"namespace DISABLE", {peer_authentication("shop", "ns-off").disable()}, "ns-off"},
        {"namespace DISABLE with a workload STRICT (§5.4 a)",
         {peer_authentication("shop", "ns-off").disable(),
          peer_authentication("shop", "mesh-strict").selecting({{"track", "mesh"}}).strict()},
         "ns-off"},
        {"namespace DISABLE with a port STRICT (§5.4 a)",
         {peer_authentication("shop", "ns-off").disable(), peer_authentication("shop", "mesh-port")
                                                               .selecting({{"track", "mesh"}})
                                                               .port(8080, "STRICT")},
         "ns-off"},
        {"mesh DISABLE", {peer_authentication("istio-system", "mesh-off").disable()}, "mesh-off"},
        {"mesh DISABLE, namespace UNSET",
         {peer_authentication("istio-system", "mesh-off").disable(),
          peer_authentication("shop", "ns-unset").unset()},
         "mesh-off"},
    }));
    INFO(description);
    const auto sent = sends(*snapshot_of(shop(policies)), "shop", "web", 80);
    for (const auto& [workload, s] : sent) {
        INFO(workload);
        CHECK(s.send == "PLAINTEXT");
        CHECK_FALSE(s.by_rule);
        CHECK(s.cause == cause);
    }
}

TEST_CASE("A namespace that overrides a mesh-wide DISABLE gets per-endpoint auto mTLS again",
          "[client-send][auto]") {
    CHECK(sends_to_web({peer_authentication("istio-system", "mesh-off").disable(),
                        peer_authentication("shop", "ns").permissive()}) ==
          Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
    // The namespace policy of another namespace does not matter.
    CHECK(sends_to_web({peer_authentication("front", "default").disable()}) ==
          Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
}

TEST_CASE("A headless service gets one decision for all its endpoints", "[client-send][headless]") {
    // db-a and db-b have sidecars; Service db is headless.
    auto db = [](const std::vector<json>& more) {
        std::vector<json> objects{
            deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
            deployment("shop", "db-a")
                .labels({{"app", "db"}, {"shard", "a"}})
                .with_sidecar()
                .container_port(5432),
            deployment("shop", "db-b")
                .labels({{"app", "db"}, {"shard", "b"}})
                .with_sidecar()
                .container_port(5432),
            service("shop", "db").selecting({{"app", "db"}}).port(5432, 5432, "tcp").headless(),
        };
        objects.insert(objects.end(), more.begin(), more.end());
        std::map<std::string, std::string> out;
        for (const auto& [name, sent] : sends(*snapshot_of(objects), "shop", "db", 5432))
            out[name] = sent.send;
        return out;
    };
    SECTION("mTLS when every endpoint has a sidecar") {
        CHECK(db({}) == Sends{{"db-a", "ISTIO_MUTUAL"}, {"db-b", "ISTIO_MUTUAL"}});
    }
    SECTION("mTLS even to an endpoint whose workload is DISABLE (§5.4 b)") {
        CHECK(db({peer_authentication("shop", "b-off").selecting({{"shard", "b"}}).disable()}) ==
              Sends{{"db-a", "ISTIO_MUTUAL"}, {"db-b", "ISTIO_MUTUAL"}});
    }
    SECTION("plaintext to all when the namespace is DISABLE") {
        CHECK(db({peer_authentication("shop", "ns-off").disable()}) ==
              Sends{{"db-a", "PLAINTEXT"}, {"db-b", "PLAINTEXT"}});
    }
    SECTION("plaintext to all when one endpoint has no sidecar") {
        CHECK(db({deployment("shop", "db-c")
                      .labels({{"app", "db"}, {"shard", "c"}})
                      .container_port(5432)}) ==
              Sends{{"db-a", "PLAINTEXT"}, {"db-b", "PLAINTEXT"}, {"db-c", "PLAINTEXT"}});
    }
}

TEST_CASE("A PASSTHROUGH load balancer is treated like a headless service",
          "[client-send][headless]") {
    SECTION("one endpoint without a sidecar: plaintext for all") {
        CHECK(sends_to_web({destination_rule("shop", "web", "web").passthrough()}) ==
              Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
    }
    SECTION("all with sidecars: one mTLS decision, even for a DISABLE workload") {
        const auto snapshot = snapshot_of({
            deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
            deployment("shop", "a").labels({{"app", "api"}, {"x", "a"}}).with_sidecar(),
            deployment("shop", "b").labels({{"app", "api"}, {"x", "b"}}).with_sidecar(),
            service("shop", "api").selecting({{"app", "api"}}).port(80, 8080),
            peer_authentication("shop", "b-off").selecting({{"x", "b"}}).disable(),
            destination_rule("shop", "api", "api").passthrough(),
        });
        const auto sent = sends(*snapshot, "shop", "api", 80);
        CHECK(sent.at("a").send == "ISTIO_MUTUAL");
        CHECK(sent.at("b").send == "ISTIO_MUTUAL");
    }
}

TEST_CASE("Semantics §4 marking: ISTIO_MUTUAL at the top and a port entry without tls leave the "
          "mark to the pod, so mTLS goes to sidecars and plaintext to the others",
          "[client-send][marking]") {
    // istiod 1.14.6 and endpoint_builder.go in 1.29: the rule's mode can only clear the pod's own
    // security.istio.io/tlsMode mark, never set it.
    const auto sent = sends(
        *snapshot_of(shop(
            {destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL").port_without_tls(80)})),
        "shop", "web", 80);
    CHECK(sent.at("web-mesh").send == "ISTIO_MUTUAL");
    CHECK(sent.at("web-plain").send == "PLAINTEXT");
}

TEST_CASE("Semantics §4 marking: with ISTIO_MUTUAL marking, a sidecar whose port is DISABLE still "
          "gets mTLS (the rule's mode, not the PeerAuthentication, keeps the mark)",
          "[client-send][marking]") {
    const auto sent = sends(
        *snapshot_of(shop(
            {peer_authentication("shop", "mesh-off").selecting({{"track", "mesh"}}).disable(),
             destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL").port_without_tls(80)})),
        "shop", "web", 80);
    CHECK(sent.at("web-mesh").send == "ISTIO_MUTUAL");
    CHECK(sent.at("web-plain").send == "PLAINTEXT");
}

TEST_CASE("Semantics §4: TLS settings istiod drops make sidecar clients send plaintext",
          "[client-send][dropped-tls]") {
    auto [context, tls, drop] = GENERATE(table<std::string, json, std::string>({
        {"MUTUAL without any certificate", json{{"mode", "MUTUAL"}}, "PLAINTEXT"},
        {"MUTUAL with a certificate but no key",
         json{{"mode", "MUTUAL"}, {"clientCertificate", "/etc/certs/cert.pem"}}, "PLAINTEXT"},
        {"MUTUAL with a key but no certificate",
         json{{"mode", "MUTUAL"}, {"privateKey", "/etc/certs/key.pem"}}, "PLAINTEXT"},
        {"MUTUAL with both files",
         json{{"mode", "MUTUAL"},
              {"clientCertificate", "/etc/certs/cert.pem"},
              {"privateKey", "/etc/certs/key.pem"}},
         "MUTUAL"},
        {"SIMPLE with a credentialName, no workloadSelector",
         json{{"mode", "SIMPLE"}, {"credentialName", "web-ca"}}, "PLAINTEXT"},
        {"MUTUAL with a credentialName, no workloadSelector",
         json{{"mode", "MUTUAL"}, {"credentialName", "web-client"}}, "PLAINTEXT"},
        {"SIMPLE with a configmap:// credentialName (1.26+)",
         json{{"mode", "SIMPLE"}, {"credentialName", "configmap://web-ca"}}, "SIMPLE"},
        {"SIMPLE without credentials", json{{"mode", "SIMPLE"}}, "SIMPLE"},
        {"ISTIO_MUTUAL with a credentialName",
         json{{"mode", "ISTIO_MUTUAL"}, {"credentialName", "x"}}, "ISTIO_MUTUAL"},
    }));
    INFO(context);
    json rule = destination_rule("shop", "web", "web");
    rule["spec"]["trafficPolicy"]["tls"] = tls;
    CHECK(sends_to_web({rule}) == Sends{{"web-mesh", drop}, {"web-plain", drop}});

    SECTION("in a port entry too") {
        json port_rule = destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL");
        port_rule["spec"]["trafficPolicy"]["portLevelSettings"] =
            json::array({{{"port", {{"number", 80}}}, {"tls", tls}}});
        CHECK(sends_to_web({port_rule}) == Sends{{"web-mesh", drop}, {"web-plain", drop}});
    }
}

TEST_CASE("Port-level marking (§5.4 d): DISABLE, SIMPLE or MUTUAL at the top and a port entry "
          "without tls send plaintext to every endpoint",
          "[client-send][marking]") {
    auto top = GENERATE(as<std::string>{}, "DISABLE", "SIMPLE", "MUTUAL");
    INFO(top);
    const auto sent = sends(
        *snapshot_of(shop(
            {peer_authentication("shop", "mesh-strict").selecting({{"track", "mesh"}}).strict(),
             destination_rule("shop", "web", "web").tls(top).port_without_tls(80)})),
        "shop", "web", 80);
    CHECK(sent.at("web-mesh").send == "PLAINTEXT");
    CHECK(sent.at("web-plain").send == "PLAINTEXT");
    CHECK(sent.at("web-mesh").by_rule);
}

TEST_CASE("A port entry without tls for another port does not change the marking",
          "[client-send][marking]") {
    CHECK(
        sends_to_web(
            {destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL").port_without_tls(9090)}) ==
        Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "ISTIO_MUTUAL"}});
}

TEST_CASE("Port-level marking still yields to a namespace-wide DISABLE and to auto mTLS off",
          "[client-send][marking]") {
    const json rule =
        destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL").port_without_tls(80);
    CHECK(sends_to_web({rule, peer_authentication("shop", "ns-off").disable()}) ==
          Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
    CHECK(sends_to_web({rule, auto_mtls(false)}) ==
          Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
}

TEST_CASE("A subset's own tls decides for the clusters of that subset", "[client-send][subset]") {
    const auto snapshot = snapshot_of(shop({destination_rule("shop", "web", "web")
                                                .tls("ISTIO_MUTUAL")
                                                .subset("mesh", {{"track", "mesh"}}, "DISABLE")
                                                .subset("inherit", {{"track", "mesh"}})}));
    CHECK(sends(*snapshot, "shop", "web", 80, "mesh").at("web-mesh").send == "PLAINTEXT");
    CHECK(sends(*snapshot, "shop", "web", 80, "inherit").at("web-mesh").send == "ISTIO_MUTUAL");
    CHECK(sends(*snapshot, "shop", "web", 80).at("web-mesh").send == "ISTIO_MUTUAL");
}

TEST_CASE("Legacy auto mTLS (1.5) takes the service mode from the alpha Policy, then PERMISSIVE",
          "[client-send][legacy]") {
    auto [description, policies, expected] = GENERATE(table<std::string, std::vector<json>, Sends>({
        {"no policy",
         std::vector<json>{},
         {{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}}},
        {"a plaintext-only Policy",
         {policy("shop", "web-plain-only").target("web").plaintext_only()},
         {{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}}},
        {"a STRICT MeshPolicy",
         {mesh_policy("default").strict()},
         {{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}}},
        {"a namespace PeerAuthentication DISABLE overrides a STRICT Policy",
         {policy("shop", "default").strict(), peer_authentication("shop", "ns-off").disable()},
         {{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}}},
    }));
    INFO(description);
    auto objects = policies;
    objects.push_back(auto_mtls(true));
    CHECK(sends_to_web(objects, settings_for(model::IstioVersion{5})) == expected);
}

TEST_CASE("Legacy auto mTLS (1.4) with no policy sends plaintext", "[client-send][legacy]") {
    CHECK(sends_to_web({auto_mtls(true)}, settings_for(model::IstioVersion{4})) ==
          Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
    CHECK(sends_to_web({auto_mtls(true), mesh_policy("default").permissive()},
                       settings_for(model::IstioVersion{4})) ==
          Sends{{"web-mesh", "ISTIO_MUTUAL"}, {"web-plain", "PLAINTEXT"}});
}

TEST_CASE("Legacy Istio (1.5) has auto mTLS off by default: plaintext without a DestinationRule",
          "[client-send][legacy]") {
    CHECK(sends_to_web({mesh_policy("default").strict()}, settings_for(model::IstioVersion{5})) ==
          Sends{{"web-mesh", "PLAINTEXT"}, {"web-plain", "PLAINTEXT"}});
}

TEST_CASE("A MESH_EXTERNAL host never gets auto mTLS; only its DestinationRule's tls applies",
          "[client-send][external]") {
    auto [rule_tls, client] = GENERATE(table<std::string, std::string>({
        {"", "PLAINTEXT"},
        {"SIMPLE", "SIMPLE"},
        {"MUTUAL", "MUTUAL"},
        {"ISTIO_MUTUAL", "ISTIO_MUTUAL"},
    }));
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        service_entry("front", "api", {"api.example.com"}),
    };
    if (!rule_tls.empty())
        objects.push_back(destination_rule("front", "api", "api.example.com").tls(rule_tls));
    INFO(rule_tls);
    const auto rows = matrix_rows(*snapshot_of(objects));
    const auto row = row_of(rows, "front", true, "api.example.com", "");
    REQUIRE(row.has_value());
    CHECK(row->client == client);
    CHECK(row->server == "NO_SIDECAR");
}

TEST_CASE("target_port_of follows a numeric target port or the workload's named port",
          "[client-send]") {
    const auto snapshot = snapshot_of({
        deployment("shop", "web").labels({{"app", "web"}}).container_port(8080, "http"),
        service("shop", "web")
            .selecting({{"app", "web"}})
            .port(80, 8080)
            .named_target_port(81, "http")
            .named_target_port(82, "grpc"),
    });
    const auto& w = workload_named(*snapshot, "shop", "web");
    const auto& svc = service_named(*snapshot, "shop", "web");
    CHECK(resolution::target_port_of(w, port_of(svc, 80)) == 8080);
    CHECK(resolution::target_port_of(w, port_of(svc, 81)) == 8080);
    CHECK(resolution::target_port_of(w, port_of(svc, 82)) == 0); // not an endpoint of that port
}
