// Tests of server/boost_assert.cpp: Beast parses an empty chunked body read a byte at a time in
// builds with Boost's assertions on, as a watch that ends without events arrives.
#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace http = boost::beast::http;

namespace {

// Feeds `wire` to a response parser `step` bytes at a time, keeping what it did not use, as
// beast::http::read_some does; returns the body, or nothing if the parser failed or wants more.
std::optional<std::string> parse_in_steps(std::string_view wire, std::size_t step) {
    http::response_parser<http::string_body> parser;
    boost::beast::flat_buffer buffer;
    std::size_t sent = 0;
    while (!parser.is_done() && sent < wire.size()) {
        const std::size_t n = std::min(step, wire.size() - sent);
        auto space = buffer.prepare(n);
        wire.copy(static_cast<char*>(space.data()), n, sent);
        buffer.commit(n);
        sent += n;
        // put() stops after the header, so call it again while it makes progress.
        while (buffer.size() > 0 && !parser.is_done()) {
            boost::system::error_code ec;
            buffer.consume(parser.put(buffer.data(), ec));
            if (ec == http::error::need_more)
                break;
            if (ec)
                return std::nullopt;
        }
    }
    if (!parser.is_done())
        return std::nullopt;
    return parser.get().body();
}

} // namespace

TEST_CASE("Chunked bodies read a byte at a time parse to the end") {
    struct Case {
        std::string_view chunks;
        std::string_view body;
    };
    // The empty one is the case Boost 1.74 asserts on: resuming its final chunk it wants five
    // buffered bytes and has four.
    const Case c = GENERATE(Case{"0\r\n\r\n", ""}, Case{"3\r\nabc\r\n0\r\n\r\n", "abc"});
    const std::string wire = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") +
                             std::string(c.chunks);
    for (std::size_t step = 1; step <= wire.size(); ++step) {
        INFO("body " << c.body.size() << " bytes, bytes per read: " << step);
        CHECK(parse_in_steps(wire, step) == c.body);
    }
}
