// The webhook's pure HTTP decisions: which endpoint a request reaches, media types, error bodies,
// listen addresses. No sockets, so unit tests cover them directly.
#include "server/https/http_routing.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

namespace mtlsguard::https {
namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) {
            return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
        };
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

bool is_ip_literal_char(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
           c == ':';
}

} // namespace

std::string_view target_path(std::string_view target) noexcept {
    const auto end = target.find_first_of("?#");
    return end == std::string_view::npos ? target : target.substr(0, end);
}

Route route_request(std::string_view method, std::string_view target, ListenerRole role) noexcept {
    const std::string_view path = target_path(target);
    Route route;
    std::optional<Endpoint> endpoint;
    if (path == "/validate" && role.serves_validate)
        endpoint = Endpoint::Validate;
    else if (path == "/healthz")
        endpoint = Endpoint::Healthz;
    else if (path == "/readyz")
        endpoint = Endpoint::Readyz;
    else if (path == "/metrics" && role.serves_metrics)
        endpoint = Endpoint::Metrics;
    if (!endpoint) {
        route.status = 404;
        route.reason = "no such path";
        return route;
    }
    const std::string_view wanted = *endpoint == Endpoint::Validate ? "POST" : "GET";
    // Methods are case-sensitive (RFC 9110): "post" is not POST.
    if (method != wanted) {
        route.status = 405;
        route.allow = wanted;
        route.reason = *endpoint == Endpoint::Validate ? "use POST" : "use GET";
        return route;
    }
    route.endpoint = endpoint;
    return route;
}

bool is_json_content_type(std::string_view value) noexcept {
    const auto semicolon = value.find(';');
    return iequals(trim(value.substr(0, semicolon)), "application/json");
}

Route check_request_header(std::string_view method, std::string_view target,
                           std::string_view content_type, ListenerRole role) noexcept {
    Route route = route_request(method, target, role);
    if (route.endpoint == Endpoint::Validate && !is_json_content_type(content_type)) {
        route.endpoint.reset();
        route.status = 415;
        route.reason = "Content-Type must be application/json";
    }
    return route;
}

bool expects_continue(std::string_view value) noexcept {
    return iequals(trim(value), "100-continue");
}

std::string error_body(std::string_view reason) {
    return nlohmann::json{{"error", std::string(reason)}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    std::string_view host = text.substr(0, colon);
    const std::string_view port_text = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string_view::npos)
        return std::nullopt; // an IPv6 address needs brackets: [::1]:8443
    if (host.empty())
        host = "0.0.0.0";
    for (const char c : host)
        if (!is_ip_literal_char(c))
            return std::nullopt; // host names would need a resolver; listen on an address
    unsigned port = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
    if (port_text.empty() || ec != std::errc{} || ptr != end || port > 65535)
        return std::nullopt;
    return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

} // namespace mtlsguard::https
