// End-to-end tests of `mtls-guard serve --kubeconfig`: the real binary reads a fake API server
// (loopback HTTPS, the real wire format) and is spoken to over TLS; faults of the API server are
// injected while it serves. Every wait is bounded; the process is always killed at the end.
#include "tests/server/https/support/serve_harness.hpp"
#include "tests/server/kube/support/cluster_objects.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

using namespace mtlsguard::serve_testing;
namespace kt = mtlsguard::kube::testing;

namespace {

const std::string web_host = "web.shop.svc.cluster.local";

// front's sidecars sending plaintext to shop/web: MTG101 once shop is STRICT.
json plaintext_rule(const std::string& name = "web-plain") {
    return kt::destination_rule("front", name, web_host, "DISABLE");
}

// A fake cluster, a kubeconfig with a token file, and serve reading it with short timeouts: the
// stale threshold is 2 s, an API request step 2 s, a watch 3-6 s.
class LiveServe {
  public:
    explicit LiveServe(const std::function<void(kt::FakeApiServer&)>& seed = kt::seed_open_mesh,
                       std::vector<std::string> flags = {}, bool wait_ready = true) {
        seed(cluster.server);
        token_file = files.write("kube/token", "token-a\n");
        kubeconfig = kt::write_kubeconfig(files, cluster, token_file);
        std::vector<std::string> args = {"--kubeconfig",
                                         kubeconfig,
                                         "--stale-after-seconds",
                                         "2",
                                         "--kube-request-timeout-seconds",
                                         "2",
                                         "--kube-watch-timeout-seconds",
                                         "3",
                                         "--log-format",
                                         "json"};
        args.insert(args.end(), flags.begin(), flags.end());
        serve.emplace(ServeOptions{args, false, true, true, "1", false});
        if (wait_ready)
            serve->wait_ready({{serve->ca()}}, 20s);
    }

    // The response to a CREATE of `object`.
    json verdict(const json& object, const std::string& uid) const {
        TlsClient client = client_for(*serve);
        REQUIRE_FALSE(client.connect());
        return response_of(client.exchange(post(admission_review(uid, object, "CREATE").dump())),
                           uid);
    }
    bool denied(const json& object, const std::string& uid) const {
        return verdict(object, uid).at("allowed") == false;
    }
    unsigned status_of(const std::string& path) const {
        TlsClient client = client_for(*serve);
        REQUIRE_FALSE(client.connect());
        return client.exchange(get(path)).status;
    }
    double metric(const std::string& series) const {
        return sample(scrape(serve->port, serve->ca()), series);
    }
    std::string log() const { return serve->process->err(); }

    kt::FakeCluster cluster;
    kt::TempDir files;
    std::string token_file;
    std::string kubeconfig;
    std::optional<Serve> serve;
};

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            lines.push_back(line);
    return lines;
}

void add_strict_policy(kt::FakeApiServer& server) {
    server.create("security.istio.io", "peerauthentications",
                  kt::peer_authentication("shop", "default", "STRICT"));
}

} // namespace

// =============================================================================================

TEST_CASE("From a live cluster: 503 until every watch has synced, then verdicts follow events") {
    // Discovery hangs at first: serve runs, but has nothing to decide with.
    LiveServe live(
        [](kt::FakeApiServer& server) {
            kt::seed_open_mesh(server);
            server.stall("/api", true);
        },
        {}, false);
    CHECK(live.status_of("/healthz") == 200);
    CHECK(live.status_of("/readyz") == 503);
    {
        TlsClient client = client_for(*live.serve);
        REQUIRE_FALSE(client.connect());
        CHECK(client.exchange(post(admission_review("early", plaintext_rule(), "CREATE").dump()))
                  .status == 503);
    }
    CHECK(eventually([&] { return live.metric("mtls_guard_kube_synced") == 0; }, 5s));

    live.cluster.server.stall("/api", false);
    live.serve->wait_ready({{live.serve->ca()}}, 20s);
    // The metrics follow within a refresh (a quarter of the stale threshold).
    CHECK(eventually([&] { return live.metric("mtls_guard_kube_synced") == 1; }, 5s));
    CHECK(live.metric(R"(mtls_guard_kube_objects{resource="pods"})") == 3);
    CHECK(live.metric(R"(mtls_guard_kube_objects{resource="namespaces"})") == 3);
    CHECK(live.metric(R"(mtls_guard_kube_objects{resource="configmaps"})") == 1);
    CHECK(live.metric(R"(mtls_guard_snapshot_objects{kind="Namespace"})") == 3);
    CHECK(live.metric("mtls_guard_kube_snapshot_stale") == 0);

    // No policy in shop: PERMISSIVE, so plaintext from front is fine.
    const json before = live.verdict(plaintext_rule(), "v-1");
    CHECK(before.at("allowed") == true);

    // A STRICT PeerAuthentication arrives through the watch: the same DestinationRule is denied.
    add_strict_policy(live.cluster.server);
    REQUIRE(eventually([&] { return live.denied(plaintext_rule(), "v-2"); }, 10s));
    const json after = live.verdict(plaintext_rule(), "v-3");
    CHECK(after.at("status").at("code") == 403);
    CHECK_THAT(after.at("status").at("message").get<std::string>(), Catch::Contains("MTG101"));
    CHECK(eventually(
        [&] {
            return live.metric(R"(mtls_guard_kube_objects{resource="peerauthentications"})") == 1;
        },
        5s));

    // The DestinationRule lands in the cluster: the findings metric is recomputed from the watch.
    live.cluster.server.create("networking.istio.io", "destinationrules", plaintext_rule());
    CHECK(eventually(
        [&] { return live.metric(R"(mtls_guard_findings{code="MTG101",severity="error"})") >= 1; },
        15s));
    CHECK(live.metric("mtls_guard_kube_last_event_age_seconds") >= 0);
    CHECK(live.metric("mtls_guard_kube_snapshot_rebuild_seconds") >= 0);
    CHECK_THAT(live.log(), Catch::Contains("cluster snapshot ready"));
    CHECK_THAT(live.log(), Catch::Contains("findings of the cluster snapshot"));
}

TEST_CASE("A watch cut in the middle of an event: the webhook keeps answering and catches up") {
    LiveServe live;
    CHECK(live.verdict(plaintext_rule(), "c-1").at("allowed") == true);
    // The next event is written half, then the connection closes.
    REQUIRE(eventually([&] { return live.cluster.server.open_watches("peerauthentications") > 0; },
                       10s));
    live.cluster.server.cut_watches(kt::Cut::MidEvent, "peerauthentications");
    add_strict_policy(live.cluster.server);
    // Meanwhile verdicts come from the last good snapshot.
    CHECK(live.status_of("/readyz") == 200);
    REQUIRE(eventually([&] { return live.denied(plaintext_rule(), "c-2"); }, 15s));
    live.cluster.server.cut_watches(kt::Cut::Abrupt);
    live.cluster.server.create("", "services", kt::service("shop", "after-cut"));
    CHECK(eventually(
        [&] { return live.metric(R"(mtls_guard_kube_objects{resource="services"})") == 2; }, 15s));
    CHECK(live.metric("mtls_guard_kube_watch_restarts_total") >= 1);
    CHECK(live.denied(plaintext_rule(), "c-3"));
}

TEST_CASE("410 Gone: the watcher lists again and picks up what it missed") {
    LiveServe live;
    CHECK(live.metric("mtls_guard_kube_relists_total") == 0);
    // Every watch drops; the policy is written and the history compacted before they resume.
    live.cluster.server.cut_watches(kt::Cut::Abrupt);
    add_strict_policy(live.cluster.server);
    live.cluster.server.compact();
    REQUIRE(eventually([&] { return live.denied(plaintext_rule(), "g-1"); }, 15s));
    CHECK(eventually([&] { return live.metric("mtls_guard_kube_relists_total") >= 1; }, 5s));
    CHECK(live.status_of("/readyz") == 200);
}

TEST_CASE("Malformed watch events and unreadable objects: the watch restarts, the snapshot stays") {
    LiveServe live(kt::seed_mesh);
    REQUIRE(live.denied(plaintext_rule(), "m-1"));
    const double restarts = live.metric("mtls_guard_kube_watch_restarts_total");
    REQUIRE(eventually([&] { return live.cluster.server.open_watches("peerauthentications") > 0; },
                       10s));
    live.cluster.server.inject_line("peerauthentications", "{\"type\": \"ADDED\", \"object\": [\n");
    CHECK(eventually([&] { return live.metric("mtls_guard_kube_watch_restarts_total") > restarts; },
                     15s));
    CHECK(live.denied(plaintext_rule(), "m-2"));

    // An object the engine cannot read is counted and logged, and stays out of the snapshot.
    live.cluster.server.create("security.istio.io", "peerauthentications",
                               kt::peer_authentication("front", "odd", "SOMETIMES"));
    CHECK(eventually([&] { return live.metric("mtls_guard_kube_decode_errors_total") >= 1; }, 15s));
    CHECK(live.denied(plaintext_rule(), "m-3"));
    CHECK_THAT(live.log(), Catch::Contains("the engine cannot read it"));
    // JSON logs: the kube client's free text is one string field; the others keep their fields.
    bool kube_line = false;
    bool serving_line = false;
    for (const auto& text : split_lines(live.log())) {
        const json line = json::parse(text, nullptr, false);
        INFO(text);
        REQUIRE(line.is_object());
        REQUIRE(line.contains("msg"));
        CHECK(line.at("msg").is_string());
        kube_line = kube_line || line.value("logger", "") == "kube";
        // The allocator the build linked is the one the process runs on (server/memory).
        serving_line =
            serving_line ||
            (line.value("msg", "") == "serving" && line.value("snapshot", "") == "cluster" &&
             line.value("allocator", "") == MTLS_GUARD_EXPECTED_ALLOCATOR);
    }
    CHECK(kube_line);
    CHECK(serving_line);
}

TEST_CASE("A rotated token in the kubeconfig's tokenFile is re-read after a 401") {
    LiveServe live;
    live.files.write("kube/token", "token-b\n");
    live.cluster.server.set_tokens({"token-b"});
    live.cluster.server.cut_watches(kt::Cut::Abrupt);
    add_strict_policy(live.cluster.server);
    REQUIRE(eventually([&] { return live.denied(plaintext_rule(), "t-1"); }, 15s));
    bool rejected = false;
    bool accepted = false;
    for (const auto& r : live.cluster.server.requests()) {
        rejected = rejected || (r.authorization == "Bearer token-a" && r.status == 401);
        accepted = accepted || (r.authorization == "Bearer token-b" && r.status == 200);
    }
    CHECK(rejected);
    CHECK(accepted);
}

TEST_CASE("A hung API server: verdicts keep coming from the last snapshot, warn once stale, and "
          "the warning goes when it answers again") {
    LiveServe live(kt::seed_mesh);
    const json healthy = live.verdict(plaintext_rule(), "s-0");
    CHECK(healthy.at("allowed") == false);
    CHECK_FALSE(any_warning_has(healthy, "may be stale"));

    // Everything hangs: open watches go silent, new requests get no answer.
    live.cluster.server.stall("/api", true);
    REQUIRE(eventually([&] { return live.metric("mtls_guard_kube_snapshot_stale") == 1; }, 30s));
    const json stale = live.verdict(plaintext_rule(), "s-1");
    CHECK(stale.at("allowed") == false); // --stale-policy enforce: still denied
    CHECK(any_warning_has(stale, "may be stale"));
    CHECK(live.metric("mtls_guard_kube_broken_seconds") >= 2);
    CHECK(live.status_of("/readyz") == 200);
    CHECK(live.verdict(kt::destination_rule("front", "fine", web_host, "ISTIO_MUTUAL"), "s-2")
              .at("allowed") == true);

    live.cluster.server.stall("/api", false);
    REQUIRE(eventually([&] { return live.metric("mtls_guard_kube_snapshot_stale") == 0; }, 45s));
    const json recovered = live.verdict(plaintext_rule(), "s-3");
    CHECK(recovered.at("allowed") == false);
    CHECK_FALSE(any_warning_has(recovered, "may be stale"));
    CHECK(eventually([&] { return live.metric("mtls_guard_kube_broken_seconds") == 0; }, 10s));
    // And events flow again.
    live.cluster.server.remove("security.istio.io", "peerauthentications", "shop", "default");
    CHECK(eventually([&] { return !live.denied(plaintext_rule(), "s-4"); }, 15s));
}

TEST_CASE("--stale-policy warn: while stale, denials become warnings; enforcement returns after") {
    LiveServe live(kt::seed_mesh, {"--stale-policy", "warn"});
    REQUIRE(live.denied(plaintext_rule(), "p-0"));
    // The API server fails every request (503): the reflectors back off and retry.
    live.cluster.server.fail_next("/api", 503, 100000);
    live.cluster.server.cut_watches(kt::Cut::Abrupt);
    REQUIRE(eventually([&] { return live.metric("mtls_guard_kube_snapshot_stale") == 1; }, 20s));
    const json stale = live.verdict(plaintext_rule(), "p-1");
    CHECK(stale.at("allowed") == true);
    CHECK(any_warning_has(stale, "[MTG101]"));
    CHECK(any_warning_has(stale, "may be stale"));
    CHECK(any_warning_has(stale, "--stale-policy warn"));

    live.cluster.server.clear_failures();
    REQUIRE(eventually([&] { return live.metric("mtls_guard_kube_snapshot_stale") == 0; }, 45s));
    CHECK(live.denied(plaintext_rule(), "p-2"));
}
