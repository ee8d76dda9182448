// Benchmark of the engine on a synthetic mesh: snapshot build, full analysis, admission latency,
// RSS.
#include "analysis/analyze.hpp"
#include "server/admission/review_endpoint.hpp"
#include "server/input/manifest_loader.hpp"
#include "tests/bench/synthetic_mesh.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <sys/resource.h>
#include <utility>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// --cpu-time: admission latencies count only the time this thread ran, which a host shared with
// other busy processes inflates far less than wall-clock time.
bool cpu_time = false;

double thread_cpu_ms() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One admission request's latency.
template <typename Request> double timed(const Request& request) {
    const auto start = Clock::now();
    const double cpu_start = cpu_time ? thread_cpu_ms() : 0;
    request();
    return cpu_time ? thread_cpu_ms() - cpu_start : ms_since(start);
}

long peak_rss_kib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

// The istio ConfigMap carries its mesh config as YAML text, which server/ converts for the engine.
void convert_mesh(json& object) {
    if (object.value("kind", "") != "ConfigMap")
        return;
    auto& data = object["data"];
    if (!data.is_object() || !data.contains("mesh") || !data["mesh"].is_string())
        return;
    auto docs =
        mtlsguard::input::parse_yaml_documents(data["mesh"].get<std::string>(), "istio ConfigMap");
    data["mesh"] = docs.empty() ? json(nullptr) : docs.front();
}

json review(const std::string& operation, json object, std::size_t n) {
    const std::string api_version = object["apiVersion"];
    const auto slash = api_version.find('/');
    json request = {{"uid", "bench-" + std::to_string(n)},
                    {"kind",
                     {{"group", api_version.substr(0, slash)},
                      {"version", api_version.substr(slash + 1)},
                      {"kind", object["kind"]}}},
                    {"name", object["metadata"]["name"]},
                    {"namespace", object["metadata"]["namespace"]},
                    {"operation", operation},
                    {"dryRun", false},
                    {"object", std::move(object)}};
    return {{"apiVersion", "admission.k8s.io/v1"},
            {"kind", "AdmissionReview"},
            {"request", std::move(request)}};
}

json peer_authentication(const std::string& ns, const std::string& name, const std::string& mode,
                         json selector = nullptr) {
    json spec = {{"mtls", {{"mode", mode}}}};
    if (!selector.is_null())
        spec["selector"] = {{"matchLabels", std::move(selector)}};
    return {{"apiVersion", "security.istio.io/v1"},
            {"kind", "PeerAuthentication"},
            {"metadata",
             {{"name", name}, {"namespace", ns}, {"creationTimestamp", "2026-11-01T00:00:00Z"}}},
            {"spec", std::move(spec)}};
}

json destination_rule(const std::string& ns, const std::string& name, const std::string& host,
                      const std::string& mode) {
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "DestinationRule"},
            {"metadata",
             {{"name", name}, {"namespace", ns}, {"creationTimestamp", "2026-11-01T00:00:00Z"}}},
            {"spec", {{"host", host}, {"trafficPolicy", {{"tls", {{"mode", mode}}}}}}}};
}

json virtual_service(const std::string& ns, const std::string& name, const std::string& host) {
    json route = json::array({{{"destination", {{"host", host}, {"subset", "v1"}}}}});
    return {
        {"apiVersion", "networking.istio.io/v1"},
        {"kind", "VirtualService"},
        {"metadata",
         {{"name", name}, {"namespace", ns}, {"creationTimestamp", "2026-11-01T00:00:00Z"}}},
        {"spec", {{"hosts", json::array({host})}, {"http", json::array({{{"route", route}}})}}}};
}

// A namespace-wide egress lockdown (ambient.md §14): the namespace itself and istio-system.
json sidecar_resource(const std::string& ns) {
    return {
        {"apiVersion", "networking.istio.io/v1"},
        {"kind", "Sidecar"},
        {"metadata",
         {{"name", "default"}, {"namespace", ns}, {"creationTimestamp", "2026-11-01T00:00:00Z"}}},
        {"spec", {{"egress", json::array({{{"hosts", json::array({"./*", "istio-system/*"})}}})}}}};
}

// ambient.md §17: an UPDATE of Namespace `name` from `before` to `after` labels.
json namespace_review(const std::string& name, json before, json after, std::size_t n) {
    auto space = [&](json labels) {
        return json{{"apiVersion", "v1"},
                    {"kind", "Namespace"},
                    {"metadata", {{"name", name}, {"labels", std::move(labels)}}}};
    };
    json request = {{"uid", "bench-ns-" + std::to_string(n)},
                    {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Namespace"}}},
                    {"name", name},
                    {"namespace", name},
                    {"operation", "UPDATE"},
                    {"dryRun", false},
                    {"object", space(std::move(after))},
                    {"oldObject", space(std::move(before))}};
    return {{"apiVersion", "admission.k8s.io/v1"},
            {"kind", "AdmissionReview"},
            {"request", std::move(request)}};
}

struct Stats {
    double p50 = 0, p99 = 0, max = 0;
};

Stats stats(std::vector<double> samples) {
    if (samples.empty())
        return {}; // e.g. --iterations 0
    std::sort(samples.begin(), samples.end());
    auto at = [&](double q) {
        return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1))];
    };
    return {at(0.50), at(0.99), samples.back()};
}

// Times reviews as /validate runs them, body in and body out, and counts the denials.
class ReviewTimer {
  public:
    ReviewTimer(const mtlsguard::model::Snapshot& snapshot,
                mtlsguard::admission::AdmissionSettings settings)
        : snapshot_(snapshot), settings_(std::move(settings)) {}
    // The review's time in ms; exits when it is not answered with 200.
    double operator()(const std::string& body) {
        mtlsguard::server::ReviewReply reply;
        const double ms =
            timed([&] { reply = mtlsguard::server::handle_review(snapshot_, body, settings_); });
        if (reply.status != 200) {
            std::fprintf(stderr, "admission failed: %s\n", reply.body.c_str());
            std::exit(1);
        }
        denied_ += reply.decision.allowed ? 0 : 1;
        return ms;
    }
    std::size_t take_denied() { return std::exchange(denied_, 0); }

  private:
    const mtlsguard::model::Snapshot& snapshot_;
    mtlsguard::admission::AdmissionSettings settings_;
    std::size_t denied_ = 0;
};

// One line of figures, and whether its p99 meets `target_ms`.
void report(const char* what, int requests, std::size_t denied, const std::vector<double>& samples,
            double target_ms) {
    if (samples.empty())
        return;
    const Stats s = stats(samples);
    std::printf("admission, %s (%d requests, %zu denied): p50 %.3f ms, p99 %.3f ms, max %.3f ms "
                "[target p99 <= %.0f ms: %s]\n",
                what, requests, denied, s.p50, s.p99, s.max, target_ms,
                s.p99 <= target_ms ? "met" : "MISSED");
}

constexpr double namespace_target_ms = 1;
constexpr double mesh_target_ms = 25;

} // namespace

int main(int argc, char** argv) {
    mtlsguard::bench::MeshShape shape;
    int iterations = 2000;
    int mesh_iterations = 200;
    CLI::App app{"mtls-guard engine benchmark on a synthetic mesh"};
    app.add_option("--namespaces", shape.namespaces)->capture_default_str();
    app.add_option("--services", shape.services)->capture_default_str();
    app.add_option("--pods", shape.pods)->capture_default_str();
    app.add_option("--destination-rules", shape.destination_rules)->capture_default_str();
    app.add_option("--peer-authentications", shape.peer_authentications)->capture_default_str();
    app.add_option("--ambient-fraction", shape.ambient_fraction)->capture_default_str();
    app.add_option("--sidecar-resource-fraction", shape.sidecar_resource_fraction)
        ->capture_default_str();
    app.add_option("--virtual-service-fraction", shape.virtual_service_fraction)
        ->capture_default_str();
    app.add_option("--seed", shape.seed)->capture_default_str();
    app.add_option("--iterations", iterations, "namespace-scoped admission requests")
        ->capture_default_str();
    app.add_option("--mesh-iterations", mesh_iterations, "mesh-wide admission requests")
        ->capture_default_str();
    int sidecar_iterations = 100;
    app.add_option("--sidecar-iterations", sidecar_iterations,
                   "Sidecar resource changes (ambient.md §14, §17)")
        ->capture_default_str();
    int namespace_iterations = 20;
    app.add_option("--namespace-iterations", namespace_iterations,
                   "Namespace label changes (ambient.md §17)")
        ->capture_default_str();
    int only_kind = -1;
    app.add_option("--only-kind", only_kind,
                   "only this kind of the namespace-scoped mix (0-3, in the order printed), for "
                   "profiling one");
    app.add_flag("--cpu-time", cpu_time,
                 "admission latencies in this thread's CPU time (for a busy shared host)");
    std::string only_namespace;
    app.add_option("--only-namespace", only_namespace,
                   "namespace-scoped changes in this namespace only, for profiling one");
    int slowest = 0;
    app.add_option("--slowest", slowest,
                   "print the N slowest namespace-scoped requests (kind, namespace, operation) and "
                   "Namespace label changes, for profiling");
    bool no_shortcuts = false;
    app.add_flag("--no-shortcuts", no_shortcuts,
                 "admission without its shortcuts (AdmissionSettings::shortcuts), to compare");
    CLI11_PARSE(app, argc, argv);

    // 1. Generate and decode object by object, as a watch would deliver them.
    auto start = Clock::now();
    mtlsguard::model::SnapshotBuilder builder;
    std::size_t objects = 0;
    std::size_t sidecar_resources = 0, virtual_services = 0;
    mtlsguard::bench::generate_synthetic_mesh(shape, [&](json&& object) {
        convert_mesh(object);
        const std::string kind = object.value("kind", "");
        if (kind == "Sidecar")
            ++sidecar_resources;
        else if (kind == "VirtualService")
            ++virtual_services;
        if (auto error = builder.add(object)) {
            std::fprintf(stderr, "decode error: %s\n", error->c_str());
            std::exit(2);
        }
        ++objects;
    });
    const double decode_ms = ms_since(start);
    const auto index_start = Clock::now();
    const auto snapshot = builder.build();
    const double index_ms = ms_since(index_start);
    const double build_ms = ms_since(start);
    std::printf("mesh: %d namespaces, %d services, %d pods, %d DestinationRules, %d "
                "PeerAuthentications, %zu Sidecars, %zu VirtualServices (%zu objects)\n",
                shape.namespaces, shape.services, shape.pods, shape.destination_rules,
                shape.peer_authentications, sidecar_resources, virtual_services, objects);
    std::printf("snapshot: %zu workloads, %zu services; generate+decode %.0f ms, index (build) "
                "%.0f ms, total %.0f ms\n",
                snapshot->workloads().size(), snapshot->services().size(), decode_ms, index_ms,
                build_ms);

    std::size_t sidecar = 0, ambient = 0, none = 0;
    for (const auto& w : snapshot->workloads())
        (w.dataplane == mtlsguard::model::Dataplane::Sidecar   ? sidecar
         : w.dataplane == mtlsguard::model::Dataplane::Ambient ? ambient
                                                               : none)++;
    std::printf("workloads: %zu sidecar, %zu ambient, %zu without proxy; %zu ambient client "
                "namespaces\n",
                sidecar, ambient, none, snapshot->ambient_client_namespaces().size());

    // 2. The full analysis of the whole snapshot.
    start = Clock::now();
    const auto result = mtlsguard::analyze(*snapshot);
    const double analyze_ms = ms_since(start);
    if (!result.internal_error.empty()) {
        std::fprintf(stderr, "analysis failed: %s\n", result.internal_error.c_str());
        return 1;
    }
    int errors = 0, warnings = 0, infos = 0;
    for (const auto& f : result.findings)
        (f.severity == mtlsguard::conflict::Severity::Error     ? errors
         : f.severity == mtlsguard::conflict::Severity::Warning ? warnings
                                                                : infos)++;
    std::printf("full analyze: %.0f ms (%d errors, %d warnings, %d infos)\n", analyze_ms, errors,
                warnings, infos);

    // 3. Admission latency, body in and body out, as /validate runs it.
    std::vector<std::pair<std::string, std::string>> targets; // namespace, service
    for (const auto& ns : snapshot->namespaces())
        if (!ns.services.empty() && (only_namespace.empty() || ns.name == only_namespace))
            targets.emplace_back(ns.name,
                                 snapshot->services()[ns.services.front()].service.ref.name);
    if (targets.empty()) {
        std::fprintf(stderr, "no namespace with services%s%s\n",
                     only_namespace.empty() ? "" : " named ", only_namespace.c_str());
        return 2;
    }
    mtlsguard::admission::AdmissionSettings settings;
    settings.shortcuts = !no_shortcuts;
    ReviewTimer time_review(*snapshot, settings);
    const char* modes[] = {"STRICT", "PERMISSIVE", "DISABLE"};
    auto operation = [](int i) { return i % 5 == 0 ? "UPDATE" : "CREATE"; };

    // Namespace-scoped changes: they reach the services of one namespace, or of one host.
    constexpr std::size_t request_kinds = 4;
    const char* kinds[request_kinds] = {"namespace-wide PeerAuthentication",
                                        "workload PeerAuthentication", "DestinationRule",
                                        "VirtualService (route to a subset)"};
    std::vector<double> samples;
    std::array<std::vector<double>, request_kinds> by_kind;
    struct Timed {
        double ms;
        std::size_t kind;
        std::string ns;
        const char* operation;
    };
    std::vector<Timed> timed_requests; // for --slowest
    for (int i = 0; i < iterations; ++i) {
        if (only_kind >= 0 && i % static_cast<int>(request_kinds) != only_kind)
            continue;
        const auto& [ns, svc] = targets[static_cast<std::size_t>(i * 7919) % targets.size()];
        const auto kind = static_cast<std::size_t>(i) % request_kinds;
        json object;
        switch (kind) {
        case 0:
            object = peer_authentication(ns, "default", modes[(i / 5) % 3]);
            break;
        case 1:
            object = peer_authentication(ns, svc + "-bench", modes[(i / 5) % 3], {{"app", svc}});
            break;
        case 2:
            object = destination_rule(ns, svc + "-bench", svc, i % 2 ? "ISTIO_MUTUAL" : "DISABLE");
            break;
        default:
            object = virtual_service(ns, svc + "-bench", svc);
            break;
        }
        samples.push_back(time_review(
            review(operation(i), std::move(object), static_cast<std::size_t>(i)).dump()));
        by_kind[kind].push_back(samples.back());
        if (slowest > 0)
            timed_requests.push_back({samples.back(), kind, ns, operation(i)});
    }
    std::sort(timed_requests.begin(), timed_requests.end(),
              [](const Timed& a, const Timed& b) { return a.ms > b.ms; });
    for (std::size_t k = 0; k < timed_requests.size() && k < static_cast<std::size_t>(slowest); ++k)
        std::printf("  slow: %.3f ms %s %s in %s\n", timed_requests[k].ms,
                    timed_requests[k].operation, kinds[timed_requests[k].kind],
                    timed_requests[k].ns.c_str());
    for (std::size_t k = 0; k < by_kind.size(); ++k) {
        if (by_kind[k].empty())
            continue;
        const Stats s = stats(by_kind[k]);
        std::printf("  %-35s p50 %.3f ms, p99 %.3f ms\n", kinds[k], s.p50, s.p99);
    }
    report("namespace-scoped change", iterations, time_review.take_denied(), samples,
           namespace_target_ms);

    // A namespace's Sidecar decides which of the mesh's hosts its clients see: it reaches every
    // host, as a mesh-wide change does, though only for one namespace's clients.
    samples.clear();
    for (int i = 0; i < sidecar_iterations; ++i) {
        const auto& ns = targets[static_cast<std::size_t>(i * 7919) % targets.size()].first;
        samples.push_back(time_review(
            review(operation(i), sidecar_resource(ns), static_cast<std::size_t>(i)).dump()));
    }
    report("Sidecar change (namespace egress lockdown)", sidecar_iterations,
           time_review.take_denied(), samples, mesh_target_ms);

    samples.clear();
    for (int i = 0; i < mesh_iterations; ++i)
        samples.push_back(time_review(
            review("UPDATE", peer_authentication("istio-system", "default", modes[i % 3]),
                   static_cast<std::size_t>(i))
                .dump()));
    report("mesh-wide PeerAuthentication change", mesh_iterations, time_review.take_denied(),
           samples, mesh_target_ms);

    // A Namespace relabel changes the namespace's servers for every client and its clients
    // towards every host: ambient enrolment at once, and injection, which also compares the
    // restarted pods.
    samples.clear();
    std::vector<std::pair<double, std::string>> timed_relabels; // for --slowest
    for (int i = 0; i < namespace_iterations; ++i) {
        const auto& ns = targets[static_cast<std::size_t>(i * 7919) % targets.size()].first;
        json before = json::object();
        if (const auto id = snapshot->namespace_id(ns))
            for (const auto& [key, value] : snapshot->namespaces()[*id].labels.entries())
                before[key] = value;
        json after = before;
        if (i % 2 == 0)
            after["istio.io/dataplane-mode"] =
                after.contains("istio.io/dataplane-mode") ? "none" : "ambient";
        else
            after["istio-injection"] = "enabled";
        const std::string change = after.dump();
        samples.push_back(time_review(
            namespace_review(ns, std::move(before), std::move(after), static_cast<std::size_t>(i))
                .dump()));
        if (slowest > 0)
            timed_relabels.emplace_back(samples.back(), ns + " to " + change);
    }
    std::sort(timed_relabels.begin(), timed_relabels.end(), std::greater<>());
    for (std::size_t k = 0; k < timed_relabels.size() && k < static_cast<std::size_t>(slowest); ++k)
        std::printf("  slow: %.3f ms relabel of %s\n", timed_relabels[k].first,
                    timed_relabels[k].second.c_str());
    report("Namespace label change", namespace_iterations, time_review.take_denied(), samples,
           mesh_target_ms);
    std::printf("peak RSS: %.1f MiB\n", static_cast<double>(peak_rss_kib()) / 1024.0);
    std::printf("targets: namespace-scoped p99 <= 1 ms; mesh-wide, Sidecar and Namespace changes "
                "p99 <= 25 ms; full analyze <= 2000 ms; RSS <= 256 MiB\n");
    return 0;
}
