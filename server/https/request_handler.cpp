// What the webhook answers on each endpoint, once a request has been read: /validate through
// handle_review, the probes, /metrics, and the short JSON error responses.
#include "server/https/request_handler.hpp"

#include "server/admission/review_endpoint.hpp"
#include "server/observability/logging.hpp"

#include <boost/beast/http/error.hpp>
#include <chrono>

namespace mtlsguard::https {
namespace http = boost::beast::http;

std::optional<ReadErrorReply> read_error_reply(const boost::system::error_code& ec,
                                               std::uint64_t body_limit) {
    if (ec == http::error::body_limit)
        return ReadErrorReply{413,
                              "the body is larger than " + std::to_string(body_limit) + " bytes"};
    if (ec == http::error::header_limit)
        return ReadErrorReply{431, "the request header is too large"};
    if (ec.category() != http::make_error_code(http::error::bad_method).category())
        return std::nullopt; // eof, timeout, reset, cancelled, TLS errors
    if (ec == http::error::end_of_stream || ec == http::error::partial_message)
        return std::nullopt;
    return ReadErrorReply{400, "malformed HTTP request: " + ec.message()};
}

RequestHandler::RequestHandler(SnapshotStore& store, observability::Metrics& metrics)
    : store_(store), metrics_(metrics) {}

Response RequestHandler::json_response(unsigned status, std::string body, unsigned version) {
    Response response{static_cast<http::status>(status), version};
    response.set(http::field::server, "mtls-guard");
    response.set(http::field::content_type, "application/json");
    response.set(http::field::cache_control, "no-store");
    response.body() = std::move(body);
    response.prepare_payload();
    if (status >= 400)
        metrics_.record_http_error(status);
    return response;
}

Response RequestHandler::error_response(unsigned status, std::string_view reason, unsigned version,
                                        std::string_view allow) {
    Response response = json_response(status, error_body(reason), version);
    if (!allow.empty())
        response.set(http::field::allow, boost::beast::string_view(allow.data(), allow.size()));
    return response;
}

Response RequestHandler::validate(const Request& request) {
    const auto snapshot = store_.snapshot();
    if (!snapshot)
        return error_response(503, "the cluster snapshot has not loaded yet", request.version());
    const auto settings = store_.settings();
    const auto started = std::chrono::steady_clock::now();
    server::ReviewReply reply = server::handle_review(*snapshot, request.body(), *settings);
    const auto elapsed = std::chrono::steady_clock::now() - started;
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const auto latency_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    metrics_.record_admission(reply.decision, reply.status, seconds);
    observability::log_decision(reply.decision, reply.status, latency_us);
    return json_response(static_cast<unsigned>(reply.status), std::move(reply.body),
                         request.version());
}

Response RequestHandler::respond(Endpoint endpoint, const Request& request) {
    switch (endpoint) {
    case Endpoint::Validate:
        return validate(request);
    case Endpoint::Healthz:
        return json_response(200, R"({"status":"ok"})", request.version());
    case Endpoint::Readyz:
        if (draining())
            return error_response(503, "shutting down", request.version());
        if (!store_.ready())
            return error_response(503, "the cluster snapshot has not loaded yet",
                                  request.version());
        return json_response(200, R"({"status":"ready"})", request.version());
    case Endpoint::Metrics:
        break;
    }
    Response response{http::status::ok, request.version()};
    response.set(http::field::server, "mtls-guard");
    response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    response.set(http::field::cache_control, "no-store");
    response.body() = metrics_.render();
    response.prepare_payload();
    return response;
}

} // namespace mtlsguard::https
