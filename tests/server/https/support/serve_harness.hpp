// The harness of the tests that start the real `mtls-guard serve`: child processes, a verifying
// TLS client, AdmissionReviews, metrics samples. Include from one test file each; it needs
// MTLS_GUARD_BINARY and MTLS_GUARD_FIXTURES defined.
#pragma once

#include "server/tls/self_signed.hpp"
#include "tests/server/https/support/tls_client.hpp"
#include "tests/support/files.hpp"

#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mtlsguard::serve_testing {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline const std::string binary = MTLS_GUARD_BINARY;
inline const fs::path fixtures = MTLS_GUARD_FIXTURES;
using mtlsguard::testing::slurp;
using mtlsguard::testing::write_text;

// ---------------------------------------------------------------------------------------------
// Files and processes

using mtlsguard::testing::TempDir;

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

// The reply's body as JSON (discarded, not thrown, when it is not JSON).
inline json body_json(const Reply& reply) {
    return json::parse(reply.body, nullptr, false);
}

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
        poll_until("write its port", timeout, [&] {
            if (!fs::exists(port_file()))
                return false;
            std::ifstream in(port_file());
            unsigned value = 0, metrics = 0;
            if (!(in >> value))
                return false;
            port = static_cast<std::uint16_t>(value);
            if (in >> metrics)
                metrics_port = static_cast<std::uint16_t>(metrics);
            return true;
        });
    }

    // The port is written once serving; the snapshot loads in the background: poll /readyz.
    void wait_ready(const ClientOptions& client_options, std::chrono::milliseconds timeout = 10s) {
        poll_until("become ready", timeout, [&] {
            TlsClient client(port, client_options);
            Reply reply;
            return !client.connect() && !client.send(get("/readyz")) && !client.read(reply) &&
                   reply.status == 200;
        });
    }

    // The same on the plain metrics port, for tests that count the TLS port's connections: the
    // server may read a TLS probe's close only after the test's own connections arrive.
    void wait_ready_on_metrics_port(std::chrono::milliseconds timeout = 10s) {
        poll_until("become ready", timeout, [&] {
            PlainClient probe(metrics_port);
            return !probe.connect() &&
                   !probe.write_raw(
                       "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") &&
                   probe.read_until_closed(2s).first.starts_with("HTTP/1.1 200");
        });
    }

    // Polls `done` every 20 ms until it holds; fails the test if the process exits first or the
    // time runs out ("serve did not <what> in time").
    template <typename Done>
    void poll_until(std::string_view what, std::chrono::milliseconds timeout, Done done) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            if (done())
                return;
            if (!process->running())
                FAIL("serve exited with " << *process->wait_exit(0ms) << ":\n" << process->err());
            std::this_thread::sleep_for(20ms);
        }
        FAIL("serve did not " << what << " in time:\n" << process->err());
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

// The AdmissionReview response of a /validate reply, after checking it is one.
inline json response_of(const Reply& reply, const std::string& uid) {
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    REQUIRE(reply.content_type == "application/json");
    const json body = body_json(reply);
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
