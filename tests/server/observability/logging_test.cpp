// Tests of the log line fields: JSON values are encoded exactly as nlohmann::json encodes them,
// whatever the bytes, so that no request field can break or forge a line.
#include "server/observability/logging.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using mtlsguard::observability::component_logger;
using mtlsguard::observability::configure_logging;
using mtlsguard::observability::format_fields;
using mtlsguard::observability::log_event;
using mtlsguard::observability::LogFormat;

namespace {

std::string nlohmann_encoded(const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string expected_line(const std::string& message, const std::string& value) {
    return "\"msg\":" + nlohmann_encoded(message) + ",\"uid\":" + nlohmann_encoded(value);
}

} // namespace

SCENARIO("JSON log fields are encoded byte for byte as nlohmann::json encodes them") {
    std::vector<std::string> values = {"",
                                       "plain",
                                       "3f0c2a5e-8d1b-4c6e-9a7f-1b2c3d4e5f60",
                                       "quote\" backslash\\ slash/",
                                       "\b\f\n\r\t",
                                       std::string("nul\0byte", 8),
                                       "\x01\x1f\x7f",
                                       "caf\xc3\xa9 \xe5\x90\x8d \xf0\x9f\x98\x80",
                                       "invalid \xff\xfe utf-8",
                                       "truncated \xe5\x90",
                                       "\xed\xa0\x80 surrogate",
                                       "\"}\n{\"level\":\"error\",\"forged\":true"};
    std::mt19937 random(5);
    for (int round = 0; round < 3000; ++round) {
        std::string s(random() % 40, ' ');
        // Half the strings ASCII only (control characters included), half any byte.
        const unsigned top = round % 2 == 0 ? 0x80 : 0x100;
        for (auto& c : s)
            c = static_cast<char>(random() % top);
        values.push_back(s);
    }
    for (const auto& value : values) {
        INFO(nlohmann_encoded(value));
        CHECK(format_fields(LogFormat::Json, "decision", {{"uid", std::string_view(value)}}) ==
              expected_line("decision", value));
        CHECK(format_fields(LogFormat::Json, value, {{"uid", std::string_view(value)}}) ==
              expected_line(value, value));
    }
}

SCENARIO("A JSON decision line holds every kind of value") {
    const std::vector<std::string> codes = {"MTG101", "MTG2\"01"};
    CHECK(
        format_fields(LogFormat::Json, "decision",
                      {{"uid", std::string_view("u")},
                       {"dryRun", false},
                       {"codes", &codes},
                       {"latency_us", std::int64_t{42}}}) ==
        R"("msg":"decision","uid":"u","dryRun":false,"codes":["MTG101","MTG2\"01"],"latency_us":42)");
    CHECK(format_fields(LogFormat::Text, "decision",
                        {{"uid", std::string_view("a b")}, {"codes", &codes}}) ==
          R"(decision uid="a b" codes="MTG101,MTG2\"01")");
}

SCENARIO("Lines logged from many threads at once come out whole, one JSON object each") {
    // stderr is a pipe, as a container's is; a thread drains it like the container runtime.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    REQUIRE(::dup2(fds[1], STDERR_FILENO) == STDERR_FILENO);
    ::close(fds[1]);
    std::string output;
    std::thread reader([&] {
        char chunk[65536];
        for (ssize_t n; (n = ::read(fds[0], chunk, sizeof chunk)) > 0;)
            output.append(chunk, static_cast<std::size_t>(n));
    });
    configure_logging(LogFormat::Json);
    constexpr int threads = 4;
    constexpr int lines = 2000;
    const std::string padding(200, 'x'); // about 300 bytes a line, like a decision line
    // Every 100th line is longer than PIPE_BUF (a request with a huge name): written alone.
    const std::string long_padding(3 * 4096, 'y');
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < lines; ++i)
                log_event(component_logger("admission"), spdlog::level::info, "decision",
                          {{"thread", std::int64_t{t}},
                           {"line", std::int64_t{i}},
                           {"padding", std::string_view(i % 100 == 7 ? long_padding : padding)}});
        });
    for (auto& worker : workers)
        worker.join();
    REQUIRE(::dup2(saved, STDERR_FILENO) == STDERR_FILENO); // closes the pipe's last writer
    ::close(saved);
    reader.join();
    ::close(fds[0]);
    configure_logging(LogFormat::Text);

    std::istringstream in(output);
    std::vector<int> next(threads, 0);
    int count = 0;
    for (std::string line; std::getline(in, line); ++count) {
        const auto parsed = nlohmann::json::parse(line, nullptr, false);
        REQUIRE_FALSE(parsed.is_discarded());
        CHECK(parsed["logger"] == "admission");
        CHECK(parsed["level"] == "info");
        // Each thread's lines in the order it logged them.
        const int t = parsed["thread"];
        const int i = next[static_cast<std::size_t>(t)]++;
        CHECK(parsed["line"] == i);
        CHECK(parsed["padding"] == (i % 100 == 7 ? long_padding : padding));
    }
    CHECK(count == threads * lines);
}
