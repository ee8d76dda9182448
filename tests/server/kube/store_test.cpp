// Tests of server/kube/store: keys, pod shapes, snapshots and their updates, publishing, stop().
#include "analysis/analyze.hpp"
#include "analysis/model/decode.hpp"
#include "analysis/report/findings_output.hpp"
#include "analysis/resolution/destination_rule.hpp"
#include "server/kube/store.hpp"
#include "tests/server/kube/support/cluster_objects.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <random>

using namespace mtlsguard;
using namespace mtlsguard::kube;
using namespace mtlsguard::kube::testing;
using nlohmann::json;
namespace net = boost::asio;

namespace {

json pod(const std::string& ns, const std::string& name, const std::string& replica_set,
         const std::string& app, bool sidecar, const std::string& uid = "") {
    // The ReplicaSet is named <deployment>-<pod-template-hash>.
    json labels = {{"app", app},
                   {"pod-template-hash", replica_set.substr(replica_set.rfind('-') + 1)}};
    if (sidecar)
        labels["security.istio.io/tlsMode"] = "istio";
    json metadata = {{"name", name},
                     {"namespace", ns},
                     {"labels", labels},
                     {"ownerReferences",
                      {{{"apiVersion", "apps/v1"},
                        {"kind", "ReplicaSet"},
                        {"name", replica_set},
                        {"controller", true}}}}};
    if (!uid.empty())
        metadata["uid"] = uid;
    return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", metadata}};
}

json service(const std::string& ns, const std::string& name, const std::string& app) {
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", name}, {"namespace", ns}, {"uid", "svc-" + name}}},
            {"spec", {{"selector", {{"app", app}}}, {"ports", {{{"port", 80}}}}}}};
}

StoredObject stored(const json& object) {
    auto identity = object_identity(object);
    REQUIRE(identity);
    auto outcome = model::decode_object(object);
    REQUIRE(outcome.status == model::DecodeOutcome::Status::Decoded);
    return StoredObject{identity->first, identity->second, std::move(*outcome.object)};
}

// A Service whose one port `port_name` targets the container port named `target`.
json named_service(const std::string& ns, const std::string& name, const std::string& app,
                   const std::string& port_name, const std::string& target) {
    json object = service(ns, name, app);
    object["spec"]["ports"] = {{{"name", port_name}, {"port", 80}, {"targetPort", target}}};
    return object;
}

StoredObject stored_slice(const json& object) {
    auto identity = object_identity(object);
    REQUIRE(identity);
    std::string error;
    auto slice = decode_endpoint_slice(object, error);
    REQUIRE(slice);
    StoredObject out{identity->first, identity->second, {}};
    out.slice = std::make_unique<EndpointSlice>(std::move(*slice));
    return out;
}

// "name:number ..." of the pod's shape.
std::string ports_of(const ObjectStore& store, const std::string& pod_key) {
    const model::PodLike* pod = store.find_pod(pod_key);
    REQUIRE(pod);
    std::string out;
    for (const auto& port : pod->container_ports)
        out += (out.empty() ? "" : " ") + port.name + ":" + std::to_string(port.number);
    return out;
}

std::uint32_t pods_of(const model::Snapshot& snapshot, const std::string& workload) {
    std::uint32_t n = 0;
    for (const auto& w : snapshot.workloads())
        if (w.name == workload)
            n += w.pods;
    return n;
}

} // namespace

TEST_CASE("An object's key is namespace/name, or its name when cluster-scoped, with its uid") {
    auto a =
        object_identity(json{{"metadata", {{"name", "web"}, {"namespace", "shop"}, {"uid", "u"}}}});
    REQUIRE(a);
    CHECK(a->first == "shop/web");
    CHECK(a->second == "u");
    auto b = object_identity(json{{"metadata", {{"name", "shop"}}}});
    REQUIRE(b);
    CHECK(b->first == "shop");
    CHECK(b->second.empty());
    CHECK_FALSE(object_identity(json{{"metadata", {{"namespace", "x"}}}}).has_value());
    CHECK_FALSE(object_identity(json::object()).has_value());
}

TEST_CASE(
    "Upserts replace, a delete of an older incarnation is ignored, a list replaces the kind") {
    ObjectStore store;
    json first = service("shop", "web", "web");
    first["metadata"]["uid"] = "old";
    store.upsert(ResourceKind::Services, stored(first));
    json second = service("shop", "web", "web-v2");
    second["metadata"]["uid"] = "new"; // deleted and created again under the same name
    store.upsert(ResourceKind::Services, stored(second));
    CHECK(store.size(ResourceKind::Services) == 1);
    CHECK(store.erase(ResourceKind::Services, "shop/web", "old") == StoreChange::None);
    CHECK(store.size(ResourceKind::Services) == 1);
    const auto* svc = store.find(ResourceKind::Services, "shop/web");
    REQUIRE(svc);
    CHECK(std::get<model::Service>(*svc).selector->find("app") != nullptr);
    CHECK(*std::get<model::Service>(*svc).selector->find("app") == "web-v2");
    CHECK(store.erase(ResourceKind::Services, "shop/web", "new") == StoreChange::Structural);
    CHECK(store.size(ResourceKind::Services) == 0);
    CHECK(store.erase(ResourceKind::Services, "shop/web", "") == StoreChange::None);

    store.upsert(ResourceKind::Services, stored(service("shop", "a", "a")));
    store.upsert(ResourceKind::Services, stored(service("shop", "b", "b")));
    std::vector<StoredObject> relisted;
    relisted.push_back(stored(service("shop", "c", "c")));
    store.replace(ResourceKind::Services, std::move(relisted));
    CHECK(store.size(ResourceKind::Services) == 1);
    CHECK(store.find(ResourceKind::Services, "shop/c") != nullptr);
    CHECK(store.find(ResourceKind::Services, "shop/a") == nullptr);
}

TEST_CASE("Pods of one controller share one shape; relabelling and deleting move the counts") {
    ObjectStore store;
    for (int i = 0; i < 100; ++i)
        store.upsert(ResourceKind::Pods,
                     stored(pod("shop", "web-5d8f-" + std::to_string(i), "web-5d8f", "web", true,
                                "uid-" + std::to_string(i))));
    CHECK(store.size(ResourceKind::Pods) == 100);
    CHECK(store.pod_shapes() == 1);
    auto inputs = store.inputs();
    REQUIRE(inputs.pod_shapes.size() == 1);
    CHECK(inputs.pod_shapes[0].second == 100);
    CHECK(inputs.pod_shapes[0].first->workload_name == "web");
    CHECK(inputs.pods == 100);

    // One pod loses its sidecar: a second shape.
    store.upsert(ResourceKind::Pods,
                 stored(pod("shop", "web-5d8f-7", "web-5d8f", "web", false, "uid-7")));
    CHECK(store.pod_shapes() == 2);
    CHECK(store.size(ResourceKind::Pods) == 100);
    CHECK(store.find_pod("shop/web-5d8f-7")->sidecar == false);
    store.upsert(ResourceKind::Pods,
                 stored(pod("shop", "web-5d8f-7", "web-5d8f", "web", true, "uid-7")));
    CHECK(store.pod_shapes() == 1);

    CHECK(store.erase(ResourceKind::Pods, "shop/web-5d8f-3", "some-other-uid") ==
          StoreChange::None);
    CHECK(store.erase(ResourceKind::Pods, "shop/web-5d8f-3", "uid-3") == StoreChange::PodCount);
    CHECK(store.size(ResourceKind::Pods) == 99);
    for (int i = 0; i < 100; ++i)
        store.erase(ResourceKind::Pods, "shop/web-5d8f-" + std::to_string(i), "");
    CHECK(store.size(ResourceKind::Pods) == 0);
    CHECK(store.pod_shapes() == 0);
}

TEST_CASE("Pods coming and going under a shape that stays change counts only") {
    ObjectStore store;
    auto upsert = [&](const json& object) {
        return store.upsert(ResourceKind::Pods, stored(object));
    };
    CHECK(upsert(pod("shop", "web-1", "web-5d8f", "web", true, "u1")) == StoreChange::Structural);
    CHECK(upsert(pod("shop", "web-2", "web-5d8f", "web", true, "u2")) == StoreChange::PodCount);
    // A rollout: a new ReplicaSet, the same Deployment and labels (pod-template-hash aside).
    CHECK(upsert(pod("shop", "web-3", "web-77aa", "web", true, "u3")) == StoreChange::PodCount);
    // The same pod again (a status update): nothing the engine sees.
    CHECK(upsert(pod("shop", "web-2", "web-5d8f", "web", true, "u2")) == StoreChange::None);
    // A pod that loses its sidecar makes a new shape.
    CHECK(upsert(pod("shop", "web-2", "web-5d8f", "web", false, "u2")) == StoreChange::Structural);
    // ...and back: the sidecar-less shape goes away.
    CHECK(upsert(pod("shop", "web-2", "web-5d8f", "web", true, "u2")) == StoreChange::Structural);
    CHECK(store.erase(ResourceKind::Pods, "shop/web-1", "u1") == StoreChange::PodCount);
    CHECK(store.erase(ResourceKind::Pods, "shop/web-2", "u2") == StoreChange::PodCount);
    CHECK(store.erase(ResourceKind::Pods, "shop/web-3", "u3") == StoreChange::Structural);
    CHECK(store.erase(ResourceKind::Pods, "shop/web-3", "u3") == StoreChange::None);
    CHECK(store.upsert(ResourceKind::Services, stored(service("shop", "web", "web"))) ==
          StoreChange::Structural);
}

SCENARIO("EndpointSlices give metadata-only pods the ports their named targetPorts resolve to") {
    ObjectStore store;
    // A Service whose targetPort is a name: which number that is, only the pods' specs say, and
    // live pods come without them; the slices of the Service say it instead.
    store.upsert(ResourceKind::Services,
                 stored(named_service("shop", "web", "web", "http", "web-port")));
    GIVEN("three pods of one controller, one shape") {
        for (int i = 1; i <= 3; ++i)
            store.upsert(ResourceKind::Pods,
                         stored(pod("shop", "web-" + std::to_string(i), "web-5d8f", "web", true)));
        REQUIRE(store.pod_shapes() == 1);
        WHEN("one slice resolves web-port to 8080 for two of them") {
            CHECK(store.upsert(ResourceKind::EndpointSlices,
                               stored_slice(endpoint_slice("shop", "web-a", "web", "http", 8080,
                                                           {"web-1", "web-2"}))) ==
                  StoreChange::Structural);
            THEN("those two carry the port and share a shape; the third keeps the old one") {
                CHECK(store.size(ResourceKind::EndpointSlices) == 1);
                CHECK(store.pod_shapes() == 2);
                CHECK(ports_of(store, "shop/web-1") == "web-port:8080");
                CHECK(ports_of(store, "shop/web-2") == "web-port:8080");
                CHECK(ports_of(store, "shop/web-3").empty());
            }
            AND_WHEN("another slice resolves the same name to 9090 for the third") {
                store.upsert(
                    ResourceKind::EndpointSlices,
                    stored_slice(endpoint_slice("shop", "web-b", "web", "http", 9090, {"web-3"})));
                THEN("each pod has its own number, and pods that differ do not share a shape") {
                    CHECK(ports_of(store, "shop/web-2") == "web-port:8080");
                    CHECK(ports_of(store, "shop/web-3") == "web-port:9090");
                    CHECK(store.pod_shapes() == 2);
                }
            }
            AND_WHEN("a pod's metadata changes again (a status update)") {
                store.upsert(ResourceKind::Pods,
                             stored(pod("shop", "web-1", "web-5d8f", "web", true)));
                THEN("it keeps its resolved port") {
                    CHECK(ports_of(store, "shop/web-1") == "web-port:8080");
                    CHECK(store.pod_shapes() == 2);
                }
            }
            AND_WHEN("the slice goes") {
                CHECK(store.erase(ResourceKind::EndpointSlices, "shop/web-a", "") ==
                      StoreChange::Structural);
                THEN("the pods are one shape again, without ports") {
                    CHECK(store.pod_shapes() == 1);
                    CHECK(ports_of(store, "shop/web-1").empty());
                    CHECK(store.size(ResourceKind::EndpointSlices) == 0);
                }
            }
            AND_WHEN("the Service's targetPort becomes a number") {
                store.upsert(ResourceKind::Services, stored(service("shop", "web", "web")));
                THEN("the slice resolves nothing any more") {
                    CHECK(store.pod_shapes() == 1);
                    CHECK(ports_of(store, "shop/web-1").empty());
                }
            }
            AND_WHEN("the Service goes, and comes back in a relist") {
                store.erase(ResourceKind::Services, "shop/web", "");
                CHECK(ports_of(store, "shop/web-1").empty());
                std::vector<StoredObject> relisted;
                relisted.push_back(stored(named_service("shop", "web", "web", "http", "web-port")));
                store.replace(ResourceKind::Services, std::move(relisted));
                THEN("the ports come back with it") {
                    CHECK(ports_of(store, "shop/web-1") == "web-port:8080");
                }
            }
            AND_WHEN("the slices are relisted without it") {
                store.replace(ResourceKind::EndpointSlices, {});
                THEN("its ports are gone") {
                    CHECK(ports_of(store, "shop/web-2").empty());
                    CHECK(store.pod_shapes() == 1);
                }
            }
        }
    }
    GIVEN("a slice that lists a pod before the pod arrives") {
        store.upsert(ResourceKind::EndpointSlices,
                     stored_slice(endpoint_slice("shop", "web-a", "web", "http", 8080, {"web-1"})));
        WHEN("the pod arrives") {
            CHECK(store.upsert(ResourceKind::Pods, stored(pod("shop", "web-1", "web-5d8f", "web",
                                                              true))) == StoreChange::Structural);
            THEN("it has the port at once") {
                CHECK(ports_of(store, "shop/web-1") == "web-port:8080");
            }
        }
    }
    GIVEN("a pod that declares the named port itself") {
        json full = pod("shop", "web-1", "web-5d8f", "web", true);
        full["spec"] = {
            {"containers",
             {{{"name", "app"}, {"ports", {{{"name", "web-port"}, {"containerPort", 7070}}}}}}}};
        store.upsert(ResourceKind::Pods, stored(full));
        WHEN("a slice says otherwise") {
            store.upsert(
                ResourceKind::EndpointSlices,
                stored_slice(endpoint_slice("shop", "web-a", "web", "http", 8080, {"web-1"})));
            THEN("the pod's own port stands") {
                CHECK(ports_of(store, "shop/web-1") == "web-port:7070");
            }
        }
    }
}

TEST_CASE("Pod counts alone wait for the count refresh or the next other change") {
    IoThread thread;
    auto strand = net::make_strand(thread.io);
    ObjectStore store;
    Published published;
    auto publisher = std::make_shared<SnapshotPublisher>(
        strand, model::Settings{}, std::chrono::milliseconds(20), std::chrono::milliseconds(400),
        [&](bool) { return store.inputs(); }, published.sink());
    publisher->start();
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, stored(pod("shop", "web-0", "web-5d8f", "web", true)));
        publisher->publish_now();
    });
    REQUIRE(published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 1; }));

    const auto started = std::chrono::steady_clock::now();
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, stored(pod("shop", "web-1", "web-5d8f", "web", true)));
        publisher->counts_changed();
    });
    REQUIRE(published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 2; }));
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(350));

    // A count change waiting for its refresh goes out with the next structural change.
    const auto again = std::chrono::steady_clock::now();
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, stored(pod("shop", "web-2", "web-5d8f", "web", true)));
        publisher->counts_changed();
        store.upsert(ResourceKind::Services, stored(service("shop", "web", "web")));
        publisher->changed();
    });
    REQUIRE(published.wait_for([](const model::Snapshot& s) {
        return pods_of(s, "web") == 3 && s.services().size() == 1;
    }));
    CHECK(std::chrono::steady_clock::now() - again < std::chrono::milliseconds(350));
    publisher->stop();
}

TEST_CASE("A snapshot built from stored objects equals the engine's own from the same JSON") {
    std::vector<json> objects = {
        {{"apiVersion", "v1"},
         {"kind", "Namespace"},
         {"metadata", {{"name", "shop"}, {"labels", {{"istio-injection", "enabled"}}}}}},
        {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "legacy"}}}},
        service("shop", "web", "web"),
        service("legacy", "old", "old"),
        pod("shop", "web-5d8f-1", "web-5d8f", "web", true),
        pod("shop", "web-5d8f-2", "web-5d8f", "web", true),
        pod("shop", "web-5d8f-3", "web-5d8f", "web", true),
        pod("legacy", "old-5d8f-1", "old-5d8f", "old", false),
        {{"apiVersion", "security.istio.io/v1"},
         {"kind", "PeerAuthentication"},
         {"metadata", {{"name", "default"}, {"namespace", "shop"}}},
         {"spec", {{"mtls", {{"mode", "STRICT"}}}}}},
        {{"apiVersion", "networking.istio.io/v1"},
         {"kind", "DestinationRule"},
         {"metadata", {{"name", "web"}, {"namespace", "shop"}}},
         {"spec", {{"host", "web"}, {"trafficPolicy", {{"tls", {{"mode", "ISTIO_MUTUAL"}}}}}}}},
        {{"apiVersion", "v1"},
         {"kind", "ConfigMap"},
         {"metadata", {{"name", "istio"}, {"namespace", "istio-system"}}},
         {"data", {{"mesh", {{"enableAutoMtls", false}}}}}},
    };
    model::Settings settings;
    model::SnapshotBuilder direct(settings);
    ObjectStore store;
    for (const auto& object : objects) {
        REQUIRE_FALSE(direct.add(object).has_value());
        const std::string kind = object["kind"];
        const ResourceKind rk = kind == "Namespace"            ? ResourceKind::Namespaces
                                : kind == "Service"            ? ResourceKind::Services
                                : kind == "Pod"                ? ResourceKind::Pods
                                : kind == "PeerAuthentication" ? ResourceKind::PeerAuthentications
                                : kind == "DestinationRule"    ? ResourceKind::DestinationRules
                                                               : ResourceKind::IstioConfigMap;
        store.upsert(rk, stored(object));
    }
    auto expected = direct.build();
    auto built = build_snapshot(store.inputs(), settings);

    CHECK(built->object_count() == expected->object_count());
    REQUIRE(built->namespaces().size() == expected->namespaces().size());
    for (std::size_t i = 0; i < built->namespaces().size(); ++i)
        CHECK(built->namespaces()[i].name == expected->namespaces()[i].name);
    CHECK(built->workloads().size() == expected->workloads().size());
    CHECK(pods_of(*built, "web") == 3);
    CHECK(pods_of(*built, "old") == 1);
    REQUIRE(built->services().size() == 2);
    for (const auto& svc : built->services())
        CHECK(svc.endpoint_positions.size() == 1);
    CHECK_FALSE(built->mesh().auto_mtls);
    CHECK(built->mesh_config_seen());
    auto shop = built->namespace_id("shop");
    REQUIRE(shop);
    CHECK(built->config(*shop).peer_authentications.size() == 1);
    CHECK(built->config(*shop).destination_rules.size() == 1);
    CHECK(built->mesh_client_namespaces() == expected->mesh_client_namespaces());
    CHECK(built->non_mesh_client_namespaces() == expected->non_mesh_client_namespaces());
}

TEST_CASE("A burst of changes folds into few snapshots; none is published after stop()") {
    IoThread thread;
    auto strand = net::make_strand(thread.io);
    ObjectStore store; // touched on the strand only
    Published published;
    auto publisher = std::make_shared<SnapshotPublisher>(
        strand, model::Settings{}, std::chrono::milliseconds(50), std::chrono::seconds(30),
        [&](bool) { return store.inputs(); }, published.sink());
    publisher->start();

    net::post(strand, [&] {
        for (int i = 0; i < 200; ++i) {
            store.upsert(ResourceKind::Pods,
                         stored(pod("shop", "web-" + std::to_string(i), "web-5d8f", "web", true)));
            publisher->changed();
        }
    });
    auto full =
        published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 200; });
    REQUIRE(full);
    CHECK(publisher->stats().builds <= 2);

    // Changes spread over 100 ms with a 50 ms window: a handful of snapshots, the last complete.
    const auto before = published.count();
    for (int i = 200; i < 220; ++i) {
        net::post(strand, [&, i] {
            store.upsert(ResourceKind::Pods,
                         stored(pod("shop", "web-" + std::to_string(i), "web-5d8f", "web", true)));
            publisher->changed();
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 220; }));
    CHECK(published.count() - before <= 5);

    publisher->stop();
    const auto after_stop = published.count();
    std::promise<void> posted;
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, stored(pod("shop", "late", "web-5d8f", "web", true)));
        publisher->changed();
        publisher->publish_now();
        posted.set_value();
    });
    posted.get_future().wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    CHECK(published.count() == after_stop);
}

TEST_CASE("publish_now builds at once instead of waiting for the coalescing window") {
    IoThread thread;
    auto strand = net::make_strand(thread.io);
    ObjectStore store;
    Published published;
    auto publisher = std::make_shared<SnapshotPublisher>(
        strand, model::Settings{}, std::chrono::seconds(30), std::chrono::seconds(30),
        [&](bool) { return store.inputs(); }, published.sink());
    publisher->start();
    net::post(strand, [&] {
        store.upsert(ResourceKind::Services, stored(service("shop", "web", "web")));
        publisher->publish_now();
    });
    auto snapshot = published.wait_for(
        [](const model::Snapshot& s) { return s.services().size() == 1; }, std::chrono::seconds(5));
    CHECK(snapshot);
    publisher->stop();
}

namespace {

// A small cluster changed at random: a few namespaces (one a prefix of another, to catch a store
// that orders "ns/name" keys as plain strings), and objects whose changes reach other namespaces'
// results through DestinationRule hosts, exportTo and workload selectors; and EndpointSlices that
// resolve named targetPorts, which portLevelMtls is keyed by; and Sidecars, which give their
// namespace's clients an answer of their own for every host.
class RandomCluster {
  public:
    explicit RandomCluster(unsigned seed) : random_(seed) {}

    // One random upsert or delete.
    void step(ObjectStore& store) {
        if (below(12) == 0) { // a namespace that comes and goes: NsIds shift, a full build
            lone_ = !lone_;
            if (lone_)
                upsert(store, ResourceKind::Pods, pod("lone", "p", "solo-1", "solo", true, ""));
            else
                store.erase(ResourceKind::Pods, "lone/p", "");
            return;
        }
        const std::string ns = pick(namespaces_);
        const std::string n = std::to_string(below(4));
        switch (below(10)) {
        case 0:
        case 1:
        case 2: { // a pod: new shapes, moves between shapes, deletes
            const std::string name = "p" + std::to_string(below(6));
            if (below(4) == 0) {
                store.erase(ResourceKind::Pods, ns + "/" + name, "");
                return;
            }
            const std::string app = pick({"web", "api", "db"});
            json object = pod(ns, name, app + "-" + pick({"5d8f", "77aa"}), app, below(3) != 0, "");
            if (below(3) == 0)
                object["metadata"]["labels"]["track"] = "canary";
            if (below(4) == 0)
                object["metadata"]["labels"]["istio"] = "pilot"; // control plane
            switch (below(5)) { // ambient.md §10: captured, pending, opted out, or as it is
            case 0:
                object["metadata"]["annotations"]["ambient.istio.io/redirection"] = "enabled";
                break;
            case 1:
                object["metadata"]["annotations"]["ambient.istio.io/redirection"] = "pending";
                break;
            case 2:
                object["metadata"]["labels"]["istio.io/dataplane-mode"] = "none";
                break;
            default:
                break;
            }
            upsert(store, ResourceKind::Pods, object);
            return;
        }
        case 3: { // a service
            if (below(4) == 0) {
                store.erase(ResourceKind::Services, ns + "/s" + n, "");
                return;
            }
            const std::string app = pick({"web", "api", "db"});
            // Named targetPorts resolve only through the slices below.
            upsert(store, ResourceKind::Services,
                   below(2) == 0 ? service(ns, "s" + n, app)
                                 : named_service(ns, "s" + n, app, pick({"http", ""}), "web"));
            return;
        }
        case 4: { // a DestinationRule
            if (below(3) == 0) {
                store.erase(ResourceKind::DestinationRules, ns + "/dr" + n, "");
                return;
            }
            json spec = {{"host", pick({"s0", "s1." + pick(namespaces_) + ".svc.cluster.local",
                                        "*." + pick(namespaces_) + ".svc.cluster.local",
                                        "*.svc.cluster.local", "*", "api.example.com"})},
                         {"trafficPolicy",
                          {{"tls", {{"mode", pick({"ISTIO_MUTUAL", "DISABLE", "SIMPLE"})}}}}}};
            if (below(3) == 0)
                spec["exportTo"] = json::array({pick({".", "*", pick(namespaces_)})});
            if (below(4) == 0)
                spec["workloadSelector"] = {{"matchLabels", {{"track", "canary"}}}};
            upsert(store, ResourceKind::DestinationRules,
                   dated_networking_object("DestinationRule", ns, "dr" + n, spec));
            return;
        }
        case 5: { // a PeerAuthentication
            if (below(3) == 0) {
                store.erase(ResourceKind::PeerAuthentications, ns + "/pa" + n, "");
                return;
            }
            json spec = {{"mtls", {{"mode", pick({"STRICT", "PERMISSIVE", "DISABLE"})}}}};
            if (below(2) == 0) {
                spec["selector"] = {{"matchLabels", {{"app", pick({"web", "api"})}}}};
                // Keyed by the number a slice resolves a named targetPort to.
                if (below(2) == 0)
                    spec["portLevelMtls"] = {{"8080", {{"mode", pick({"STRICT", "DISABLE"})}}}};
            }
            upsert(store, ResourceKind::PeerAuthentications,
                   {{"apiVersion", "security.istio.io/v1beta1"},
                    {"kind", "PeerAuthentication"},
                    {"metadata", {{"name", "pa" + n}, {"namespace", ns}}},
                    {"spec", spec}});
            return;
        }
        case 6: { // a ServiceEntry
            if (below(3) == 0) {
                store.erase(ResourceKind::ServiceEntries, ns + "/se" + n, "");
                return;
            }
            upsert(store, ResourceKind::ServiceEntries,
                   {{"apiVersion", "networking.istio.io/v1beta1"},
                    {"kind", "ServiceEntry"},
                    {"metadata", {{"name", "se" + n}, {"namespace", ns}}},
                    {"spec",
                     {{"hosts", {pick({"api.example.com", "*.example.com", "db.internal"})}},
                      {"location", pick({"MESH_EXTERNAL", "MESH_INTERNAL"})},
                      {"ports", {{{"number", 443}, {"name", "https"}, {"protocol", "TLS"}}}}}}});
            return;
        }
        case 7: { // an EndpointSlice: pods of a Service resolve its named targetPort
            const std::string name = "s" + n + "-" + std::to_string(below(2));
            if (below(4) == 0) {
                store.erase(ResourceKind::EndpointSlices, ns + "/" + name, "");
                return;
            }
            std::vector<std::string> pods;
            for (int p = 0; p < 6; ++p)
                if (below(3) == 0)
                    pods.push_back("p" + std::to_string(p));
            store.upsert(ResourceKind::EndpointSlices,
                         stored_slice(endpoint_slice(ns, name, "s" + n, pick({"http", ""}),
                                                     below(2) == 0 ? 8080 : 9090, pods)));
            return;
        }
        case 8: { // a Sidecar (ambient.md §14): a namespace's default or the canaries' own; in
                  // the root namespace, the mesh's default
            const std::string name = "sc" + std::to_string(below(2));
            if (below(3) == 0) {
                store.erase(ResourceKind::Sidecars, ns + "/" + name, "");
                return;
            }
            json hosts = json::array();
            for (std::size_t i = 0, count = 1 + below(2); i < count; ++i)
                hosts.push_back(pick({"./*", "istio-system/*", "*/*", "~/*",
                                      pick(namespaces_) + "/*", "./s0." + ns + ".svc.cluster.local",
                                      pick(namespaces_) + "/*.example.com"}));
            json spec = {{"egress", json::array({{{"hosts", hosts}}})}};
            if (below(2) == 0)
                spec["workloadSelector"] = {{"labels", {{"track", "canary"}}}};
            upsert(store, ResourceKind::Sidecars,
                   dated_networking_object("Sidecar", ns, name, spec));
            return;
        }
        default: { // a Namespace object: injection on or off, or gone
            if (below(3) == 0) {
                store.erase(ResourceKind::Namespaces, ns, "");
                return;
            }
            json labels = json::object();
            if (below(2) == 0)
                labels["istio-injection"] = "enabled";
            if (below(2) == 0)
                labels["istio.io/dataplane-mode"] = "ambient";
            if (below(3) == 0)
                labels["istio.io/use-waypoint"] = "wp";
            upsert(store, ResourceKind::Namespaces,
                   {{"apiVersion", "v1"},
                    {"kind", "Namespace"},
                    {"metadata", {{"name", ns}, {"labels", labels}}}});
            return;
        }
        }
    }

  private:
    std::size_t below(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_);
    }
    std::string pick(const std::vector<std::string>& from) { return from[below(from.size())]; }
    // A networking.istio.io object created on one of three days: the oldest of several wins.
    json dated_networking_object(const std::string& kind, const std::string& ns,
                                 const std::string& name, const json& spec) {
        return {
            {"apiVersion", "networking.istio.io/v1beta1"},
            {"kind", kind},
            {"metadata",
             {{"name", name},
              {"namespace", ns},
              {"creationTimestamp", "2024-01-0" + std::to_string(1 + below(3)) + "T00:00:00Z"}}},
            {"spec", spec}};
    }
    static void upsert(ObjectStore& store, ResourceKind kind, const json& object) {
        store.upsert(kind, stored(object));
    }

    std::mt19937 random_;
    bool lone_ = false;
    const std::vector<std::string> namespaces_ = {"a", "a-b", "b", "shop", "istio-system"};
};

std::string rule_name(const model::ConsolidatedRule* rule) {
    if (!rule)
        return "-";
    std::string out;
    for (const auto* member : rule->members)
        out += member->ref.namespace_name + "/" + member->ref.name + " ";
    return out;
}

// Everything observable of a snapshot, as text: a difference shows where the two builds part.
std::vector<std::string> describe(const model::Snapshot& s) {
    std::vector<std::string> out;
    out.push_back("objects " + std::to_string(s.object_count()));
    for (model::NsId id = 0; id < s.namespaces().size(); ++id) {
        const auto& ns = s.namespaces()[id];
        std::string line = "ns " + ns.name + " declared=" + std::to_string(ns.declared) +
                           " injection=" + std::to_string(ns.injection) +
                           " sidecars=" + std::to_string(ns.has_sidecar_workloads) +
                           " plain=" + std::to_string(ns.has_plain_workloads) +
                           " ambient=" + std::to_string(ns.has_ambient_workloads) +
                           " mode=" + ns.dataplane_mode.value_or("-") +
                           " waypoint=" + ns.use_waypoint.value_or("-") +
                           " both=" + std::to_string(ns.sidecar_and_ambient) + " workloads";
        for (auto w : ns.workloads)
            line += " " + std::to_string(w);
        line += " services";
        for (auto sv : ns.services)
            line += " " + std::to_string(sv);
        const auto& config = s.config(id);
        line += " config " + config.name +
                " pas=" + std::to_string(config.peer_authentications.size()) +
                " drs=" + std::to_string(config.destination_rules.size()) + " variants";
        for (const auto& variant : config.variants) {
            line += " [" + std::to_string(variant.selector_rules.size()) + ":";
            for (auto w : variant.workloads)
                line += " " + std::to_string(w);
            line += "]";
        }
        out.push_back(line);
    }
    for (const auto& w : s.workloads()) {
        std::string line = "workload " + std::to_string(w.ns) + " " + w.kind + " " + w.name +
                           " sidecar=" + std::to_string(w.sidecar) +
                           " dataplane=" + std::string(model::to_string(w.dataplane)) +
                           " predicted=" + std::to_string(w.ambient_predicted) +
                           " pending=" + std::to_string(w.ambient_pending) +
                           " beats=" + std::to_string(w.sidecar_beats_ambient) +
                           " cp=" + std::to_string(w.control_plane) +
                           " pods=" + std::to_string(w.pods) + " labels";
        for (const auto& [k, v] : w.labels.entries())
            line += " " + k + "=" + v;
        line += " ports";
        for (const auto& port : w.ports)
            line += " " + port.name + ":" + std::to_string(port.number);
        out.push_back(line);
    }
    for (model::ServiceId id = 0; id < s.services().size(); ++id) {
        const auto& svc = s.services()[id];
        std::string line = "service " + svc.host + " ns=" + std::to_string(svc.ns) +
                           " server=" + std::to_string(svc.analysed_as_server) + " waypoint=" +
                           (svc.waypoint ? model::display_name(*svc.waypoint) : std::string("-")) +
                           " endpoints";
        for (auto at : svc.endpoint_positions)
            line += " " + std::to_string(s.endpoint_id(svc, at));
        out.push_back(line);
    }
    for (const auto& h : s.external_hosts())
        out.push_back("external " + h.ref.namespace_name + "/" + h.ref.name + " " + h.host +
                      " ns=" + std::to_string(h.ns));
    std::string client_line = "mesh clients";
    for (auto ns : s.mesh_client_namespaces())
        client_line += " " + std::to_string(ns);
    client_line += "; others";
    for (auto ns : s.non_mesh_client_namespaces())
        client_line += " " + std::to_string(ns);
    client_line += "; ambient";
    for (auto ns : s.ambient_client_namespaces())
        client_line += " " + std::to_string(ns);
    out.push_back(client_line);
    // A hash map: its order depends on how it was filled, which is not observable.
    std::vector<std::string> keys;
    for (const auto& [key, spaces] : s.local_key_index()) {
        std::string line = "local key " + key;
        for (auto ns : spaces)
            line += " " + std::to_string(ns);
        keys.push_back(line);
    }
    std::sort(keys.begin(), keys.end());
    out.insert(out.end(), keys.begin(), keys.end());
    const auto& index = s.client_index();
    auto host_line = [](const std::string& what, const resolution::HostClients& clients) {
        std::string line = what + " resolved";
        for (auto ns : clients.resolved)
            line += " " + std::to_string(ns);
        line += " with Sidecars";
        if (clients.sidecars)
            for (auto ns : clients.sidecars->namespaces)
                line += " " + std::to_string(ns);
        clients.for_each_outcome([&](const resolution::ClientOutcome& outcome) {
            line += " | " + rule_name(outcome.rule) + "generic=" + std::to_string(outcome.generic);
            if (outcome.hidden_by)
                line += " hidden by " + outcome.hidden_by->ref.namespace_name + "/" +
                        outcome.hidden_by->ref.name;
            for (const auto& member : outcome.members)
                line += " " + std::to_string(member.ns) + "." + std::to_string(member.variant);
        });
        return line;
    };
    for (std::size_t i = 0; i < index.services.size(); ++i)
        out.push_back(host_line("clients of service " + std::to_string(i), index.services[i]));
    for (std::size_t i = 0; i < index.external_hosts.size(); ++i)
        out.push_back(host_line("clients of host " + std::to_string(i), index.external_hosts[i]));
    return out;
}

// Where two descriptions part: the first line that differs, from each (empty when equal).
std::string first_difference(const std::vector<std::string>& updated,
                             const std::vector<std::string>& built) {
    const auto [a, b] = std::mismatch(updated.begin(), updated.end(), built.begin(), built.end());
    if (a == updated.end() && b == built.end())
        return "";
    return "updated: " + (a == updated.end() ? std::string("(end)") : *a) +
           "\nbuilt:   " + (b == built.end() ? std::string("(end)") : *b);
}

// What the publisher does with the store's changes: follow `previous` with them, or, when they
// reach beyond their namespaces, build again from everything.
std::shared_ptr<const model::Snapshot> follow(const model::Snapshot* previous, ObjectStore& store,
                                              const model::Settings& settings, bool& incremental) {
    if (auto next = update_snapshot(previous, store.collect(), settings, false, &incremental))
        return next;
    return update_snapshot(previous, store.collect(true), settings, false, &incremental);
}

} // namespace

TEST_CASE("A snapshot updated namespace by namespace equals one built from all objects",
          "[store][incremental]") {
    const model::Settings settings;
    std::size_t incremental = 0;
    std::size_t full = 0;
    std::size_t with_ports = 0;  // snapshots where slices resolved some pod's named port
    std::size_t with_hidden = 0; // snapshots where a Sidecar hides some host from its clients
    for (unsigned seed = 1; seed <= 12; ++seed) {
        RandomCluster cluster(seed);
        ObjectStore store;
        for (int i = 0; i < 30; ++i)
            cluster.step(store);
        auto previous = update_snapshot(nullptr, store.collect(), settings);
        for (int round = 0; round < 60; ++round) {
            std::mt19937 burst(seed * 1000 + static_cast<unsigned>(round));
            const int changes = 1 + static_cast<int>(burst() % 3);
            for (int i = 0; i < changes; ++i)
                cluster.step(store);
            bool was_incremental = false;
            auto next = follow(previous.get(), store, settings, was_incremental);
            (was_incremental ? incremental : full) += 1;
            for (const auto& w : next->workloads())
                if (!w.ports.empty()) {
                    ++with_ports;
                    break;
                }
            for (const auto& clients : next->client_index().services)
                if (!clients.hidden.empty()) {
                    ++with_hidden;
                    break;
                }
            const auto scratch = build_snapshot(store.inputs(), settings);
            INFO("seed " << seed << ", round " << round
                         << (was_incremental ? ", incremental" : ", full"));
            REQUIRE(first_difference(describe(*next), describe(*scratch)) == "");
            const auto a = analyze(*next);
            const auto b = analyze(*scratch);
            REQUIRE(a.internal_error.empty());
            REQUIRE(report::findings_document(a.findings) == report::findings_document(b.findings));
            REQUIRE(matrix(*next).rows == matrix(*scratch).rows);
            previous = next;
        }
    }
    // Both paths ran, the incremental one most of the time.
    CHECK(full > 0);
    CHECK(incremental > full);
    CHECK(with_ports > 0);
    CHECK(with_hidden > 0);
}

TEST_CASE("A new workload shape behind a namespace's Sidecar updates every host's entry with the "
          "new class hidden where the Sidecar does not import (ambient.md §14)",
          "[store][incremental]") {
    const model::Settings settings;
    ObjectStore store;
    auto upsert = [&](ResourceKind kind, const json& object) {
        store.upsert(kind, stored(object));
    };
    // shop's clients see only shop's hosts; pay and web serve hosts shop cannot reach.
    for (const std::string ns : {"shop", "pay", "web"}) {
        upsert(ResourceKind::Pods, pod(ns, "app-1", "app-5d8f", "app", true));
        upsert(ResourceKind::Services, service(ns, "app", "app"));
    }
    upsert(ResourceKind::Sidecars, {{"apiVersion", "networking.istio.io/v1beta1"},
                                    {"kind", "Sidecar"},
                                    {"metadata", {{"name", "default"}, {"namespace", "shop"}}},
                                    {"spec", {{"egress", json::array({{{"hosts", {"./*"}}}})}}}});
    // A rule for shop's canaries only: a canary is a client class of its own (semantics §4).
    upsert(ResourceKind::DestinationRules,
           {{"apiVersion", "networking.istio.io/v1beta1"},
            {"kind", "DestinationRule"},
            {"metadata", {{"name", "canary"}, {"namespace", "shop"}}},
            {"spec",
             {{"host", "app"},
              {"workloadSelector", {{"matchLabels", {{"track", "canary"}}}}},
              {"trafficPolicy", {{"tls", {{"mode", "ISTIO_MUTUAL"}}}}}}}});
    const auto previous = update_snapshot(nullptr, store.collect(), settings);

    // A canary in shop: a second class there, under the same Sidecar.
    json canary = pod("shop", "app-2", "app-77aa", "app", true);
    canary["metadata"]["labels"]["track"] = "canary";
    upsert(ResourceKind::Pods, canary);
    bool incremental = false;
    const auto next = follow(previous.get(), store, settings, incremental);
    REQUIRE(incremental);
    REQUIRE(first_difference(describe(*next),
                             describe(*build_snapshot(store.inputs(), settings))) == "");
    // pay's host: both of shop's classes are hidden by shop/default, as the new outcomes say.
    const auto pay = std::find_if(next->services().begin(), next->services().end(),
                                  [](const auto& s) { return s.host.starts_with("app.pay."); });
    REQUIRE(pay != next->services().end());
    const auto& clients =
        next->client_index().services[static_cast<std::size_t>(pay - next->services().begin())];
    CHECK(clients.sidecars == next->client_index().sidecars);
    std::size_t hidden_classes = 0;
    clients.for_each_outcome([&](const resolution::ClientOutcome& outcome) {
        if (outcome.hidden_by && outcome.hidden_by->ref.name == "default")
            hidden_classes += outcome.members.size();
    });
    CHECK(hidden_classes == 2);
}

TEST_CASE("A slice's ports make the same snapshot as pods that carried those ports themselves",
          "[store]") {
    const model::Settings settings;
    auto cluster = [](ObjectStore& store) {
        store.upsert(ResourceKind::Namespaces,
                     stored({{"apiVersion", "v1"},
                             {"kind", "Namespace"},
                             {"metadata",
                              {{"name", "shop"}, {"labels", {{"istio-injection", "enabled"}}}}}}));
        store.upsert(ResourceKind::Services,
                     stored(named_service("shop", "web", "web", "http", "web-port")));
    };
    ObjectStore live;
    cluster(live);
    ObjectStore carried;
    cluster(carried);
    for (int i = 1; i <= 4; ++i) {
        const std::string name = "web-" + std::to_string(i);
        live.upsert(ResourceKind::Pods, stored(pod("shop", name, "web-5d8f", "web", true)));
        json full = pod("shop", name, "web-5d8f", "web", true);
        full["spec"] = {
            {"containers",
             {{{"name", "app"},
               {"ports", {{{"name", "web-port"}, {"containerPort", i <= 2 ? 8080 : 9090}}}}}}}};
        carried.upsert(ResourceKind::Pods, stored(full));
    }
    live.upsert(
        ResourceKind::EndpointSlices,
        stored_slice(endpoint_slice("shop", "web-a", "web", "http", 8080, {"web-1", "web-2"})));
    live.upsert(
        ResourceKind::EndpointSlices,
        stored_slice(endpoint_slice("shop", "web-b", "web", "http", 9090, {"web-3", "web-4"})));
    CHECK(live.pod_shapes() == carried.pod_shapes());
    CHECK(describe(*build_snapshot(live.inputs(), settings)) ==
          describe(*build_snapshot(carried.inputs(), settings)));
}

TEST_CASE("An istio-cni-config change reaches every namespace; a VirtualService's only its own",
          "[store][incremental]") {
    ObjectStore store;
    for (const char* name : {"istio-system", "shop", "front"})
        store.upsert(
            ResourceKind::Namespaces,
            stored({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}}));
    store.collect();

    store.upsert(ResourceKind::VirtualServices,
                 stored({{"apiVersion", "networking.istio.io/v1"},
                         {"kind", "VirtualService"},
                         {"metadata", {{"name", "web"}, {"namespace", "front"}}},
                         {"spec", {{"hosts", json::array({"web.shop.svc.cluster.local"})}}}}));
    const SnapshotInputs routed = store.collect();
    CHECK_FALSE(routed.all_changed);
    CHECK(routed.changed_namespaces == std::vector<std::string>{"front"});
    CHECK(routed.changed_objects.size() == 2); // front's Namespace and its VirtualService
    CHECK(routed.objects.empty());             // the rest stays in the store

    // Its selectors decide which pods of every namespace are ambient (§10).
    store.upsert(
        ResourceKind::CniConfigMap,
        stored({{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", "istio-cni-config"}, {"namespace", "istio-system"}}},
                {"data", {{"EXCLUDE_NAMESPACES", "kube-system"}}}}));
    CHECK(store.collect().all_changed);
    CHECK(store.size(ResourceKind::CniConfigMap) == 1);
    CHECK(store.size(ResourceKind::IstioConfigMap) == 0);
}

TEST_CASE("Changes that reach beyond their namespaces are built again from all objects",
          "[store][incremental]") {
    const model::Settings settings;
    ObjectStore store;
    store.upsert(ResourceKind::Pods, stored(pod("shop", "web-1", "web-5d8f", "web", true)));
    store.upsert(ResourceKind::Services, stored(service("shop", "web", "web")));
    const auto previous = update_snapshot(nullptr, store.collect(), settings);
    REQUIRE(previous);

    // A namespace that was not there: its number would shift every later namespace's.
    store.upsert(ResourceKind::Pods, stored(pod("audit", "log-1", "log-77aa", "log", true)));
    const SnapshotInputs changes = store.collect();
    REQUIRE_FALSE(changes.all_changed);
    CHECK(changes.objects.empty());
    bool incremental = true;
    CHECK(update_snapshot(previous.get(), changes, settings, false, &incremental) == nullptr);
    CHECK_FALSE(incremental);
    // Only changes and nothing they follow: no snapshot either, rather than one of them alone.
    CHECK(update_snapshot(nullptr, changes, settings) == nullptr);

    // Everything, asked for: the snapshot a build from all objects gives.
    const SnapshotInputs everything = store.collect(true);
    CHECK(everything.all_changed);
    const auto next = update_snapshot(previous.get(), everything, settings, false, &incremental);
    REQUIRE(next);
    CHECK_FALSE(incremental);
    CHECK(first_difference(describe(*next), describe(*build_snapshot(store.inputs(), settings))) ==
          "");
    CHECK(pods_of(*next, "log") == 1);
}

TEST_CASE("The publisher builds from all objects when the changes alone cannot be followed",
          "[store][incremental]") {
    IoThread thread;
    auto strand = net::make_strand(thread.io);
    ObjectStore store;
    Published published;
    std::atomic<int> everything_asked{0};
    auto publisher = std::make_shared<SnapshotPublisher>(
        strand, model::Settings{}, std::chrono::milliseconds(20), std::chrono::milliseconds(20),
        [&](bool everything) {
            everything_asked += everything ? 1 : 0;
            return store.collect(everything);
        },
        published.sink(), false, std::chrono::milliseconds(5));
    publisher->start();
    auto web = stored(pod("shop", "web-1", "web-5d8f", "web", true));
    auto canary = stored(pod("shop", "web-2", "web-6e9a", "web", true));
    auto log = stored(pod("audit", "log-1", "log-77aa", "log", true));
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, std::move(web));
        publisher->publish_now();
    });
    REQUIRE(published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 1; }));
    CHECK(everything_asked == 1); // the first build: nothing to follow yet

    // A change within shop follows the last snapshot.
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, std::move(canary));
        publisher->changed();
    });
    REQUIRE(published.wait_for([](const model::Snapshot& s) { return pods_of(s, "web") == 2; }));
    CHECK(everything_asked == 1);
    CHECK(publisher->stats().incremental_builds == 1);

    // A new namespace cannot: the publisher collects everything and publishes that.
    net::post(strand, [&] {
        store.upsert(ResourceKind::Pods, std::move(log));
        publisher->changed();
    });
    REQUIRE(published.wait_for([](const model::Snapshot& s) { return pods_of(s, "log") == 1; }));
    CHECK(everything_asked == 2);
    CHECK(pods_of(*published.latest(), "web") == 2);
    CHECK(publisher->stats().failed_builds == 0);
    publisher->stop();
}

TEST_CASE("A pod list replaces the pods as upserting each pod would, slice ports included",
          "[store]") {
    const model::Settings settings;
    auto cluster = [](ObjectStore& store) {
        store.upsert(ResourceKind::Namespaces,
                     stored({{"apiVersion", "v1"},
                             {"kind", "Namespace"},
                             {"metadata",
                              {{"name", "shop"}, {"labels", {{"istio-injection", "enabled"}}}}}}));
        store.upsert(ResourceKind::Services,
                     stored(named_service("shop", "web", "web", "http", "web-port")));
        store.upsert(
            ResourceKind::EndpointSlices,
            stored_slice(endpoint_slice("shop", "web-a", "web", "http", 8080, {"web-1", "web-2"})));
        // Pods from before the list, which the list must replace.
        store.upsert(ResourceKind::Pods, stored(pod("shop", "gone", "gone-1a2b", "gone", true)));
    };
    ObjectStore one_by_one;
    cluster(one_by_one);
    ObjectStore listed;
    cluster(listed);
    std::vector<StoredObject> upserted;
    PodList list;
    for (int i = 1; i <= 4; ++i) {
        const std::string name = "web-" + std::to_string(i);
        // web-1 and web-2 get port 8080 from the slice; web-3 and web-4 share the plain shape.
        upserted.push_back(stored(pod("shop", name, "web-5d8f", "web", true, "uid-" + name)));
        auto each = stored(pod("shop", name, "web-5d8f", "web", true, "uid-" + name));
        list.add(each.key, each.uid, std::get<model::PodLike>(std::move(each.object)));
    }
    list.add(
        "shop/api-1", "uid-api-1",
        std::get<model::PodLike>(stored(pod("shop", "api-1", "api-77aa", "api", false)).object));
    upserted.push_back(stored(pod("shop", "api-1", "api-77aa", "api", false)));
    CHECK(list.size() == 5);
    one_by_one.replace(ResourceKind::Pods, std::move(upserted));
    listed.replace(ResourceKind::Pods, {}, std::move(list));

    CHECK(listed.size(ResourceKind::Pods) == 5);
    CHECK(listed.find_pod("shop/gone") == nullptr);
    CHECK(ports_of(listed, "shop/web-1") == ports_of(one_by_one, "shop/web-1"));
    CHECK(ports_of(listed, "shop/web-1") == "web-port:8080");
    CHECK(ports_of(listed, "shop/web-3").empty());
    CHECK(listed.pod_shapes() == one_by_one.pod_shapes());
    CHECK(listed.pod_shapes() == 3);
    CHECK(describe(*build_snapshot(listed.inputs(), settings)) ==
          describe(*build_snapshot(one_by_one.inputs(), settings)));
    // The pods stay the store's after the list is gone: a deletion is counted as usual.
    CHECK(listed.erase(ResourceKind::Pods, "shop/web-3", "uid-web-3") == StoreChange::PodCount);
}

TEST_CASE("A change after a quiet window is built after the settle delay; the next waits for the "
          "window",
          "[store]") {
    IoThread thread;
    auto strand = net::make_strand(thread.io);
    ObjectStore store;
    Published published;
    // A window far longer than the test: only the settle delay can explain a prompt snapshot.
    auto publisher = std::make_shared<SnapshotPublisher>(
        strand, model::Settings{}, std::chrono::seconds(60), std::chrono::seconds(60),
        [&](bool) { return store.inputs(); }, published.sink(), false,
        std::chrono::milliseconds(5));
    publisher->start();
    // The objects are made here: `stored` asserts, and Catch's assertions belong to this thread.
    auto web = stored(service("shop", "web", "web"));
    auto api = stored(service("shop", "api", "api"));
    net::post(strand, [&] {
        store.upsert(ResourceKind::Services, std::move(web));
        publisher->changed();
    });
    CHECK(published.wait_for([](const model::Snapshot& s) { return s.services().size() == 1; },
                             std::chrono::seconds(20)));
    const auto first = published.count();
    net::post(strand, [&] {
        store.upsert(ResourceKind::Services, std::move(api));
        publisher->changed();
    });
    // The second change came within the 60 s window of the first build: no build before it ends.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(published.count() == first);
    CHECK(publisher->stats().builds == 1);
    publisher->stop();
}
