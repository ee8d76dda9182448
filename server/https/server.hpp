// The serve process's network side: the I/O thread pool, the listeners, SIGTERM/SIGINT, and the
// graceful drain.
#pragma once

#include "server/https/http_routing.hpp"
#include "server/https/io_pool.hpp"
#include "server/https/listener.hpp"
#include "server/https/request_handler.hpp"
#include "server/observability/metrics.hpp"
#include "server/tls/tls_context.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mtlsguard::https {

struct ServerSettings {
    SessionSettings session;
    std::size_t max_connections = 256;
    unsigned threads = 1;
    std::chrono::milliseconds drain_timeout{std::chrono::seconds(20)};
};

// The cores this process may use: the CPU affinity mask, capped by a cgroup v2 CPU quota
// (cpu.max) so that a pod limited to one CPU does not start a thread per node core.
unsigned available_cores();

class Server {
  public:
    Server(ServerSettings settings, RequestHandler& handler, observability::Metrics& metrics);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Starts the I/O threads and the SIGTERM/SIGINT handler.
    void start();

    // Starts accepting on `address`; returns the bound port (useful with port 0). Throws
    // std::runtime_error naming the address when it cannot be bound.
    std::uint16_t listen_tls(const ListenAddress& address, TlsContextStore& tls, ListenerRole role);
    std::uint16_t listen_plain(const ListenAddress& address, ListenerRole role);

    // Waits for SIGTERM or SIGINT, at most `timeout`; true once one has arrived.
    bool wait_for_stop_signal(std::chrono::milliseconds timeout);
    int stop_signal() const noexcept { return signal_.load(); }

    // Stops accepting, closes idle keep-alive connections, lets requests in flight finish (their
    // connections close after the response) and waits for them up to the drain timeout. Returns
    // how many connections were still open when it gave up.
    std::size_t drain();

    // Stops the I/O threads (connections still open are cut) and joins them.
    void stop();

  private:
    // SIGTERM/SIGINT start the drain; a second one exits at once.
    void wait_for_signal();
    std::uint16_t listen(const ListenAddress& address, TlsContextStore* tls, ListenerRole role,
                         std::size_t max_connections);

    ServerSettings settings_;
    RequestHandler& handler_;
    observability::Metrics& metrics_;
    // Declared before loops_: destroying the loops destroys the handlers they still hold, hence the
    // sessions, whose slots point into these.
    std::list<ListenerContext> contexts_; // stable addresses: sessions hold references
    std::mutex mutex_;
    std::condition_variable signalled_;
    std::atomic<int> signal_{0};
    IoPool loops_; // one per I/O thread
    std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    boost::asio::signal_set signals_;
    std::vector<std::shared_ptr<Listener>> listeners_;
    std::vector<std::thread> threads_;
};

} // namespace mtlsguard::https
