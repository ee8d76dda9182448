// Fuzz target: arbitrary bytes as what a client sends on a webhook connection once TLS is up,
// read as a session reads them: Beast's request parser with the server's limits, the server's
// header checks and routing, then its request handler on the demo snapshot, request after request
// as on a kept-alive connection. No sockets. Asserts: only the statuses the server can send, each
// with the body it promises, and a response Beast can write.
#include "server/https/http_routing.hpp"
#include "server/https/listener.hpp"
#include "server/https/request_handler.hpp"
#include "server/observability/logging.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/snapshot_files.hpp"
#include "server/snapshot/snapshot_reloader.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace https = mtlsguard::https;
using error_code = boost::system::error_code;

// Requests read from one input at most: a kept-alive connection is bounded by its input anyway.
constexpr int max_requests = 16;

struct Fixture {
    mtlsguard::observability::Metrics metrics;
    https::SnapshotStore store;
    std::optional<https::RequestHandler> handler;
};
Fixture* fixture = nullptr;

[[noreturn]] void fail(const char* why, unsigned status, const std::string& body) {
    std::fprintf(stderr, "fuzz_http_request: %s (status %u): %s\n", why, status, body.c_str());
    std::abort();
}

std::string_view view(beast::string_view s) {
    return {s.data(), s.size()};
}

// What every response must satisfy: a status the server can send for that endpoint, the body
// that goes with it, and a message Beast can serialize.
void check_response(const https::Response& response, std::optional<https::Endpoint> endpoint) {
    const unsigned status = response.result_int();
    const std::string& body = response.body();
    if (!endpoint) {
        // Refused before the body: routing (404, 405), media type (415) or the read (400, 413,
        // 431); always {"error": "..."}.
        if (status != 400 && status != 404 && status != 405 && status != 413 && status != 415 &&
            status != 431)
            fail("an error status the server does not send", status, body);
        const auto parsed = nlohmann::json::parse(body, nullptr, false);
        if (!parsed.is_object() || !parsed.contains("error") || !parsed["error"].is_string())
            fail("an error response without {\"error\": ...}", status, body);
        if (status == 405 && response[http::field::allow].empty())
            fail("a 405 without Allow", status, body);
    } else if (*endpoint == https::Endpoint::Validate) {
        // The snapshot is loaded and the server is not draining: 200 or 400, never 5xx.
        if (status != 200 && status != 400)
            fail("/validate answered with a status other than 200 or 400", status, body);
        const auto parsed = nlohmann::json::parse(body, nullptr, false);
        if (!parsed.is_object())
            fail("/validate answered with something that is not a JSON object", status, body);
        if (status == 200 &&
            (!parsed.contains("response") || !parsed["response"].is_object() ||
             !parsed["response"].contains("uid") || !parsed["response"]["allowed"].is_boolean()))
            fail("a 200 from /validate that is not an AdmissionReview response", status, body);
    } else if (status != 200) {
        fail("a probe or /metrics did not answer 200", status, body);
    }
    if (response[http::field::content_type].empty())
        fail("a response without Content-Type", status, body);
    std::ostringstream wire;
    wire << response;
    if (wire.str().rfind("HTTP/1.", 0) != 0)
        fail("a response Beast did not write as HTTP/1.x", status, body);
}

// The peer has closed: what Beast's read does at EOF.
error_code end_of_input(http::request_parser<http::string_body>& parser) {
    if (!parser.got_some())
        return http::error::end_of_stream;
    error_code ec;
    parser.put_eof(ec);
    return ec || parser.is_done() ? ec : error_code(http::error::partial_message);
}

// Puts the buffered bytes into the parser until it stops at the end of the header (or of the
// message). The whole input is buffered from the start, so needing more means the input ended.
error_code parse(http::request_parser<http::string_body>& parser, beast::flat_buffer& buffer,
                 bool until_header) {
    while (until_header ? !parser.is_header_done() : !parser.is_done()) {
        if (buffer.size() == 0)
            return end_of_input(parser);
        error_code ec;
        const std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == http::error::need_more) {
            if (used == 0)
                return end_of_input(parser);
            continue;
        }
        if (ec)
            return ec;
    }
    return {};
}

// One connection: the bytes as the client's whole output, read request after request.
void run_session(std::string_view input, const https::SessionSettings& settings,
                 https::ListenerRole role) {
    beast::flat_buffer buffer;
    auto space = buffer.prepare(input.size());
    std::copy_n(input.data(), input.size(), static_cast<char*>(space.data()));
    buffer.commit(input.size());

    for (int n = 0; n < max_requests && buffer.size() > 0; ++n) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(settings.header_limit);
        parser.body_limit(settings.body_limit);

        error_code ec = parse(parser, buffer, true);
        if (ec) {
            const auto reply = https::read_error_reply(ec, settings.body_limit);
            if (reply) {
                const unsigned version = parser.is_header_done() ? parser.get().version() : 11;
                check_response(
                    fixture->handler->error_response(reply->status, reply->reason, version), {});
            }
            return; // the server closes after an unreadable request
        }
        const auto& header = parser.get();
        const https::Route route =
            https::check_request_header(view(header.method_string()), view(header.target()),
                                        view(header[http::field::content_type]), role);
        const bool body_pending = !parser.is_done();
        if (!route.endpoint) {
            if (route.status != 404 && route.status != 405 && route.status != 415)
                fail("routing refused with an unexpected status", route.status, "");
            check_response(fixture->handler->error_response(route.status, route.reason,
                                                            header.version(), route.allow),
                           {});
            if (body_pending || !header.keep_alive())
                return;
            continue;
        }
        parser.eager(true);
        ec = parse(parser, buffer, false);
        if (ec) {
            if (const auto reply = https::read_error_reply(ec, settings.body_limit))
                check_response(fixture->handler->error_response(reply->status, reply->reason,
                                                                parser.get().version()),
                               {});
            return;
        }
        const https::Request request = parser.release();
        const https::Response response = fixture->handler->respond(*route.endpoint, request);
        check_response(response, route.endpoint);
        if (!request.keep_alive())
            return;
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    mtlsguard::observability::configure_logging(mtlsguard::observability::LogFormat::Text);
    // One decision line per request would drown the fuzzer's output; the logging is tested apart.
    for (const char* component : {"serve", "http", "tls", "snapshot", "admission"})
        mtlsguard::observability::component_logger(component).set_level(spdlog::level::off);
    fixture = new Fixture;
    mtlsguard::input::SnapshotSource source;
    source.paths = {MTLS_GUARD_SOURCE_DIR "/deploy/demo/mesh.yaml"};
    fixture->store.publish(mtlsguard::input::load_snapshot(source).snapshot);
    fixture->store.publish(std::make_shared<const mtlsguard::admission::AdmissionSettings>());
    fixture->handler.emplace(fixture->store, fixture->metrics);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // The webhook port with its default limits; then a small body limit, so that chunked bodies
    // over it are reachable with short inputs; then the plain metrics port.
    https::SessionSettings defaults;
    run_session(input, defaults, https::ListenerRole{});
    https::SessionSettings small = defaults;
    small.header_limit = 512;
    small.body_limit = 1024;
    run_session(input, small, https::ListenerRole{});
    run_session(input, defaults, https::ListenerRole{false, true});
    return 0;
}
