// The live cluster as serve's snapshot source: the Kubernetes watcher publishing into the same
// SnapshotStore the file reloader uses, the stale-snapshot warning and policy, and its metrics.
#pragma once

#include "analysis/admission/admission.hpp"
#include "server/kube/cluster_watcher.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/snapshot_reloader.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace mtlsguard::https {

// What verdicts do while the snapshot is stale (a watch broken longer than the threshold).
enum class StalePolicy : std::uint8_t {
    Enforce, // decide as usual from the last good snapshot; the warning says it may be stale
    Warn,    // no denials: every object is judged in warn mode at most until the watches recover
};
std::optional<StalePolicy> parse_stale_policy(std::string_view text) noexcept;

struct ClusterSourceOptions {
    admission::Enforcement default_mode = admission::Enforcement::Enforce;
    StalePolicy stale_policy = StalePolicy::Enforce;
    // At most one analysis of the whole snapshot (for mtls_guard_findings) per interval: at 50k
    // pods it costs ~70 ms of a core, and a rollout publishes a snapshot every few hundred ms.
    std::chrono::milliseconds findings_interval{std::chrono::seconds(5)};
    // And it waits for snapshots to stop coming for this long (at 150,000 pods it costs ~500 ms
    // of a core and holds a snapshot besides the builds'), but never longer than the longest
    // wait after the first snapshot it has not analysed.
    std::chrono::milliseconds findings_quiet{std::chrono::seconds(1)};
    std::chrono::milliseconds findings_longest_wait{std::chrono::seconds(30)};
};

// Recomputes the whole-snapshot findings metric on a thread of its own, for the newest snapshot
// only: snapshots published while an analysis runs, within the interval or before a quiet moment
// fold into one. The metric only informs; the analysis keeps out of the way of the snapshot builds
// of a rollout, whose event latency admission decisions wait on.
class FindingsRecorder {
  public:
    // An analysis starts `interval` after the last one started at the soonest, once no snapshot
    // came for `quiet`, or `longest_wait` after the first snapshot not analysed yet came.
    FindingsRecorder(observability::Metrics& metrics, std::chrono::milliseconds interval,
                     std::chrono::milliseconds quiet = std::chrono::milliseconds(0),
                     std::chrono::milliseconds longest_wait = std::chrono::milliseconds(0));
    ~FindingsRecorder();
    FindingsRecorder(const FindingsRecorder&) = delete;
    FindingsRecorder& operator=(const FindingsRecorder&) = delete;

    // Any thread; never waits for an analysis.
    void submit(std::shared_ptr<const model::Snapshot> snapshot);
    // Ends the thread after the analysis in progress, if any.
    void stop();
    std::size_t analyses() const;

  private:
    void loop();

    observability::Metrics& metrics_;
    std::chrono::milliseconds interval_;
    std::chrono::milliseconds quiet_;
    std::chrono::milliseconds longest_wait_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::shared_ptr<const model::Snapshot> pending_;
    std::chrono::steady_clock::time_point pending_since_; // the first snapshot not analysed
    std::chrono::steady_clock::time_point last_submit_;
    bool stopping_ = false;
    std::size_t analyses_ = 0;
    std::thread thread_;
};

// Owns an io_context and thread of its own for the API traffic, so that list decoding and watch
// events never hold up an admission I/O thread, and nothing on the admission path waits for the
// API server: requests decide with the last published snapshot and settings.
class ClusterSnapshotSource {
  public:
    // Throws kube::ConfigError when the configuration cannot be used.
    ClusterSnapshotSource(kube::ClusterConfig config, kube::WatcherOptions watcher,
                          ClusterSourceOptions options, SnapshotStore& store,
                          observability::Metrics& metrics);
    ~ClusterSnapshotSource();
    ClusterSnapshotSource(const ClusterSnapshotSource&) = delete;
    ClusterSnapshotSource& operator=(const ClusterSnapshotSource&) = delete;

    void start();
    // Periodically (serve's poller): publishes the admission settings again when the stale state
    // or its warning changed, and reports the watcher to the metrics.
    void refresh();
    // Stops the watcher, its thread and the findings thread; no publish happens afterwards.
    void stop();

    // Whether the first snapshot is out. The store is filled (inside the watcher's publish
    // callback) a moment before the watcher counts itself synced, so a reader that saw the store
    // ready (/readyz 200) must see true here too: both are asked.
    bool synced() const { return store_.ready() || watcher_->synced(); }

  private:
    void publish_settings(const std::optional<std::string>& stale_warning);

    ClusterSourceOptions options_;
    SnapshotStore& store_;
    observability::Metrics& metrics_;
    FindingsRecorder findings_;
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::unique_ptr<kube::ClusterWatcher> watcher_;
    std::thread thread_;
    std::optional<std::string> published_warning_; // what the settings in the store say
    bool settings_published_ = false;
    bool was_stale_ = false;
    std::atomic<bool> stopped_{false};
    std::atomic<bool> io_done_{false};
};

} // namespace mtlsguard::https
