// Unit tests of the live cluster source of serve, in process against the fake API server: the
// store fills after sync, the stale warning and policy reach the admission settings, the metrics
// follow the watcher, and whole-snapshot findings are recomputed at most once per interval.
#include "server/snapshot/cluster_snapshot_source.hpp"
#include "server/snapshot/snapshot_files.hpp"
#include "tests/server/kube/support/cluster_objects.hpp"
#include "tests/server/kube/support/kube_harness.hpp"
#include "tests/support/metrics_text.hpp"

#include <catch2/catch.hpp>
#include <sstream>

using namespace mtlsguard;
namespace kt = mtlsguard::kube::testing;
using namespace std::chrono_literals;

namespace {

const std::string fixtures = MTLS_GUARD_FIXTURES;

using mtlsguard::testing::sample;

struct Source {
    explicit Source(https::StalePolicy policy = https::StalePolicy::Enforce) {
        kt::seed_mesh(cluster.server);
        kube::WatcherOptions watcher = kt::quick_watcher_options();
        watcher.stale_after = 1s;
        https::ClusterSourceOptions options;
        options.stale_policy = policy;
        options.findings_interval = 100ms;
        source.emplace(cluster.config(), watcher, options, store, metrics);
    }

    kt::FakeCluster cluster;
    observability::Metrics metrics;
    https::SnapshotStore store;
    std::optional<https::ClusterSnapshotSource> source;
};

} // namespace

TEST_CASE("The live source publishes into the store once synced, with settings from the start") {
    Source s;
    REQUIRE(s.store.settings());
    CHECK(s.store.settings()->extra_warnings.empty());
    CHECK_FALSE(s.store.ready());
    s.source->start();
    REQUIRE(kt::wait_until([&] { return s.store.ready(); }));
    CHECK(s.source->synced());
    s.source->refresh();
    const std::string m = s.metrics.render();
    CHECK(sample(m, "mtls_guard_kube_synced") == 1);
    CHECK(sample(m, R"(mtls_guard_kube_objects{resource="pods"})") == 3);
    CHECK(sample(m, R"(mtls_guard_kube_objects{resource="peerauthentications"})") == 1);
    CHECK(sample(m, R"(mtls_guard_snapshot_reloads_total{result="success"})") >= 1);
    CHECK(sample(m, "mtls_guard_kube_snapshot_stale") == 0);
    CHECK(sample(m, "mtls_guard_kube_last_event_age_seconds") >= 0);
    s.source->stop();
    s.source->stop(); // twice is fine
}

TEST_CASE("Once a watch is broken past the threshold, the settings carry the stale warning; "
          "with the warn policy they also cap every mode at warn") {
    const auto policy = GENERATE(https::StalePolicy::Enforce, https::StalePolicy::Warn);
    Source s(policy);
    s.source->start();
    REQUIRE(kt::wait_until([&] { return s.store.ready(); }));
    s.cluster.server.fail_next("/api", 503, 100000);
    s.cluster.server.cut_watches(kt::Cut::Abrupt);
    REQUIRE(kt::wait_until(
        [&] {
            s.source->refresh();
            return !s.store.settings()->extra_warnings.empty();
        },
        10s));
    const auto stale = s.store.settings();
    CHECK_THAT(stale->extra_warnings.front(), Catch::Contains("may be stale"));
    CHECK(stale->strictest_mode == (policy == https::StalePolicy::Warn
                                        ? admission::Enforcement::Warn
                                        : admission::Enforcement::Enforce));
    CHECK(sample(s.metrics.render(), "mtls_guard_kube_snapshot_stale") == 1);
    CHECK(sample(s.metrics.render(), "mtls_guard_kube_broken_seconds") >= 1);

    s.cluster.server.clear_failures();
    REQUIRE(kt::wait_until(
        [&] {
            s.source->refresh();
            return s.store.settings()->extra_warnings.empty();
        },
        20s));
    CHECK(s.store.settings()->strictest_mode == admission::Enforcement::Enforce);
    CHECK(sample(s.metrics.render(), "mtls_guard_kube_snapshot_stale") == 0);
    CHECK(sample(s.metrics.render(), "mtls_guard_kube_watch_restarts_total") >= 1);
}

TEST_CASE("Whole-snapshot findings are recomputed for the newest snapshot, at most once per "
          "interval") {
    input::SnapshotSource files;
    files.paths = {fixtures + "/walkthrough-base",
                   fixtures + "/walkthrough-4-dr-override/dr-httpbin-full-mtls.yaml",
                   fixtures + "/walkthrough-3-plaintext/policy-plaintext.yaml"};
    files.version = model::IstioVersion{5};
    const auto conflicting = input::load_snapshot(files).snapshot;
    files.paths.pop_back();
    files.paths.pop_back();
    const auto clean = input::load_snapshot(files).snapshot;

    observability::Metrics metrics;
    https::FindingsRecorder recorder(metrics, 300ms);
    const auto mtg102 = [&] {
        return sample(metrics.render(), R"(mtls_guard_findings{code="MTG102",severity="error"})");
    };
    // The first analysis starts after this, so the next may not start before 300 ms from here
    // (measured from the burst, the first analysis's own time would count against the interval).
    const auto first_submitted = std::chrono::steady_clock::now();
    recorder.submit(clean);
    REQUIRE(kt::wait_until([&] { return recorder.analyses() == 1; }));
    CHECK(mtg102() == 0);
    // A burst: only the last one counts, and it waits for the interval.
    for (int i = 0; i < 20; ++i)
        recorder.submit(i % 2 == 0 ? clean : conflicting);
    REQUIRE(kt::wait_until([&] { return mtg102() == 2; }));
    CHECK(std::chrono::steady_clock::now() - first_submitted >= 300ms);
    std::this_thread::sleep_for(400ms);
    CHECK(recorder.analyses() == 2);
    CHECK(sample(metrics.render(), "mtls_guard_findings_analysis_seconds") > 0);
    recorder.stop();
}

TEST_CASE("Whole-snapshot findings wait for snapshots to stop coming, but not past the longest "
          "wait") {
    input::SnapshotSource files;
    files.paths = {fixtures + "/walkthrough-base"};
    const auto snapshot = input::load_snapshot(files).snapshot;
    observability::Metrics metrics;
    https::FindingsRecorder recorder(metrics, 0ms, 500ms, 1500ms);

    // One snapshot: analysed once nothing followed it for the quiet time.
    const auto submitted = std::chrono::steady_clock::now();
    recorder.submit(snapshot);
    std::this_thread::sleep_for(200ms);
    CHECK(recorder.analyses() == 0);
    REQUIRE(kt::wait_until([&] { return recorder.analyses() == 1; }));
    CHECK(std::chrono::steady_clock::now() - submitted >= 500ms);

    // A rollout: a snapshot every 20 ms for 4 s never leaves a quiet moment, yet one is analysed
    // within the longest wait of the first, and the next within the longest wait of its own first.
    const auto stream_start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - stream_start < 4s) {
        recorder.submit(snapshot);
        std::this_thread::sleep_for(20ms);
    }
    CHECK(recorder.analyses() >= 3);
    recorder.stop();
}
