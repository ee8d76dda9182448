// Fuzz target: arbitrary bytes as the body of a watch, cut into HTTP chunks at fuzzer-chosen
// points and read as ApiClient::stream reads it (Beast's chunk callback), then split into lines and
// decoded as the Reflector does. Asserts: no crash, every decoded event well formed, and the same
// events whatever the chunk and read boundaries.
#include "server/kube/watch_event.hpp"

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fuzzer/FuzzedDataProvider.h>
#include <string>
#include <vector>

namespace {

namespace http = boost::beast::http;
using mtlsguard::kube::LineSplitter;
using mtlsguard::kube::WatchEventType;
using mtlsguard::kube::WatchLine;

[[noreturn]] void fail(const char* why) {
    std::fprintf(stderr, "fuzz_watch_stream: %s\n", why);
    std::abort();
}

bool is_blank(std::string_view line) {
    return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// What the stream produced, comparable across cut points.
struct Decoded {
    std::vector<std::string> lines; // one summary per line seen
    bool refused = false;           // the splitter refused a line over the limit
    std::size_t pending = 0;        // bytes of an unterminated last line

    bool operator==(const Decoded&) const = default;
};

// The invariants of one decoded line; returns false where the Reflector stops reading.
bool check_line(std::string_view line, Decoded& out) {
    const WatchLine decoded = mtlsguard::kube::decode_watch_line(line);
    switch (decoded.outcome) {
    case WatchLine::Outcome::Blank:
        if (!is_blank(line))
            fail("a line with content decoded as blank");
        out.lines.emplace_back("blank");
        return true;
    case WatchLine::Outcome::Malformed:
        if (decoded.error.empty())
            fail("a malformed line without a reason");
        out.lines.push_back("malformed:" + decoded.error);
        return false;
    case WatchLine::Outcome::Event:
        break;
    }
    const auto& event = decoded.event;
    if (!event.object.is_object())
        fail("an event whose object is not an object");
    std::string summary(mtlsguard::kube::to_string(event.type));
    if (summary == "UNKNOWN")
        fail("an event of no known type");
    if (event.type == WatchEventType::Error) {
        if (event.status.code < 0 || event.status.code > 999)
            fail("an ERROR event with a status code outside 0..999");
        if (!event.resource_version.empty())
            fail("an ERROR event with a resourceVersion");
        out.lines.push_back(summary + ":" + std::to_string(event.status.code) + ":" +
                            event.object.dump());
        return false;
    }
    // A client resumes a watch from this value: it must be the object's own, and not empty.
    if (event.resource_version.empty())
        fail("an event without a resourceVersion");
    const auto metadata = event.object.find("metadata");
    if (metadata == event.object.end() || !metadata->is_object())
        fail("an event without metadata");
    const auto rv = metadata->find("resourceVersion");
    if (rv == metadata->end() || !rv->is_string() ||
        rv->get<std::string>() != event.resource_version)
        fail("the event's resourceVersion is not its object's");
    out.lines.push_back(summary + ":" + event.resource_version + ":" + event.object.dump());
    return true;
}

Decoded feed_pieces(const std::vector<std::string_view>& pieces, std::size_t max_line) {
    Decoded out;
    LineSplitter splitter(max_line);
    bool stopped = false;
    for (const auto piece : pieces) {
        bool by_line = false;
        const bool more = splitter.feed(piece, [&](std::string_view line) {
            if (line.size() > max_line)
                fail("the splitter passed on a line over its limit");
            const bool go_on = check_line(line, out);
            by_line = !go_on;
            return go_on;
        });
        if (!more) {
            out.refused = !by_line;
            stopped = true;
            break;
        }
    }
    if (!stopped)
        out.pending = splitter.pending();
    return out;
}

std::string hex(std::size_t n) {
    char text[32];
    std::snprintf(text, sizeof text, "%zx", n);
    return text;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider provider(data, size);
    const auto max_line = provider.ConsumeIntegralInRange<std::size_t>(1, 1U << 16);
    const auto read_size = provider.ConsumeIntegralInRange<std::size_t>(1, 4096);
    std::vector<std::size_t> cuts(provider.ConsumeIntegralInRange<std::size_t>(0, 32));
    for (auto& cut : cuts)
        cut = provider.ConsumeIntegral<std::uint16_t>();
    const std::string body = provider.ConsumeRemainingBytesAsString();

    // The chunks the API server sent: the body cut at the chosen points.
    for (auto& cut : cuts)
        cut %= body.size() + 1;
    std::sort(cuts.begin(), cuts.end());
    std::vector<std::string_view> chunks;
    std::size_t at = 0;
    for (const auto cut : cuts) {
        chunks.push_back(std::string_view(body).substr(at, cut - at));
        at = cut;
    }
    chunks.push_back(std::string_view(body).substr(at));

    const Decoded whole = feed_pieces({body}, max_line);
    if (feed_pieces(chunks, max_line) != whole)
        fail("the events depend on where the chunks were cut");

    // The same chunks on the wire, parsed as ApiClient::stream parses a watch, `read_size` bytes
    // per read; each read's chunk data goes to the splitter, as on_some hands it to the Reflector.
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    for (const auto chunk : chunks) {
        if (chunk.empty())
            continue; // a zero-size chunk would end the body
        wire += hex(chunk.size()) + "\r\n";
        wire.append(chunk);
        wire += "\r\n";
    }
    wire += "0\r\n\r\n";

    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(boost::none);
    std::string pending;
    auto on_chunk = [&pending](std::uint64_t, boost::beast::string_view chunk,
                               boost::system::error_code&) -> std::size_t {
        pending.append(chunk.data(), chunk.size());
        return chunk.size();
    };
    parser.on_chunk_body(on_chunk);
    std::vector<std::string> reads;
    boost::beast::flat_buffer buffer;
    std::size_t sent = 0;
    while (!parser.is_done()) {
        if (sent == wire.size())
            fail("the parser wants more than the whole chunked body");
        const std::size_t n = std::min(read_size, wire.size() - sent);
        auto space = buffer.prepare(n);
        std::copy_n(wire.data() + sent, n, static_cast<char*>(space.data()));
        buffer.commit(n);
        sent += n;
        while (buffer.size() > 0 && !parser.is_done()) {
            boost::system::error_code ec;
            const std::size_t used = parser.put(buffer.data(), ec);
            buffer.consume(used);
            if (ec == http::error::need_more)
                break;
            if (ec)
                fail("Beast refused a well-formed chunked body");
        }
        if (!pending.empty())
            reads.push_back(std::exchange(pending, std::string()));
    }
    std::string delivered;
    for (const auto& read : reads)
        delivered += read;
    if (delivered != body || !parser.get().body().empty())
        fail("the chunk data read is not the body sent");
    const std::vector<std::string_view> read_views(reads.begin(), reads.end());
    if (feed_pieces(read_views, max_line) != whole)
        fail("the events depend on how the stream was read");
    return 0;
}
