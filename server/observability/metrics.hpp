// Prometheus metrics of serve (prometheus-cpp core registry, text format served by our own
// /metrics).
#pragma once

#include "analysis/admission/admission.hpp"
#include "analysis/conflict/finding.hpp"
#include "analysis/model/snapshot.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T> class Family;
} // namespace prometheus

namespace mtlsguard::observability {

// The label value of `decision` in mtls_guard_admission_requests_total.
enum class DecisionLabel : std::uint8_t { Allow, Warn, Deny, Error };

// How one /validate request ended, from its reply (status, verdict, whether it carries warnings).
DecisionLabel classify_decision(const admission::AdmissionDecision& decision, int http_status);

// Every metric of the process. Thread-safe; one instance shared by every component.
//
//   mtls_guard_admission_requests_total{kind,operation,decision,dry_run}
//   mtls_guard_admission_denials_total{code}       per code of the errors behind each denial
//   mtls_guard_admission_decision_seconds (histogram)
//   mtls_guard_http_errors_total{status}
//   mtls_guard_tls_reloads_total{result}           result: success | failure
//   mtls_guard_tls_handshake_failures_total
//   mtls_guard_connections_rejected_total          over --max-connections
//   mtls_guard_snapshot_objects{kind}
//   mtls_guard_snapshot_age_seconds                since the snapshot in use was loaded
//   mtls_guard_snapshot_reloads_total{result}      result: success | failure
//   mtls_guard_findings{code,severity}             of the whole snapshot, recomputed on reload
//   mtls_guard_findings_analysis_seconds           time of the last whole-snapshot analysis
// From a live cluster (serve without --snapshot), once the watcher reports:
//   mtls_guard_kube_objects{resource}              objects held per watched resource
//   mtls_guard_kube_watch_restarts_total           watches re-opened after an error or a cut
//   mtls_guard_kube_relists_total                  lists after the first (410 Gone, ...)
//   mtls_guard_kube_decode_errors_total            objects the engine could not read
//   mtls_guard_kube_last_event_age_seconds         since the last watch event or list
//   mtls_guard_kube_snapshot_rebuild_seconds       time to build the last snapshot
//   mtls_guard_kube_synced                         1 once every initial list completed
//   mtls_guard_kube_broken_seconds                 how long the longest-failing request has
//                                                  been failing (0: none is)
//   mtls_guard_kube_snapshot_stale                 1 while verdicts carry the stale warning

// What the live cluster watcher says about itself, as the metrics show it. A copy of the
// watcher's numbers, so that observability does not depend on the Kubernetes client.
struct ClusterWatchReport {
    std::map<std::string, std::size_t> objects; // by resource: "pods", "services", ...
    std::size_t watch_restarts = 0;             // totals since start: the counters follow them
    std::size_t relists = 0;
    std::size_t decode_errors = 0;
    std::size_t failed_rebuilds = 0;
    std::optional<std::chrono::steady_clock::time_point> last_event;
    std::chrono::microseconds last_rebuild{0};
    bool synced = false;
    std::optional<std::chrono::seconds> broken_for;
    bool stale = false;
};

class Metrics {
  public:
    Metrics();
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    void record_admission(const admission::AdmissionDecision& decision, int http_status,
                          double seconds);
    void record_http_error(unsigned status);
    void record_tls_reload(bool success);
    void record_tls_handshake_failure();
    void record_connection_rejected();
    void record_snapshot_reload(bool success);

    // Object counts of a newly published snapshot; the age counts from `loaded_at`.
    void set_snapshot(const model::Snapshot& snapshot,
                      std::chrono::system_clock::time_point loaded_at);
    // Findings of the whole snapshot by code and severity; codes without findings read 0.
    void set_findings(const std::vector<conflict::Finding>& findings);
    void set_findings_analysis_time(std::chrono::microseconds elapsed);
    // The live cluster watcher's state; counters advance by what its totals grew since the last
    // report. Called from one thread at a time (serve's poller).
    void set_cluster_watch(const ClusterWatchReport& report);

    // The Prometheus text exposition format (version 0.0.4).
    std::string render();

  private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* requests_;
    // The series of requests_ by label values (see request_counter in metrics.cpp), each looked up
    // in the family once: Family::Add builds a label map, hashes it and takes the family's lock.
    static constexpr std::size_t request_series = 9 * 6 * 4 * 2;
    std::array<std::atomic<prometheus::Counter*>, request_series> request_counters_{};
    prometheus::Family<prometheus::Counter>* denials_;
    prometheus::Histogram* decision_seconds_;
    prometheus::Family<prometheus::Counter>* http_errors_;
    prometheus::Counter* tls_reload_success_;
    prometheus::Counter* tls_reload_failure_;
    prometheus::Counter* handshake_failures_;
    prometheus::Counter* connections_rejected_;
    prometheus::Family<prometheus::Gauge>* snapshot_objects_;
    prometheus::Gauge* snapshot_age_;
    prometheus::Family<prometheus::Gauge>* istio_rules_;
    std::mutex istio_rules_mutex_;
    prometheus::Gauge* istio_rules_in_use_ = nullptr; // the series of the version in use
    prometheus::Counter* snapshot_reload_success_;
    prometheus::Counter* snapshot_reload_failure_;
    prometheus::Family<prometheus::Gauge>* findings_;
    prometheus::Gauge* findings_analysis_seconds_;
    // Live cluster families: their series appear with the first report, so that serve
    // --snapshot shows none of them.
    prometheus::Family<prometheus::Gauge>* kube_objects_;
    prometheus::Family<prometheus::Counter>* kube_watch_restarts_;
    prometheus::Family<prometheus::Counter>* kube_relists_;
    prometheus::Family<prometheus::Counter>* kube_decode_errors_;
    prometheus::Family<prometheus::Gauge>* kube_last_event_age_;
    prometheus::Family<prometheus::Gauge>* kube_rebuild_seconds_;
    prometheus::Family<prometheus::Gauge>* kube_synced_;
    prometheus::Family<prometheus::Gauge>* kube_broken_seconds_;
    prometheus::Family<prometheus::Gauge>* kube_stale_;
    std::mutex cluster_mutex_;
    ClusterWatchReport reported_; // the totals already counted
    // steady_clock nanoseconds of the last watch event; 0: none yet (or no live cluster).
    std::atomic<std::int64_t> last_event_ns_{0};
    // Nanoseconds since the epoch of the snapshot load; 0 before the first one.
    std::atomic<std::int64_t> loaded_at_ns_{0};
};

} // namespace mtlsguard::observability
