// Prometheus metrics of serve (prometheus-cpp core registry, text format served by our own
// /metrics).
#pragma once

#include "analysis/admission/admission.hpp"
#include "analysis/conflict/finding.hpp"
#include "analysis/model/snapshot.hpp"

#include <atomic>
#include <chrono>
#include <memory>
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
//   mtls_guard_admission_decision_seconds (histogram)
//   mtls_guard_http_errors_total{status}
//   mtls_guard_tls_reloads_total{result}           result: success | failure
//   mtls_guard_tls_handshake_failures_total
//   mtls_guard_connections_rejected_total          over --max-connections
//   mtls_guard_snapshot_objects{kind}
//   mtls_guard_snapshot_age_seconds                since the snapshot in use was loaded
//   mtls_guard_snapshot_reloads_total{result}      result: success | failure
//   mtls_guard_findings{code,severity}             of the whole snapshot, recomputed on reload
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

    // The Prometheus text exposition format (version 0.0.4).
    std::string render();

  private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* requests_;
    prometheus::Histogram* decision_seconds_;
    prometheus::Family<prometheus::Counter>* http_errors_;
    prometheus::Counter* tls_reload_success_;
    prometheus::Counter* tls_reload_failure_;
    prometheus::Counter* handshake_failures_;
    prometheus::Counter* connections_rejected_;
    prometheus::Family<prometheus::Gauge>* snapshot_objects_;
    prometheus::Gauge* snapshot_age_;
    prometheus::Counter* snapshot_reload_success_;
    prometheus::Counter* snapshot_reload_failure_;
    prometheus::Family<prometheus::Gauge>* findings_;
    // Nanoseconds since the epoch of the snapshot load; 0 before the first one.
    std::atomic<std::int64_t> loaded_at_ns_{0};
};

} // namespace mtlsguard::observability
