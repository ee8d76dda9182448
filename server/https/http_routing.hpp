// The webhook's pure HTTP decisions: which endpoint a request reaches, media types, error bodies,
// listen addresses. No sockets, so unit tests cover them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mtlsguard::https {

enum class Endpoint : std::uint8_t { Validate, Healthz, Readyz, Metrics };

// What one listener serves: the TLS webhook port (with /metrics unless a separate metrics port
// exists), or the plain-HTTP metrics port (probes and /metrics, never /validate).
struct ListenerRole {
    bool serves_validate = true;
    bool serves_metrics = true;
};

struct Route {
    std::optional<Endpoint> endpoint; // set when the request may go on
    unsigned status = 200;            // 404 or 405 when `endpoint` is empty
    std::string_view allow;           // the Allow header of a 405
    std::string_view reason;          // for the {"error": ...} body
};

// The path of a request target, without the query (?timeout=10s) or fragment.
std::string_view target_path(std::string_view target) noexcept;

// POST /validate; GET /healthz, /readyz, /metrics. Anything else: 404, or 405 with Allow.
Route route_request(std::string_view method, std::string_view target, ListenerRole role) noexcept;

// Whether a Content-Type header names application/json, parameters (charset) allowed, any case.
bool is_json_content_type(std::string_view value) noexcept;

// What a session does once a request header is in: route it, and refuse a /validate body that is
// not JSON (415) before reading it. One function for the listener and the HTTP fuzz target.
Route check_request_header(std::string_view method, std::string_view target,
                           std::string_view content_type, ListenerRole role) noexcept;

// Whether an Expect header asks for 100-continue.
bool expects_continue(std::string_view value) noexcept;

// {"error": "<reason>"}, the body of every error response.
std::string error_body(std::string_view reason);

struct ListenAddress {
    std::string host; // an IPv4 or IPv6 literal
    std::uint16_t port = 0;
};

// "0.0.0.0:8443", "127.0.0.1:0", "[::]:8443" or ":8443" (all IPv4 addresses); nullopt otherwise.
std::optional<ListenAddress> parse_listen_address(std::string_view text);

} // namespace mtlsguard::https
