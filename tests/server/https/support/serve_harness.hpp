// The harness of the tests that start the real `mtls-guard serve`: child processes, a verifying
// TLS client, AdmissionReviews, metrics samples. Include from one test file each; it needs
// MTLS_GUARD_BINARY and MTLS_GUARD_FIXTURES defined.
#pragma once

#include "server/https/self_signed.hpp"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <optional>
#include <poll.h>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mtlsguard::serve_testing {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline const std::string binary = MTLS_GUARD_BINARY;
inline const fs::path fixtures = MTLS_GUARD_FIXTURES;
constexpr auto io_timeout = 5s;

// ---------------------------------------------------------------------------------------------
// Files and processes

class TempDir {
  public:
    TempDir() {
        std::random_device seed;
        path_ = fs::temp_directory_path() /
                ("mtls-guard-serve-" + std::to_string(::getpid()) + "-" + std::to_string(seed()));
        fs::create_directories(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

inline std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

inline void write_text(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// A child process with stdout and stderr in files; killed (SIGKILL) and reaped when destroyed.
class ChildProcess {
  public:
    ChildProcess(const std::vector<std::string>& args, const fs::path& dir)
        : out_(dir / ("stdout-" + std::to_string(++counter))),
          err_(dir / ("stderr-" + std::to_string(counter))) {
        std::vector<std::string> argv_storage = {binary};
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_storage)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0)
                ::_exit(126);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() {
        if (!exit_code_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    void signal(int sig) const { ::kill(pid_, sig); }

    // The exit code (128 + signal when killed by one), or nothing while it runs after `timeout`.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        while (!exit_code_) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_)
                exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            else if (Clock::now() >= deadline)
                break;
            else
                std::this_thread::sleep_for(10ms);
        }
        return exit_code_;
    }
    bool running() { return !wait_exit(0ms); }

    std::string out() const { return slurp(out_); }
    std::string err() const { return slurp(err_); }

  private:
    static inline int counter = 0;
    fs::path out_;
    fs::path err_;
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
};

// The walkthrough cluster where httpbin.full accepts only plaintext (Istio 1.5 rules).
inline std::vector<std::string> snapshot_args() {
    return {"--snapshot",
            (fixtures / "walkthrough-base").string(),
            "--snapshot",
            (fixtures / "walkthrough-3-plaintext" / "policy-plaintext.yaml").string(),
            "--istio-version",
            "1.5"};
}

// ---------------------------------------------------------------------------------------------
// Clients

struct Reply {
    unsigned status = 0;
    std::string body;
    std::string content_type;
    std::string allow;
    std::string connection;
    bool keep_alive = true;
    json body_json() const { return json::parse(body, nullptr, false); }
};

struct ClientOptions {
    std::vector<fs::path> trusted{}; // CA files
    std::optional<fs::path> certificate{};
    std::optional<fs::path> key{};
    bool tls10_only = false;
};

inline bool is_closed(const error_code& ec) {
    return ec == net::error::eof || ec == ssl::error::stream_truncated ||
           ec == net::error::connection_reset || ec == http::error::end_of_stream ||
           ec == net::error::broken_pipe || ec.category() == net::error::get_ssl_category();
}

inline http::request<http::string_body> get(const std::string& target);

inline bool hung_up(int fd, std::chrono::milliseconds wait) {
    pollfd p{fd, POLLRDHUP, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(wait.count()));
    return ready > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// A TLS client that verifies the server against the given CAs and the name localhost. Every
// operation runs under a timeout on its own io_context.
class TlsClient {
  public:
    TlsClient(std::uint16_t port, const ClientOptions& options)
        : port_(port), ctx_(ssl::context::tls_client) {
        ctx_.set_verify_mode(ssl::verify_peer);
        for (const auto& ca : options.trusted)
            ctx_.load_verify_file(ca.string());
        if (options.certificate) {
            ctx_.use_certificate_chain_file(options.certificate->string());
            ctx_.use_private_key_file(options.key->string(), ssl::context::pem);
        }
        if (options.tls10_only) {
            // What an old client offers: TLS 1.0 only (OpenSSL 3 needs security level 0 for it).
            SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_VERSION);
            SSL_CTX_set_max_proto_version(ctx_.native_handle(), TLS1_VERSION);
            SSL_CTX_set_cipher_list(ctx_.native_handle(), "DEFAULT@SECLEVEL=0");
        }
    }

    error_code connect() {
        stream_.emplace(io_, ctx_);
        buffer_.clear();
        // SNI, as the API server sends it (SSL_set_tlsext_host_name without its C cast).
        if (SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                     TLSEXT_NAMETYPE_host_name, const_cast<char*>("localhost")) != 1)
            return {static_cast<int>(::ERR_get_error()), net::error::get_ssl_category()};
        stream_->set_verify_callback(ssl::host_name_verification("localhost"));
        error_code ec = run([&](auto handler) {
            beast::get_lowest_layer(*stream_).async_connect(
                tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), handler);
        });
        if (ec)
            return ec;
        return run(
            [&](auto handler) { stream_->async_handshake(ssl::stream_base::client, handler); });
    }

    error_code send(const http::request<http::string_body>& request) {
        return run([&](auto handler) { http::async_write(*stream_, request, handler); });
    }

    error_code write_raw(const std::string& bytes) {
        return run([&](auto handler) { net::async_write(*stream_, net::buffer(bytes), handler); });
    }

    error_code read(Reply& reply, std::chrono::milliseconds timeout = io_timeout) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 << 20);
        const error_code ec = run(
            [&](auto handler) { http::async_read(*stream_, buffer_, parser, handler); }, timeout);
        if (ec)
            return ec;
        const auto& message = parser.get();
        reply.status = message.result_int();
        reply.body = message.body();
        reply.content_type = std::string(message[http::field::content_type]);
        reply.allow = std::string(message[http::field::allow]);
        reply.connection = std::string(message[http::field::connection]);
        reply.keep_alive = message.keep_alive();
        return {};
    }

    // One request and its reply; fails the test on any transport error.
    Reply exchange(const http::request<http::string_body>& request) {
        Reply reply;
        const error_code sent = send(request);
        INFO("send: " << sent.message());
        REQUIRE_FALSE(sent);
        const error_code read_ec = read(reply);
        INFO("read: " << read_ec.message());
        REQUIRE_FALSE(read_ec);
        return reply;
    }

    // Waits until the server closes the connection: the error that says so, or `timeout` if it
    // stayed open.
    error_code wait_closed(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        std::array<char, 4096> scratch{};
        while (true) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left <= 0ms)
                return beast::error::timeout;
            const error_code ec =
                run([&](auto handler) { stream_->async_read_some(net::buffer(scratch), handler); },
                    left);
            if (ec)
                return ec;
        }
    }

    // Whether the server has closed its side (FIN or reset) within `wait`, without reading: unread
    // TLS 1.3 session tickets would make a readability check useless, POLLRDHUP is not fooled.
    bool peer_hung_up(std::chrono::milliseconds wait) {
        return hung_up(beast::get_lowest_layer(*stream_).socket().native_handle(), wait);
    }

    // SHA-256 of the certificate the server presented.
    std::string peer_fingerprint() {
        X509* cert = SSL_get1_peer_certificate(stream_->native_handle());
        if (!cert)
            return {};
        std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
        unsigned int size = 0;
        X509_digest(cert, EVP_sha256(), md.data(), &size);
        X509_free(cert);
        return std::string(md.begin(), md.begin() + size);
    }

    void close() {
        if (stream_) {
            error_code ignored;
            beast::get_lowest_layer(*stream_).socket().close(ignored);
        }
    }

  private:
    template <class Start>
    error_code run(Start&& start, std::chrono::milliseconds timeout = io_timeout) {
        beast::get_lowest_layer(*stream_).expires_after(timeout);
        std::optional<error_code> result;
        start([&result](error_code ec, auto&&...) { result = ec; });
        io_.restart();
        io_.run();
        return result.value_or(net::error::timed_out);
    }

    std::uint16_t port_;
    net::io_context io_;
    ssl::context ctx_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
    beast::flat_buffer buffer_;
};

// A plain TCP client: for plain HTTP on the TLS port and for clients that say nothing.
class PlainClient {
  public:
    explicit PlainClient(std::uint16_t port) : port_(port), stream_(io_) {}

    error_code connect() {
        return run([&](auto handler) {
            stream_.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_),
                                  handler);
        });
    }
    error_code write_raw(const std::string& bytes) {
        return run([&](auto handler) { net::async_write(stream_, net::buffer(bytes), handler); });
    }
    bool peer_hung_up(std::chrono::milliseconds wait) {
        return hung_up(stream_.socket().native_handle(), wait);
    }
    void close() {
        error_code ignored;
        stream_.socket().close(ignored);
    }

    // Everything the server sends until it closes (or `timeout`).
    std::pair<std::string, error_code> read_until_closed(std::chrono::milliseconds timeout) {
        std::string received;
        const auto deadline = Clock::now() + timeout;
        std::array<char, 4096> scratch{};
        while (true) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left <= 0ms)
                return {received, beast::error::timeout};
            std::size_t got = 0;
            const error_code ec = run(
                [&](auto handler) {
                    stream_.async_read_some(net::buffer(scratch),
                                            [&got, handler](error_code e, std::size_t n) mutable {
                                                got = n;
                                                handler(e);
                                            });
                },
                left);
            received.append(scratch.data(), got);
            if (ec)
                return {received, ec};
        }
    }

  private:
    template <class Start>
    error_code run(Start&& start, std::chrono::milliseconds timeout = io_timeout) {
        stream_.expires_after(timeout);
        std::optional<error_code> result;
        start([&result](error_code ec, auto&&...) { result = ec; });
        io_.restart();
        io_.run();
        return result.value_or(net::error::timed_out);
    }

    std::uint16_t port_;
    net::io_context io_;
    beast::tcp_stream stream_;
};

struct ServeOptions {
    std::vector<std::string> extra;    // more flags
    bool snapshot = true;              // add snapshot_args()
    bool generated_certificate = true; // --cert-dir <dir>/certs
    bool wait = true;                  // wait for the port file, then for /readyz
    std::string body_timeout = "1";    // seconds
    bool ready = true;                 // with `wait`: also wait for /readyz (generated CA)
    std::string header_timeout = "1";  // seconds; also the TLS handshake timeout
};

// `mtls-guard serve` on 127.0.0.1, an ephemeral port, short timeouts so that stalls end quickly.
class Serve {
  public:
    explicit Serve(ServeOptions options = {}) {
        std::vector<std::string> args = {"serve",
                                         "--listen",
                                         "127.0.0.1:0",
                                         "--port-file",
                                         port_file().string(),
                                         "--threads",
                                         "2",
                                         "--header-timeout-seconds",
                                         options.header_timeout,
                                         "--body-timeout-seconds",
                                         options.body_timeout,
                                         "--cert-poll-seconds",
                                         "0.2",
                                         "--snapshot-poll-seconds",
                                         "0.2"};
        if (options.generated_certificate) {
            args.push_back("--cert-dir");
            args.push_back(cert_dir().string());
        }
        if (options.snapshot) {
            const auto s = snapshot_args();
            args.insert(args.end(), s.begin(), s.end());
        }
        args.insert(args.end(), options.extra.begin(), options.extra.end());
        process.emplace(args, dir.path());
        if (options.wait) {
            wait_for_port();
            if (options.ready)
                wait_ready({{ca()}});
        }
    }

    // Reads the port file once the server wrote it; fails the test if the process dies first.
    void wait_for_port(std::chrono::milliseconds timeout = 10s) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            if (fs::exists(port_file())) {
                std::ifstream in(port_file());
                unsigned value = 0, metrics = 0;
                if (in >> value) {
                    port = static_cast<std::uint16_t>(value);
                    if (in >> metrics)
                        metrics_port = static_cast<std::uint16_t>(metrics);
                    return;
                }
            }
            if (!process->running())
                FAIL("serve exited with " << *process->wait_exit(0ms) << ":\n" << process->err());
            std::this_thread::sleep_for(20ms);
        }
        FAIL("serve did not write its port in time:\n" << process->err());
    }

    // The port is written once serving; the snapshot loads in the background: poll /readyz.
    void wait_ready(const ClientOptions& client_options, std::chrono::milliseconds timeout = 10s) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            TlsClient client(port, client_options);
            Reply reply;
            if (!client.connect() && !client.send(get("/readyz")) && !client.read(reply) &&
                reply.status == 200)
                return;
            if (!process->running())
                FAIL("serve exited with " << *process->wait_exit(0ms) << ":\n" << process->err());
            std::this_thread::sleep_for(20ms);
        }
        FAIL("serve did not become ready in time:\n" << process->err());
    }

    fs::path cert_dir() const { return dir.path() / "certs"; }
    fs::path ca() const { return cert_dir() / "ca.crt"; }
    fs::path port_file() const { return dir.path() / "port"; }

    TempDir dir;
    std::optional<ChildProcess> process;
    std::uint16_t port = 0;
    std::uint16_t metrics_port = 0;
};

inline TlsClient client_for(const Serve& serve) {
    return TlsClient(serve.port, {{serve.ca()}});
}

// ---------------------------------------------------------------------------------------------
// Requests

inline json admission_review(const std::string& uid, const json& object,
                             const std::string& operation, bool dry_run = false,
                             const std::string& api_version = "admission.k8s.io/v1") {
    const std::string av = object.at("apiVersion");
    const auto slash = av.find('/');
    return {{"apiVersion", api_version},
            {"kind", "AdmissionReview"},
            {"request",
             {{"uid", uid},
              {"kind",
               {{"group", av.substr(0, slash)},
                {"version", av.substr(slash + 1)},
                {"kind", object.at("kind")}}},
              {"name", object.at("metadata").at("name")},
              {"namespace", object.at("metadata").at("namespace")},
              {"operation", operation},
              {"userInfo", {{"username", "kubernetes-admin"}, {"groups", {"system:masters"}}}},
              {"object", object},
              {"dryRun", dry_run}}}};
}

inline http::request<http::string_body> post(const std::string& body,
                                             const std::string& target = "/validate?timeout=10s",
                                             const std::string& content_type = "application/json") {
    http::request<http::string_body> request{http::verb::post, target, 11};
    request.set(http::field::host, "localhost");
    if (!content_type.empty())
        request.set(http::field::content_type, content_type);
    request.body() = body;
    request.prepare_payload();
    return request;
}

inline http::request<http::string_body> get(const std::string& target) {
    http::request<http::string_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "localhost");
    return request;
}

// The AdmissionReview response of a /validate reply, after checking it is one.
inline json response_of(const Reply& reply, const std::string& uid) {
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    REQUIRE(reply.content_type == "application/json");
    const json body = reply.body_json();
    REQUIRE(body.is_object());
    REQUIRE(body.at("kind") == "AdmissionReview");
    const json& response = body.at("response");
    REQUIRE(response.at("uid") == uid);
    return response;
}

inline std::vector<std::string> warnings_of(const json& response) {
    std::vector<std::string> out;
    if (response.contains("warnings"))
        for (const auto& w : response.at("warnings"))
            out.push_back(w.get<std::string>());
    return out;
}

inline bool any_warning_has(const json& response, const std::string& needle) {
    for (const auto& w : warnings_of(response))
        if (w.find(needle) != std::string::npos)
            return true;
    return false;
}

// The value of one series in the text exposition, or -1 when absent.
inline double sample(const std::string& metrics, const std::string& series) {
    std::istringstream in(metrics);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0)
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

inline std::string scrape(std::uint16_t port, const fs::path& ca) {
    TlsClient client(port, {{ca}});
    REQUIRE_FALSE(client.connect());
    const Reply reply = client.exchange(get("/metrics"));
    REQUIRE(reply.status == 200);
    return reply.body;
}

// Polls `condition` every 50 ms for at most `timeout`.
template <class Condition> bool eventually(Condition condition, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        if (condition())
            return true;
        std::this_thread::sleep_for(50ms);
    }
    return condition();
}

} // namespace mtlsguard::serve_testing
