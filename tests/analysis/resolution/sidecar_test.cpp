// Tests resolution/sidecar: which Sidecar resource a client uses and which hosts it sees
// (ambient.md §14).
#include "analysis/model/decode.hpp"
#include "analysis/resolution/destination_rule.hpp"
#include "analysis/resolution/sidecar.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using resolution::ConfigView;

namespace {

// front/ui and front/ui-canary run sidecars; shop/web serves Service web (80 -> 8080).
std::vector<json> mesh(const std::vector<json>& more) {
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("front", "ui-canary")
            .labels({{"app", "ui"}, {"track", "canary"}})
            .with_sidecar(),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

model::Sidecar decoded_sidecar(const json& object) {
    const auto outcome = model::decode_object(object, "default");
    REQUIRE(outcome.status == model::DecodeOutcome::Status::Decoded);
    return std::get<model::Sidecar>(*outcome.object);
}

// The name of the Sidecar a client workload of `ns` uses, "none" when none applies.
std::string sidecar_used(const model::Snapshot& snapshot, const std::string& ns,
                         const std::string& workload) {
    const ConfigView view(snapshot);
    const auto client = ns_id(snapshot, ns);
    const auto& w = workload_named(snapshot, ns, workload);
    const auto position = snapshot.workloads().position_of(w);
    const auto& variants = view.config(client).variants;
    for (std::size_t v = 0; v < variants.size(); ++v) {
        const auto& members = variants[v].workloads;
        if (std::find(members.begin(), members.end(), position) == members.end())
            continue;
        const model::Sidecar* used = resolution::sidecar_of(view, client, v);
        return used ? used->ref.namespace_name + "/" + used->ref.name : "none";
    }
    FAIL("workload " << ns << "/" << workload << " is in no client variant");
    return {};
}

} // namespace

SCENARIO("ambient.md §14: an egress host imports a Service when its namespace part and host part "
         "both match",
         "[sidecar][ambient-14]") {
    auto [entry, client_ns, host, host_ns,
          imported] = GENERATE(table<std::string, std::string, std::string, std::string, bool>({
        {"shop/web.shop.svc.cluster.local", "front", "web.shop.svc.cluster.local", "shop", true},
        {"shop/*", "front", "web.shop.svc.cluster.local", "shop", true},
        {"other/*", "front", "web.shop.svc.cluster.local", "shop", false},
        {"./*", "front", "web.shop.svc.cluster.local", "shop", false},
        {"./*", "shop", "web.shop.svc.cluster.local", "shop", true},
        {"*/*", "front", "web.shop.svc.cluster.local", "shop", true},
        {"*/web.shop.svc.cluster.local", "front", "web.shop.svc.cluster.local", "shop", true},
        {"*/*.shop.svc.cluster.local", "front", "web.shop.svc.cluster.local", "shop", true},
        {"*/*.example.com", "front", "web.shop.svc.cluster.local", "shop", false},
        {"*/*.example.com", "front", "api.example.com", "shop", true},
        // A wildcard needs something before its suffix.
        {"*/*.example.com", "front", ".example.com", "shop", false},
        // Short names are not expanded: Istio compares the FQDN.
        {"shop/web", "front", "web.shop.svc.cluster.local", "shop", false},
        {"~/*", "front", "web.shop.svc.cluster.local", "shop", false},
    }));
    GIVEN("a Sidecar in " << client_ns << " with egress host " << entry) {
        const auto sc = decoded_sidecar(sidecar(client_ns, "s").egress({entry}));
        THEN(host << " of " << host_ns << " is " << (imported ? "" : "not ") << "imported") {
            CHECK(resolution::sidecar_imports(sc, client_ns, host, host_ns) == imported);
        }
    }
}

SCENARIO("ambient.md §14: any egress listener may import a host, and no egress imports "
         "everything",
         "[sidecar][ambient-14]") {
    const std::string host = "web.shop.svc.cluster.local";
    CHECK(resolution::sidecar_imports(
        decoded_sidecar(sidecar("front", "s").egress({"./*"}).egress({"shop/*"})), "front", host,
        "shop"));
    CHECK(
        resolution::sidecar_imports(decoded_sidecar(sidecar("front", "s")), "front", host, "shop"));
    CHECK_FALSE(resolution::sidecar_imports(
        decoded_sidecar(sidecar("front", "s").egress({"no-slash"})), "front", host, "shop"));
}

SCENARIO("ambient.md §14: a client uses its namespace's matching selector Sidecar, else the "
         "namespace default, else the root namespace's, else none",
         "[sidecar][ambient-14]") {
    const json canary = sidecar("front", "canary")
                            .for_workloads({{"track", "canary"}})
                            .egress({"./*"})
                            .created(day(5));
    const json front_default = sidecar("front", "default").egress({"./*"}).created(day(1));
    const json root_default = sidecar("istio-system", "default").egress({"./*"}).created(day(1));
    GIVEN("no Sidecar anywhere") {
        const auto snapshot = snapshot_of(mesh({}));
        CHECK(sidecar_used(*snapshot, "front", "ui") == "none");
    }
    GIVEN("only the root namespace's default") {
        const auto snapshot = snapshot_of(mesh({root_default}));
        CHECK(sidecar_used(*snapshot, "front", "ui") == "istio-system/default");
        CHECK(sidecar_used(*snapshot, "front", "ui-canary") == "istio-system/default");
    }
    GIVEN("a selector Sidecar, a namespace default and a root default") {
        const auto snapshot = snapshot_of(mesh({canary, front_default, root_default}));
        CHECK(sidecar_used(*snapshot, "front", "ui-canary") == "front/canary");
        CHECK(sidecar_used(*snapshot, "front", "ui") == "front/default");
    }
    GIVEN("a selector Sidecar and a root default, but no namespace default") {
        const auto snapshot = snapshot_of(mesh({canary, root_default}));
        CHECK(sidecar_used(*snapshot, "front", "ui-canary") == "front/canary");
        CHECK(sidecar_used(*snapshot, "front", "ui") == "istio-system/default");
    }
    GIVEN("two selector Sidecars matching the same pods") {
        const json older = sidecar("front", "older").for_workloads({{"app", "ui"}}).created(day(2));
        const auto snapshot = snapshot_of(mesh({canary, older}));
        THEN("the oldest wins") {
            CHECK(sidecar_used(*snapshot, "front", "ui-canary") == "front/older");
        }
    }
}

SCENARIO("ambient.md §14: the outbound policy is the Sidecar's own, else the mesh config's, else "
         "ALLOW_ANY",
         "[sidecar][ambient-14]") {
    const auto snapshot_default = snapshot_of(mesh({}));
    const auto registry_mesh = snapshot_of(
        mesh({istio_config_map({{"outboundTrafficPolicy", {{"mode", "REGISTRY_ONLY"}}}})}));
    const auto plain = decoded_sidecar(sidecar("front", "s"));
    const auto allow = decoded_sidecar(sidecar("front", "s").outbound("ALLOW_ANY"));
    using model::OutboundPolicy;
    CHECK(resolution::outbound_policy(ConfigView(*snapshot_default), plain) ==
          OutboundPolicy::AllowAny);
    CHECK(resolution::outbound_policy(ConfigView(*registry_mesh), plain) ==
          OutboundPolicy::RegistryOnly);
    CHECK(resolution::outbound_policy(ConfigView(*registry_mesh), allow) ==
          OutboundPolicy::AllowAny);
}

SCENARIO("ambient.md §14: a hidden host gets no DestinationRule, a visible one the usual one",
         "[sidecar][ambient-14]") {
    const json rule = destination_rule("shop", "web", "web").tls("ISTIO_MUTUAL");
    const json canary_hides =
        sidecar("front", "canary").for_workloads({{"track", "canary"}}).egress({"./*"});
    const auto snapshot = snapshot_of(mesh({rule, canary_hides}));
    const ConfigView view(*snapshot);
    const auto clients = resolution::resolve_host_clients(view, "web.shop.svc.cluster.local",
                                                          ns_id(*snapshot, "shop"));
    std::map<std::string, std::string> answer; // client class -> "rule" or "hidden by"
    const auto front = ns_id(*snapshot, "front");
    clients.for_each_outcome([&](const resolution::ClientOutcome& outcome) {
        for (const auto& member : resolution::expand_members(view, outcome, clients)) {
            if (member.ns != front)
                continue;
            const auto& variant = view.config(front).variants[member.variant];
            const std::string who = variant.sidecar ? variant.sidecar->ref.name : "others";
            answer[who] = outcome.hidden_by ? "hidden by " + outcome.hidden_by->ref.name
                          : outcome.rule    ? "rule " + outcome.rule->members.front()->ref.name
                                            : "no rule";
        }
    });
    CHECK(answer == std::map<std::string, std::string>{{"canary", "hidden by canary"},
                                                       {"others", "rule web"}});
}

namespace {

// Whether two answers for one host are the same, outcome by outcome.
void check_same(const resolution::HostClients& index, const resolution::HostClients& alone) {
    REQUIRE(index.outcomes.size() == alone.outcomes.size());
    for (std::size_t i = 0; i < index.outcomes.size(); ++i) {
        CHECK(index.outcomes[i].rule == alone.outcomes[i].rule);
        CHECK(index.outcomes[i].members == alone.outcomes[i].members);
        CHECK(index.outcomes[i].generic == alone.outcomes[i].generic);
        CHECK(index.outcomes[i].hidden_by == alone.outcomes[i].hidden_by);
    }
    CHECK(index.resolved == alone.resolved);
    CHECK(index.generic == alone.generic);
    CHECK(index.hidden == alone.hidden);
}

// Namespaces a..e each serve Service svc; their Sidecars import in every way an egress host can.
std::vector<json> sidecar_zoo(bool mesh_default) {
    std::vector<json> objects;
    for (const std::string ns : {"a", "b", "c", "d", "e"}) {
        objects.push_back(kube_namespace(ns).injected());
        objects.push_back(
            deployment(ns, "app").labels({{"app", "app"}}).with_sidecar().container_port(8080));
        objects.push_back(deployment(ns, "canary")
                              .labels({{"app", "canary"}})
                              .with_sidecar()
                              .container_port(8080));
        objects.push_back(service(ns, "svc").selecting({{"app", "app"}}).port(80, 8080, "http"));
        objects.push_back(destination_rule(ns, "svc", "svc").tls("ISTIO_MUTUAL"));
    }
    objects.push_back(sidecar("a", "default").egress({"./*", "b/*"}));
    objects.push_back(sidecar("b", "default").egress({"*/*"}));
    objects.push_back(sidecar("c", "default").egress({"./*"}));
    objects.push_back(sidecar("c", "canary").for_workloads({{"app", "canary"}}).egress({"d/*"}));
    objects.push_back(sidecar("d", "only-a")
                          .for_workloads({{"app", "canary"}})
                          .egress({"a/svc.a.svc.cluster.local"}));
    objects.push_back(sidecar("e", "default").egress({"~/*"}));
    objects.push_back(service_entry("e", "api", {"api.example.com"}));
    if (mesh_default)
        objects.push_back(sidecar("istio-system", "default").egress({"./*", "istio-system/*"}));
    return objects;
}

} // namespace

SCENARIO("ambient.md §14: the client index answers every host as resolving that host alone does",
         "[sidecar][ambient-14]") {
    for (const bool mesh_default : {false, true}) {
        const std::string given =
            mesh_default ? "a mesh default Sidecar" : "no mesh default Sidecar";
        GIVEN(given) {
            const auto snapshot = snapshot_of(sidecar_zoo(mesh_default));
            const ConfigView view(*snapshot);
            const auto& index = snapshot->client_index();
            REQUIRE(index.services.size() == snapshot->services().size());
            for (std::size_t i = 0; i < snapshot->services().size(); ++i) {
                const auto& svc = snapshot->services()[i];
                INFO(svc.host);
                check_same(index.services[i],
                           resolution::resolve_host_clients(view, svc.host, svc.ns));
            }
            REQUIRE(index.external_hosts.size() == snapshot->external_hosts().size());
            for (std::size_t i = 0; i < snapshot->external_hosts().size(); ++i) {
                const auto& host = snapshot->external_hosts()[i];
                INFO(host.host);
                check_same(index.external_hosts[i],
                           resolution::resolve_host_clients(view, host.host, host.ns));
            }
        }
    }
}

SCENARIO("ambient.md §14: a view that changes DestinationRules in a namespace without Sidecars "
         "answers every host as resolving that host alone does",
         "[sidecar][ambient-14]") {
    // g has no Sidecar; d's default Sidecar imports from f, which only the view creates.
    auto objects = sidecar_zoo(true);
    objects.push_back(sidecar("d", "default").egress({"./*", "f/*"}));
    objects.push_back(kube_namespace("g").injected());
    objects.push_back(
        deployment("g", "app").labels({{"app", "app"}}).with_sidecar().container_port(8080));
    objects.push_back(service("g", "svc").selecting({{"app", "app"}}).port(80, 8080, "http"));
    const auto snapshot = snapshot_of(objects);
    auto rule_in = [](const std::string& ns) {
        const auto outcome = model::decode_object(
            destination_rule(ns, "plain", "*.svc.cluster.local").tls("DISABLE"), "default");
        REQUIRE(outcome.status == model::DecodeOutcome::Status::Decoded);
        return std::get<model::DestinationRule>(*outcome.object);
    };
    for (const std::string ns : {"f", "g", "a"}) {
        GIVEN("a DestinationRule for every host in " + ns) {
            const ConfigView view(
                *snapshot,
                model::build_namespace_config(ns, {}, {rule_in(ns)}, {}, {}, {}, *snapshot), true);
            // a holds Sidecars: its view makes Sidecar outcomes of its own, and scans alone.
            CHECK(view.shares_sidecar_scans() == (ns != "a"));
            for (std::size_t i = 0; i < snapshot->services().size(); ++i) {
                const auto& svc = snapshot->services()[i];
                INFO(svc.host);
                resolution::HostClients scratch;
                check_same(view.service_clients(static_cast<model::ServiceId>(i), scratch),
                           resolution::resolve_host_clients(view, svc.host, svc.ns));
            }
            for (std::size_t i = 0; i < snapshot->external_hosts().size(); ++i) {
                const auto& host = snapshot->external_hosts()[i];
                INFO(host.host);
                resolution::HostClients scratch;
                check_same(view.external_clients(i, scratch),
                           resolution::resolve_host_clients(view, host.host, host.ns));
            }
        }
    }
}
