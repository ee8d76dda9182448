// Unit tests of the snapshot reload from files: reload on change only, keep the last good snapshot
// on a bad edit, warn on stale decisions, and count everything in the metrics.
#include "server/admission/review_endpoint.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/snapshot_reloader.hpp"
#include "tests/support/files.hpp"
#include "tests/support/metrics_text.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace mtlsguard;

namespace {

const fs::path fixtures = MTLS_GUARD_FIXTURES;

using mtlsguard::testing::TempDir;

using mtlsguard::testing::sample;

void write(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// The walkthrough's cluster with httpbin.full plaintext-only, in a directory we may edit.
struct Cluster {
    TempDir dir;
    Cluster() {
        fs::copy(fixtures / "walkthrough-base", dir.path() / "cluster",
                 fs::copy_options::recursive);
        fs::copy_file(fixtures / "walkthrough-3-plaintext" / "policy-plaintext.yaml",
                      dir.path() / "cluster" / "policy-plaintext.yaml");
    }
    fs::path root() const { return dir.path() / "cluster"; }
    input::SnapshotSource source() const {
        input::SnapshotSource s;
        s.paths = {root().string()};
        s.version = model::IstioVersion{5};
        return s;
    }
};

} // namespace

TEST_CASE("The first poll loads the snapshot and later polls reload only on a change of content") {
    Cluster cluster;
    observability::Metrics metrics;
    https::SnapshotStore store;
    https::FileSnapshotReloader reloader(cluster.source(), admission::Enforcement::Warn, store,
                                         metrics);
    REQUIRE(store.settings());
    CHECK(store.settings()->default_mode == admission::Enforcement::Warn);
    CHECK_FALSE(store.ready());

    CHECK(reloader.poll());
    REQUIRE(store.ready());
    const auto first = store.snapshot();
    std::string text = metrics.render();
    CHECK(sample(text, R"(mtls_guard_snapshot_reloads_total{result="success"})") == 1);
    CHECK(sample(text, R"(mtls_guard_findings{code="MTG208",severity="info"})") == 2);
    CHECK(sample(text, R"(mtls_guard_findings{code="MTG102",severity="error"})") == 0);
    CHECK(sample(text, R"(mtls_guard_snapshot_objects{kind="Policy"})") == 1);
    CHECK(sample(text, "mtls_guard_snapshot_age_seconds") >= 0);

    CHECK_FALSE(reloader.poll());
    CHECK(store.snapshot() == first);

    // Touched but unchanged: looked at, not reloaded.
    const fs::path policy = cluster.root() / "policy-plaintext.yaml";
    fs::last_write_time(policy, fs::last_write_time(policy) + std::chrono::seconds(5));
    CHECK_FALSE(reloader.poll());
    CHECK(store.snapshot() == first);

    // A DestinationRule forcing ISTIO_MUTUAL onto the plaintext workload: a new snapshot whose
    // findings show the conflict on both objects.
    fs::copy_file(fixtures / "walkthrough-4-dr-override" / "dr-httpbin-full-mtls.yaml",
                  cluster.root() / "dr.yaml");
    CHECK(reloader.poll());
    CHECK(store.snapshot() != first);
    text = metrics.render();
    CHECK(sample(text, R"(mtls_guard_snapshot_reloads_total{result="success"})") == 2);
    CHECK(sample(text, R"(mtls_guard_findings{code="MTG102",severity="error"})") == 2);
    CHECK(sample(text, R"(mtls_guard_snapshot_objects{kind="DestinationRule"})") == 1);
}

TEST_CASE("A bad edit keeps the last good snapshot, warns on decisions and is counted once") {
    Cluster cluster;
    observability::Metrics metrics;
    https::SnapshotStore store;
    https::FileSnapshotReloader reloader(cluster.source(), admission::Enforcement::Enforce, store,
                                         metrics);
    REQUIRE(reloader.poll());
    const auto good = store.snapshot();
    CHECK(store.settings()->extra_warnings.empty());

    write(cluster.root() / "broken.yaml", "apiVersion: v1\nkind: [unclosed\n");
    CHECK_FALSE(reloader.poll());
    CHECK(store.snapshot() == good);
    REQUIRE(store.settings()->extra_warnings.size() == 1);
    CHECK_THAT(store.settings()->extra_warnings[0], Catch::Contains("could not be reloaded"));
    CHECK(store.settings()->default_mode == admission::Enforcement::Enforce);
    CHECK_FALSE(reloader.poll()); // the same bad content is not retried
    CHECK(sample(metrics.render(), R"(mtls_guard_snapshot_reloads_total{result="failure"})") == 1);

    fs::remove(cluster.root() / "broken.yaml");
    CHECK(reloader.poll());
    CHECK(store.settings()->extra_warnings.empty());
    CHECK(sample(metrics.render(), R"(mtls_guard_snapshot_reloads_total{result="success"})") == 2);
}

TEST_CASE("Files that cannot be read at the start leave the store not ready until they are fixed") {
    Cluster cluster;
    write(cluster.root() / "broken.yaml", "kind: [\n");
    observability::Metrics metrics;
    https::SnapshotStore store;
    https::FileSnapshotReloader reloader(cluster.source(), admission::Enforcement::Enforce, store,
                                         metrics);
    CHECK_FALSE(reloader.poll());
    CHECK_FALSE(store.ready());
    // No snapshot to be stale: no warning is attached.
    CHECK(store.settings()->extra_warnings.empty());
    CHECK(sample(metrics.render(), "mtls_guard_snapshot_age_seconds") == 0);

    write(cluster.root() / "broken.yaml", "# fixed\n");
    CHECK(reloader.poll());
    CHECK(store.ready());
}

// What serve does at once: I/O threads decide with whatever the store holds and /metrics is
// scraped, while the polling thread reloads. Under ThreadSanitizer this is the in-process check of
// the store, the reloader and the metrics; it also checks every decision used a whole snapshot.
TEST_CASE("Readers decide and metrics are scraped while polls publish new snapshots") {
    Cluster cluster;
    observability::Metrics metrics;
    https::SnapshotStore store;
    https::FileSnapshotReloader reloader(cluster.source(), admission::Enforcement::Enforce, store,
                                         metrics);
    REQUIRE(reloader.poll());
    const std::string policy = [&] {
        std::ifstream in(cluster.root() / "policy-plaintext.yaml");
        std::ostringstream out;
        out << in.rdbuf();
        return out.str();
    }();
    // ISTIO_MUTUAL to httpbin.full: denied with the plaintext Policy, allowed without it.
    const std::string review =
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"r",)"
        R"("kind":{"group":"networking.istio.io","version":"v1alpha3","kind":"DestinationRule"},)"
        R"("name":"m","namespace":"full","operation":"CREATE","object":{"apiVersion":)"
        R"("networking.istio.io/v1alpha3","kind":"DestinationRule","metadata":{"name":"m",)"
        R"("namespace":"full"},"spec":{"host":"httpbin.full.svc.cluster.local","trafficPolicy":)"
        R"({"tls":{"mode":"ISTIO_MUTUAL"}}}}}})";

    std::atomic<bool> stop{false};
    std::atomic<int> decided{0}, bad{0}, allowed{0}, denied{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t)
        readers.emplace_back([&] {
            for (int i = 0; i < 1000000 && !stop; ++i) {
                const auto snapshot = store.snapshot();
                const auto settings = store.settings();
                const auto reply = server::handle_review(*snapshot, review, *settings);
                if (reply.status != 200)
                    ++bad;
                (reply.decision.allowed ? allowed : denied)++;
                ++decided;
            }
        });
    std::thread scraper([&] {
        for (int i = 0; i < 100000 && !stop; ++i)
            if (metrics.render().find("mtls_guard_snapshot_reloads_total") == std::string::npos)
                ++bad;
    });
    int published = 0;
    for (int i = 0; i < 8; ++i) {
        const int before = decided;
        if (i % 2 == 0)
            fs::remove(cluster.root() / "policy-plaintext.yaml");
        else
            write(cluster.root() / "policy-plaintext.yaml", policy);
        published += reloader.poll() ? 1 : 0;
        // Let the readers decide with this snapshot before the next one (bounded).
        for (int wait = 0; wait < 2000 && decided < before + 20; ++wait)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stop = true;
    for (auto& r : readers)
        r.join();
    scraper.join();
    CHECK(published == 8);
    CHECK(bad == 0);
    CHECK(allowed > 0);
    CHECK(denied > 0);
    CHECK(sample(metrics.render(), R"(mtls_guard_snapshot_reloads_total{result="success"})") == 9);
}
