// Tests of the log line fields: JSON values are encoded exactly as nlohmann::json encodes them,
// whatever the bytes, so that no request field can break or forge a line.
#include "server/observability/logging.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

using mtlsguard::observability::format_fields;
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
