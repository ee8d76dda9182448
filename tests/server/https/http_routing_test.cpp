// Unit tests of the webhook's pure HTTP decisions: routes, methods, media types, listen addresses.
#include "server/https/http_routing.hpp"
#include "server/https/request_handler.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mtlsguard::https;

namespace {
constexpr ListenerRole webhook_with_metrics{true, true};
constexpr ListenerRole webhook_only{true, false};
constexpr ListenerRole metrics_port{false, true};
} // namespace

TEST_CASE("Each endpoint answers its method and the query string does not matter") {
    const auto [method, target, endpoint] = GENERATE(table<const char*, const char*, Endpoint>({
        {"POST", "/validate", Endpoint::Validate},
        {"POST", "/validate?timeout=10s", Endpoint::Validate},
        {"POST", "/validate?timeout=30s#x", Endpoint::Validate},
        {"GET", "/healthz", Endpoint::Healthz},
        {"GET", "/readyz", Endpoint::Readyz},
        {"GET", "/metrics", Endpoint::Metrics},
    }));
    const Route route = route_request(method, target, webhook_with_metrics);
    REQUIRE(route.endpoint);
    CHECK(*route.endpoint == endpoint);
    CHECK(route.status == 200);
}

TEST_CASE("A wrong method gets 405 with the method that would work") {
    const auto [method, target, allow] = GENERATE(table<const char*, const char*, const char*>({
        {"GET", "/validate", "POST"},
        {"PUT", "/validate", "POST"},
        {"post", "/validate", "POST"},
        {"POST", "/healthz", "GET"},
        {"DELETE", "/readyz", "GET"},
        {"POST", "/metrics", "GET"},
    }));
    const Route route = route_request(method, target, webhook_with_metrics);
    CHECK_FALSE(route.endpoint);
    CHECK(route.status == 405);
    CHECK(route.allow == allow);
    CHECK_FALSE(route.reason.empty());
}

TEST_CASE("Unknown paths get 404, and each port serves only its own endpoints") {
    CHECK(route_request("POST", "/", webhook_with_metrics).status == 404);
    CHECK(route_request("POST", "/validate/", webhook_with_metrics).status == 404);
    CHECK(route_request("POST", "/Validate", webhook_with_metrics).status == 404);
    CHECK(route_request("GET", "http://example.com/healthz", webhook_with_metrics).status == 404);
    CHECK(route_request("GET", "", webhook_with_metrics).status == 404);
    // With a separate metrics port, the TLS port has no /metrics and the plain port no /validate.
    CHECK(route_request("GET", "/metrics", webhook_only).status == 404);
    CHECK(route_request("POST", "/validate", metrics_port).status == 404);
    CHECK(route_request("GET", "/metrics", metrics_port).endpoint == Endpoint::Metrics);
    CHECK(route_request("GET", "/readyz", metrics_port).endpoint == Endpoint::Readyz);
}

TEST_CASE("target_path drops the query and the fragment") {
    CHECK(target_path("/validate?timeout=10s") == "/validate");
    CHECK(target_path("/validate#frag") == "/validate");
    CHECK(target_path("/validate") == "/validate");
    CHECK(target_path("?x") == "");
}

TEST_CASE("Content-Type must be application/json, parameters and case allowed") {
    CHECK(is_json_content_type("application/json"));
    CHECK(is_json_content_type("application/json; charset=utf-8"));
    CHECK(is_json_content_type("Application/JSON;charset=UTF-8"));
    CHECK(is_json_content_type("  application/json  "));
    CHECK_FALSE(is_json_content_type(""));
    CHECK_FALSE(is_json_content_type("text/plain"));
    CHECK_FALSE(is_json_content_type("application/yaml"));
    CHECK_FALSE(is_json_content_type("application/json-patch+json"));
    CHECK_FALSE(is_json_content_type("application/jsonx"));
    CHECK_FALSE(is_json_content_type("application/ json"));
}

TEST_CASE("After the header: the route decides first, then /validate must be JSON (415)") {
    const Route ok = check_request_header("POST", "/validate", "application/json; charset=utf-8",
                                          webhook_with_metrics);
    REQUIRE(ok.endpoint);
    CHECK(*ok.endpoint == Endpoint::Validate);
    const Route wrong_type =
        check_request_header("POST", "/validate?timeout=10s", "text/plain", webhook_with_metrics);
    CHECK_FALSE(wrong_type.endpoint);
    CHECK(wrong_type.status == 415);
    CHECK(check_request_header("POST", "/validate", "", webhook_with_metrics).status == 415);
    // A wrong method is told so before its media type is looked at; probes need no Content-Type.
    CHECK(check_request_header("GET", "/validate", "text/plain", webhook_with_metrics).status ==
          405);
    CHECK(check_request_header("GET", "/healthz", "", webhook_with_metrics).endpoint ==
          Endpoint::Healthz);
    CHECK(check_request_header("POST", "/validate", "application/json", metrics_port).status ==
          404);
}

TEST_CASE("A request that cannot be read is answered 413, 431 or 400, or not at all") {
    namespace http = boost::beast::http;
    const auto body = read_error_reply(http::error::body_limit, 1024);
    REQUIRE(body);
    CHECK(body->status == 413);
    CHECK(body->reason.find("1024") != std::string::npos);
    CHECK(read_error_reply(http::error::header_limit, 1024)->status == 431);
    CHECK(read_error_reply(http::error::bad_method, 1024)->status == 400);
    CHECK(read_error_reply(http::error::bad_content_length, 1024)->status == 400);
    // Nobody to answer: the peer closed, timed out, reset, or left mid-message.
    CHECK_FALSE(read_error_reply(http::error::end_of_stream, 1024));
    CHECK_FALSE(read_error_reply(http::error::partial_message, 1024));
    CHECK_FALSE(read_error_reply(boost::beast::error::timeout, 1024));
    CHECK_FALSE(read_error_reply(boost::asio::error::connection_reset, 1024));
    CHECK_FALSE(read_error_reply(boost::asio::error::eof, 1024));
}

TEST_CASE("Expect: 100-continue is recognised in any case") {
    CHECK(expects_continue("100-continue"));
    CHECK(expects_continue(" 100-Continue "));
    CHECK_FALSE(expects_continue(""));
    CHECK_FALSE(expects_continue("200-ok"));
}

TEST_CASE("Error bodies are one JSON object with the reason, whatever the reason holds") {
    const auto body = nlohmann::json::parse(error_body("bad \"thing\"\n\x01"));
    CHECK(body.size() == 1);
    CHECK(body.at("error") == "bad \"thing\"\n\x01");
    // Invalid UTF-8 must not make the body invalid JSON.
    CHECK_NOTHROW(nlohmann::json::parse(error_body("\xff\xfe")));
}

TEST_CASE("Listen addresses are ADDR:PORT with IPv6 in brackets") {
    const auto v4 = parse_listen_address("0.0.0.0:8443");
    REQUIRE(v4);
    CHECK(v4->host == "0.0.0.0");
    CHECK(v4->port == 8443);
    const auto any_port = parse_listen_address("127.0.0.1:0");
    REQUIRE(any_port);
    CHECK(any_port->port == 0);
    const auto v6 = parse_listen_address("[::1]:9090");
    REQUIRE(v6);
    CHECK(v6->host == "::1");
    CHECK(v6->port == 9090);
    const auto bare = parse_listen_address(":8443");
    REQUIRE(bare);
    CHECK(bare->host == "0.0.0.0");

    const auto bad =
        GENERATE(as<std::string>{}, "8443", "0.0.0.0", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:-1",
                 "0.0.0.0:84x3", "::1:8443", "localhost:8443", "[::1]8443", "0.0.0.0:8443 ");
    CAPTURE(bad);
    CHECK_FALSE(parse_listen_address(bad));
}
