// Tests of server/kube/store: keys, pod shapes, snapshots, coalesced publishing, stop().
#include "analysis/model/decode.hpp"
#include "server/kube/store.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <catch2/catch.hpp>
#include <future>

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

TEST_CASE("Pod counts alone wait for the count refresh or the next other change") {
    IoThread thread;
    auto strand = net::make_strand(thread.io);
    ObjectStore store;
    Published published;
    auto publisher = std::make_shared<SnapshotPublisher>(
        strand, model::Settings{}, std::chrono::milliseconds(20), std::chrono::milliseconds(400),
        [&] { return store.inputs(); }, published.sink());
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
        CHECK(svc.endpoints.size() == 1);
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
        [&] { return store.inputs(); }, published.sink());
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
        [&] { return store.inputs(); }, published.sink());
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
