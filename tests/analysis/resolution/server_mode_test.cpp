// Tests resolution/server_mode: the mode of a workload port, current and legacy (spec §3).
#include "analysis/resolution/client_send.hpp"
#include "analysis/resolution/server_mode.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using resolution::ConfigView;
using resolution::ServerAccept;

namespace {

// shop/web (sidecar, app=web) listens on 8080 (http) and 9090 (grpc); Service web maps
// 80 -> 8080 and 9090 -> 9090. shop/api (sidecar, app=api) listens on 8080.
std::vector<json> shop() {
    return {
        deployment("shop", "web")
            .labels({{"app", "web"}, {"tier", "front"}})
            .with_sidecar()
            .container_port(8080, "http")
            .container_port(9090, "grpc"),
        deployment("shop", "api").labels({{"app", "api"}}).with_sidecar().container_port(8080),
        service("shop", "web")
            .selecting({{"app", "web"}})
            .port(80, 8080, "http")
            .port(9090, 9090, "grpc"),
        service("shop", "api").selecting({{"app", "api"}}).port(80, 8080, "http"),
    };
}

std::vector<json> with(std::vector<json> objects, const std::vector<json>& more) {
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

std::string name_of(const resolution::ServerMode& mode) {
    if (mode.peer_authentication)
        return mode.peer_authentication->ref.name;
    if (mode.alpha_policy)
        return mode.alpha_policy->ref.name;
    return "";
}

// "MODE by name" for the workload's target port, reached through the Service port.
std::string mode_of(const model::Snapshot& snapshot, const std::string& workload, int target_port,
                    const std::string& svc, int service_port) {
    const ConfigView view(snapshot);
    const auto& w = workload_named(snapshot, "shop", workload);
    const auto& record = service_named(snapshot, "shop", svc);
    const auto mode = resolution::effective_server_mode(
        view, w, static_cast<std::uint16_t>(target_port), record, port_of(record, service_port));
    std::string out(resolution::to_string(mode.accept));
    if (!name_of(mode).empty())
        out += " by " + name_of(mode);
    return out;
}

std::string web_mode(const std::vector<json>& config, model::Settings settings = {}) {
    return mode_of(*snapshot_of(with(shop(), config), std::move(settings)), "web", 8080, "web", 80);
}

} // namespace

TEST_CASE("The mode composes from PERMISSIVE through mesh, namespace and workload, and UNSET "
          "inherits",
          "[server-mode][compose]") {
    // "" means no policy at that scope.
    auto [mesh, ns, workload, expected] =
        GENERATE(table<std::string, std::string, std::string, std::string>({
            {"", "", "", "PERMISSIVE"},
            {"STRICT", "", "", "STRICT by mesh"},
            {"DISABLE", "", "", "DISABLE by mesh"},
            {"PERMISSIVE", "", "", "PERMISSIVE by mesh"},
            {"UNSET", "", "", "PERMISSIVE"},
            {"STRICT", "PERMISSIVE", "", "PERMISSIVE by namespace"},
            {"PERMISSIVE", "STRICT", "", "STRICT by namespace"},
            {"STRICT", "UNSET", "", "STRICT by mesh"},
            {"DISABLE", "UNSET", "UNSET", "DISABLE by mesh"},
            {"STRICT", "DISABLE", "PERMISSIVE", "PERMISSIVE by workload"},
            {"", "STRICT", "DISABLE", "DISABLE by workload"},
            {"DISABLE", "STRICT", "UNSET", "STRICT by namespace"},
            {"", "", "STRICT", "STRICT by workload"},
            {"STRICT", "DISABLE", "UNSET", "DISABLE by namespace"},
            {"UNSET", "UNSET", "DISABLE", "DISABLE by workload"},
            {"DISABLE", "", "STRICT", "STRICT by workload"},
        }));
    std::vector<json> config;
    if (!mesh.empty())
        config.push_back(peer_authentication("istio-system", "mesh").mode(mesh));
    if (!ns.empty())
        config.push_back(peer_authentication("shop", "namespace").mode(ns));
    if (!workload.empty())
        config.push_back(
            peer_authentication("shop", "workload").selecting({{"app", "web"}}).mode(workload));
    INFO("mesh " << mesh << ", namespace " << ns << ", workload " << workload);
    CHECK(web_mode(config) == expected);
}

TEST_CASE("A PeerAuthentication without an mtls block inherits like UNSET", "[server-mode]") {
    json bare = peer_authentication("shop", "default");
    CHECK(web_mode({peer_authentication("istio-system", "mesh").strict(), bare}) ==
          "STRICT by mesh");
}

TEST_CASE("A workload policy applies only when its matchLabels are a subset of the pod labels",
          "[server-mode]") {
    auto [selector, expected] = GENERATE(table<LabelMap, std::string>({
        {{{"app", "web"}}, "STRICT by only-web"},
        {{{"app", "web"}, {"tier", "front"}}, "STRICT by only-web"},
        {{{"app", "web"}, {"tier", "back"}}, "PERMISSIVE"},
        {{{"app", "api"}}, "PERMISSIVE"},
        {{{"app", "web"}, {"version", "v1"}}, "PERMISSIVE"},
    }));
    CHECK(web_mode({peer_authentication("shop", "only-web").selecting(selector).strict()}) ==
          expected);
}

TEST_CASE("Within one scope the oldest policy counts, and equal ages go to the smaller name",
          "[server-mode][age]") {
    SECTION("namespace-wide, the newer added first") {
        CHECK(web_mode({
                  peer_authentication("shop", "newer").disable().created(day(9)),
                  peer_authentication("shop", "older").strict().created(day(2)),
              }) == "STRICT by older");
    }
    SECTION("namespace-wide, same timestamp") {
        CHECK(web_mode({
                  peer_authentication("shop", "b-disable").disable().created(day(2)),
                  peer_authentication("shop", "a-strict").strict().created(day(2)),
              }) == "STRICT by a-strict");
    }
    SECTION("mesh-wide") {
        CHECK(web_mode({
                  peer_authentication("istio-system", "young").strict().created(day(8)),
                  peer_authentication("istio-system", "old").disable().created(day(1)),
              }) == "DISABLE by old");
    }
    SECTION("workload, both selecting the pod") {
        CHECK(web_mode({
                  peer_authentication("shop", "by-tier")
                      .selecting({{"tier", "front"}})
                      .disable()
                      .created(day(4)),
                  peer_authentication("shop", "by-app")
                      .selecting({{"app", "web"}})
                      .strict()
                      .created(day(3)),
              }) == "STRICT by by-app");
    }
    SECTION("workload, same timestamp") {
        CHECK(web_mode({
                  peer_authentication("shop", "zz")
                      .selecting({{"app", "web"}})
                      .disable()
                      .created(day(3)),
                  peer_authentication("shop", "aa")
                      .selecting({{"tier", "front"}})
                      .strict()
                      .created(day(3)),
              }) == "STRICT by aa");
    }
    SECTION("an applied policy is older than a manifest without a timestamp") {
        json manifest = peer_authentication("shop", "a-manifest").disable();
        CHECK(web_mode(
                  {manifest, peer_authentication("shop", "z-applied").strict().created(day(20))}) ==
              "STRICT by z-applied");
    }
}

TEST_CASE("§3: every workload's selector policy is the oldest that selects it, in the snapshot, "
          "an incremental update and a relabelled namespace",
          "[server-mode][age]") {
    // The namespace config answers by the workload's position (workload_policy_by_position):
    // each answer must be the one matching the selectors gives, wherever the workload sits.
    const std::vector<json> policies = {
        peer_authentication("shop", "by-tier")
            .selecting({{"tier", "front"}})
            .disable()
            .created(day(4)),
        peer_authentication("shop", "by-app").selecting({{"app", "web"}}).strict().created(day(3)),
        peer_authentication("shop", "by-db")
            .selecting({{"app", "db"}})
            .permissive()
            .created(day(5)),
    };
    const json db = deployment("shop", "db").labels({{"app", "db"}}).with_sidecar();
    const json cache = deployment("shop", "cache").labels({{"tier", "front"}}).with_sidecar();
    const auto expect = [](const ConfigView& view, const model::Snapshot& snapshot) {
        const std::map<std::string, std::string> wanted = {
            {"web", "by-app"}, {"api", ""}, {"db", "by-db"}, {"cache", "by-tier"}};
        std::size_t seen = 0;
        for (const auto& listed : snapshot.workloads()) {
            const model::Workload& w = view.workload(snapshot.workload_id(listed));
            INFO("workload " << w.name);
            const auto* policy = view.workload_policy(w);
            CHECK(policy == view.config(w.ns).workload_policy_for(w.labels));
            CHECK((policy ? policy->ref.name : "") == wanted.at(w.name));
            ++seen;
        }
        CHECK(seen == wanted.size());
        // A copy is not the view's record: it is matched by its labels, with the same answer.
        const model::Workload copy = workload_named(snapshot, "shop", "web");
        CHECK(view.workload_policy(copy)->ref.name == "by-app");
    };
    // "cache" comes after "db" in the first snapshot, and before it after the update.
    const auto first = snapshot_of(with(with(shop(), policies), {db, cache}));
    REQUIRE_FALSE(first->config(ns_id(*first, "shop")).workload_policy_by_position.empty());
    expect(ConfigView(*first), *first);

    model::SnapshotBuilder update;
    for (const auto& object : with(with(shop(), policies), {cache, db}))
        REQUIRE_FALSE(update.add(object).has_value());
    const auto updated = update.build_update(*first, {"shop"});
    REQUIRE(updated != nullptr);
    expect(ConfigView(*updated), *updated);

    const model::NsId shop_id = ns_id(*first, "shop");
    for (auto timing : {model::RelabelTiming::AtOnce, model::RelabelTiming::AfterRestart}) {
        const ConfigView relabelled(
            *first,
            std::make_shared<const model::RelabelledNamespace>(
                model::SnapshotBuilder::relabel_overlay(
                    *first, shop_id, labels_of({{"istio.io/dataplane-mode", "ambient"}}), timing)));
        expect(relabelled, *first);
    }
}

TEST_CASE("A PeerAuthentication with a selector in the root namespace applies to nothing",
          "[server-mode][root]") {
    SECTION("to workloads elsewhere") {
        CHECK(web_mode({peer_authentication("istio-system", "web-strict")
                            .selecting({{"app", "web"}})
                            .strict()}) == "PERMISSIVE");
    }
    SECTION("nor to workloads of the root namespace itself") {
        const auto snapshot = snapshot_of({
            deployment("istio-system", "gateway")
                .labels({{"app", "gateway"}})
                .with_sidecar()
                .container_port(8443),
            service("istio-system", "gateway").selecting({{"app", "gateway"}}).port(443, 8443),
            peer_authentication("istio-system", "gateway-strict")
                .selecting({{"app", "gateway"}})
                .strict(),
            peer_authentication("istio-system", "mesh").disable(),
        });
        const ConfigView view(*snapshot);
        const auto mode = resolution::peer_authentication_mode(
            view, workload_named(*snapshot, "istio-system", "gateway"), 8443);
        CHECK(mode.accept == ServerAccept::Disable);
        CHECK(name_of(mode) == "mesh");
    }
}

TEST_CASE("portLevelMtls is keyed by the workload's target port, and UNSET on a port inherits",
          "[server-mode][ports]") {
    const std::vector<json> config{
        peer_authentication("shop", "namespace").disable(),
        peer_authentication("shop", "web")
            .selecting({{"app", "web"}})
            .strict()
            .port(8080, "PERMISSIVE")
            .port(9090, "UNSET")
            .port(80, "DISABLE"), // a Service port: matches no target port
    };
    const auto snapshot = snapshot_of(with(shop(), config));
    auto [target, service_port, expected] = GENERATE(table<int, int, std::string>({
        {8080, 80, "PERMISSIVE by web"},
        {9090, 9090, "STRICT by web"},
    }));
    CHECK(mode_of(*snapshot, "web", target, "web", service_port) == expected);
    const ConfigView view(*snapshot);
    const auto& w = workload_named(*snapshot, "shop", "web");
    CHECK(resolution::peer_authentication_mode(view, w, 8080).port_level);
    CHECK_FALSE(resolution::peer_authentication_mode(view, w, 9090).port_level);
    // A key equal to a Service port does not apply to the target port behind it.
    CHECK(resolution::peer_authentication_mode(view, w, 80).accept == ServerAccept::Disable);
}

TEST_CASE("portLevelMtls applies when the workload mode is UNSET and other ports inherit the "
          "namespace",
          "[server-mode][ports]") {
    const auto snapshot = snapshot_of(with(
        shop(),
        {peer_authentication("shop", "namespace").permissive(),
         peer_authentication("shop", "web").selecting({{"app", "web"}}).port(9090, "STRICT")}));
    CHECK(mode_of(*snapshot, "web", 9090, "web", 9090) == "STRICT by web");
    CHECK(mode_of(*snapshot, "web", 8080, "web", 80) == "PERMISSIVE by namespace");
}

TEST_CASE("A named targetPort resolves to the workload's container port for portLevelMtls",
          "[server-mode][ports]") {
    const auto snapshot = snapshot_of({
        deployment("shop", "web")
            .labels({{"app", "web"}})
            .with_sidecar()
            .container_port(8080, "http"),
        service("shop", "web").selecting({{"app", "web"}}).named_target_port(80, "http", "web"),
        peer_authentication("shop", "web").selecting({{"app", "web"}}).port(8080, "STRICT"),
    });
    const auto& record = service_named(*snapshot, "shop", "web");
    const auto& w = workload_named(*snapshot, "shop", "web");
    const auto target = resolution::target_port_of(w, port_of(record, 80));
    CHECK(target == 8080);
    const ConfigView view(*snapshot);
    CHECK(resolution::effective_server_mode(view, w, target, record, port_of(record, 80)).accept ==
          ServerAccept::Strict);
}

TEST_CASE("portLevelMtls on a namespace-wide policy has no effect", "[server-mode][ports]") {
    json ns_policy = peer_authentication("shop", "default").strict();
    ns_policy["spec"]["portLevelMtls"]["8080"]["mode"] = "DISABLE";
    CHECK(web_mode({ns_policy}) == "STRICT by default");
}

TEST_CASE("A workload without a sidecar speaks only plaintext, whatever the policies say",
          "[server-mode]") {
    auto [version, policies] = GENERATE_COPY(table<model::IstioVersion, std::vector<json>>({
        {model::IstioVersion::current(),
         {peer_authentication("shop", "default").strict(),
          peer_authentication("shop", "plain").selecting({{"app", "plain"}}).strict()}},
        {model::IstioVersion{5}, {policy("shop", "default").strict()}},
        {model::IstioVersion{4}, {mesh_policy("default").strict()}},
    }));
    std::vector<json> objects{
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080),
    };
    objects.insert(objects.end(), policies.begin(), policies.end());
    const auto snapshot = snapshot_of(objects, settings_for(version));
    const ConfigView view(*snapshot);
    const auto& record = service_named(*snapshot, "shop", "plain");
    const auto mode = resolution::effective_server_mode(
        view, workload_named(*snapshot, "shop", "plain"), 8080, record, port_of(record, 80));
    CHECK(mode.accept == ServerAccept::NoSidecar);
    CHECK(mode.peer_authentication == nullptr);
    CHECK(mode.alpha_policy == nullptr);
}

TEST_CASE("namespace_mode reads only the mesh- and namespace-wide policies",
          "[server-mode][namespace]") {
    const auto snapshot = snapshot_of(
        with(shop(), {peer_authentication("istio-system", "mesh").disable(),
                      peer_authentication("shop", "namespace").unset(),
                      peer_authentication("shop", "web").selecting({{"app", "web"}}).strict()}));
    const ConfigView view(*snapshot);
    const auto mode = resolution::namespace_mode(view, ns_id(*snapshot, "shop"));
    CHECK(mode.accept == ServerAccept::Disable);
    CHECK(name_of(mode) == "mesh");
    CHECK(resolution::namespace_mode(view, ns_id(*snapshot, "istio-system")).accept ==
          ServerAccept::Disable);
}

TEST_CASE("Legacy Istio uses v1alpha1 precedence for a (service, service port)",
          "[server-mode][legacy]") {
    // Service web: port 80 named http (target 8080), port 9090 named grpc.
    auto [description, policies, service_port, mode_1_4, mode_1_5] =
        GENERATE_COPY(table<std::string, std::vector<json>, int, std::string, std::string>({
            {"nothing at all", {}, 80, "DISABLE", "PERMISSIVE"},
            {"a targeted policy with the port number",
             {policy("shop", "web-80").target_port("web", 80).strict(),
              policy("shop", "default").permissive()},
             80,
             "STRICT by web-80",
             "STRICT by web-80"},
            {"a targeted policy with the port number, for another port",
             {policy("shop", "web-80").target_port("web", 80).strict(),
              policy("shop", "default").permissive()},
             9090,
             "PERMISSIVE by default",
             "PERMISSIVE by default"},
            {"a targeted policy with the port name",
             {policy("shop", "web-grpc").target_port_name("web", "grpc").strict()},
             9090,
             "STRICT by web-grpc",
             "STRICT by web-grpc"},
            {"a port selector naming the target port, not the Service port",
             {policy("shop", "web-8080").target_port("web", 8080).strict()},
             80,
             "DISABLE",
             "PERMISSIVE"},
            {"a port-targeted policy beats an older whole-service one",
             {policy("shop", "web-all").target("web").permissive().created(day(1)),
              policy("shop", "web-80").target_port("web", 80).strict().created(day(5))},
             80,
             "STRICT by web-80",
             "STRICT by web-80"},
            {"a whole-service policy for a port no selector names",
             {policy("shop", "web-all").target("web").permissive().created(day(1)),
              policy("shop", "web-80").target_port("web", 80).strict().created(day(5))},
             9090,
             "PERMISSIVE by web-all",
             "PERMISSIVE by web-all"},
            {"a targeted policy beats the namespace-wide one",
             {policy("shop", "default").strict(),
              policy("shop", "web-all").target("web").permissive()},
             80,
             "PERMISSIVE by web-all",
             "PERMISSIVE by web-all"},
            {"a policy targeting another service does not apply",
             {policy("shop", "api-only").target("api").strict()},
             80,
             "DISABLE",
             "PERMISSIVE"},
            {"the namespace-wide policy beats the MeshPolicy",
             {policy("shop", "default").strict(), mesh_policy("default").permissive()},
             80,
             "STRICT by default",
             "STRICT by default"},
            {"the MeshPolicy named default applies",
             {mesh_policy("default").strict()},
             80,
             "STRICT by default",
             "STRICT by default"},
            {"a MeshPolicy with another name is ignored",
             {mesh_policy("mesh-wide").strict()},
             80,
             "DISABLE",
             "PERMISSIVE"},
            {"a policy without an mtls peer means plaintext only",
             {policy("shop", "web-jwt").target("web").plaintext_only(),
              mesh_policy("default").strict()},
             80,
             "DISABLE by web-jwt",
             "DISABLE by web-jwt"},
            {"the oldest wins within a level",
             {policy("shop", "web-new").target("web").strict().created(day(7)),
              policy("shop", "web-old").target("web").permissive().created(day(2))},
             80,
             "PERMISSIVE by web-old",
             "PERMISSIVE by web-old"},
        }));
    // Named copies: a lambda (GENERATE_COPY's) may not capture structured bindings before C++20's
    // P1091, which clang 14 lacks.
    const std::string expected_1_4 = mode_1_4;
    const std::string expected_1_5 = mode_1_5;
    auto [version, expected] = GENERATE_COPY(table<model::IstioVersion, std::string>({
        {model::IstioVersion{4}, expected_1_4},
        {model::IstioVersion{5}, expected_1_5},
    }));
    INFO(description << " (" << model::to_string(version) << ")");
    const auto snapshot = snapshot_of(with(shop(), policies), settings_for(version));
    const int target = service_port == 80 ? 8080 : service_port;
    CHECK(mode_of(*snapshot, "web", target, "web", service_port) == expected);
}

TEST_CASE("alpha_policy_for returns the policy that decides, or none", "[server-mode][legacy]") {
    const auto snapshot =
        snapshot_of(with(shop(), {policy("shop", "web-80").target_port("web", 80).strict(),
                                  mesh_policy("other").strict()}),
                    settings_for(model::IstioVersion{5}));
    const ConfigView view(*snapshot);
    const auto& web = service_named(*snapshot, "shop", "web");
    const auto* decided = resolution::alpha_policy_for(view, web, port_of(web, 80));
    REQUIRE(decided != nullptr);
    CHECK(decided->ref.name == "web-80");
    CHECK(resolution::alpha_policy_for(view, web, port_of(web, 9090)) == nullptr);
}

TEST_CASE("In 1.5 a PeerAuthentication that applies to the workload overrides the alpha policies",
          "[server-mode][legacy]") {
    const json alpha_strict = policy("shop", "web-all").target("web").strict();
    auto [description, peer_auth, expected] = GENERATE_COPY(table<std::string, json, std::string>({
        {"a namespace-wide PERMISSIVE", peer_authentication("shop", "default").permissive(),
         "PERMISSIVE by default"},
        {"a workload DISABLE",
         peer_authentication("shop", "web").selecting({{"app", "web"}}).disable(),
         "DISABLE by web"},
        {"a mesh-wide one whose mode is UNSET", peer_authentication("istio-system", "mesh").unset(),
         "PERMISSIVE"},
        {"one selecting another workload does not apply",
         peer_authentication("shop", "api").selecting({{"app", "api"}}).permissive(),
         "STRICT by web-all"},
        {"a selector policy in the root namespace does not apply",
         peer_authentication("istio-system", "web").selecting({{"app", "web"}}).permissive(),
         "STRICT by web-all"},
    }));
    INFO(description);
    CHECK(web_mode({alpha_strict, peer_auth}, settings_for(model::IstioVersion{5})) == expected);
}

TEST_CASE("Istio 1.4 knows no PeerAuthentication, and current Istio no v1alpha1 policy",
          "[server-mode][legacy]") {
    CHECK(web_mode({peer_authentication("shop", "default").strict()},
                   settings_for(model::IstioVersion{4})) == "DISABLE");
    CHECK(web_mode({policy("shop", "default").strict(), mesh_policy("default").strict()}) ==
          "PERMISSIVE");
}

TEST_CASE("any_peer_authentication_applies sees mesh, namespace and matching workload policies",
          "[server-mode]") {
    auto [policies, applies] = GENERATE_COPY(table<std::vector<json>, bool>({
        {std::vector<json>{}, false},
        {{peer_authentication("istio-system", "mesh").unset()}, true},
        {{peer_authentication("shop", "default").permissive()}, true},
        {{peer_authentication("shop", "w").selecting({{"app", "web"}}).strict()}, true},
        {{peer_authentication("shop", "w").selecting({{"app", "api"}}).strict()}, false},
        {{peer_authentication("other", "default").strict()}, false},
        {{peer_authentication("istio-system", "w").selecting({{"app", "web"}}).strict()}, false},
    }));
    const auto snapshot = snapshot_of(with(shop(), policies));
    const ConfigView view(*snapshot);
    CHECK(resolution::any_peer_authentication_applies(
              view, workload_named(*snapshot, "shop", "web")) == applies);
}

TEST_CASE("The mesh-wide scope is the configured root namespace, not istio-system",
          "[server-mode][root]") {
    const auto snapshot = snapshot_of(with(
        shop(), {istio_config_map({{"rootNamespace", "istio-config"}}),
                 peer_authentication("istio-config", "mesh").strict(),
                 // An ordinary namespace now: its policy is namespace-wide for istio-system only.
                 peer_authentication("istio-system", "default").disable(),
                 deployment("istio-system", "gw").labels({{"app", "gw"}}).with_sidecar(),
                 service("istio-system", "gw").selecting({{"app", "gw"}}).port(443, 8443)}));
    CHECK(mode_of(*snapshot, "web", 8080, "web", 80) == "STRICT by mesh");
    const ConfigView view(*snapshot);
    const auto gateway = resolution::peer_authentication_mode(
        view, workload_named(*snapshot, "istio-system", "gw"), 8443);
    CHECK(gateway.accept == ServerAccept::Disable);
    CHECK(name_of(gateway) == "default");
}

TEST_CASE("portLevelMtls of a newer workload policy that lost to an older one is ignored",
          "[server-mode][ports]") {
    const auto snapshot = snapshot_of(with(
        shop(),
        {peer_authentication("shop", "older").selecting({{"app", "web"}}).strict().created(day(1)),
         peer_authentication("shop", "newer")
             .selecting({{"tier", "front"}})
             .port(8080, "DISABLE")
             .created(day(2))}));
    CHECK(mode_of(*snapshot, "web", 8080, "web", 80) == "STRICT by older");
}

TEST_CASE("§13: which inbound ports a sidecar intercepts", "[server-mode][interception]") {
    auto [include, exclude, port, intercepted] =
        GENERATE(table<std::optional<std::string>, std::optional<std::string>, int, bool>({
            {std::nullopt, std::nullopt, 8080, true},
            {std::string("*"), std::nullopt, 8080, true},
            {std::string(""), std::nullopt, 8080, false},
            {std::string("8080,9090"), std::nullopt, 8080, true},
            {std::string("9090"), std::nullopt, 8080, false},
            {std::nullopt, std::string("8080"), 8080, false},
            {std::nullopt, std::string(" 9090 , 8080 "), 8080, false},
            {std::nullopt, std::string("80800"), 8080, true},
            {std::string("*"), std::string("8080"), 8080, false},
            {std::nullopt, std::string("not-a-port"), 8080, true},
        }));
    model::Interception interception;
    interception.include_inbound_ports = include;
    interception.exclude_inbound_ports = exclude;
    INFO("include " << include.value_or("(absent)") << ", exclude "
                    << exclude.value_or("(absent)"));
    CHECK(resolution::intercepts_inbound(interception, static_cast<std::uint16_t>(port)) ==
          intercepted);
}

TEST_CASE("§13: which outbound connections skip a client's sidecar, in istio-iptables' order",
          "[server-mode][interception]") {
    using Text = std::optional<std::string>;
    const Text none;
    const std::optional<std::uint32_t> ip = model::parse_ipv4("10.96.3.7");
    const std::optional<std::uint32_t> unknown;
    // excludePorts, excludeRanges, includePorts, includeRanges, address, expected annotation
    auto [exclude_ports, exclude_ranges, include_ports, include_ranges, address, expected] =
        GENERATE_COPY(table<Text, Text, Text, Text, std::optional<std::uint32_t>, std::string>({
            {none, none, none, none, ip, ""},
            {Text("5432, 80"), none, none, none, ip, "excludeOutboundPorts"},
            {Text("5432"), none, none, none, ip, ""},
            {none, Text("10.96.0.0/16"), none, none, ip, "excludeOutboundIPRanges"},
            {none, Text("10.97.0.0/16,10.96.3.7"), none, none, ip, "excludeOutboundIPRanges"},
            {none, Text("10.96.0.0/16"), none, none, unknown, ""}, // no address, no evidence
            {none, none, none, Text("*"), ip, ""},
            {none, none, none, Text(""), ip, "includeOutboundIPRanges"},
            {none, none, none, Text(""), unknown, "includeOutboundIPRanges"},
            {none, none, none, Text("10.0.0.0/8"), ip, ""},
            {none, none, none, Text("172.16.0.0/12"), ip, "includeOutboundIPRanges"},
            {none, none, none, Text("172.16.0.0/12"), unknown, ""},
            // includeOutboundPorts captures before the include ranges, after the exclusions.
            {none, none, Text("80"), Text(""), ip, ""},
            {Text("80"), none, Text("80"), none, ip, "excludeOutboundPorts"},
            {none, Text("10.96.0.0/16"), Text("80"), none, ip, "excludeOutboundIPRanges"},
            {none, Text("0.0.0.0/0"), none, none, ip, "excludeOutboundIPRanges"},
            {none, Text("not-a-range, fd00::/8"), none, none, ip, ""},
        }));
    model::Interception interception;
    interception.exclude_outbound_ports = exclude_ports;
    interception.exclude_outbound_ip_ranges = exclude_ranges;
    interception.include_outbound_ports = include_ports;
    interception.include_outbound_ip_ranges = include_ranges;
    INFO("excludePorts " << exclude_ports.value_or("-") << ", excludeRanges "
                         << exclude_ranges.value_or("-") << ", includePorts "
                         << include_ports.value_or("-") << ", includeRanges "
                         << include_ranges.value_or("-") << ", address "
                         << (address ? "known" : "unknown"));
    const auto why = resolution::outbound_bypass(interception, 80, address);
    CHECK(std::string(why.value_or("")) ==
          (expected.empty() ? "" : "traffic.sidecar.istio.io/" + expected));
}
