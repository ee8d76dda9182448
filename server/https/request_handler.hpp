// What the webhook answers on each endpoint, once a request has been read: /validate through
// handle_review, the probes, /metrics, and the short JSON error responses.
#pragma once

#include "server/https/http_routing.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/snapshot_reloader.hpp"

#include <atomic>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace mtlsguard::https {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// The answer to a request that could not be read: 413 (body over `body_limit`), 431 (header too
// large) or 400 (malformed HTTP), each followed by closing the connection. Nothing when the peer
// left, stalled or reset: there is nobody to read an answer.
struct ReadErrorReply {
    unsigned status = 400;
    std::string reason;
};
std::optional<ReadErrorReply> read_error_reply(const boost::system::error_code& ec,
                                               std::uint64_t body_limit);

class RequestHandler {
  public:
    RequestHandler(SnapshotStore& store, observability::Metrics& metrics);

    // The response to a complete request routed to `endpoint`; keep-alive is left to the caller.
    Response respond(Endpoint endpoint, const Request& request);

    // {"error": reason} with `status` (and Allow for a 405); counted in the HTTP error metric.
    Response error_response(unsigned status, std::string_view reason, unsigned version,
                            std::string_view allow = {});

    // After SIGTERM: /readyz answers 503 and connections close after their current response.
    void set_draining() noexcept { draining_.store(true, std::memory_order_release); }
    bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }

  private:
    Response validate(const Request& request);
    Response json_response(unsigned status, std::string body, unsigned version);

    SnapshotStore& store_;
    observability::Metrics& metrics_;
    std::atomic<bool> draining_{false};
};

} // namespace mtlsguard::https
