// Tests of server/kube/cluster_watcher against the fake API server, end to end.
#include "analysis/admission/admission.hpp"
#include "analysis/analyze.hpp"
#include "analysis/model/decode.hpp"
#include "server/kube/cluster_watcher.hpp"
#include "tests/server/kube/support/cluster_objects.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <spdlog/sinks/ringbuffer_sink.h>

using namespace mtlsguard;
using namespace mtlsguard::kube;
using namespace mtlsguard::kube::testing;
using nlohmann::json;

namespace {

json review_of(const json& object) {
    const std::string api_version = object["apiVersion"];
    const auto slash = api_version.find('/');
    return {{"apiVersion", "admission.k8s.io/v1"},
            {"kind", "AdmissionReview"},
            {"request",
             {{"uid", "test-uid"},
              {"kind",
               {{"group", api_version.substr(0, slash)},
                {"version", api_version.substr(slash + 1)},
                {"kind", object["kind"]}}},
              {"name", object["metadata"]["name"]},
              {"namespace", object["metadata"]["namespace"]},
              {"operation", "CREATE"},
              {"dryRun", false},
              {"object", object}}}};
}

std::size_t peer_authentications_in(const model::Snapshot& snapshot, const std::string& ns) {
    auto id = snapshot.namespace_id(ns);
    return id ? snapshot.config(*id).peer_authentications.size() : 0;
}

std::uint32_t pods_of(const model::Snapshot& snapshot, const std::string& workload) {
    std::uint32_t n = 0;
    for (const auto& w : snapshot.workloads())
        if (w.name == workload)
            n += w.pods;
    return n;
}

class Watching {
  public:
    explicit Watching(const std::function<void(FakeApiServer&)>& seed = seed_mesh,
                      WatcherOptions options = quick_watcher_options()) {
        seed(cluster.server);
        make(cluster.config(), std::move(options));
    }
    void make(const ClusterConfig& config, WatcherOptions options = quick_watcher_options()) {
        watcher = std::make_unique<ClusterWatcher>(thread.io, config, std::move(options),
                                                   published.sink());
    }

    IoThread thread; // first: outlives the watcher
    FakeCluster cluster;
    Published published;
    std::unique_ptr<ClusterWatcher> watcher;
};

} // namespace

TEST_CASE("The first snapshot comes after every initial list and holds the whole cluster") {
    Watching w;
    CHECK_FALSE(w.watcher->synced());
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    auto snapshot = w.published.latest();
    REQUIRE(snapshot);
    CHECK(snapshot->namespace_id("shop").has_value());
    CHECK(snapshot->namespace_id("front").has_value());
    REQUIRE(snapshot->services().size() == 1);
    CHECK(snapshot->services()[0].host == "web.shop.svc.cluster.local");
    CHECK(snapshot->services()[0].endpoint_positions.size() == 1);
    CHECK(pods_of(*snapshot, "web") == 2);
    CHECK(pods_of(*snapshot, "client") == 1);
    for (const auto& workload : snapshot->workloads())
        CHECK(workload.sidecar); // from the metadata alone
    CHECK(peer_authentications_in(*snapshot, "shop") == 1);
    // The mesh config came as YAML text inside the ConfigMap.
    CHECK(snapshot->mesh_config_seen());
    CHECK(snapshot->mesh().default_dr_export_to == std::vector<std::string>{"."});

    auto stats = w.watcher->stats();
    CHECK(stats.objects.at("pods") == 3);
    CHECK(stats.objects.at("services") == 1);
    CHECK(stats.objects.at("namespaces") == 3);
    CHECK(stats.objects.at("configmaps") == 1);
    CHECK(stats.objects.at("peerauthentications") == 1);
    CHECK(stats.objects.at("destinationrules") == 0);
    CHECK(stats.versions.at("peerauthentications") == "security.istio.io/v1");
    CHECK(stats.versions.at("destinationrules") == "networking.istio.io/v1");
    CHECK(stats.versions.at("pods") == "v1");
    CHECK_FALSE(stats.versions.count("policies"));
    CHECK(stats.watch_restarts == 0);
    CHECK(stats.relists == 0);
    CHECK(stats.decode_errors == 0);
    CHECK(stats.snapshots_published >= 1);
    CHECK(stats.last_event != std::chrono::steady_clock::time_point{});
    CHECK_FALSE(w.watcher->broken_for().has_value());

    // The istio ConfigMap was asked for by name (istio-cni-config too: see its scenario).
    bool selected = false;
    for (const auto& r : w.cluster.server.requests())
        if (r.path == "/api/v1/namespaces/istio-system/configmaps")
            selected = selected || (r.query.count("fieldSelector") &&
                                    r.query.at("fieldSelector") == "metadata.name=istio");
    CHECK(selected);
}

TEST_CASE("Readiness waits for the slowest initial list") {
    Watching w;
    w.cluster.server.fail_next("/api/v1/pods", 503, 4);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.cluster.server.open_watches("services") == 1; }));
    CHECK_FALSE(w.watcher->synced());
    CHECK(w.published.count() == 0);
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    CHECK(pods_of(*w.published.latest(), "web") == 2);
}

TEST_CASE("A watch event changes the webhook's decision on the next snapshot") {
    Watching w;
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    const json plaintext_rule =
        destination_rule("front", "web-plain", "web.shop.svc.cluster.local", "DISABLE");
    admission::AdmissionSettings settings;
    auto before = admission::decide(*w.published.latest(), review_of(plaintext_rule), settings);
    REQUIRE(before.http_status == 200);
    CHECK_FALSE(before.allowed); // plaintext to a STRICT workload: MTG101
    CHECK(std::find(before.codes.begin(), before.codes.end(), "MTG101") != before.codes.end());

    w.cluster.server.update("security.istio.io", "peerauthentications",
                            peer_authentication("shop", "default", "PERMISSIVE"));
    auto after_snapshot = w.published.wait_for([](const model::Snapshot& s) {
        auto shop = s.namespace_id("shop");
        return shop && s.config(*shop).namespace_policy &&
               s.config(*shop).namespace_policy->mode == model::MtlsMode::Permissive;
    });
    REQUIRE(after_snapshot);
    auto after = admission::decide(*after_snapshot, review_of(plaintext_rule), settings);
    CHECK(after.allowed);
}

TEST_CASE("A rotated service-account token is re-read after the API server rejects the old one") {
    TempDir dir;
    Watching w;
    InClusterSource source;
    source.service_host = "127.0.0.1";
    source.service_port = std::to_string(w.cluster.server.port());
    source.ca_file = dir.write("ca.crt", w.cluster.ca.ca.certificate_pem);
    source.token_file = dir.write("token", "token-a\n");
    ClusterConfig config = load_in_cluster(source);
    config.token_refresh = std::chrono::hours(1); // only the 401 can make it look again
    w.make(config);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));

    dir.write("token", "token-b\n");
    w.cluster.server.set_tokens({"token-b"});
    w.cluster.server.cut_watches(Cut::Abrupt);
    w.cluster.server.create("", "services", service("shop", "after-rotation"));
    REQUIRE(
        w.published.wait_for([](const model::Snapshot& s) { return s.services().size() == 2; }));
    bool rejected = false;
    bool accepted = false;
    for (const auto& r : w.cluster.server.requests()) {
        rejected = rejected || (r.authorization == "Bearer token-a" && r.status == 401);
        accepted = accepted || (r.authorization == "Bearer token-b" && r.status == 200);
    }
    CHECK(rejected);
    CHECK(accepted);
}

TEST_CASE("A token file is re-read every refresh interval, before the old token is refused") {
    TempDir dir;
    Watching w;
    w.cluster.server.set_tokens({"token-a", "token-b"}); // both valid during the rotation
    ClusterConfig config = w.cluster.config();
    config.token.clear();
    config.token_file = dir.write("token", "token-a");
    config.token_refresh = std::chrono::seconds(1);
    w.make(config);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    dir.write("token", "token-b");
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    w.cluster.server.cut_watches(Cut::Clean);
    REQUIRE(wait_until([&] {
        for (const auto& r : w.cluster.server.requests())
            if (r.authorization == "Bearer token-b" && r.status == 200)
                return true;
        return false;
    }));
    for (const auto& r : w.cluster.server.requests())
        CHECK(r.status != 401);
}

TEST_CASE(
    "Istio installed after mtls-guard is watched without a restart, and dropped when removed") {
    Watching w([](FakeApiServer& server) {
        server.create("", "namespaces", ns_object("shop", true));
        server.create("", "services", service("shop", "web"));
        server.create("", "pods", pod("shop", "web", 1));
    });
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    CHECK_FALSE(w.watcher->stats().versions.count("peerauthentications"));
    CHECK(peer_authentications_in(*w.published.latest(), "shop") == 0);

    // Istio arrives: its API is served, its CRDs appear, a policy is created.
    for (const auto& resource : istio_resources())
        w.cluster.server.add_resource(resource);
    w.cluster.server.create("security.istio.io", "peerauthentications",
                            peer_authentication("shop", "default", "STRICT"));
    w.cluster.server.create("apiextensions.k8s.io", "customresourcedefinitions",
                            crd("peerauthentications.security.istio.io"));
    w.cluster.server.create("apiextensions.k8s.io", "customresourcedefinitions",
                            crd("destinationrules.networking.istio.io"));
    REQUIRE(w.published.wait_for(
        [](const model::Snapshot& s) { return peer_authentications_in(s, "shop") == 1; }));
    auto stats = w.watcher->stats();
    CHECK(stats.versions.at("peerauthentications") == "security.istio.io/v1");
    CHECK(stats.versions.at("destinationrules") == "networking.istio.io/v1");
    CHECK(w.watcher->synced());

    // Istio leaves: the CRD and everything of its kind go.
    w.cluster.server.remove_resource("security.istio.io", "peerauthentications");
    w.cluster.server.remove("apiextensions.k8s.io", "customresourcedefinitions", "",
                            "peerauthentications.security.istio.io");
    REQUIRE(w.published.wait_for(
        [](const model::Snapshot& s) { return peer_authentications_in(s, "shop") == 0; }));
    REQUIRE(wait_until([&] { return !w.watcher->stats().versions.count("peerauthentications"); }));
    CHECK(w.watcher->stats().objects.at("peerauthentications") == 0);
}

TEST_CASE("A watch broken longer than the threshold makes verdicts carry a staleness warning") {
    WatcherOptions options = quick_watcher_options();
    options.stale_after = std::chrono::seconds(1);
    Watching w(seed_mesh, options);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    CHECK_FALSE(w.watcher->stale_warning().has_value());

    w.cluster.server.fail_next("/api/v1/services", 503, 1000000);
    w.cluster.server.cut_watches(Cut::Abrupt, "services");
    REQUIRE(wait_until([&] { return w.watcher->broken_for().has_value(); }));
    CHECK_FALSE(w.watcher->stale_warning().has_value()); // not yet past the threshold
    REQUIRE(wait_until([&] { return w.watcher->stale_warning().has_value(); },
                       std::chrono::seconds(5)));
    CHECK(*w.watcher->broken_for() >= std::chrono::seconds(1));
    const std::string warning = *w.watcher->stale_warning();
    CHECK_THAT(warning, Catch::Contains("may be stale"));
    CHECK_THAT(warning, Catch::Contains("services"));
    CHECK(warning.size() <= admission::max_warning_length);
    CHECK(w.watcher->synced()); // readiness stays: the snapshot is still the best there is

    w.cluster.server.clear_failures();
    REQUIRE(wait_until([&] { return !w.watcher->broken_for().has_value(); }));
    CHECK_FALSE(w.watcher->stale_warning().has_value());
    CHECK(w.watcher->stats().watch_restarts >= 1);
}

TEST_CASE("A burst of events becomes a few snapshots, the last one complete") {
    Watching w;
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    const auto before = w.published.count();
    for (int i = 3; i < 303; ++i)
        w.cluster.server.create("", "pods", pod("shop", "web", i));
    REQUIRE(
        w.published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 302; }));
    const auto snapshots = w.published.count() - before;
    INFO(snapshots << " snapshots for 300 events");
    CHECK(snapshots < 30);
    CHECK(w.watcher->stats().objects.at("pods") == 303);
}

TEST_CASE("Pods replaced under a workload that stays do not rebuild at once; a new shape does") {
    WatcherOptions options = quick_watcher_options();
    options.count_refresh = std::chrono::seconds(2);
    Watching w(seed_mesh, options);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    REQUIRE(wait_until([&] { return w.cluster.server.open_watches("pods") == 1; }));
    const auto before = w.published.count();

    // A rolling restart: a pod goes, another of the same Deployment comes.
    w.cluster.server.remove("", "pods", "shop", "web-5d8f-1");
    w.cluster.server.create("", "pods", pod("shop", "web", 9));
    REQUIRE(wait_until([&] { return w.watcher->stats().objects.at("pods") == 3; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // well past the coalescing
    CHECK(w.published.count() == before);

    // A pod whose labels differ: a new workload shape, published within the coalescing window.
    json canary = pod("shop", "web", 10);
    canary["metadata"]["labels"]["track"] = "canary";
    w.cluster.server.create("", "pods", canary);
    auto snapshot = w.published.wait_for(
        [](const model::Snapshot& s) { return pods_of(s, "web") == 3; }, std::chrono::seconds(1));
    REQUIRE(snapshot);
    CHECK(snapshot->workloads().size() == 3); // web, web (canary), client
}

TEST_CASE("An object the engine cannot read is counted and left out until it is fixed") {
    Watching w;
    w.cluster.server.create("security.istio.io", "peerauthentications",
                            peer_authentication("front", "typo", "STRCT"));
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    CHECK(w.watcher->stats().decode_errors == 1);
    CHECK(peer_authentications_in(*w.published.latest(), "front") == 0);
    CHECK(peer_authentications_in(*w.published.latest(), "shop") == 1);

    w.cluster.server.update("security.istio.io", "peerauthentications",
                            peer_authentication("front", "typo", "STRICT"));
    REQUIRE(w.published.wait_for(
        [](const model::Snapshot& s) { return peer_authentications_in(s, "front") == 1; }));
    // Broken again: the stored copy goes, it does not linger in its last good state.
    w.cluster.server.update("security.istio.io", "peerauthentications",
                            peer_authentication("front", "typo", "STRCT"));
    REQUIRE(w.published.wait_for(
        [](const model::Snapshot& s) { return peer_authentications_in(s, "front") == 0; }));
    CHECK(w.watcher->stats().decode_errors == 2);
}

TEST_CASE("A listed Service the engine cannot read is counted and left out, as a watched one is") {
    // Services, pods and their slices are decoded straight from the list page's parse; one that
    // does not decode goes the way of every other object, and its error is counted.
    Watching w;
    json broken = service("shop", "broken");
    broken["spec"]["ports"][0]["port"] = 70000;
    w.cluster.server.create("", "services", broken);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    CHECK(w.watcher->stats().decode_errors == 1);
    const auto snapshot = w.published.latest();
    REQUIRE(snapshot);
    REQUIRE(snapshot->services().size() == 1);
    CHECK(snapshot->services()[0].host == "web.shop.svc.cluster.local");
}

TEST_CASE("stop() ends every request and nothing is published afterwards") {
    Watching w;
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    w.watcher->stop();
    const auto count = w.published.count();
    REQUIRE(wait_until([&] {
        return w.cluster.server.open_watches("pods") == 0 &&
               w.cluster.server.open_watches("services") == 0 &&
               w.cluster.server.open_watches("peerauthentications") == 0;
    }));
    w.cluster.server.create("", "services", service("shop", "late"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(w.published.count() == count);
}

TEST_CASE("A configuration that cannot work is refused when the watcher is made") {
    IoThread thread;
    FakeCluster cluster;
    WatcherOptions options = quick_watcher_options();
    options.istio_namespace = "../kube-system";
    CHECK_THROWS_AS(ClusterWatcher(thread.io, cluster.config(), options, [](auto) {}), ConfigError);
    ClusterConfig plain = cluster.config();
    plain.server = "http://127.0.0.1:8080";
    CHECK_THROWS_WITH(ClusterWatcher(thread.io, plain, quick_watcher_options(), [](auto) {}),
                      Catch::Contains("plain http is refused"));
}

TEST_CASE("v1alpha1 Policies switch a watcher without a fixed version to the Istio 1.5 rules") {
    const bool from_objects = GENERATE(true, false);
    WatcherOptions options = quick_watcher_options();
    options.version_from_objects = from_objects;
    Watching w(
        [](FakeApiServer& server) {
            seed_mesh(server);
            server.add_resource(
                {"authentication.istio.io", {"v1alpha1"}, "policies", "Policy", true});
            server.create("apiextensions.k8s.io", "customresourcedefinitions",
                          crd("policies.authentication.istio.io"));
            server.create("authentication.istio.io", "policies",
                          {{"apiVersion", "authentication.istio.io/v1alpha1"},
                           {"kind", "Policy"},
                           {"metadata", {{"name", "default"}, {"namespace", "front"}}},
                           {"spec", {{"peers", {{{"mtls", json::object()}}}}}}});
        },
        options);
    w.watcher->start();
    REQUIRE(wait_until([&] { return w.watcher->synced(); }));
    INFO("version_from_objects " << from_objects);
    CHECK(w.watcher->stats().objects.at("policies") == 1);
    CHECK(w.published.latest()->settings().version ==
          (from_objects ? model::IstioVersion{5} : model::IstioVersion::current()));
}

SCENARIO("An EndpointSlice resolves a live Service's named targetPort for portLevelMtls") {
    // Live pods come as metadata, without container ports: only the slice says that the Service's
    // targetPort "web" is 8080 on these pods, the port a PeerAuthentication makes STRICT.
    GIVEN("shop/web with targetPort web, PERMISSIVE but for port 8080, and no slice yet") {
        Watching w([](FakeApiServer& server) {
            seed_open_mesh(server);
            json web = service("shop", "web");
            web["spec"]["ports"][0]["targetPort"] = "web";
            server.update("", "services", web);
            server.create("security.istio.io", "peerauthentications",
                          {{"apiVersion", "security.istio.io/v1"},
                           {"kind", "PeerAuthentication"},
                           {"metadata", {{"name", "web"}, {"namespace", "shop"}}},
                           {"spec",
                            {{"selector", {{"matchLabels", {{"app", "web"}}}}},
                             {"mtls", {{"mode", "PERMISSIVE"}}},
                             {"portLevelMtls", {{"8080", {{"mode", "STRICT"}}}}}}}});
        });
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        const json plaintext_rule =
            destination_rule("front", "web-plain", "web.shop.svc.cluster.local", "DISABLE");
        admission::AdmissionSettings settings;
        THEN("the pods serve no port named web: plaintext to them is allowed") {
            auto before =
                admission::decide(*w.published.latest(), review_of(plaintext_rule), settings);
            REQUIRE(before.http_status == 200);
            CHECK(before.allowed);
        }
        WHEN("the endpoint controller writes the slice resolving web to 8080") {
            w.cluster.server.create("discovery.k8s.io", "endpointslices",
                                    endpoint_slice("shop", "web-abcde", "web", "http", 8080,
                                                   {"web-5d8f-1", "web-5d8f-2"}));
            auto snapshot = w.published.wait_for([](const model::Snapshot& s) {
                for (const auto& workload : s.workloads())
                    if (workload.name == "web" && !workload.ports.empty())
                        return true;
                return false;
            });
            REQUIRE(snapshot);
            THEN("plaintext meets the STRICT port and is denied") {
                auto after = admission::decide(*snapshot, review_of(plaintext_rule), settings);
                REQUIRE(after.http_status == 200);
                CHECK_FALSE(after.allowed);
                CHECK(std::find(after.codes.begin(), after.codes.end(), "MTG101") !=
                      after.codes.end());
                CHECK(w.watcher->stats().objects.at("endpointslices") == 1);
            }
        }
    }
}

SCENARIO("§16: webhook configurations and APIServices are watched, and a STRICT webhook port is "
         "MTG108") {
    GIVEN("a cluster serving admissionregistration.k8s.io and apiregistration.k8s.io, with a "
          "ValidatingWebhookConfiguration calling the STRICT shop/web:80") {
        Watching w([](FakeApiServer& server) {
            seed_mesh(server);
            server.add_resource({"admissionregistration.k8s.io",
                                 {"v1"},
                                 "validatingwebhookconfigurations",
                                 "ValidatingWebhookConfiguration",
                                 false});
            server.add_resource({"admissionregistration.k8s.io",
                                 {"v1"},
                                 "mutatingwebhookconfigurations",
                                 "MutatingWebhookConfiguration",
                                 false});
            server.add_resource(
                {"apiregistration.k8s.io", {"v1"}, "apiservices", "APIService", false});
            server.create(
                "admissionregistration.k8s.io", "validatingwebhookconfigurations",
                {{"apiVersion", "admissionregistration.k8s.io/v1"},
                 {"kind", "ValidatingWebhookConfiguration"},
                 {"metadata", {{"name", "shop-policy"}}},
                 {"webhooks",
                  {{{"name", "check.shop.example.com"},
                    {"clientConfig",
                     {{"service", {{"namespace", "shop"}, {"name", "web"}, {"port", 80}}}}}}}}});
            server.create("apiregistration.k8s.io", "apiservices",
                          {{"apiVersion", "apiregistration.k8s.io/v1"},
                           {"kind", "APIService"},
                           {"metadata", {{"name", "v1.apps"}}},
                           {"spec", {{"group", "apps"}, {"version", "v1"}}}});
        });
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        THEN("the snapshot holds them and analysis reports MTG108 on the STRICT policy") {
            auto snapshot = w.published.latest();
            REQUIRE(snapshot);
            CHECK(snapshot->api_server_callees().size() == 2);
            auto result = analyze(*snapshot);
            CHECK(std::any_of(result.findings.begin(), result.findings.end(),
                              [](const conflict::Finding& f) {
                                  return f.code == conflict::Code::MTG108 &&
                                         f.resource.kind == "PeerAuthentication";
                              }));
            auto stats = w.watcher->stats();
            CHECK(stats.objects.at("validatingwebhookconfigurations") == 1);
            CHECK(stats.objects.at("mutatingwebhookconfigurations") == 0);
            CHECK(stats.objects.at("apiservices") == 1);
            CHECK(stats.versions.at("validatingwebhookconfigurations") ==
                  "admissionregistration.k8s.io/v1");
        }
        WHEN("the webhook configuration is deleted") {
            w.cluster.server.remove("admissionregistration.k8s.io",
                                    "validatingwebhookconfigurations", "", "shop-policy");
            auto snapshot = w.published.wait_for(
                [](const model::Snapshot& s) { return s.api_server_callees().size() == 1; });
            THEN("the next snapshot no longer has it") {
                REQUIRE(snapshot);
                CHECK(snapshot->api_server_calls("shop", "web") == nullptr);
            }
        }
    }
}

namespace {

std::size_t virtual_services_in(const model::Snapshot& snapshot, const std::string& ns) {
    auto id = snapshot.namespace_id(ns);
    return id ? snapshot.config(*id).virtual_services.size() : 0;
}

// The subset the first route of the VirtualService `name` in `ns` sends to; "" when none.
std::string routed_subset(const model::Snapshot& snapshot, const std::string& ns,
                          const std::string& name) {
    auto id = snapshot.namespace_id(ns);
    if (!id)
        return {};
    for (const auto& vs : snapshot.config(*id).virtual_services)
        if (vs.ref.name == name && !vs.destinations.empty())
            return vs.destinations.front().subset;
    return {};
}

// The requests the fake answered for `path` (any query).
std::vector<RecordedRequest> requests_to(const FakeApiServer& server, const std::string& path) {
    std::vector<RecordedRequest> out;
    for (auto& r : server.requests())
        if (r.path == path)
            out.push_back(std::move(r));
    return out;
}

// Whether a watch of `path` was opened (waiting, bounded: the watch follows the list that made the
// watcher ready, on the watcher's own thread).
bool watched(const FakeApiServer& server, const std::string& path) {
    return wait_until([&] {
        const auto requests = requests_to(server, path);
        return std::any_of(requests.begin(), requests.end(), [](const RecordedRequest& r) {
            return r.query.count("watch") && r.query.at("watch") == "true" && r.status == 200;
        });
    });
}

bool has_mtg108_for(const model::Snapshot& snapshot, const std::string& callee_kind) {
    const auto result = analyze(snapshot);
    return std::any_of(
        result.findings.begin(), result.findings.end(), [&](const conflict::Finding& f) {
            if (f.code != conflict::Code::MTG108)
                return false;
            return std::any_of(f.related.begin(), f.related.end(),
                               [&](const auto& related) { return related.kind == callee_kind; });
        });
}

// A logger whose lines the test can read: what serve logs about a kind it may not read.
struct CapturedLog {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
    std::shared_ptr<spdlog::logger> logger = std::make_shared<spdlog::logger>("kube-capture", sink);

    bool contains(const std::string& text) const {
        for (const auto& line : sink->last_formatted())
            if (line.find(text) != std::string::npos)
                return true;
        return false;
    }
};

} // namespace

SCENARIO("§15: VirtualServices are listed and watched, and their routes reach the snapshot") {
    GIVEN("a mesh with a VirtualService sending web's traffic to subset v1") {
        Watching w([](FakeApiServer& server) {
            seed_mesh(server);
            server.create(
                "networking.istio.io", "virtualservices",
                virtual_service("front", "web-route", "web.shop.svc.cluster.local", "v1"));
        });
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        THEN("the first snapshot holds it, read in v1") {
            auto snapshot = w.published.latest();
            REQUIRE(snapshot);
            CHECK(virtual_services_in(*snapshot, "front") == 1);
            CHECK(routed_subset(*snapshot, "front", "web-route") == "v1");
            auto stats = w.watcher->stats();
            CHECK(stats.objects.at("virtualservices") == 1);
            CHECK(stats.versions.at("virtualservices") == "networking.istio.io/v1");
            CHECK(watched(w.cluster.server, "/apis/networking.istio.io/v1/virtualservices"));
        }
        WHEN("one is added, the first one modified, then deleted") {
            w.cluster.server.create("networking.istio.io", "virtualservices",
                                    virtual_service("shop", "local", "web", "v1"));
            REQUIRE(w.published.wait_for(
                [](const model::Snapshot& s) { return virtual_services_in(s, "shop") == 1; }));
            w.cluster.server.update(
                "networking.istio.io", "virtualservices",
                virtual_service("front", "web-route", "web.shop.svc.cluster.local", "v2"));
            THEN("each event reaches a snapshot") {
                REQUIRE(w.published.wait_for([](const model::Snapshot& s) {
                    return routed_subset(s, "front", "web-route") == "v2";
                }));
                w.cluster.server.remove("networking.istio.io", "virtualservices", "front",
                                        "web-route");
                REQUIRE(w.published.wait_for([](const model::Snapshot& s) {
                    return virtual_services_in(s, "front") == 0 &&
                           virtual_services_in(s, "shop") == 1;
                }));
                CHECK(w.watcher->stats().objects.at("virtualservices") == 1);
            }
        }
    }
}

SCENARIO("§14: Sidecars are listed and watched; the store keeps what the engine decodes of them") {
    // The engine's Sidecar decoder comes separately: until then decode_object skips the kind, and
    // the store holds none. Either way no Sidecar is an error, and each event is read.
    const json scoped = sidecar("front", "default");
    const bool engine_reads =
        model::decode_object(scoped).status == model::DecodeOutcome::Status::Decoded;
    GIVEN("a mesh with a Sidecar in front") {
        Watching w([&](FakeApiServer& server) {
            seed_mesh(server);
            server.create("networking.istio.io", "sidecars", scoped);
        });
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        THEN("it was listed in v1 and is being watched") {
            const auto requests =
                requests_to(w.cluster.server, "/apis/networking.istio.io/v1/sidecars");
            CHECK(std::any_of(requests.begin(), requests.end(), [](const RecordedRequest& r) {
                return !r.query.count("watch") && r.status == 200;
            }));
            REQUIRE(wait_until([&] { return w.cluster.server.open_watches("sidecars") == 1; }));
            CHECK(watched(w.cluster.server, "/apis/networking.istio.io/v1/sidecars"));
            auto stats = w.watcher->stats();
            CHECK(stats.versions.at("sidecars") == "networking.istio.io/v1");
            CHECK(stats.objects.at("sidecars") == (engine_reads ? 1u : 0u));
            CHECK(stats.decode_errors == 0);
        }
        WHEN("a Sidecar is added and the first deleted") {
            REQUIRE(wait_until([&] { return w.cluster.server.open_watches("sidecars") == 1; }));
            const auto before = w.watcher->stats().last_event;
            w.cluster.server.create("networking.istio.io", "sidecars", sidecar("shop", "default"));
            w.cluster.server.remove("networking.istio.io", "sidecars", "front", "default");
            THEN("the watch delivers both events") {
                REQUIRE(wait_until([&] { return w.watcher->stats().last_event > before; }));
                REQUIRE(wait_until([&] {
                    return w.watcher->stats().objects.at("sidecars") == (engine_reads ? 1u : 0u);
                }));
                CHECK(w.watcher->stats().decode_errors == 0);
                CHECK(w.watcher->stats().watch_restarts == 0);
            }
        }
    }
}

SCENARIO("§10: the istio-cni-config ConfigMap is read by name from the Istio namespace") {
    GIVEN("the istio-cni chart's ConfigMap in istio-system, and one of that name elsewhere") {
        Watching w([](FakeApiServer& server) {
            seed_mesh(server);
            server.create("", "configmaps", cni_config_map("istio-system", "kube-system"));
            server.create("", "namespaces", ns_object("other", false));
            server.create("", "configmaps", cni_config_map("other", "everything"));
        });
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        THEN("the snapshot has its selectors, converted from YAML, and nothing else was read") {
            auto snapshot = w.published.latest();
            REQUIRE(snapshot);
            REQUIRE(snapshot->cni_config());
            const auto& cni = *snapshot->cni_config();
            CHECK(cni.source_namespace == "istio-system");
            REQUIRE(cni.enablement_selectors);
            CHECK(cni.enablement_selectors->size() == 2);
            CHECK(cni.exclude_namespaces == std::vector<std::string>{"kube-system"});
            CHECK(w.watcher->stats().objects.at("configmaps") == 2); // istio and istio-cni-config
            CHECK(w.watcher->stats().decode_errors == 0);
            std::set<std::string> selectors;
            for (const auto& r : w.cluster.server.requests())
                if (r.path.ends_with("/configmaps")) {
                    CHECK(r.path == "/api/v1/namespaces/istio-system/configmaps");
                    selectors.insert(r.query.count("fieldSelector") ? r.query.at("fieldSelector")
                                                                    : "(none)");
                }
            CHECK(selectors ==
                  std::set<std::string>{"metadata.name=istio", "metadata.name=istio-cni-config"});
        }
        WHEN("it is modified, then deleted") {
            REQUIRE(wait_until([&] { return w.cluster.server.open_watches("configmaps") == 2; }));
            w.cluster.server.update("", "configmaps",
                                    cni_config_map("istio-system", "kube-system,legacy"));
            THEN("the snapshot follows") {
                REQUIRE(w.published.wait_for([](const model::Snapshot& s) {
                    return s.cni_config() && s.cni_config()->exclude_namespaces &&
                           s.cni_config()->exclude_namespaces->size() == 2;
                }));
                w.cluster.server.remove("", "configmaps", "istio-system", "istio-cni-config");
                REQUIRE(w.published.wait_for(
                    [](const model::Snapshot& s) { return !s.cni_config().has_value(); }));
                CHECK(w.published.latest()->mesh_config_seen()); // the istio one stays
            }
        }
    }
}

SCENARIO(
    "§16: CRD conversion webhooks come from the one CRD watch, paged, and only they are kept") {
    GIVEN("120 CRDs with schemas, one of which converts through the STRICT shop/web:80") {
        Watching w([](FakeApiServer& server) {
            seed_mesh(server);
            std::vector<json> crds;
            for (int i = 0; i < 119; ++i)
                crds.push_back(crd_with_schema("things" + std::to_string(i) + ".example.com"));
            crds.push_back(crd_with_schema("widgets.shop.example.com", "shop", "web", 80));
            server.preload("apiextensions.k8s.io", "customresourcedefinitions", std::move(crds));
        });
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        THEN("the snapshot holds the conversion webhook and analysis reports MTG108") {
            auto snapshot = w.published.latest();
            REQUIRE(snapshot);
            REQUIRE(snapshot->api_server_callees().size() == 1);
            const auto& callee = snapshot->api_server_callees()[0];
            CHECK(callee.ref.kind == "CustomResourceDefinition");
            CHECK(callee.ref.name == "widgets.shop.example.com");
            CHECK(callee.ref.api_version == "apiextensions.k8s.io/v1");
            REQUIRE(callee.calls.size() == 1);
            CHECK(callee.calls[0].port == 80);
            CHECK(has_mtg108_for(*snapshot, "CustomResourceDefinition"));
            CHECK(w.watcher->stats().objects.at("customresourcedefinitions") == 1);
            CHECK(w.watcher->stats().decode_errors == 0);
        }
        THEN("CRDs were read whole, 50 to a page, by one list and one watch") {
            REQUIRE(watched(w.cluster.server,
                            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"));
            const auto requests = requests_to(
                w.cluster.server, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
            std::size_t pages = 0;
            for (const auto& r : requests) {
                CHECK(r.accept.find("PartialObjectMetadata") == std::string::npos);
                if (!r.query.count("watch")) {
                    ++pages;
                    CHECK(r.query.at("limit") == "50");
                }
            }
            CHECK(pages == 3); // 125 CRDs: Istio's 5 and these 120
            CHECK(w.cluster.server.open_watches("customresourcedefinitions") == 1);
        }
        WHEN("a CRD gains a conversion webhook, the first loses its own, then the new one goes") {
            REQUIRE(wait_until(
                [&] { return w.cluster.server.open_watches("customresourcedefinitions") == 1; }));
            w.cluster.server.update("apiextensions.k8s.io", "customresourcedefinitions",
                                    crd_with_schema("things7.example.com", "shop", "web", 80));
            REQUIRE(w.published.wait_for(
                [](const model::Snapshot& s) { return s.api_server_callees().size() == 2; }));
            w.cluster.server.update("apiextensions.k8s.io", "customresourcedefinitions",
                                    crd_with_schema("widgets.shop.example.com"));
            THEN("the snapshot follows each event") {
                auto one = w.published.wait_for([](const model::Snapshot& s) {
                    return s.api_server_callees().size() == 1 &&
                           s.api_server_callees()[0].ref.name == "things7.example.com";
                });
                REQUIRE(one);
                w.cluster.server.remove("apiextensions.k8s.io", "customresourcedefinitions", "",
                                        "things7.example.com");
                auto none = w.published.wait_for(
                    [](const model::Snapshot& s) { return s.api_server_callees().empty(); });
                REQUIRE(none);
                CHECK_FALSE(has_mtg108_for(*none, "CustomResourceDefinition"));
                CHECK(w.watcher->stats().objects.at("customresourcedefinitions") == 0);
            }
        }
    }
}

SCENARIO("A kind the ClusterRole lacks is retried and logged, and the other kinds keep working") {
    // As for every kind (EndpointSlices after an upgrade without the new rule): the list is
    // retried with backoff, readiness waits for it, and it joins once RBAC allows it.
    struct Lacking {
        std::string group;
        std::string plural;
        std::set<std::string> still_readable; // resourceNames the role has
        std::string target;                   // how the log names the list
        std::size_t other_watches;            // of the same plural that RBAC still allows
    };
    const Lacking lacking =
        GENERATE(Lacking{"networking.istio.io", "sidecars", {}, "sidecars", 0},
                 Lacking{"networking.istio.io", "virtualservices", {}, "virtualservices", 0},
                 // The role before this rule: resourceNames ["istio"] only.
                 Lacking{"", "configmaps", {"istio"}, "configmaps (istio-cni-config)", 1});
    GIVEN("RBAC without " + lacking.target + ", as before the rule was added") {
        CapturedLog log;
        WatcherOptions options = quick_watcher_options();
        options.logger = log.logger;
        Watching w(
            [&](FakeApiServer& server) {
                seed_mesh(server);
                server.forbid(lacking.group, lacking.plural, true, lacking.still_readable);
            },
            options);
        w.watcher->start();
        const std::string refused = "list of " + lacking.target + ": HTTP 403 Forbidden";
        THEN("the other kinds are watched, serve is not ready, and the 403 is logged") {
            REQUIRE(wait_until([&] {
                return w.cluster.server.open_watches("services") == 1 &&
                       w.cluster.server.open_watches("peerauthentications") == 1 &&
                       w.cluster.server.open_watches(lacking.plural) == lacking.other_watches;
            }));
            REQUIRE(wait_until([&] { return log.contains(refused); }));
            CHECK(log.contains("cannot list resource \"" + lacking.plural + "\""));
            CHECK_FALSE(w.watcher->synced());
            CHECK(w.watcher->broken_for().has_value());
            CHECK(w.cluster.server.open_watches(lacking.plural) == lacking.other_watches);
        }
        WHEN("the ClusterRole gains the rule") {
            REQUIRE(wait_until([&] { return log.contains(refused); }));
            w.cluster.server.forbid(lacking.group, lacking.plural, false);
            THEN("the list succeeds without a restart and serve becomes ready") {
                REQUIRE(wait_until([&] { return w.watcher->synced(); }));
                REQUIRE(wait_until([&] { return !w.watcher->broken_for().has_value(); }));
                CHECK(wait_until([&] {
                    return w.cluster.server.open_watches(lacking.plural) ==
                           lacking.other_watches + 1;
                }));
            }
        }
    }
}

SCENARIO("A kind whose RBAC goes after the initial sync is logged and retried; the others go on") {
    GIVEN("a synced watcher whose RBAC loses virtualservices") {
        CapturedLog log;
        WatcherOptions options = quick_watcher_options();
        options.logger = log.logger;
        Watching w(seed_mesh, options);
        w.watcher->start();
        REQUIRE(wait_until([&] { return w.watcher->synced(); }));
        REQUIRE(wait_until([&] { return w.cluster.server.open_watches("virtualservices") == 1; }));
        w.cluster.server.forbid("networking.istio.io", "virtualservices", true);
        w.cluster.server.cut_watches(Cut::Clean, "virtualservices");
        THEN("the 403 is logged and retried, and events of other kinds still make snapshots") {
            REQUIRE(wait_until([&] { return log.contains("watch of virtualservices: HTTP 403"); }));
            CHECK(w.watcher->broken_for().has_value());
            w.cluster.server.create("", "services", service("shop", "added-meanwhile"));
            REQUIRE(w.published.wait_for(
                [](const model::Snapshot& s) { return s.services().size() == 2; }));
            CHECK(w.watcher->synced());
        }
    }
}
