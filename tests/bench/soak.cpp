// Soak test of `mtls-guard serve` on loopback: a fixed rate of AdmissionReviews on /validate for a
// bounded time while the serving certificate rotates and the --snapshot files change; prints the
// failures, latency percentiles and the server's RSS at the start and the end.
//
//   mtls-soak --binary build-release/mtls-guard [--duration 600] [--rate 200] [--connections 8]
//             [--rotate-seconds 20] [--snapshot-seconds 15] [--reconnect-every 200]
//
// Open loop: request k of connection c is due at start + (k * connections + c) / rate, whatever
// the answers before it took, and its latency counts from that due time, so a stall shows in the
// percentiles instead of slowing the load down (wrk's closed loop hides it). Exit code 0 when no
// request failed and RSS grew less than --max-rss-growth percent, 1 otherwise, 2 on bad usage.
#include "server/tls/self_signed.hpp"
#include "tests/server/https/support/tls_client.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace serve_testing = mtlsguard::serve_testing;
using serve_testing::error_code;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
    std::string binary = "build-release/mtls-guard";
    std::string source_dir = MTLS_GUARD_SOURCE_DIR;
    double duration_s = 600;
    double warmup_s = 10;
    double rate = 200;
    unsigned connections = 8;
    double rotate_s = 20;
    double snapshot_s = 15;
    unsigned reconnect_every = 200;
    unsigned threads = 2;
    double max_rss_growth = 5;
    std::string work_dir; // empty: a fresh directory under /tmp, removed at the end
};

// ------------------------------------------------------------------------ files and the server

void write_atomically(const fs::path& path, const std::string& text) {
    const fs::path tmp = path.string() + ".tmp";
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text;
    fs::rename(tmp, path);
}

// The kubelet's layout for a mounted Secret: <mount>/tls.crt -> ..data/tls.crt, and ..data a
// symlink to a timestamped directory, swapped in one rename.
class CertificateMount {
  public:
    explicit CertificateMount(const fs::path& root) : root_(root), mount_(root / "mount") {
        for (const char* name : {"a", "b"})
            pairs_.push_back(mtlsguard::https::write_self_signed_certificate(
                root / name, {"localhost"}, {"127.0.0.1"}));
        fs::create_directories(mount_);
        stage();
        fs::create_symlink("..data/tls.crt", mount_ / "tls.crt");
        fs::create_symlink("..data/tls.key", mount_ / "tls.key");
    }
    fs::path certificate() const { return mount_ / "tls.crt"; }
    fs::path key() const { return mount_ / "tls.key"; }
    std::vector<fs::path> cas() const {
        return {pairs_[0].ca_certificate, pairs_[1].ca_certificate};
    }
    // Swaps to the other pair.
    void rotate() {
        ++generation_;
        stage();
    }
    unsigned rotations() const { return generation_; }

  private:
    void stage() {
        const auto& pair = pairs_[generation_ % 2];
        const std::string dir = "..gen_" + std::to_string(generation_);
        fs::create_directories(mount_ / dir);
        fs::copy_file(pair.certificate, mount_ / dir / "tls.crt");
        fs::copy_file(pair.private_key, mount_ / dir / "tls.key");
        std::error_code ignored;
        fs::remove(mount_ / "..data_tmp", ignored);
        fs::create_directory_symlink(dir, mount_ / "..data_tmp");
        fs::rename(mount_ / "..data_tmp", mount_ / "..data");
        if (generation_ >= 2)
            fs::remove_all(mount_ / ("..gen_" + std::to_string(generation_ - 2)), ignored);
    }

    fs::path root_;
    fs::path mount_;
    std::vector<mtlsguard::https::GeneratedCertificate> pairs_;
    unsigned generation_ = 0;
};

// serve as a child process; SIGKILLed when destroyed unless it exited.
class ServeProcess {
  public:
    ServeProcess(const std::vector<std::string>& args, const fs::path& log) {
        std::vector<std::string> storage = args;
        std::vector<char*> argv;
        for (auto& a : storage)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || ::dup2(fd, 2) < 0 || ::dup2(fd, 1) < 0)
                ::_exit(126);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ServeProcess(const ServeProcess&) = delete;
    ServeProcess& operator=(const ServeProcess&) = delete;
    ~ServeProcess() {
        if (!exited_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    pid_t pid() const { return pid_; }
    bool running() {
        if (exited_)
            return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        return !exited_;
    }
    // SIGTERM, then the exit code (or -1 after `timeout`).
    int terminate(std::chrono::milliseconds timeout) {
        ::kill(pid_, SIGTERM);
        const auto deadline = Clock::now() + timeout;
        while (running() && Clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
        return exited_ ? code_ : -1;
    }
    // Resident set size in KiB, from /proc/<pid>/status.
    long rss_kib() const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("VmRSS:", 0) == 0)
                return std::stol(line.substr(6));
        return -1;
    }

  private:
    pid_t pid_ = -1;
    bool exited_ = false;
    int code_ = -1;
};

// ------------------------------------------------------------------------------------ the client

using serve_testing::Reply;

// A verifying TLS client (both CAs trusted, host name localhost); every step under a timeout.
class Client : public serve_testing::TlsClient {
  public:
    Client(std::uint16_t port, const std::vector<fs::path>& cas)
        : TlsClient(port, serve_testing::ClientOptions{cas}) {}
};

http::request<http::string_body> make_request(const std::string& target, const std::string& body) {
    return body.empty() ? serve_testing::get(target) : serve_testing::post(body, target);
}

std::string review_body(const std::string& uid) {
    const json spec = {{"host", "catalog.backend.svc.cluster.local"},
                       {"subsets", {{{"name", "v1"}, {"labels", {{"version", "v1"}}}}}},
                       {"trafficPolicy",
                        {{"connectionPool", {{"tcp", {{"maxConnections", 100}}}}},
                         {"tls", {{"mode", "ISTIO_MUTUAL"}}}}}};
    json object = {{"apiVersion", "networking.istio.io/v1beta1"},
                   {"kind", "DestinationRule"},
                   {"metadata",
                    {{"name", "catalog"},
                     {"namespace", "backend"},
                     {"resourceVersion", "48213377"},
                     {"labels", {{"app", "catalog"}}},
                     {"managedFields",
                      {{{"manager", "argocd-controller"},
                        {"operation", "Update"},
                        {"fieldsType", "FieldsV1"},
                        {"fieldsV1", {{"f:spec", {{"f:host", json::object()}}}}}}}}}},
                   {"spec", spec}};
    json old_object = object;
    old_object["spec"]["trafficPolicy"].erase("connectionPool");
    return json{
        {"apiVersion", "admission.k8s.io/v1"},
        {"kind", "AdmissionReview"},
        {"request",
         {{"uid", uid},
          {"kind",
           {{"group", "networking.istio.io"}, {"version", "v1beta1"}, {"kind", "DestinationRule"}}},
          {"name", "catalog"},
          {"namespace", "backend"},
          {"operation", "UPDATE"},
          {"userInfo", {{"username", "system:serviceaccount:argocd:argocd"}}},
          {"object", object},
          {"oldObject", old_object},
          {"dryRun", false}}}}
        .dump();
}

// The upper bound of the histogram bucket that holds quantile `q` of
// mtls_guard_admission_decision_seconds (body in to body out, inside serve), in ms; -1 if absent.
double decision_quantile_ms(const std::string& metrics, double q) {
    std::istringstream in(metrics);
    std::string line;
    std::vector<std::pair<double, double>> buckets; // (le, cumulative count)
    const std::string prefix = "mtls_guard_admission_decision_seconds_bucket{le=\"";
    while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) != 0)
            continue;
        const auto end = line.find('"', prefix.size());
        const std::string le = line.substr(prefix.size(), end - prefix.size());
        const double bound = le == "+Inf" ? 1e300 : std::stod(le);
        buckets.emplace_back(bound, std::stod(line.substr(line.rfind(' ') + 1)));
    }
    if (buckets.empty() || buckets.back().second <= 0)
        return -1;
    const double wanted = q * buckets.back().second;
    for (const auto& [bound, count] : buckets)
        if (count >= wanted)
            return bound * 1000;
    return -1;
}

using serve_testing::sample;

// ------------------------------------------------------------------------------------- the load

struct WorkerResult {
    std::vector<double> latencies_ms; // of successful requests, from their due time
    std::vector<double> exchange_ms;  // the same requests, from the moment they were written
    long ok = 0;
    long non_2xx = 0;
    long failed = 0; // transport errors, timeouts, answers that are not the expected review
    long connects = 0;
    std::string last_failure;
};

void run_worker(const Options& options, unsigned index, std::uint16_t port,
                const std::vector<fs::path>& cas, Clock::time_point start, Clock::time_point end,
                WorkerResult& result) {
    Client client(port, cas);
    const auto interval = std::chrono::duration<double>(options.connections / options.rate);
    const auto offset = std::chrono::duration<double>(index / options.rate);
    const std::string uid = "soak-" + std::to_string(index);
    const auto request = make_request("/validate?timeout=10s", review_body(uid));
    unsigned on_this_connection = 0;
    for (long k = 0;; ++k) {
        const auto due = start + std::chrono::duration_cast<Clock::duration>(offset + k * interval);
        if (due >= end)
            break;
        std::this_thread::sleep_until(due);
        if (!client.connected() || on_this_connection >= options.reconnect_every) {
            client.drop();
            on_this_connection = 0;
            ++result.connects;
            if (const auto ec = client.connect()) {
                ++result.failed;
                result.last_failure = "connect: " + ec.message();
                client.drop();
                continue;
            }
        }
        Reply reply;
        const auto sent_at = Clock::now();
        const auto ec = client.exchange(request, reply);
        ++on_this_connection;
        if (ec) {
            ++result.failed;
            result.last_failure = "exchange: " + ec.message();
            client.drop();
            continue;
        }
        if (reply.status < 200 || reply.status > 299) {
            ++result.non_2xx;
            result.last_failure = "HTTP " + std::to_string(reply.status) + ": " + reply.body;
            continue;
        }
        const json parsed = json::parse(reply.body, nullptr, false);
        if (!parsed.is_object() || !parsed.contains("response") ||
            parsed["response"].value("uid", "") != uid ||
            !parsed["response"].value("allowed", json()).is_boolean()) {
            ++result.failed;
            result.last_failure = "not the AdmissionReview answer: " + reply.body.substr(0, 200);
            continue;
        }
        ++result.ok;
        const auto answered_at = Clock::now();
        result.latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(answered_at - due).count());
        result.exchange_ms.push_back(
            std::chrono::duration<double, std::milli>(answered_at - sent_at).count());
    }
}

double percentile(std::vector<double>& sorted, double p) {
    if (sorted.empty())
        return 0;
    const auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
    return sorted[rank];
}

int soak(const Options& options) {
    const bool own_dir = options.work_dir.empty();
    const fs::path dir =
        own_dir ? fs::temp_directory_path() / ("mtls-soak-" + std::to_string(::getpid()))
                : fs::path(options.work_dir);
    fs::remove_all(dir);
    fs::create_directories(dir / "snapshot");
    struct Cleanup {
        fs::path dir;
        bool remove;
        ~Cleanup() {
            std::error_code ignored;
            if (remove)
                fs::remove_all(dir, ignored);
        }
    } cleanup{dir, own_dir};

    CertificateMount certs(dir / "certs");
    fs::copy_file(fs::path(options.source_dir) / "deploy/demo/mesh.yaml",
                  dir / "snapshot" / "mesh.yaml");
    // The file that changes: a namespace-wide PeerAuthentication in `legacy-batch`, PERMISSIVE and
    // STRICT in turn, so every reload changes content and findings.
    const auto snapshot_text = [](unsigned generation) {
        return std::string("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                           "metadata:\n  name: soak\n  namespace: legacy-batch\n"
                           "spec:\n  mtls:\n    mode: ") +
               (generation % 2 == 0 ? "PERMISSIVE" : "STRICT") + "\n";
    };
    write_atomically(dir / "snapshot" / "changing.yaml", snapshot_text(0));

    const fs::path port_file = dir / "port";
    ServeProcess serve({options.binary,
                        "serve",
                        "--listen",
                        "127.0.0.1:0",
                        "--port-file",
                        port_file.string(),
                        "--tls-cert",
                        certs.certificate().string(),
                        "--tls-key",
                        certs.key().string(),
                        "--snapshot",
                        (dir / "snapshot").string(),
                        "--cert-poll-seconds",
                        "1",
                        "--snapshot-poll-seconds",
                        "1",
                        "--threads",
                        std::to_string(options.threads),
                        "--log-format",
                        "json"},
                       dir / "serve.log");
    std::uint16_t port = 0;
    for (int i = 0; i < 200 && port == 0; ++i) {
        std::ifstream in(port_file);
        unsigned value = 0;
        if (in >> value)
            port = static_cast<std::uint16_t>(value);
        else if (!serve.running())
            break;
        std::this_thread::sleep_for(50ms);
    }
    if (port == 0) {
        std::fprintf(stderr, "mtls-soak: serve did not start; see %s\n",
                     (dir / "serve.log").c_str());
        return 1;
    }
    const auto get = [&](const std::string& target) {
        Client client(port, certs.cas());
        Reply reply;
        if (client.connect() || client.exchange(make_request(target, ""), reply))
            return Reply{};
        return reply;
    };
    bool ready = false;
    for (int i = 0; i < 200 && !ready; ++i) {
        ready = get("/readyz").status == 200;
        if (!ready)
            std::this_thread::sleep_for(50ms);
    }
    if (!ready) {
        std::fprintf(stderr, "mtls-soak: serve never became ready\n");
        return 1;
    }
    const long rss_idle = serve.rss_kib();

    // Warm-up at the same rate, so that the start figure has the allocator's and the TLS session
    // cache's working set in it; then the measured run.
    std::printf("mtls-soak: %g req/s over %u connections, %.0f s warm-up, %.0f s measured; "
                "certificate rotation every %.0f s, snapshot change every %.0f s\n",
                options.rate, options.connections, options.warmup_s, options.duration_s,
                options.rotate_s, options.snapshot_s);
    std::fflush(stdout);
    const auto run_phase = [&](double seconds, bool churn, std::vector<WorkerResult>& results,
                               unsigned& snapshot_changes) {
        results.assign(options.connections, WorkerResult{});
        const auto start = Clock::now() + 50ms;
        const auto end = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds));
        std::vector<std::thread> workers;
        for (unsigned c = 0; c < options.connections; ++c)
            workers.emplace_back(
                [&, c] { run_worker(options, c, port, certs.cas(), start, end, results[c]); });
        if (churn) {
            auto next_rotation = start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.rotate_s));
            auto next_snapshot = start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.snapshot_s));
            while (Clock::now() < end) {
                const auto now = Clock::now();
                if (now >= next_rotation) {
                    certs.rotate();
                    next_rotation += std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(options.rotate_s));
                }
                if (now >= next_snapshot) {
                    ++snapshot_changes;
                    write_atomically(dir / "snapshot" / "changing.yaml",
                                     snapshot_text(snapshot_changes));
                    next_snapshot += std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(options.snapshot_s));
                }
                std::this_thread::sleep_until(std::min({next_rotation, next_snapshot, end}));
            }
        }
        for (auto& w : workers)
            w.join();
    };
    std::vector<WorkerResult> results;
    unsigned snapshot_changes = 0;
    run_phase(options.warmup_s, false, results, snapshot_changes);
    const long rss_start = serve.rss_kib();
    const auto measured_start = Clock::now();
    run_phase(options.duration_s, true, results, snapshot_changes);
    const double measured_s = std::chrono::duration<double>(Clock::now() - measured_start).count();
    const long rss_end = serve.rss_kib();
    // The poller looks every second: give the last changes time to land before counting them.
    std::this_thread::sleep_for(2500ms);
    const std::string metrics = get("/metrics").body;
    const bool alive = serve.running();
    const int exit_code = serve.terminate(30s);

    WorkerResult total;
    for (auto& r : results) {
        total.ok += r.ok;
        total.non_2xx += r.non_2xx;
        total.failed += r.failed;
        total.connects += r.connects;
        total.latencies_ms.insert(total.latencies_ms.end(), r.latencies_ms.begin(),
                                  r.latencies_ms.end());
        total.exchange_ms.insert(total.exchange_ms.end(), r.exchange_ms.begin(),
                                 r.exchange_ms.end());
        if (!r.last_failure.empty())
            total.last_failure = r.last_failure;
    }
    std::sort(total.latencies_ms.begin(), total.latencies_ms.end());
    std::sort(total.exchange_ms.begin(), total.exchange_ms.end());
    const long sent = total.ok + total.non_2xx + total.failed;
    const double growth = rss_start > 0 ? 100.0 * static_cast<double>(rss_end - rss_start) /
                                              static_cast<double>(rss_start)
                                        : 100;

    std::printf("requests            %ld in %.1f s (%.1f/s; target %g/s), %ld connections opened\n",
                sent, measured_s, static_cast<double>(sent) / measured_s, options.rate,
                total.connects);
    std::printf("non-2xx             %ld\n", total.non_2xx);
    std::printf("failed              %ld%s%s\n", total.failed,
                total.last_failure.empty() ? "" : "; last: ", total.last_failure.c_str());
    std::printf(
        "latency ms          p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (from each "
        "request's due time)\n",
        percentile(total.latencies_ms, 50), percentile(total.latencies_ms, 90),
        percentile(total.latencies_ms, 99), percentile(total.latencies_ms, 99.9),
        total.latencies_ms.empty() ? 0.0 : total.latencies_ms.back());
    std::printf("exchange ms         p50 %.3f  p90 %.3f  p99 %.3f  (write to answer, without "
                "the client's own lag)\n",
                percentile(total.exchange_ms, 50), percentile(total.exchange_ms, 90),
                percentile(total.exchange_ms, 99));
    std::printf("decision ms         p50 <= %g  p99 <= %g  (inside serve, /metrics histogram "
                "bucket)\n",
                decision_quantile_ms(metrics, 0.5), decision_quantile_ms(metrics, 0.99));
    std::printf("certificate swaps   %u done; serve: %g reloaded, %g refused\n", certs.rotations(),
                sample(metrics, R"(mtls_guard_tls_reloads_total{result="success"})"),
                sample(metrics, R"(mtls_guard_tls_reloads_total{result="failure"})"));
    std::printf("snapshot changes    %u done; serve: %g loads, %g failed\n", snapshot_changes,
                sample(metrics, R"(mtls_guard_snapshot_reloads_total{result="success"})"),
                sample(metrics, R"(mtls_guard_snapshot_reloads_total{result="failure"})"));
    std::printf("serve RSS KiB       idle %ld, start %ld, end %ld (%+.2f%%)\n", rss_idle, rss_start,
                rss_end, growth);
    std::printf("serve exit          %s, code %d after SIGTERM\n",
                alive ? "ran to the end" : "DIED during the run", exit_code);

    const bool passed = alive && exit_code == 0 && total.failed == 0 && total.non_2xx == 0 &&
                        total.ok > 0 && growth < options.max_rss_growth;
    std::printf("result              %s\n", passed ? "PASS" : "FAIL");
    return passed ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"Soak test of mtls-guard serve on loopback"};
    app.add_option("--binary", options.binary, "the mtls-guard executable")
        ->check(CLI::ExistingFile);
    app.add_option("--duration", options.duration_s, "measured seconds (default 600)")
        ->check(CLI::Range(1.0, 86400.0));
    app.add_option("--warmup", options.warmup_s, "seconds of load before the start RSS (10)")
        ->check(CLI::Range(0.0, 3600.0));
    app.add_option("--rate", options.rate, "requests per second, all connections (200)")
        ->check(CLI::Range(1.0, 100000.0));
    app.add_option("--connections", options.connections, "kept-alive client connections (8)")
        ->check(CLI::Range(1U, 256U));
    app.add_option("--rotate-seconds", options.rotate_s, "certificate swap interval (20)")
        ->check(CLI::Range(1.0, 86400.0));
    app.add_option("--snapshot-seconds", options.snapshot_s, "snapshot change interval (15)")
        ->check(CLI::Range(1.0, 86400.0));
    app.add_option("--reconnect-every", options.reconnect_every,
                   "requests per connection before a new handshake (200)")
        ->check(CLI::Range(1U, 1000000U));
    app.add_option("--threads", options.threads, "serve --threads (2)")->check(CLI::Range(1U, 64U));
    app.add_option("--max-rss-growth", options.max_rss_growth, "percent allowed (5)");
    app.add_option("--work-dir", options.work_dir,
                   "keep certificates, snapshot and serve.log here");
    app.add_option("--source-dir", options.source_dir, "the repository (for deploy/demo)");
    CLI11_PARSE(app, argc, argv);
    try {
        return soak(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mtls-soak: %s\n", e.what());
        return 1;
    }
}
