// Where the time of one /validate request goes, phase by phase, in one process on one core: TLS
// records in and out, the HTTP parse and response, the body readers, the decision, the response
// body, the decision log line and the metrics, on serve_bench.sh's review and the demo mesh with
// the DestinationRule the review updates.
#include "server/admission/review_body.hpp"
#include "server/admission/review_endpoint.hpp"
#include "server/input/manifest_loader.hpp"
#include "server/observability/logging.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/snapshot_files.hpp"
#include "server/tls/self_signed.hpp"
#include "server/tls/tls_context.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <simdjson.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using mtlsguard::admission::AdmissionSettings;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

struct Phase {
    std::string name;
    std::vector<double> us; // one sample per iteration
};

// Runs `body` `iterations` times after a warm-up, one sample (microseconds) per call.
Phase measure(const std::string& name, int iterations, const std::function<void()>& body) {
    for (int i = 0; i < std::max(10, iterations / 20); ++i)
        body();
    Phase phase{name, {}};
    phase.us.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < iterations; ++i) {
        const auto start = Clock::now();
        body();
        phase.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    return phase;
}

double quantile(std::vector<double> samples, double q) {
    std::sort(samples.begin(), samples.end());
    return samples[static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1))];
}

double mean(const std::vector<double>& samples) {
    double sum = 0;
    for (const double s : samples)
        sum += s;
    return sum / static_cast<double>(samples.size());
}

void print(const Phase& phase) {
    std::printf("  %-44s %8.2f %8.2f %8.2f\n", phase.name.c_str(), mean(phase.us),
                quantile(phase.us, 0.5), quantile(phase.us, 0.99));
}

[[noreturn]] void openssl_fail(const char* what) {
    std::fprintf(stderr, "%s: %s\n", what, ERR_error_string(ERR_get_error(), nullptr));
    std::exit(2);
}

// A client and the server's SSL object joined by an in-memory BIO pair, handshaken: the server's
// cost of decrypting a request and encrypting a response, without sockets.
class TlsPair {
  public:
    explicit TlsPair(SSL_CTX* server_ctx) {
        client_ctx_ = SSL_CTX_new(TLS_client_method());
        if (!client_ctx_)
            openssl_fail("SSL_CTX_new");
        client_ = SSL_new(client_ctx_);
        server_ = SSL_new(server_ctx);
        BIO* client_bio = nullptr;
        BIO* server_bio = nullptr;
        if (!client_ || !server_ ||
            BIO_new_bio_pair(&client_bio, 1 << 17, &server_bio, 1 << 17) != 1)
            openssl_fail("SSL_new");
        SSL_set_bio(client_, client_bio, client_bio);
        SSL_set_bio(server_, server_bio, server_bio);
        SSL_set_connect_state(client_);
        SSL_set_accept_state(server_);
        for (int round = 0; round < 20; ++round) {
            const int c = SSL_do_handshake(client_);
            const int s = SSL_do_handshake(server_);
            if (c == 1 && s == 1)
                return;
        }
        openssl_fail("TLS handshake");
    }
    ~TlsPair() {
        SSL_free(client_);
        SSL_free(server_);
        SSL_CTX_free(client_ctx_);
    }
    TlsPair(const TlsPair&) = delete;
    TlsPair& operator=(const TlsPair&) = delete;

    const char* cipher() const { return SSL_get_cipher_name(server_); }

    static void write_all(SSL* ssl, const std::string& data) {
        if (SSL_write(ssl, data.data(), static_cast<int>(data.size())) !=
            static_cast<int>(data.size()))
            openssl_fail("SSL_write");
    }
    static void read_all(SSL* ssl, std::string& into, std::size_t size) {
        into.resize(size);
        std::size_t got = 0;
        while (got < size) {
            const int n = SSL_read(ssl, into.data() + got, static_cast<int>(size - got));
            if (n <= 0)
                openssl_fail("SSL_read");
            got += static_cast<std::size_t>(n);
        }
    }

    SSL* client_ = nullptr;
    SSL* server_ = nullptr;

  private:
    SSL_CTX* client_ctx_ = nullptr;
};

} // namespace

int run(int argc, char** argv) {
    std::string body_path = MTLS_GUARD_SOURCE_DIR "/tests/bench/data/admission-review-update.json";
    // The demo mesh, and the DestinationRule the review updates as the cluster holds it.
    std::vector<std::string> snapshot_paths{MTLS_GUARD_SOURCE_DIR "/deploy/demo/mesh.yaml",
                                            MTLS_GUARD_SOURCE_DIR
                                            "/tests/bench/data/catalog-destination-rule.yaml"};
    std::string log_path = "/dev/null";
    std::string log_format = "json";
    int iterations = 20000;
    CLI::App app{"Per-phase cost of one /validate request on serve_bench.sh's review"};
    app.add_option("--body", body_path, "the AdmissionReview")->capture_default_str();
    app.add_option("--snapshot", snapshot_paths, "manifests of the cluster (repeatable)")
        ->capture_default_str();
    app.add_option("--iterations", iterations)->capture_default_str();
    app.add_option("--log-file", log_path, "where the decision log lines go (stderr)")
        ->capture_default_str();
    app.add_option("--log-format", log_format, "text or json")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const std::string body = read_file(body_path);
    mtlsguard::input::SnapshotSource source;
    source.paths = snapshot_paths;
    std::shared_ptr<const mtlsguard::model::Snapshot> snapshot;
    try {
        snapshot = mtlsguard::input::load_snapshot(source).snapshot;
    } catch (const mtlsguard::input::LoadError& e) {
        std::fprintf(stderr, "cannot load the snapshot: %s\n", e.to_string().c_str());
        return 2;
    }
    if (!snapshot) {
        std::fprintf(stderr, "cannot load the snapshot from %zu file(s)\n", snapshot_paths.size());
        return 2;
    }
    // The decision log goes to stderr, as in serve; stderr goes to --log-file.
    if (!std::freopen(log_path.c_str(), "a", stderr)) {
        std::perror(log_path.c_str());
        return 2;
    }
    mtlsguard::observability::configure_logging(log_format == "text"
                                                    ? mtlsguard::observability::LogFormat::Text
                                                    : mtlsguard::observability::LogFormat::Json);
    const AdmissionSettings settings;
    mtlsguard::observability::Metrics metrics;

    // What wrk sends, and what serve answers (the headers of RequestHandler::json_response).
    const auto reply = mtlsguard::server::handle_review(*snapshot, body, settings);
    if (reply.status != 200) {
        std::fprintf(stdout, "unexpected answer %d: %s\n", reply.status, reply.body.c_str());
        return 2;
    }
    const std::string request_bytes =
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\nContent-Type: application/json\r\n\r\n" + body;
    auto make_response = [&](std::string response_body) {
        http::response<http::string_body> response{http::status::ok, 11};
        response.set(http::field::server, "mtls-guard");
        response.set(http::field::content_type, "application/json");
        response.set(http::field::cache_control, "no-store");
        response.body() = std::move(response_body);
        response.prepare_payload();
        return response;
    };
    std::string response_bytes;
    {
        std::ostringstream out;
        out << make_response(reply.body);
        response_bytes = out.str();
    }

    // The serving TLS context, as serve builds it, on a generated certificate.
    const auto cert_dir =
        std::filesystem::temp_directory_path() / ("mtls-guard-bench-" + std::to_string(::getpid()));
    const auto generated =
        mtlsguard::https::write_self_signed_certificate(cert_dir, {"localhost"}, {"127.0.0.1"});
    mtlsguard::https::TlsMaterial material{
        read_file(generated.certificate.string()), read_file(generated.private_key.string()), {}};
    const auto tls = mtlsguard::https::build_server_context(material);
    std::filesystem::remove_all(cert_dir);
    if (!tls.context) {
        std::fprintf(stderr, "TLS context: %s\n", tls.error.c_str());
        return 2;
    }
    TlsPair pair(tls.context->native_handle());

    std::vector<Phase> phases;
    std::string scratch;
    // TLS records both ways through memory: each sample holds one side's encryption and the other's
    // decryption of the same bytes (AES-GCM costs about the same both ways: the server's is half).
    phases.push_back(measure("TLS request: client encrypt + server decrypt", iterations, [&] {
        TlsPair::write_all(pair.client_, request_bytes);
        TlsPair::read_all(pair.server_, scratch, request_bytes.size());
    }));
    phases.push_back(measure("TLS response: server encrypt + client decrypt", iterations, [&] {
        TlsPair::write_all(pair.server_, response_bytes);
        TlsPair::read_all(pair.client_, scratch, response_bytes.size());
    }));
    phases.push_back(measure("HTTP: parse the request (Beast)", iterations, [&] {
        http::request_parser<http::string_body> parser;
        parser.body_limit(8 * 1024 * 1024);
        boost::beast::error_code ec;
        std::size_t used = 0;
        while (!ec && !parser.is_done() && used < request_bytes.size())
            used += parser.put(
                boost::asio::buffer(request_bytes.data() + used, request_bytes.size() - used), ec);
        if (ec || !parser.is_done())
            throw std::runtime_error("request parse: " + ec.message());
    }));
    phases.push_back(measure("HTTP: build + serialize the response (Beast)", iterations, [&] {
        auto response = make_response(reply.body);
        http::serializer<false, http::string_body> serializer(response);
        std::size_t bytes = 0;
        boost::beast::error_code ec;
        do {
            serializer.next(ec, [&](boost::beast::error_code&, const auto& buffers) {
                bytes += boost::beast::buffer_bytes(buffers);
                serializer.consume(boost::beast::buffer_bytes(buffers));
            });
        } while (!ec && !serializer.is_done());
        if (ec || bytes != response_bytes.size())
            throw std::runtime_error("response of " + std::to_string(bytes) + " bytes, not " +
                                     std::to_string(response_bytes.size()) + ": " + ec.message());
    }));
    phases.push_back(measure("body: nlohmann reader (reference, before)", iterations, [&] {
        if (mtlsguard::server::read_review_reference(body).status !=
            mtlsguard::server::ReviewBody::Status::Parsed)
            throw std::runtime_error("reference reader");
    }));
    simdjson::dom::parser dom_parser;
    phases.push_back(measure("body: simdjson DOM parse only", iterations, [&] {
        if (dom_parser.parse(body).error())
            throw std::runtime_error("simdjson");
    }));
    phases.push_back(measure("body: fast reader (simdjson + slim json)", iterations, [&] {
        if (!mtlsguard::server::read_review_fast(body))
            throw std::runtime_error("fast reader");
    }));
    phases.push_back(measure("body: direct reader (simdjson into the model)", iterations, [&] {
        if (!mtlsguard::server::read_review_direct(body))
            throw std::runtime_error("direct reader");
    }));
    const auto slim = *mtlsguard::server::read_review_fast(body);
    const auto full = mtlsguard::server::read_review_reference(body).review;
    phases.push_back(measure("decide (admission::decide, slim review)", iterations, [&] {
        if (mtlsguard::admission::decide(*snapshot, slim, settings).http_status != 200)
            throw std::runtime_error("decide");
    }));
    const auto direct = *mtlsguard::server::read_review_direct(body);
    phases.push_back(measure("decide (admission::decide, read directly)", iterations, [&] {
        if (mtlsguard::admission::decide(*snapshot, direct, settings).http_status != 200)
            throw std::runtime_error("decide");
    }));
    phases.push_back(measure("decide (admission::decide, full review)", iterations, [&] {
        if (mtlsguard::admission::decide(*snapshot, full, settings).http_status != 200)
            throw std::runtime_error("decide");
    }));
    const auto decision = mtlsguard::admission::decide(*snapshot, slim, settings);
    phases.push_back(measure("response body: dump", iterations, [&] {
        scratch = decision.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }));
    phases.push_back(measure("handle_review (read + decide + dump)", iterations, [&] {
        if (mtlsguard::server::handle_review(*snapshot, body, settings).status != 200)
            throw std::runtime_error("handle_review");
    }));
    phases.push_back(measure("metrics: record_admission", iterations,
                             [&] { metrics.record_admission(decision, 200, 1e-5); }));
    phases.push_back(measure("log: log_decision (one line to --log-file)", iterations,
                             [&] { mtlsguard::observability::log_decision(decision, 200, 12); }));
    phases.push_back(measure("clock: two steady_clock::now()", iterations, [&] {
        const auto a = Clock::now();
        const auto b = Clock::now();
        if (b < a)
            throw std::runtime_error("clock");
    }));

    std::printf("review %s: %zu bytes in, %zu bytes of response (%zu with headers); TLS %s, %s\n",
                body_path.c_str(), body.size(), reply.body.size(), response_bytes.size(),
                SSL_get_version(pair.server_), pair.cipher());
    std::printf("%d iterations per phase, microseconds per call:\n", iterations);
    std::printf("  %-44s %8s %8s %8s\n", "phase", "mean", "p50", "p99");
    for (const auto& phase : phases)
        print(phase);
    return 0;
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stdout, "mtls-review-endpoint-bench: %s\n", e.what());
        return 2;
    }
}
