// Prometheus metrics of serve (prometheus-cpp core registry, text format served by our own
// /metrics).
#include "server/observability/metrics.hpp"

#include <array>
#include <map>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace mtlsguard::observability {
namespace {

// Label values come from requests: only a fixed set may reach the registry, or a client could
// grow it without bound. The position in each list is the value's index in the series cache.
constexpr std::array<std::string_view, 9> kind_labels = {
    "unknown", "PeerAuthentication", "DestinationRule", "VirtualService", "Sidecar",
    "Policy",  "MeshPolicy",         "Namespace",       "other"};
constexpr std::array<std::string_view, 6> operation_labels = {"unknown", "CREATE",  "UPDATE",
                                                              "DELETE",  "CONNECT", "other"};

// The index in `labels` of `value`: the first ("unknown") when empty, the last ("other") when not
// listed.
template <std::size_t N>
std::size_t label_index(const std::array<std::string_view, N>& labels, std::string_view value) {
    if (value.empty())
        return 0;
    for (std::size_t i = 1; i + 1 < N; ++i)
        if (labels[i] == value)
            return i;
    return N - 1;
}

std::string_view decision_label(DecisionLabel label) {
    switch (label) {
    case DecisionLabel::Allow:
        return "allow";
    case DecisionLabel::Warn:
        return "warn";
    case DecisionLabel::Deny:
        return "deny";
    case DecisionLabel::Error:
        break;
    }
    return "error";
}

// Latency from 10 us to 2.5 s: the fast path sits near the bottom, mesh-wide changes in the middle.
prometheus::Histogram::BucketBoundaries decision_buckets() {
    return {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
            0.01,    0.025,    0.05,    0.1,    0.25,    0.5,    1.0,   2.5};
}

} // namespace

DecisionLabel classify_decision(const admission::AdmissionDecision& decision, int http_status) {
    if (http_status != 200)
        return DecisionLabel::Error;
    if (!decision.allowed)
        return DecisionLabel::Deny;
    const auto response = decision.body.find("response");
    if (response != decision.body.end() && response->is_object()) {
        const auto warnings = response->find("warnings");
        if (warnings != response->end() && warnings->is_array() && !warnings->empty())
            return DecisionLabel::Warn;
    }
    return DecisionLabel::Allow;
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
    auto& registry = *registry_;
    requests_ = &prometheus::BuildCounter()
                     .Name("mtls_guard_admission_requests_total")
                     .Help("AdmissionReview requests answered on /validate, by object kind, "
                           "operation, decision (allow, warn, deny, error) and dryRun")
                     .Register(registry);
    denials_ = &prometheus::BuildCounter()
                    .Name("mtls_guard_admission_denials_total")
                    .Help("Denials on /validate by the code of each error the change introduces "
                          "(a denial with two codes counts once under each); code=\"none\": an "
                          "object mtls-guard cannot read")
                    .Register(registry);
    decision_seconds_ = &prometheus::BuildHistogram()
                             .Name("mtls_guard_admission_decision_seconds")
                             .Help("Time from the request body to the response body of /validate")
                             .Register(registry)
                             .Add({}, decision_buckets());
    http_errors_ = &prometheus::BuildCounter()
                        .Name("mtls_guard_http_errors_total")
                        .Help("HTTP responses with a 4xx or 5xx status, by status")
                        .Register(registry);
    auto& tls_reloads = prometheus::BuildCounter()
                            .Name("mtls_guard_tls_reloads_total")
                            .Help("Serving certificate reloads after the files changed, by result")
                            .Register(registry);
    tls_reload_success_ = &tls_reloads.Add({{"result", "success"}});
    tls_reload_failure_ = &tls_reloads.Add({{"result", "failure"}});
    handshake_failures_ = &prometheus::BuildCounter()
                               .Name("mtls_guard_tls_handshake_failures_total")
                               .Help("TLS handshakes that failed (old protocol, bad client "
                                     "certificate, timeout, plain HTTP)")
                               .Register(registry)
                               .Add({});
    connections_rejected_ = &prometheus::BuildCounter()
                                 .Name("mtls_guard_connections_rejected_total")
                                 .Help("Connections closed at once because --max-connections "
                                       "were open")
                                 .Register(registry)
                                 .Add({});
    snapshot_objects_ = &prometheus::BuildGauge()
                             .Name("mtls_guard_snapshot_objects")
                             .Help("Objects in the cluster snapshot in use, by kind")
                             .Register(registry);
    istio_rules_ = &prometheus::BuildGauge()
                        .Name("mtls_guard_istio_rules_info")
                        .Help("The Istio rules the snapshot in use is analysed with, as "
                              "--istio-version names them (1.N, 1.N.P or current): always 1")
                        .Register(registry);
    snapshot_age_ = &prometheus::BuildGauge()
                         .Name("mtls_guard_snapshot_age_seconds")
                         .Help("Seconds since the snapshot in use was loaded (0: none yet)")
                         .Register(registry)
                         .Add({});
    auto& snapshot_reloads = prometheus::BuildCounter()
                                 .Name("mtls_guard_snapshot_reloads_total")
                                 .Help("Snapshot loads, by result; a failure keeps the last good "
                                       "snapshot")
                                 .Register(registry);
    snapshot_reload_success_ = &snapshot_reloads.Add({{"result", "success"}});
    snapshot_reload_failure_ = &snapshot_reloads.Add({{"result", "failure"}});
    findings_ = &prometheus::BuildGauge()
                     .Name("mtls_guard_findings")
                     .Help("Findings of the whole snapshot by code and severity (how warn-mode "
                           "problems show up when GitOps tools hide admission warnings)")
                     .Register(registry);
    findings_analysis_seconds_ =
        &prometheus::BuildGauge()
             .Name("mtls_guard_findings_analysis_seconds")
             .Help("Time the last analysis of the whole snapshot took (for "
                   "mtls_guard_findings)")
             .Register(registry)
             .Add({});
    kube_objects_ = &prometheus::BuildGauge()
                         .Name("mtls_guard_kube_objects")
                         .Help("Objects read from the API server and held, by resource")
                         .Register(registry);
    kube_watch_restarts_ =
        &prometheus::BuildCounter()
             .Name("mtls_guard_kube_watch_restarts_total")
             .Help("Watches re-opened after an error, a cut stream or a bad event")
             .Register(registry);
    kube_relists_ = &prometheus::BuildCounter()
                         .Name("mtls_guard_kube_relists_total")
                         .Help("Lists after the first one (410 Gone, expired continue tokens)")
                         .Register(registry);
    kube_decode_errors_ = &prometheus::BuildCounter()
                               .Name("mtls_guard_kube_decode_errors_total")
                               .Help("Objects from the API server the engine could not read "
                                     "(logged, left out of the snapshot)")
                               .Register(registry);
    kube_last_event_age_ = &prometheus::BuildGauge()
                                .Name("mtls_guard_kube_last_event_age_seconds")
                                .Help("Seconds since the last watch event or completed list")
                                .Register(registry);
    kube_rebuild_seconds_ = &prometheus::BuildGauge()
                                 .Name("mtls_guard_kube_snapshot_rebuild_seconds")
                                 .Help("Time the last snapshot build from the watched objects took")
                                 .Register(registry);
    kube_synced_ = &prometheus::BuildGauge()
                        .Name("mtls_guard_kube_synced")
                        .Help("1 once every initial list has completed and a snapshot is in use")
                        .Register(registry);
    kube_broken_seconds_ = &prometheus::BuildGauge()
                                .Name("mtls_guard_kube_broken_seconds")
                                .Help("How long the longest-failing list, watch or discovery has "
                                      "been failing (0: none is)")
                                .Register(registry);
    kube_stale_ = &prometheus::BuildGauge()
                       .Name("mtls_guard_kube_snapshot_stale")
                       .Help("1 while a watch has been broken longer than --stale-after-seconds "
                             "and verdicts carry the stale-snapshot warning")
                       .Register(registry);
}

Metrics::~Metrics() = default;

void Metrics::record_admission(const admission::AdmissionDecision& decision, int http_status,
                               double seconds) {
    const std::size_t kind = label_index(kind_labels, decision.kind);
    const std::size_t operation = label_index(operation_labels, decision.operation);
    const DecisionLabel label = classify_decision(decision, http_status);
    const std::size_t index =
        ((kind * operation_labels.size() + operation) * 4 + static_cast<std::size_t>(label)) * 2 +
        (decision.dry_run ? 1 : 0);
    static_assert(request_series == kind_labels.size() * operation_labels.size() * 4 * 2);
    auto& cached = request_counters_[index];
    prometheus::Counter* counter = cached.load(std::memory_order_acquire);
    if (!counter) {
        // Family::Add returns the series already there, so two threads racing here store the same
        // counter; a series appears on /metrics once first counted, as before the cache.
        counter = &requests_->Add({{"kind", std::string(kind_labels[kind])},
                                   {"operation", std::string(operation_labels[operation])},
                                   {"decision", std::string(decision_label(label))},
                                   {"dry_run", decision.dry_run ? "true" : "false"}});
        cached.store(counter, std::memory_order_release);
    }
    counter->Increment();
    // Codes come from the catalogue only, so the label set stays bounded.
    if (http_status == 200 && !decision.allowed) {
        if (decision.denial_codes.empty())
            denials_->Add({{"code", "none"}}).Increment();
        for (const auto& code : decision.denial_codes)
            denials_->Add({{"code", code}}).Increment();
    }
    decision_seconds_->Observe(seconds);
}

void Metrics::record_http_error(unsigned status) {
    http_errors_->Add({{"status", std::to_string(status)}}).Increment();
}

void Metrics::record_tls_reload(bool success) {
    (success ? tls_reload_success_ : tls_reload_failure_)->Increment();
}

void Metrics::record_tls_handshake_failure() {
    handshake_failures_->Increment();
}

void Metrics::record_connection_rejected() {
    connections_rejected_->Increment();
}

void Metrics::record_snapshot_reload(bool success) {
    (success ? snapshot_reload_success_ : snapshot_reload_failure_)->Increment();
}

void Metrics::set_snapshot(const model::Snapshot& snapshot,
                           std::chrono::system_clock::time_point loaded_at) {
    std::size_t peer_authentications = 0;
    std::size_t destination_rules = 0;
    std::size_t policies = 0;
    for (std::size_t ns = 0; ns < snapshot.namespaces().size(); ++ns) {
        const auto& config = snapshot.config(static_cast<model::NsId>(ns));
        peer_authentications += config.peer_authentications.size();
        destination_rules += config.destination_rules.size();
        policies += config.policies.size();
    }
    const std::map<std::string, std::size_t> counts = {
        {"Namespace", snapshot.namespaces().size()},
        {"Service", snapshot.services().size()},
        {"Workload", snapshot.workloads().size()},
        {"ExternalHost", snapshot.external_hosts().size()},
        {"PeerAuthentication", peer_authentications},
        {"DestinationRule", destination_rules},
        {"Policy", policies},
        {"MeshPolicy", snapshot.mesh_policies().size()},
    };
    for (const auto& [kind, count] : counts)
        snapshot_objects_->Add({{"kind", kind}}).Set(static_cast<double>(count));
    {
        // One series: the version can change (v1alpha1 policies switch to the 1.5 rules).
        std::lock_guard lock(istio_rules_mutex_);
        auto& in_use =
            istio_rules_->Add({{"version", model::to_string(snapshot.settings().version)}});
        if (istio_rules_in_use_ && istio_rules_in_use_ != &in_use)
            istio_rules_->Remove(istio_rules_in_use_);
        istio_rules_in_use_ = &in_use;
        in_use.Set(1);
    }
    loaded_at_ns_.store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(loaded_at.time_since_epoch()).count());
}

void Metrics::set_findings(const std::vector<conflict::Finding>& findings) {
    // Keyed by the finding's own severity; every catalogue code is present, so a fixed problem
    // drops to 0 instead of keeping its last count.
    std::map<std::pair<conflict::Code, conflict::Severity>, std::size_t> counts;
    for (const auto code : conflict::all_codes())
        counts[{code, conflict::severity_of(code)}] = 0;
    for (const auto& finding : findings)
        ++counts[{finding.code, finding.severity}];
    for (const auto& [key, count] : counts)
        findings_
            ->Add({{"code", std::string(conflict::to_string(key.first))},
                   {"severity", std::string(conflict::to_string(key.second))}})
            .Set(static_cast<double>(count));
}

void Metrics::set_findings_analysis_time(std::chrono::microseconds elapsed) {
    findings_analysis_seconds_->Set(static_cast<double>(elapsed.count()) / 1e6);
}

void Metrics::set_cluster_watch(const ClusterWatchReport& report) {
    std::lock_guard lock(cluster_mutex_);
    const auto grow = [](prometheus::Family<prometheus::Counter>* family, std::size_t now,
                         std::size_t before) {
        auto& counter = family->Add({});
        if (now > before)
            counter.Increment(static_cast<double>(now - before));
    };
    grow(kube_watch_restarts_, report.watch_restarts, reported_.watch_restarts);
    grow(kube_relists_, report.relists, reported_.relists);
    grow(kube_decode_errors_, report.decode_errors, reported_.decode_errors);
    if (report.failed_rebuilds > reported_.failed_rebuilds)
        snapshot_reload_failure_->Increment(
            static_cast<double>(report.failed_rebuilds - reported_.failed_rebuilds));
    for (const auto& [resource, count] : report.objects)
        kube_objects_->Add({{"resource", resource}}).Set(static_cast<double>(count));
    kube_rebuild_seconds_->Add({}).Set(static_cast<double>(report.last_rebuild.count()) / 1e6);
    kube_synced_->Add({}).Set(report.synced ? 1 : 0);
    kube_broken_seconds_->Add({}).Set(
        report.broken_for ? static_cast<double>(report.broken_for->count()) : 0);
    kube_stale_->Add({}).Set(report.stale ? 1 : 0);
    kube_last_event_age_->Add({});
    if (report.last_event)
        last_event_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 report.last_event->time_since_epoch())
                                 .count());
    reported_ = report;
}

std::string Metrics::render() {
    if (const std::int64_t last = last_event_ns_.load(); last != 0) {
        const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
        kube_last_event_age_->Add({}).Set(static_cast<double>(now - last) / 1e9);
    }
    const std::int64_t loaded = loaded_at_ns_.load();
    if (loaded != 0) {
        const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        snapshot_age_->Set(static_cast<double>(now - loaded) / 1e9);
    }
    return prometheus::TextSerializer().Serialize(registry_->Collect());
}

} // namespace mtlsguard::observability
