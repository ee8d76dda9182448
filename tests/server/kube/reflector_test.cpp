// Tests of server/kube/reflector against the fake API server: lists, watches, every failure.
#include "server/kube/reflector.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <catch2/catch.hpp>
#include <future>

using namespace mtlsguard::kube;
using namespace mtlsguard::kube::testing;
using nlohmann::json;
namespace net = boost::asio;

namespace {

// Records what the reflector reports; read from the test thread.
class RecordingSink final : public ReflectorSink {
  public:
    void list_item(json&& object) override {
        std::lock_guard lock(mutex_);
        pending_.push_back(std::move(object));
    }
    void list_done() override {
        std::lock_guard lock(mutex_);
        lists_.push_back(std::move(pending_));
        pending_.clear();
    }
    void list_abandoned() override {
        std::lock_guard lock(mutex_);
        pending_.clear();
        ++abandoned_;
    }
    void watch_event(WatchEventType type, json&& object) override {
        std::lock_guard lock(mutex_);
        events_.emplace_back(type, std::move(object));
    }
    void resource_missing() override {
        std::lock_guard lock(mutex_);
        ++missing_;
    }

    std::vector<std::vector<json>> lists() const {
        std::lock_guard lock(mutex_);
        return lists_;
    }
    std::vector<std::pair<WatchEventType, json>> events() const {
        std::lock_guard lock(mutex_);
        return events_;
    }
    int abandoned() const {
        std::lock_guard lock(mutex_);
        return abandoned_;
    }
    int missing() const {
        std::lock_guard lock(mutex_);
        return missing_;
    }

  private:
    mutable std::mutex mutex_;
    std::vector<json> pending_;
    std::vector<std::vector<json>> lists_;
    std::vector<std::pair<WatchEventType, json>> events_;
    int abandoned_ = 0;
    int missing_ = 0;
};

const std::string pa_group = "security.istio.io";
const std::string pa_path = "/apis/security.istio.io/v1/peerauthentications";

json peer_authentication(const std::string& ns, const std::string& name,
                         const std::string& mode = "STRICT") {
    return {{"apiVersion", "security.istio.io/v1"},
            {"kind", "PeerAuthentication"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec", {{"mtls", {{"mode", mode}}}}}};
}

json service(const std::string& ns, const std::string& name) {
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec", {{"ports", {{{"port", 80}}}}, {"selector", {{"app", name}}}}}};
}

// One reflector on its own strand of the test's io thread.
class Run {
    net::strand<net::io_context::executor_type> strand_;
    std::shared_ptr<ApiClient> client_;

  public:
    std::shared_ptr<RecordingSink> sink;
    std::shared_ptr<ReflectorCounters> counters;

  private:
    std::shared_ptr<Reflector> reflector_;

    // Runs `f` on the reflector's strand and returns its result.
    template <typename F> auto on_strand(F f) -> decltype(f()) {
        std::promise<decltype(f())> promise;
        auto future = promise.get_future();
        net::post(strand_, [&] { promise.set_value(f()); });
        REQUIRE(future.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
        return future.get();
    }

  public:
    Run(IoThread& thread, FakeCluster& cluster, ResourceTarget target,
        ReflectorOptions options = quick_reflector_options())
        : strand_(net::make_strand(thread.io)),
          client_(std::make_shared<ApiClient>(strand_, cluster.config())),
          sink(std::make_shared<RecordingSink>()), counters(std::make_shared<ReflectorCounters>()),
          reflector_(std::make_shared<Reflector>(strand_, client_, std::move(target), sink,
                                                 counters, options, test_logger())) {
        net::post(strand_, [r = reflector_] { r->start(); });
    }
    ~Run() { stop(); }
    Run(const Run&) = delete;
    Run& operator=(const Run&) = delete;

    void stop() {
        on_strand([this] {
            reflector_->stop();
            return 0;
        });
    }
    std::string resource_version() {
        return on_strand([this] { return reflector_->resource_version(); });
    }
    bool synced() const { return reflector_->synced(); }
    std::optional<std::chrono::steady_clock::time_point> broken_since() const {
        return reflector_->broken_since();
    }
};

std::vector<RecordedRequest> lists_of(const FakeApiServer& server, const std::string& path) {
    std::vector<RecordedRequest> out;
    for (auto& r : server.requests())
        if (r.path == path && !r.query.count("watch"))
            out.push_back(r);
    return out;
}

std::vector<RecordedRequest> watches_of(const FakeApiServer& server, const std::string& path) {
    std::vector<RecordedRequest> out;
    for (auto& r : server.requests())
        if (r.path == path && r.query.count("watch"))
            out.push_back(r);
    return out;
}

bool has_event(const RecordingSink& sink, WatchEventType type, const std::string& name) {
    for (const auto& [t, object] : sink.events())
        if (t == type && object["metadata"]["name"] == name)
            return true;
    return false;
}

// 1,203 Services over seven namespaces: three list pages of 500. Returns the resourceVersion a
// list of them is at.
std::string preload_three_pages(FakeCluster& cluster) {
    std::vector<json> services;
    for (int i = 0; i < 1203; ++i)
        services.push_back(service("ns-" + std::to_string(i % 7), "svc-" + std::to_string(i)));
    cluster.server.preload("", "services", services);
    return cluster.server.resource_version();
}

void add_istio(FakeCluster& cluster) {
    for (const auto& resource : istio_resources())
        cluster.server.add_resource(resource);
}

} // namespace

TEST_CASE("An initial list pages through continue tokens, then watches from its resourceVersion") {
    IoThread thread;
    FakeCluster cluster;
    const std::string list_rv = preload_three_pages(cluster);

    Run run(thread, cluster, make_target(ResourceKind::Services, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return run.synced(); }));
    auto lists = run.sink->lists();
    REQUIRE(lists.size() == 1);
    CHECK(lists[0].size() == 1203);
    // Items of a typed list come without kind; the reflector puts it back for the engine.
    CHECK(lists[0][0]["kind"] == "Service");
    CHECK(lists[0][0]["apiVersion"] == "v1");

    auto pages = lists_of(cluster.server, "/api/v1/services");
    REQUIRE(pages.size() == 3);
    CHECK(pages[0].query.at("limit") == "500");
    CHECK_FALSE(pages[0].query.count("continue"));
    CHECK(pages[1].query.count("continue"));
    CHECK(pages[2].query.count("continue"));
    for (const auto& page : pages)
        CHECK_FALSE(page.query.count("resourceVersion")); // a consistent, most recent read

    REQUIRE(wait_until([&] { return !watches_of(cluster.server, "/api/v1/services").empty(); }));
    auto watch = watches_of(cluster.server, "/api/v1/services").front();
    CHECK(watch.query.at("watch") == "true");
    CHECK(watch.query.at("allowWatchBookmarks") == "true");
    CHECK(watch.query.at("resourceVersion") == list_rv);
    const int timeout = std::stoi(watch.query.at("timeoutSeconds"));
    CHECK(timeout >= 300);
    CHECK(timeout <= 600);
    CHECK(watch.authorization == "Bearer token-a");
}

TEST_CASE(
    "Every watch event kind reaches the sink in order; a bookmark moves the resourceVersion") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));

    cluster.server.create(pa_group, "peerauthentications", peer_authentication("shop", "a"));
    cluster.server.update(pa_group, "peerauthentications",
                          peer_authentication("shop", "a", "PERMISSIVE"));
    const std::string deleted_rv =
        cluster.server.remove(pa_group, "peerauthentications", "shop", "a");
    REQUIRE(wait_until([&] { return run.sink->events().size() == 3; }));
    auto events = run.sink->events();
    CHECK(events[0].first == WatchEventType::Added);
    CHECK(events[1].first == WatchEventType::Modified);
    CHECK(events[1].second["spec"]["mtls"]["mode"] == "PERMISSIVE");
    CHECK(events[2].first == WatchEventType::Deleted);
    CHECK(events[2].second["metadata"]["name"] == "a");
    CHECK(events[2].second["kind"] == "PeerAuthentication");
    CHECK(events[2].second["apiVersion"] == "security.istio.io/v1");
    REQUIRE(wait_until([&] { return run.resource_version() == deleted_rv; }));

    // Changes elsewhere move the server's resourceVersion; a bookmark carries it to the watch.
    cluster.server.create("", "services", service("shop", "unrelated"));
    const std::string latest = cluster.server.resource_version();
    CHECK(latest != deleted_rv);
    cluster.server.bookmark_all();
    REQUIRE(wait_until([&] { return run.resource_version() == latest; }));
    CHECK(run.sink->events().size() == 3); // a bookmark is no change

    // The next watch resumes from the bookmark.
    cluster.server.cut_watches(Cut::Clean);
    REQUIRE(wait_until([&] { return watches_of(cluster.server, pa_path).size() == 2; }));
    CHECK(watches_of(cluster.server, pa_path)[1].query.at("resourceVersion") == latest);
}

TEST_CASE("A connection cut in the middle of an event resumes and delivers that event once") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));
    const std::string before = run.resource_version();

    cluster.server.cut_watches(Cut::MidEvent);
    cluster.server.create(pa_group, "peerauthentications", peer_authentication("shop", "cut"));
    REQUIRE(wait_until([&] { return has_event(*run.sink, WatchEventType::Added, "cut"); }));
    // A little longer: nothing is delivered twice.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(run.sink->events().size() == 1);
    auto watches = watches_of(cluster.server, pa_path);
    REQUIRE(watches.size() == 2);
    CHECK(watches[1].query.at("resourceVersion") == before); // the half event did not count
    CHECK(run.counters->watch_restarts == 1);
    CHECK(run.counters->relists == 0);
    CHECK(lists_of(cluster.server, pa_path).size() == 1);
}

TEST_CASE("A connection cut between events resumes after a backoff, without a relist") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));
    cluster.server.create(pa_group, "peerauthentications", peer_authentication("shop", "one"));
    REQUIRE(wait_until([&] { return run.sink->events().size() == 1; }));
    cluster.server.cut_watches(Cut::Abrupt);
    REQUIRE(wait_until([&] { return watches_of(cluster.server, pa_path).size() == 2; }));
    cluster.server.create(pa_group, "peerauthentications", peer_authentication("shop", "two"));
    REQUIRE(wait_until([&] { return has_event(*run.sink, WatchEventType::Added, "two"); }));
    CHECK(run.counters->watch_restarts == 1);
    CHECK(run.counters->relists == 0);
}

TEST_CASE("A watch ended by the server at its timeout resumes at once, not counted as a restart") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));
    const std::string rv = run.resource_version();
    cluster.server.cut_watches(Cut::Clean);
    REQUIRE(wait_until([&] { return watches_of(cluster.server, pa_path).size() == 2; }));
    CHECK(watches_of(cluster.server, pa_path)[1].query.at("resourceVersion") == rv);
    CHECK(run.counters->watch_restarts == 0);
    CHECK(run.counters->relists == 0);
    CHECK_FALSE(run.broken_since().has_value());
}

TEST_CASE("A resourceVersion gone (410) makes the reflector list again and see deletions") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    for (const char* name : {"a", "b", "c"})
        cluster.server.create(pa_group, "peerauthentications", peer_authentication("shop", name));
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));

    // While the reflector cannot reconnect, b is deleted and the history compacted.
    cluster.server.fail_next(pa_path, 503, 1000);
    cluster.server.cut_watches(Cut::Abrupt);
    cluster.server.remove(pa_group, "peerauthentications", "shop", "b");
    cluster.server.compact();
    REQUIRE(wait_until([&] { return run.broken_since().has_value(); }));
    cluster.server.clear_failures();

    REQUIRE(wait_until([&] { return run.sink->lists().size() == 2; }));
    auto relisted = run.sink->lists()[1];
    REQUIRE(relisted.size() == 2);
    CHECK(relisted[0]["metadata"]["name"] == "a");
    CHECK(relisted[1]["metadata"]["name"] == "c");
    CHECK(run.counters->relists == 1);
    CHECK(run.sink->events().empty()); // the deletion came with the list, not as an event
    REQUIRE(wait_until([&] { return !run.broken_since().has_value(); }));
}

TEST_CASE("An expired continue token restarts the list from its first page") {
    IoThread thread;
    FakeCluster cluster;
    std::vector<json> services;
    for (int i = 0; i < 1200; ++i)
        services.push_back(service("shop", "svc-" + std::to_string(i)));
    cluster.server.preload("", "services", services);
    cluster.server.expire_next_continue(1);
    Run run(thread, cluster, make_target(ResourceKind::Services, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return run.synced(); }));
    auto lists = run.sink->lists();
    REQUIRE(lists.size() == 1);
    CHECK(lists[0].size() == 1200);
    CHECK(run.sink->abandoned() == 1);
    auto pages = lists_of(cluster.server, "/api/v1/services");
    REQUIRE(pages.size() == 5); // page 1, page 2 refused, then pages 1 to 3
    CHECK(pages[1].status == 410);
    CHECK_FALSE(pages[2].query.count("continue"));
}

TEST_CASE("The continue token is read from a page's text before its items, unescaped, as a hint") {
    using mtlsguard::kube::continue_hint;
    // As the API server writes a list: kind, apiVersion, metadata, items.
    CHECK(continue_hint(R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7",)"
                        R"("continue":"eyJ2IjoxfQ","remainingItemCount":3},"items":[]})") ==
          "eyJ2IjoxfQ");
    CHECK(continue_hint(R"({"kind":"PodList","metadata":{"resourceVersion":"7"},"items":[]})")
              .empty());
    // After the items (as a JSON library sorting the keys writes it): not read, the parse finds it.
    CHECK(continue_hint(R"({"apiVersion":"v1","items":[{"continue":"x"}],"kind":"PodList",)"
                        R"("metadata":{"continue":"abc"}})")
              .empty());
    CHECK(continue_hint(R"({"metadata":{"continue":"a\"b"},"items":[]})").empty());
    CHECK(continue_hint(R"({"metadata":{"continue":"abc)").empty());
    CHECK(continue_hint("").empty());
}

TEST_CASE("A page whose text states another continue token than its metadata still lists every "
          "item once, from the right pages") {
    IoThread thread;
    FakeCluster cluster;
    const std::string list_rv = preload_three_pages(cluster);
    // The first two pages: the hint of each ("not-a-token") is asked for, then cancelled.
    cluster.server.decoy_next_continue(2);
    Run run(thread, cluster, make_target(ResourceKind::Services, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return run.synced(); }));
    auto lists = run.sink->lists();
    REQUIRE(lists.size() == 1);
    std::set<std::string> names;
    for (const auto& item : lists[0])
        names.insert(item["metadata"]["name"].get<std::string>());
    CHECK(lists[0].size() == 1203);
    CHECK(names.size() == 1203);
    CHECK(run.sink->abandoned() == 0);
    std::size_t real_pages = 0;
    for (const auto& page : lists_of(cluster.server, "/api/v1/services"))
        if (!page.query.count("continue") || page.query.at("continue") != "not-a-token")
            ++real_pages;
    CHECK(real_pages == 3);
    REQUIRE(wait_until([&] { return !watches_of(cluster.server, "/api/v1/services").empty(); }));
    CHECK(watches_of(cluster.server, "/api/v1/services").front().query.at("resourceVersion") ==
          list_rv);
}

TEST_CASE("429 with Retry-After holds the retry back at least that long") {
    IoThread thread;
    FakeCluster cluster;
    cluster.server.fail_next("/api/v1/services", 429, 1, 1);
    const auto started = std::chrono::steady_clock::now();
    Run run(thread, cluster, make_target(ResourceKind::Services, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return !cluster.server.requests().empty(); }));
    REQUIRE(wait_until([&] { return run.synced(); }));
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::seconds(1));
    auto pages = lists_of(cluster.server, "/api/v1/services");
    REQUIRE(pages.size() == 2);
    CHECK(pages[0].status == 429);
    CHECK(pages[1].status == 200);
}

TEST_CASE("5xx answers back off and the resource reports since when it has been broken") {
    IoThread thread;
    FakeCluster cluster;
    cluster.server.fail_next("/api/v1/services", 500, 3);
    const auto started = std::chrono::steady_clock::now();
    Run run(thread, cluster, make_target(ResourceKind::Services, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return run.broken_since().has_value(); }));
    CHECK(*run.broken_since() >= started);
    REQUIRE(wait_until([&] { return run.synced(); }));
    CHECK(lists_of(cluster.server, "/api/v1/services").size() == 4);
    CHECK_FALSE(run.broken_since().has_value());
    CHECK(run.sink->lists().size() == 1);
}

TEST_CASE(
    "ERROR events other than 410 and malformed lines resume the watch; 504 too-large relists") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));
    const std::string rv = run.resource_version();

    cluster.server.inject_line(
        "peerauthentications",
        R"json({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"internal error","reason":"InternalError","code":500}})json"
        "\n");
    REQUIRE(wait_until([&] { return watches_of(cluster.server, pa_path).size() == 2; }));
    CHECK(watches_of(cluster.server, pa_path)[1].query.at("resourceVersion") == rv);
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));

    cluster.server.inject_line("peerauthentications", "{\"type\":\"ADDED\",\"object\":\n");
    REQUIRE(wait_until([&] { return watches_of(cluster.server, pa_path).size() == 3; }));
    CHECK(run.counters->relists == 0);
    CHECK(run.counters->watch_restarts == 2);
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));

    cluster.server.inject_line(
        "peerauthentications",
        R"json({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Too large resource version: 999, current: 120","reason":"Timeout","code":504}})json"
        "\n");
    REQUIRE(wait_until([&] { return run.sink->lists().size() == 2; }));
    CHECK(run.counters->relists == 1);
}

TEST_CASE("Pods are read as metadata only, with the documented Accept headers") {
    IoThread thread;
    FakeCluster cluster;
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", "web-7d9f-abcde"},
                  {"namespace", "shop"},
                  {"labels", {{"app", "web"}, {"security.istio.io/tlsMode", "istio"}}},
                  {"ownerReferences",
                   {{{"apiVersion", "apps/v1"},
                     {"kind", "ReplicaSet"},
                     {"name", "web-7d9f"},
                     {"uid", "rs"},
                     {"controller", true}}}}}},
                {"spec", {{"containers", {{{"name", "app"}, {"image", "web:1"}}}}}}};
    cluster.server.preload("", "pods", {pod});
    Run run(thread, cluster, make_target(ResourceKind::Pods, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("pods") == 1; }));
    auto lists = run.sink->lists();
    REQUIRE(lists.size() == 1);
    REQUIRE(lists[0].size() == 1);
    const json& item = lists[0][0];
    CHECK(item["kind"] == "Pod");
    CHECK(item["apiVersion"] == "v1");
    CHECK(item["metadata"]["labels"]["app"] == "web");
    CHECK(item["metadata"]["ownerReferences"][0]["name"] == "web-7d9f");
    CHECK_FALSE(item.contains("spec"));

    auto list = lists_of(cluster.server, "/api/v1/pods").front();
    CHECK_THAT(
        list.accept,
        Catch::StartsWith("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"));
    auto watch = watches_of(cluster.server, "/api/v1/pods").front();
    CHECK_THAT(watch.accept,
               Catch::StartsWith("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"));
    CHECK(watch.status == 200);

    json second = pod;
    second["metadata"]["name"] = "web-7d9f-fghij";
    cluster.server.create("", "pods", second);
    REQUIRE(wait_until([&] { return run.sink->events().size() == 1; }));
    const json event_object = run.sink->events()[0].second;
    CHECK(event_object["kind"] == "Pod");
    CHECK_FALSE(event_object.contains("spec"));
}

TEST_CASE("A resource that is no longer served is reported missing") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));
    cluster.server.remove_resource(pa_group, "peerauthentications");
    REQUIRE(wait_until([&] { return run.sink->missing() >= 1; }));
}

TEST_CASE("After stop() the sink hears nothing more and the watch is closed") {
    IoThread thread;
    FakeCluster cluster;
    add_istio(cluster);
    Run run(thread, cluster, make_target(ResourceKind::PeerAuthentications, "v1", "istio-system"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 1; }));
    run.stop();
    cluster.server.create(pa_group, "peerauthentications", peer_authentication("shop", "late"));
    REQUIRE(wait_until([&] { return cluster.server.open_watches("peerauthentications") == 0; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(run.sink->events().empty());
}
