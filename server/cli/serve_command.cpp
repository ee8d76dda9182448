// `mtls-guard serve`: wires the snapshot source, certificates, metrics, logs and the HTTPS server,
// then runs until SIGTERM and drains.
#include "analysis/model/decode.hpp"
#include "server/cli/commands.hpp"
#include "server/https/request_handler.hpp"
#include "server/https/server.hpp"
#include "server/memory/allocator.hpp"
#include "server/observability/logging.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/cluster_snapshot_source.hpp"
#include "server/snapshot/poller.hpp"
#include "server/snapshot/snapshot_reloader.hpp"
#include "server/tls/self_signed.hpp"
#include "server/tls/tls_context.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace mtlsguard::cli {
namespace {

namespace fs = std::filesystem;
using observability::component_logger;
using observability::log_event;

std::chrono::milliseconds to_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
}

// Written whole and renamed into place: a test polling for it never reads half a number.
void write_port_file(const std::string& path, std::uint16_t port,
                     std::optional<std::uint16_t> metrics_port) {
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::trunc);
        out << port << "\n";
        if (metrics_port)
            out << *metrics_port << "\n";
        if (!out)
            throw std::runtime_error("cannot write " + temporary);
    }
    fs::rename(temporary, path);
}

std::string make_temporary_cert_dir() {
    std::string pattern = (fs::temp_directory_path() / "mtls-guard-certs-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
        throw std::runtime_error("cannot create a directory for the certificate: " +
                                 std::string(std::strerror(errno)));
    return pattern;
}

// Usage errors serve can find before it starts anything; empty when the options are usable.
std::string check_options(const ServeOptions& options) {
    if (options.kubeconfig && !options.source.paths.empty())
        return "--snapshot and --kubeconfig exclude each other: serve reads the cluster either "
               "from manifest files or from the Kubernetes API";
    if (!options.kube_context.empty() && !options.kubeconfig)
        return "--kube-context needs --kubeconfig (the in-cluster config has no contexts)";
    if (!https::parse_stale_policy(options.stale_policy))
        return "--stale-policy " + options.stale_policy + ": expected enforce or warn";
    for (const auto& path : options.source.paths) {
        if (path == "-")
            return "--snapshot -: serve reloads its snapshot from files and cannot read stdin";
        std::error_code ec;
        if (!fs::exists(path, ec))
            return "--snapshot " + path + ": no such file or directory";
    }
    if (!https::parse_listen_address(options.listen))
        return "--listen " + options.listen + ": expected ADDR:PORT, such as 0.0.0.0:8443";
    if (!options.metrics_listen.empty() && !https::parse_listen_address(options.metrics_listen))
        return "--metrics-listen " + options.metrics_listen +
               ": expected ADDR:PORT, such as 0.0.0.0:9090";
    if (!options.client_ca.empty() && !fs::exists(options.client_ca))
        return "--client-ca " + options.client_ca + ": no such file";
    return {};
}

// Certificates given as files: the Secret may not be mounted yet (builtin-cert mode creates it
// after the pod starts), so wait for a usable pair with backoff instead of crashing. Returns false
// when a stop signal came first.
bool wait_for_certificate(https::TlsContextStore& tls, https::Server& server) {
    auto backoff = std::chrono::milliseconds(500);
    std::string last_error;
    while (true) {
        const std::string error = tls.load_initial();
        if (error.empty())
            return true;
        if (error != last_error || backoff >= std::chrono::seconds(10))
            log_event(component_logger("tls"), spdlog::level::warn,
                      "waiting for a usable serving certificate; not listening until then",
                      {{"error", error}, {"retry_ms", static_cast<std::int64_t>(backoff.count())}});
        last_error = error;
        if (server.wait_for_stop_signal(backoff))
            return false;
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(10));
    }
}

std::chrono::seconds whole_seconds(double seconds) {
    return std::chrono::seconds(static_cast<std::int64_t>(seconds + 0.5));
}

// The Kubernetes API side of serve without --snapshot. Throws kube::ConfigError or
// input::LoadError (--mesh-config) with the reason.
std::unique_ptr<https::ClusterSnapshotSource> make_cluster_source(const ServeOptions& options,
                                                                  https::SnapshotStore& store,
                                                                  observability::Metrics& metrics) {
    kube::ClusterConfig config =
        options.kubeconfig ? kube::load_kubeconfig(*options.kubeconfig, options.kube_context)
                           : kube::load_in_cluster();
    kube::WatcherOptions watcher;
    watcher.istio_namespace = options.istio_namespace;
    watcher.stale_after = whole_seconds(options.stale_after_seconds);
    watcher.settings.cluster_domain = options.source.cluster_domain;
    watcher.settings.version = options.source.version.value_or(model::IstioVersion::current());
    watcher.version_from_objects = !options.source.version.has_value();
    if (options.source.mesh_config_file) {
        const auto mesh = input::load_mesh_config(*options.source.mesh_config_file);
        auto outcome = model::decode_mesh_config(mesh);
        if (outcome.status == model::DecodeOutcome::Status::Error)
            throw input::LoadError{*options.source.mesh_config_file, 0, false, outcome.error};
        watcher.settings.mesh_override = std::get<model::MeshConfig>(std::move(*outcome.object));
    }
    const auto request_timeout = to_ms(options.kube_request_timeout_seconds);
    watcher.discovery_timeout = request_timeout;
    watcher.reflector.request_timeout = request_timeout;
    // A watch silent past its own timeoutSeconds by this much is dead (the server ends it then).
    watcher.reflector.watch_idle_grace =
        std::min<std::chrono::milliseconds>(request_timeout, std::chrono::seconds(30));
    watcher.reflector.min_watch_timeout = whole_seconds(options.kube_watch_timeout_seconds);
    watcher.reflector.max_watch_timeout = 2 * watcher.reflector.min_watch_timeout;
    watcher.logger = observability::shared_component_logger("kube");

    https::ClusterSourceOptions source;
    source.default_mode = *admission::parse_enforcement(options.mode);
    source.stale_policy = *https::parse_stale_policy(options.stale_policy);
    log_event(component_logger("kube"), spdlog::level::info, "reading the cluster",
              {{"server", config.server},
               {"config", config.source},
               {"istioNamespace", options.istio_namespace},
               {"staleAfterSeconds", static_cast<std::int64_t>(watcher.stale_after.count())},
               {"stalePolicy", options.stale_policy}});
    return std::make_unique<https::ClusterSnapshotSource>(std::move(config), std::move(watcher),
                                                          source, store, metrics);
}

// How often the stale state and the watcher's metrics are looked at: often enough that the
// warning appears within a fraction of the threshold.
std::chrono::milliseconds cluster_refresh_interval(double stale_after_seconds) {
    const auto quarter = to_ms(stale_after_seconds / 4);
    return std::clamp<std::chrono::milliseconds>(quarter, std::chrono::milliseconds(100),
                                                 std::chrono::seconds(1));
}

} // namespace

int run_serve(const ServeOptions& options) {
    memory::tune_allocator();
    observability::configure_logging(options.log_format == "json" ? observability::LogFormat::Json
                                                                  : observability::LogFormat::Text);
    if (const std::string problem = check_options(options); !problem.empty()) {
        std::cerr << "mtls-guard serve: " << problem << "\n";
        return 2;
    }
    // Peers that vanish must cost an error code, not the process.
    std::signal(SIGPIPE, SIG_IGN);
    auto& log = component_logger("serve");

    https::TlsFiles files{options.tls_cert, options.tls_key, options.client_ca};
    if (options.tls_cert.empty()) {
        try {
            const std::string dir =
                options.cert_dir.empty() ? make_temporary_cert_dir() : options.cert_dir;
            const auto generated = https::write_self_signed_certificate(
                dir, https::default_certificate_dns_names(), {"127.0.0.1", "::1"});
            files.certificate = generated.certificate.string();
            files.private_key = generated.private_key.string();
            log_event(component_logger("tls"), spdlog::level::info,
                      "generated a self-signed CA and serving certificate (for local use only)",
                      {{"ca", generated.ca_certificate.string()},
                       {"certificate", files.certificate},
                       {"key", files.private_key}});
        } catch (const std::exception& e) {
            std::cerr << "mtls-guard serve: " << e.what() << "\n";
            return 2;
        }
    }

    observability::Metrics metrics;
    https::SnapshotStore store;
    // Files (--snapshot) or the live cluster: both publish into `store`.
    const bool from_files = !options.source.paths.empty();
    std::optional<https::FileSnapshotReloader> reloader;
    std::unique_ptr<https::ClusterSnapshotSource> cluster;
    if (from_files) {
        reloader.emplace(options.source, *admission::parse_enforcement(options.mode), store,
                         metrics);
    } else {
        try {
            cluster = make_cluster_source(options, store, metrics);
        } catch (const kube::ConfigError& e) {
            std::cerr << "mtls-guard serve: " << e.what() << "\n";
            return 2;
        } catch (const input::LoadError& e) {
            std::cerr << "mtls-guard serve: --mesh-config: " << e.to_string() << "\n";
            return 2;
        }
    }
    https::RequestHandler handler(store, metrics);

    https::ServerSettings settings;
    settings.session.handshake_timeout = to_ms(options.header_timeout_seconds);
    settings.session.header_timeout = to_ms(options.header_timeout_seconds);
    settings.session.body_timeout = to_ms(options.body_timeout_seconds);
    settings.session.idle_timeout = to_ms(options.idle_timeout_seconds);
    settings.session.body_limit = options.max_body_bytes;
    settings.max_connections = options.max_connections;
    settings.threads = options.threads > 0 ? options.threads : https::available_cores();
    settings.drain_timeout = to_ms(options.drain_timeout_seconds);

    // Destroyed in reverse: the poller stops before what its tasks use, the server's threads
    // before the handler and the certificate store.
    https::TlsContextStore tls(files, metrics);
    https::Server server(settings, handler, metrics);
    https::Poller poller;
    server.start();
    try {
        std::optional<std::uint16_t> metrics_port;
        if (!options.metrics_listen.empty())
            metrics_port = server.listen_plain(*https::parse_listen_address(options.metrics_listen),
                                               https::ListenerRole{false, true});
        // Loaded off the I/O threads; /readyz says 503 until the first load succeeds (from a
        // cluster: until every initial list has completed and the first snapshot is built).
        if (reloader) {
            poller.add("snapshot", to_ms(options.snapshot_poll_seconds), [&] { reloader->poll(); });
        } else {
            cluster->start();
            poller.add("cluster", cluster_refresh_interval(options.stale_after_seconds),
                       [&] { cluster->refresh(); });
        }
        poller.start();

        if (!wait_for_certificate(tls, server)) {
            log_event(log, spdlog::level::info, "stopped before a certificate was available",
                      {{"signal", std::int64_t{server.stop_signal()}}});
            poller.stop();
            if (cluster)
                cluster->stop();
            server.stop();
            return 0;
        }
        const auto address = *https::parse_listen_address(options.listen);
        const std::uint16_t port =
            server.listen_tls(address, tls, https::ListenerRole{true, !metrics_port.has_value()});
        poller.add("certificates", to_ms(options.cert_poll_seconds), [&] { tls.poll(); });
        if (!options.port_file.empty())
            write_port_file(options.port_file, port, metrics_port);
        log_event(log, spdlog::level::info, "serving",
                  {{"address", address.host},
                   {"port", std::int64_t{port}},
                   {"metricsPort", std::int64_t{metrics_port.value_or(port)}},
                   {"threads", std::int64_t{settings.threads}},
                   {"allocator", std::string(memory::allocator_name())},
                   {"mode", options.mode},
                   {"snapshot", from_files ? "files" : "cluster"},
                   {"istioVersion", options.source.version
                                        ? model::to_string(*options.source.version)
                                        : std::string("current (1.5 with v1alpha1 policies)")},
                   {"clientCertificates", !options.client_ca.empty()}});
    } catch (const std::exception& e) {
        std::cerr << "mtls-guard serve: " << e.what() << "\n";
        poller.stop();
        if (cluster)
            cluster->stop();
        server.stop();
        return 2;
    }

    while (!server.wait_for_stop_signal(std::chrono::hours(1))) {
    }
    log_event(log, spdlog::level::info,
              "draining: no new connections, finishing requests in flight",
              {{"signal", std::int64_t{server.stop_signal()}},
               {"timeout_ms", static_cast<std::int64_t>(settings.drain_timeout.count())}});
    const std::size_t cut = server.drain();
    poller.stop();
    if (cluster)
        cluster->stop();
    server.stop();
    if (cut > 0)
        log_event(log, spdlog::level::warn, "drain timed out; connections cut",
                  {{"connections", static_cast<std::int64_t>(cut)}});
    else
        log_event(log, spdlog::level::info, "stopped cleanly");
    return 0;
}

} // namespace mtlsguard::cli
