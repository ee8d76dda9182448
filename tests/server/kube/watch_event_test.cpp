// Tests of server/kube/watch_event: watch lines, Status objects, lines split across chunks.
#include "server/kube/watch_event.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace mtlsguard::kube;
using nlohmann::json;

namespace {

const std::string added =
    R"json({"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"shop","resourceVersion":"1001","uid":"u1"},"spec":{"ports":[{"port":80}]}}})json";
const std::string bookmark =
    R"json({"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"1200","creationTimestamp":null},"spec":{}}})json";
const std::string gone =
    R"json({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (1010)","reason":"Expired","code":410}})json";

} // namespace

TEST_CASE("ADDED, MODIFIED and DELETED events carry the object and its resourceVersion") {
    for (std::string type : {"ADDED", "MODIFIED", "DELETED"}) {
        json line = json::parse(added);
        line["type"] = type;
        WatchLine decoded = decode_watch_line(line.dump());
        REQUIRE(decoded.outcome == WatchLine::Outcome::Event);
        CHECK(to_string(decoded.event.type) == type);
        CHECK(decoded.event.resource_version == "1001");
        CHECK(decoded.event.object["metadata"]["name"] == "web");
        CHECK(decoded.event.object["spec"]["ports"][0]["port"] == 80);
    }
}

TEST_CASE("A BOOKMARK carries only a resourceVersion") {
    WatchLine decoded = decode_watch_line(bookmark);
    REQUIRE(decoded.outcome == WatchLine::Outcome::Event);
    CHECK(decoded.event.type == WatchEventType::Bookmark);
    CHECK(decoded.event.resource_version == "1200");
}

TEST_CASE("410 Gone arrives as an ERROR event holding a Status") {
    WatchLine decoded = decode_watch_line(gone);
    REQUIRE(decoded.outcome == WatchLine::Outcome::Event);
    CHECK(decoded.event.type == WatchEventType::Error);
    CHECK(decoded.event.status.code == 410);
    CHECK(decoded.event.status.reason == "Expired");
    CHECK_THAT(describe(decoded.event.status), Catch::Contains("too old resource version"));

    // An ERROR whose object is not a Status still ends the watch, with an unknown code.
    WatchLine odd = decode_watch_line(R"json({"type":"ERROR","object":{"kind":"Pod"}})json");
    REQUIRE(odd.outcome == WatchLine::Outcome::Event);
    CHECK(odd.event.status.code == 0);
}

TEST_CASE("Lines that are not watch events are malformed; blank lines are skipped") {
    CHECK(decode_watch_line("").outcome == WatchLine::Outcome::Blank);
    CHECK(decode_watch_line(" \r").outcome == WatchLine::Outcome::Blank);
    const std::pair<std::string, std::string> bad[] = {
        {R"json({"type":"ADDED","object":{"metadata":{"name":"x"}})json", "not JSON"},
        {R"json([1,2])json", "must be a JSON object"},
        {R"json({"object":{}})json", "no type"},
        {R"json({"type":"UPDATED","object":{}})json", "unknown event type \"UPDATED\""},
        {R"json({"type":"ADDED"})json", "without an object"},
        {R"json({"type":"ADDED","object":"x"})json", "without an object"},
        {R"json({"type":"MODIFIED","object":{"kind":"Pod"}})json", "without metadata"},
        {R"json({"type":"DELETED","object":{"metadata":{"name":"x"}}})json", "resourceVersion"},
        {R"json({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":""}}})json",
         "resourceVersion"},
    };
    for (const auto& [line, why] : bad) {
        WatchLine decoded = decode_watch_line(line);
        INFO(line);
        CHECK(decoded.outcome == WatchLine::Outcome::Malformed);
        CHECK_THAT(decoded.error, Catch::Contains(why));
    }
}

TEST_CASE("JSON nested deeper than the limit is refused, whatever its size") {
    const std::string deep = std::string(5000, '[') + std::string(5000, ']');
    WatchLine decoded = decode_watch_line(deep);
    CHECK(decoded.outcome == WatchLine::Outcome::Malformed);
    CHECK_THAT(decoded.error, Catch::Contains("nested deeper"));
    std::string error;
    CHECK(parse_json_limited(R"json({"a":{"b":[1]}})json", error, 3).has_value());
    CHECK_FALSE(parse_json_limited(R"json({"a":{"b":[[1]]}})json", error, 3).has_value());
}

TEST_CASE("Status objects are read from error bodies") {
    auto status = parse_status(json::parse(
        R"json({"kind":"Status","apiVersion":"v1","status":"Failure","message":"m","reason":"TooManyRequests","code":429})json"));
    REQUIRE(status);
    CHECK(status->code == 429);
    CHECK(status->reason == "TooManyRequests");
    CHECK_FALSE(parse_status(json::parse(R"json({"kind":"Pod"})json")).has_value());
    CHECK_FALSE(parse_status(json::parse("[]")).has_value());
}

TEST_CASE("Events split at any byte, or several in one piece, come out as whole lines") {
    const std::string stream = added + "\n" + bookmark + "\r\n" + gone + "\n";
    const std::vector<std::string> expected = {added, bookmark, gone};
    for (std::size_t cut1 = 0; cut1 <= stream.size(); cut1 += 7) {
        for (std::size_t cut2 = cut1; cut2 <= stream.size(); cut2 += 13) {
            LineSplitter splitter(1 << 20);
            std::vector<std::string> lines;
            auto collect = [&](std::string_view line) {
                lines.emplace_back(line);
                return true;
            };
            REQUIRE(splitter.feed(std::string_view(stream).substr(0, cut1), collect));
            REQUIRE(splitter.feed(std::string_view(stream).substr(cut1, cut2 - cut1), collect));
            REQUIRE(splitter.feed(std::string_view(stream).substr(cut2), collect));
            REQUIRE(lines == expected);
            REQUIRE(splitter.pending() == 0);
        }
    }
}

TEST_CASE("A line split off at the end of a stream stays pending; an oversized line stops it") {
    LineSplitter splitter(16);
    std::vector<std::string> lines;
    auto collect = [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
    };
    CHECK(splitter.feed("short\nhalf", collect));
    CHECK(lines == std::vector<std::string>{"short"});
    CHECK(splitter.pending() == 4);
    CHECK_FALSE(splitter.feed("-of-a-line-that-is-too-long", collect));
    // The receiver can stop the stream too.
    LineSplitter stopper(100);
    int seen = 0;
    CHECK_FALSE(stopper.feed("a\nb\nc\n", [&](std::string_view) { return ++seen < 2; }));
    CHECK(seen == 2);
}

TEST_CASE("parse_json_limited builds exactly what nlohmann::json builds from the same text") {
    // simdjson reads these; the value must be the one nlohmann's own parser would give.
    const std::vector<std::string> documents = {
        R"json({"kind":"PodList","items":[{"metadata":{"name":"a","labels":{"app":"web"}}}]})json",
        R"json({"n":[0,1,-1,-0,9223372036854775807,18446744073709551615,-9223372036854775808]})json",
        R"json({"d":[1.5,-2.25,1e3,1E-3,0.1]})json",
        R"json({"dup":1,"dup":2,"t":true,"f":false,"z":null})json",
        R"json({"s":"\u00e9\ud83d\ude00\n\t\"\\\/","empty":{},"none":[]})json",
        R"json(  [ "top-level array" , 1 ]  )json",
        R"json("just a string")json",
    };
    for (const auto& text : documents) {
        INFO(text);
        std::string error;
        auto parsed = parse_json_limited(text, error);
        REQUIRE(parsed.has_value());
        CHECK(*parsed == json::parse(text));
        CHECK(parsed->dump() == json::parse(text).dump());
    }
}

TEST_CASE("Text the fast reader refuses is still read, or refused, by the reference parser") {
    std::string error;
    // Beyond uint64: simdjson refuses the number, nlohmann makes it a double.
    auto big = parse_json_limited(R"json({"n":18446744073709551616})json", error);
    REQUIRE(big.has_value());
    CHECK(*big == json::parse(R"json({"n":18446744073709551616})json"));
    CHECK(big->at("n").is_number_float());
    // Not JSON: the reference parser's message.
    error.clear();
    CHECK_FALSE(parse_json_limited(R"json({"a":)json", error).has_value());
    CHECK_FALSE(error.empty());
    // The depth limit holds on both paths, at its edge too.
    CHECK(parse_json_limited("[[[]]]", error, 3).has_value());
    CHECK(parse_json_limited("[[[[]]]]", error, 3).has_value()); // an empty array holds no value
    CHECK_FALSE(parse_json_limited("[[[[1]]]]", error, 3).has_value());
    CHECK_THAT(error, Catch::Contains("nested deeper"));
}
