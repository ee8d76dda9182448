// `mtls-guard serve`: wires the snapshot source, certificates, metrics, logs and the HTTPS server,
// then runs until SIGTERM and drains.
#include "server/cli/commands.hpp"
#include "server/https/poller.hpp"
#include "server/https/request_handler.hpp"
#include "server/https/self_signed.hpp"
#include "server/https/server.hpp"
#include "server/https/snapshot_reloader.hpp"
#include "server/https/tls_context.hpp"
#include "server/observability/logging.hpp"
#include "server/observability/metrics.hpp"

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
    if (options.kubeconfig || options.source.paths.empty())
        return "reading the cluster from the Kubernetes API (--kubeconfig, or the in-cluster "
               "config when no --snapshot is given) is not implemented in this build yet "
               "(issue #4); serve from manifests with --snapshot PATH";
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

} // namespace

int run_serve(const ServeOptions& options) {
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
    https::FileSnapshotReloader reloader(
        options.source, *admission::parse_enforcement(options.mode), store, metrics);
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
        // Loaded off the I/O threads; /readyz says 503 until the first load succeeds.
        poller.add("snapshot", to_ms(options.snapshot_poll_seconds), [&] { reloader.poll(); });
        poller.start();

        if (!wait_for_certificate(tls, server)) {
            log_event(log, spdlog::level::info, "stopped before a certificate was available",
                      {{"signal", std::int64_t{server.stop_signal()}}});
            poller.stop();
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
                   {"mode", options.mode},
                   {"clientCertificates", !options.client_ca.empty()}});
    } catch (const std::exception& e) {
        std::cerr << "mtls-guard serve: " << e.what() << "\n";
        poller.stop();
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
    server.stop();
    if (cut > 0)
        log_event(log, spdlog::level::warn, "drain timed out; connections cut",
                  {{"connections", static_cast<std::int64_t>(cut)}});
    else
        log_event(log, spdlog::level::info, "stopped cleanly");
    return 0;
}

} // namespace mtlsguard::cli
