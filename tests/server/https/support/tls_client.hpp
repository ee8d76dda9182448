// Loopback clients of `mtls-guard serve` for the tests and the soak: a verifying TLS client and a
// plain TCP one, every operation under a timeout. Compiled once (tls_client.cpp), with no Catch2,
// so that the Beast client code is instantiated in one object file instead of in every user.
#pragma once

#include "tests/support/metrics_text.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mtlsguard::serve_testing {

using error_code = boost::system::error_code;
constexpr std::chrono::milliseconds io_timeout{5000};

struct Reply {
    unsigned status = 0;
    std::string body;
    std::string content_type;
    std::string allow;
    std::string connection;
    bool keep_alive = true;
};

struct ClientOptions {
    std::vector<std::filesystem::path> trusted{}; // CA files
    std::optional<std::filesystem::path> certificate{};
    std::optional<std::filesystem::path> key{};
    bool tls10_only = false;
};

// Whether `ec` says the peer closed the connection (cleanly or not).
bool is_closed(const error_code& ec);

// Whether the peer of socket `fd` has closed its side (FIN or reset) within `wait`.
bool hung_up(int fd, std::chrono::milliseconds wait);

// GET `target` and POST `body` to `target`, for Host localhost.
boost::beast::http::request<boost::beast::http::string_body> get(const std::string& target);
boost::beast::http::request<boost::beast::http::string_body>
post(const std::string& body, const std::string& target = "/validate?timeout=10s",
     const std::string& content_type = "application/json");

// A TLS client that verifies the server against the given CAs and the name localhost. Every
// operation runs under a timeout on its own io_context.
class TlsClient {
  public:
    using Request = boost::beast::http::request<boost::beast::http::string_body>;

    TlsClient(std::uint16_t port, const ClientOptions& options);

    error_code connect();
    bool connected() const { return stream_.has_value(); }
    // Forgets the connection without a TLS close_notify (as a client that gives up does).
    void drop() { stream_.reset(); }

    error_code send(const Request& request);
    error_code write_raw(const std::string& bytes);
    error_code read(Reply& reply, std::chrono::milliseconds timeout = io_timeout);

    // One request and its reply; throws std::runtime_error on any transport error (which fails
    // the test case that called it).
    Reply exchange(const Request& request);
    // The same without throwing; drops the connection when the server said it closes it.
    error_code exchange(const Request& request, Reply& reply);

    // Waits until the server closes the connection: the error that says so, or a timeout error if
    // it stayed open for `timeout`.
    error_code wait_closed(std::chrono::milliseconds timeout);

    // Whether the server has closed its side (FIN or reset) within `wait`, without reading: unread
    // TLS 1.3 session tickets would make a readability check useless, POLLRDHUP is not fooled.
    bool peer_hung_up(std::chrono::milliseconds wait);

    // SHA-256 of the certificate the server presented.
    std::string peer_fingerprint();

    void close();

  private:
    using Handler = std::function<void(error_code)>;
    error_code run(const std::function<void(Handler)>& start,
                   std::chrono::milliseconds timeout = io_timeout);

    std::uint16_t port_;
    boost::asio::io_context io_;
    boost::asio::ssl::context ctx_;
    std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> stream_;
    boost::beast::flat_buffer buffer_;
};

// A plain TCP client: for plain HTTP on the TLS port and for clients that say nothing.
class PlainClient {
  public:
    explicit PlainClient(std::uint16_t port);

    error_code connect();
    error_code write_raw(const std::string& bytes);
    bool peer_hung_up(std::chrono::milliseconds wait);
    void close();

    // Everything the server sends until it closes (or `timeout`).
    std::pair<std::string, error_code> read_until_closed(std::chrono::milliseconds timeout);

  private:
    using Handler = std::function<void(error_code)>;
    error_code run(const std::function<void(Handler)>& start,
                   std::chrono::milliseconds timeout = io_timeout);

    std::uint16_t port_;
    boost::asio::io_context io_;
    boost::beast::tcp_stream stream_;
};

using mtlsguard::testing::sample; // one series of /metrics (tests/support/metrics_text.hpp)

} // namespace mtlsguard::serve_testing
