// The live cluster as serve's snapshot source: the Kubernetes watcher publishing into the same
// SnapshotStore the file reloader uses, the stale-snapshot warning and policy, and its metrics.
#include "server/snapshot/cluster_snapshot_source.hpp"

#include "analysis/analyze.hpp"
#include "analysis/report/messages.hpp"
#include "server/memory/allocator.hpp"
#include "server/observability/logging.hpp"

#include <array>

namespace mtlsguard::https {

using Clock = std::chrono::steady_clock;

std::optional<StalePolicy> parse_stale_policy(std::string_view text) noexcept {
    if (text == "enforce")
        return StalePolicy::Enforce;
    if (text == "warn")
        return StalePolicy::Warn;
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

FindingsRecorder::FindingsRecorder(observability::Metrics& metrics,
                                   std::chrono::milliseconds interval,
                                   std::chrono::milliseconds quiet,
                                   std::chrono::milliseconds longest_wait)
    : metrics_(metrics), interval_(interval), quiet_(quiet), longest_wait_(longest_wait),
      thread_([this] { loop(); }) {}

FindingsRecorder::~FindingsRecorder() {
    stop();
}

void FindingsRecorder::submit(std::shared_ptr<const model::Snapshot> snapshot) {
    {
        std::lock_guard lock(mutex_);
        last_submit_ = Clock::now();
        if (!pending_)
            pending_since_ = last_submit_;
        pending_ = std::move(snapshot); // an older one not analysed yet is no longer of interest
    }
    wake_.notify_one();
}

void FindingsRecorder::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable())
        thread_.join();
}

std::size_t FindingsRecorder::analyses() const {
    std::lock_guard lock(mutex_);
    return analyses_;
}

void FindingsRecorder::loop() {
    auto& log = observability::component_logger("snapshot");
    std::optional<Clock::time_point> last_start;
    std::array<std::int64_t, 3> last_counts{-1, -1, -1};
    std::unique_lock lock(mutex_);
    while (true) {
        wake_.wait(lock, [&] { return stopping_ || pending_; });
        if (stopping_)
            return;
        // Not more often than the interval: snapshots arriving meanwhile replace `pending_`.
        if (last_start) {
            const auto due = *last_start + interval_;
            if (wake_.wait_until(lock, due, [&] { return stopping_; }))
                return;
        }
        // Then a quiet moment, each snapshot arriving pushing it back, up to the longest wait.
        const auto quiet_due = [&] {
            return std::min(last_submit_ + quiet_, pending_since_ + longest_wait_);
        };
        while (Clock::now() < quiet_due())
            if (wake_.wait_until(lock, quiet_due(), [&] { return stopping_; }))
                return;
        auto snapshot = std::move(pending_);
        pending_.reset();
        lock.unlock();
        last_start = Clock::now();
        // Only counted (the findings metric, the log line): three names per finding are enough.
        const AnalysisResult analysis = analyze(*snapshot, report::names_shown);
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - *last_start);
        metrics_.set_findings(analysis.findings);
        metrics_.set_findings_analysis_time(elapsed);
        std::array<std::int64_t, 3> counts{}; // errors, warnings, infos
        for (const auto& finding : analysis.findings) {
            if (finding.severity == conflict::Severity::Error)
                ++counts[0];
            else if (finding.severity == conflict::Severity::Warning)
                ++counts[1];
            else
                ++counts[2];
        }
        if (!analysis.internal_error.empty())
            observability::log_event(log, spdlog::level::err, "snapshot analysis failed",
                                     {{"error", analysis.internal_error}});
        // Said when the counts change, as the file reloader says them on each reload.
        observability::log_event(
            log, counts != last_counts ? spdlog::level::info : spdlog::level::debug,
            "findings of the cluster snapshot",
            {{"errors", counts[0]},
             {"warnings", counts[1]},
             {"infos", counts[2]},
             {"analysis_ms", static_cast<std::int64_t>(elapsed.count() / 1000)}});
        last_counts = counts;
        snapshot.reset(); // let go of it outside the lock, and before the next wait
        lock.lock();
        ++analyses_;
    }
}

// ---------------------------------------------------------------------------------------------

ClusterSnapshotSource::ClusterSnapshotSource(kube::ClusterConfig config,
                                             kube::WatcherOptions watcher,
                                             ClusterSourceOptions options, SnapshotStore& store,
                                             observability::Metrics& metrics)
    : options_(options), store_(store), metrics_(metrics),
      findings_(metrics, options.findings_interval, options.findings_quiet,
                options.findings_longest_wait),
      work_(io_.get_executor()) {
    if (!watcher.logger)
        watcher.logger = observability::shared_component_logger("kube");
    // Runs on the watcher's build thread: publishing is two atomic stores and a hand-over.
    auto publish = [this, first = std::make_shared<std::atomic<bool>>(true)](
                       std::shared_ptr<const model::Snapshot> snapshot) {
        store_.publish(snapshot);
        metrics_.record_snapshot_reload(true);
        metrics_.set_snapshot(*snapshot, std::chrono::system_clock::now());
        if (first->exchange(false)) {
            memory::give_back_freed_memory_at_once();
            observability::log_event(
                observability::component_logger("snapshot"), spdlog::level::info,
                "cluster snapshot ready",
                {{"objects", static_cast<std::int64_t>(snapshot->object_count())}});
        }
        findings_.submit(std::move(snapshot));
    };
    watcher_ = std::make_unique<kube::ClusterWatcher>(io_, std::move(config), std::move(watcher),
                                                      std::move(publish));
    publish_settings(std::nullopt);
}

ClusterSnapshotSource::~ClusterSnapshotSource() {
    stop();
}

void ClusterSnapshotSource::start() {
    watcher_->start();
    thread_ = std::thread([this] {
        io_.run();
        io_done_.store(true);
    });
}

void ClusterSnapshotSource::publish_settings(const std::optional<std::string>& stale_warning) {
    auto settings = std::make_shared<admission::AdmissionSettings>();
    settings->default_mode = options_.default_mode;
    if (stale_warning) {
        settings->extra_warnings.push_back(
            options_.stale_policy == StalePolicy::Warn
                ? *stale_warning + "; conflicts only warn until it recovers (--stale-policy warn)"
                : *stale_warning);
        if (options_.stale_policy == StalePolicy::Warn)
            settings->strictest_mode = admission::Enforcement::Warn;
    }
    store_.publish(std::shared_ptr<const admission::AdmissionSettings>(std::move(settings)));
    published_warning_ = stale_warning;
    settings_published_ = true;
}

void ClusterSnapshotSource::refresh() {
    if (stopped_)
        return;
    const std::optional<std::string> warning = watcher_->stale_warning();
    if (!settings_published_ || warning != published_warning_)
        publish_settings(warning);
    const bool stale = warning.has_value();
    if (stale != was_stale_) {
        auto& log = observability::component_logger("snapshot");
        if (stale)
            observability::log_event(
                log, spdlog::level::warn, "the cluster snapshot may be stale; verdicts say so",
                {{"warning", *warning},
                 {"policy", options_.stale_policy == StalePolicy::Warn ? "warn" : "enforce"}});
        else
            observability::log_event(
                log, spdlog::level::info,
                "the API server is reachable again; the stale warning is gone");
        was_stale_ = stale;
    }

    const kube::ClusterWatcher::Stats stats = watcher_->stats();
    observability::ClusterWatchReport report;
    report.objects = stats.objects;
    report.watch_restarts = stats.watch_restarts;
    report.relists = stats.relists;
    report.decode_errors = stats.decode_errors;
    report.failed_rebuilds = stats.failed_rebuilds;
    if (stats.last_event != Clock::time_point{})
        report.last_event = stats.last_event;
    report.last_rebuild = stats.last_rebuild;
    report.synced = synced();
    report.broken_for = watcher_->broken_for();
    report.stale = stale;
    metrics_.set_cluster_watch(report);
}

void ClusterSnapshotSource::stop() {
    if (stopped_.exchange(true))
        return;
    watcher_->stop();
    findings_.stop();
    // The watcher's last handlers finish cancelling on the io_context, then the thread ends; a
    // connection that does not close within the bound is cut by stopping the io_context.
    work_.reset();
    if (!thread_.joinable())
        return;
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    while (!io_done_.load() && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!io_done_.load())
        io_.stop();
    thread_.join();
}

} // namespace mtlsguard::https
