// Shared pieces of the kube tests: io thread, fake cluster, quick retries, bounded waits.
#pragma once

#include "server/kube/cluster_watcher.hpp"
#include "server/kube/config.hpp"
#include "tests/server/kube/support/fake_api_server.hpp"
#include "tests/server/kube/support/test_pki.hpp"
#include "tests/support/files.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace mtlsguard::kube::testing {

// Runs an io_context until destroyed. Declare it before anything using its io_context, so that it
// outlives them.
class IoThread {
  public:
    IoThread() : guard_(io.get_executor()), thread_([this] { io.run(); }) {}
    ~IoThread() {
        guard_.reset();
        io.stop();
        thread_.join();
    }
    IoThread(const IoThread&) = delete;
    IoThread& operator=(const IoThread&) = delete;

    boost::asio::io_context io;

  private:
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
    std::thread thread_;
};

// Polls `done` until it holds or `limit` passes; every wait in these tests is bounded.
inline bool wait_until(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
}

// Logs of the code under test stay quiet unless KUBE_TEST_LOGS is set.
inline std::shared_ptr<spdlog::logger> test_logger() {
    static auto logger = [] {
        if (std::getenv("KUBE_TEST_LOGS")) {
            spdlog::set_level(spdlog::level::debug);
            return spdlog::default_logger();
        }
        return std::make_shared<spdlog::logger>("kube-test",
                                                std::make_shared<spdlog::sinks::null_sink_mt>());
    }();
    return logger;
}

// Retries fast enough for tests, still exponential.
inline ReflectorOptions quick_reflector_options() {
    ReflectorOptions options;
    options.backoff.initial = std::chrono::milliseconds(40);
    options.backoff.max = std::chrono::milliseconds(300);
    options.request_timeout = std::chrono::seconds(5);
    options.min_healthy_watch = std::chrono::milliseconds(0);
    options.seed = 7;
    return options;
}

inline WatcherOptions quick_watcher_options() {
    WatcherOptions options;
    options.coalesce = std::chrono::milliseconds(20);
    options.count_refresh = std::chrono::milliseconds(300);
    options.crd_settle = std::chrono::milliseconds(30);
    options.discovery_timeout = std::chrono::seconds(5);
    options.reflector = quick_reflector_options();
    options.logger = test_logger();
    return options;
}

// A CA, a fake API server with a certificate for 127.0.0.1, and a token it accepts.
struct FakeCluster {
    explicit FakeCluster(ChunkStyle chunks = ChunkStyle::Irregular)
        : ca(make_test_ca()), serving(ca.issue_server({"127.0.0.1"}, {})),
          server(FakeServerOptions{serving.certificate_pem, serving.key_pem, {}, chunks}) {
        server.set_tokens({"token-a"});
    }

    ClusterConfig config() const {
        ClusterConfig config;
        config.server = server.url();
        config.ca_pem = ca.ca.certificate_pem;
        config.token = "token-a";
        config.source = "test";
        return config;
    }

    TestCa ca;
    KeyPair serving;
    FakeApiServer server;
};

// Collects what a watcher publishes.
class Published {
  public:
    ClusterWatcher::Publish sink() {
        return [this](std::shared_ptr<const model::Snapshot> snapshot) {
            std::lock_guard lock(mutex_);
            snapshots_.push_back(std::move(snapshot));
        };
    }
    std::shared_ptr<const model::Snapshot> latest() const {
        std::lock_guard lock(mutex_);
        return snapshots_.empty() ? nullptr : snapshots_.back();
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return snapshots_.size();
    }
    // Waits for a published snapshot satisfying `test`.
    std::shared_ptr<const model::Snapshot>
    wait_for(const std::function<bool(const model::Snapshot&)>& test,
             std::chrono::milliseconds limit = std::chrono::seconds(10)) const {
        std::shared_ptr<const model::Snapshot> found;
        wait_until(
            [&] {
                auto s = latest();
                if (s && test(*s))
                    found = s;
                return found != nullptr;
            },
            limit);
        return found;
    }

  private:
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<const model::Snapshot>> snapshots_;
};

using mtlsguard::testing::TempDir;

// A kubeconfig for `cluster` in `dir`, as a user writes one: the CA in a file of its own and the
// bearer token read from `token_file` (tokenFile: re-read when the server rejects it). Returns its
// path.
inline std::string write_kubeconfig(const TempDir& dir, const FakeCluster& cluster,
                                    const std::string& token_file) {
    const std::string ca = dir.write("kube/ca.crt", cluster.ca.ca.certificate_pem);
    return dir.write("kube/config.yaml", "apiVersion: v1\n"
                                         "kind: Config\n"
                                         "current-context: fake\n"
                                         "clusters:\n"
                                         "- name: fake\n"
                                         "  cluster:\n"
                                         "    server: " +
                                             cluster.server.url() +
                                             "\n"
                                             "    certificate-authority: " +
                                             ca +
                                             "\n"
                                             "users:\n"
                                             "- name: tester\n"
                                             "  user:\n"
                                             "    tokenFile: " +
                                             token_file +
                                             "\n"
                                             "contexts:\n"
                                             "- name: fake\n"
                                             "  context:\n"
                                             "    cluster: fake\n"
                                             "    user: tester\n");
}

} // namespace mtlsguard::kube::testing
