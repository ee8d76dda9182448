// Accepts connections on one address and runs one session per connection: TLS detection, the
// handshake, then HTTP/1.1 keep-alive requests, each step under a timeout (the Beast async-ssl
// server pattern).
#pragma once

#include "server/https/body_budget.hpp"
#include "server/https/connection_tracker.hpp"
#include "server/https/http_routing.hpp"
#include "server/https/io_pool.hpp"
#include "server/https/request_handler.hpp"
#include "server/observability/metrics.hpp"
#include "server/tls/tls_context.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>

namespace mtlsguard::https {

struct SessionSettings {
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds body_timeout{std::chrono::seconds(30)};
    std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(120)}; // see ServeOptions
    // How long a closing connection waits for the peer's TLS close_notify.
    std::chrono::milliseconds close_timeout{std::chrono::seconds(2)};
    std::uint32_t header_limit = 16 * 1024;
    std::uint64_t body_limit = std::uint64_t{8} << 20;
};

// Everything the sessions of one listener share. Owned by the Server, which outlives them.
struct ListenerContext {
    ListenerContext(SessionSettings settings_, ListenerRole role_, RequestHandler& handler_,
                    observability::Metrics& metrics_, TlsContextStore* tls_,
                    std::size_t max_connections)
        : settings(settings_), role(role_), handler(handler_), metrics(metrics_), tls(tls_),
          tracker(max_connections), bodies(body_budget_for(settings_.body_limit)) {}

    SessionSettings settings;
    ListenerRole role;
    RequestHandler& handler;
    observability::Metrics& metrics;
    TlsContextStore* tls; // null: plain HTTP (the metrics port)
    ConnectionTracker tracker;
    BodyBudget bodies; // request bodies being read at once, in bytes

    static std::uint64_t body_budget_for(std::uint64_t body_limit) {
        return body_limit > UINT64_MAX / max_bodies_in_memory ? UINT64_MAX
                                                              : body_limit * max_bodies_in_memory;
    }
};

class Listener : public std::enable_shared_from_this<Listener> {
  public:
    // Binds and listens; throws boost::system::system_error when the address cannot be used.
    // Accepts on the pool's first loop and gives each connection the pool's next one.
    Listener(IoPool& loops, const boost::asio::ip::tcp::endpoint& endpoint,
             ListenerContext& context);

    void run();
    // Stops accepting (from any thread); open connections are left to the drain.
    void stop();
    std::uint16_t port() const noexcept { return port_; }

  private:
    void do_accept();
    void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

    IoPool& loops_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    ListenerContext& context_;
    std::uint16_t port_ = 0;
};

} // namespace mtlsguard::https
