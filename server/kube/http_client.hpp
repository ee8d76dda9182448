// A verified HTTPS client for the Kubernetes API on Boost.Beast: whole and streamed GETs, and
// writes.
#pragma once

#include "server/kube/config.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boost::asio::ssl {
class context;
} // namespace boost::asio::ssl

namespace mtlsguard::kube {

enum class HttpMethod : std::uint8_t { Get, Post, Put, Patch };

struct HttpRequest {
    std::string
        target; // path and query, e.g. "/api/v1/pods?limit=500"; the server's prefix is added
    std::string accept = "application/json";
    HttpMethod method = HttpMethod::Get;           // send(); get() and stream() always GET
    std::string body;                              // send() with POST, PUT or PATCH
    std::string content_type = "application/json"; // of the body, e.g. application/json-patch+json
    // Applies to each step on its own: resolving, connecting, the TLS handshake, writing the
    // request, reading the response (the whole body for get(); each read for stream()).
    std::chrono::milliseconds timeout{std::chrono::seconds(60)};
    // stream(): how long the body may stay silent between two reads (a watch's timeoutSeconds
    // plus a margin); `timeout` when unset.
    std::optional<std::chrono::milliseconds> stream_idle_timeout;
    std::size_t body_limit = std::size_t{64} << 20; // get(); for stream(), a non-200 answer's body
    // get(): the answer's body is read into this string's capacity (a list's pages are alike in
    // size: one buffer serves them all, without fresh pages to fault in for each), and keeps
    // `body_padding` bytes of spare capacity past its end (a parser may read that far).
    std::string body_storage;
    std::size_t body_padding = 0;
};

struct HttpResult {
    boost::system::error_code error; // set when no complete answer arrived (then status is 0)
    std::string error_detail;        // the step and the cause, for logs
    unsigned status = 0;
    std::string body;
    std::optional<std::chrono::seconds> retry_after; // the Retry-After header, in seconds

    bool ok() const noexcept { return !error && status == 200; }
    // A 2xx answer (201 Created for a POST).
    bool success() const noexcept { return !error && status >= 200 && status < 300; }
    // "connect: Connection refused", "HTTP 429 TooManyRequests: ..." (the Status message if any)
    std::string describe() const;
};

// Parses a Retry-After value given in seconds (what the API server sends); an HTTP date, a
// negative or unreadable value is nullopt. Large values are capped at ten minutes.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) noexcept;

struct StreamHandlers {
    std::function<void()> on_open;                 // 200 received; the body follows
    std::function<bool(std::string_view)> on_data; // the next piece of the body; false: stop
    std::function<void(HttpResult)> on_end;        // the end: clean (ok()), an error, or non-200
};

// One request in flight. cancel() closes its connection; no handler runs after it. Call it on the
// client's executor.
class HttpCall {
  public:
    virtual ~HttpCall() = default;
    virtual void cancel() = 0;
};

// Sends requests to one API server. Requests in flight never share a connection, so that a
// watch never waits behind another request; a connection whose answer ended cleanly is kept
// (HTTP/1.1 keep-alive) for a later GET, and a GET that finds its kept connection closed by the
// server goes again on a new one. Handlers run on the executor given to the constructor (a
// strand: the client is not thread-safe otherwise).
class ApiClient {
  public:
    // Throws ConfigError for a bad server URL or unusable CA, certificate or key.
    ApiClient(boost::asio::any_io_executor executor, const ClusterConfig& config);
    ~ApiClient();
    ApiClient(const ApiClient&) = delete;
    ApiClient& operator=(const ApiClient&) = delete;

    // Reads the whole answer (up to request.body_limit) and calls `done` once.
    std::shared_ptr<HttpCall> get(HttpRequest request, std::function<void(HttpResult)> done);
    // The same with request.method and request.body (GET, or a write: POST, PUT, PATCH).
    std::shared_ptr<HttpCall> send(HttpRequest request, std::function<void(HttpResult)> done);
    // Reads the answer piece by piece as it arrives (a watch). A non-200 answer is read whole and
    // given to on_end.
    std::shared_ptr<HttpCall> stream(const HttpRequest& request, StreamHandlers handlers);

    // The server answered 401: the token may have rotated; re-read its file before the next
    // request.
    void token_rejected();
    const std::string& server() const noexcept { return server_; }
    // Connections kept for the next request (for tests and metrics).
    std::size_t idle_connections() const;

    struct Target; // resolved connection settings, shared with calls in flight
    class Pool;    // kept connections, shared with calls in flight

  private:
    boost::asio::any_io_executor executor_;
    std::string server_;
    std::shared_ptr<const Target> target_;
    std::shared_ptr<BearerToken> token_;
    std::shared_ptr<Pool> pool_;
};

} // namespace mtlsguard::kube
