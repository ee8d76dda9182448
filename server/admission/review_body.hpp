// Reading an AdmissionReview body into the JSON the engine decides on: a fast simdjson reader for
// the bodies it can read exactly like nlohmann::json would, and nlohmann::json for all others.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

namespace mtlsguard::server {

inline constexpr std::size_t max_review_depth = 128;

struct ReviewBody {
    enum class Status : std::uint8_t { Parsed, NotJson, TooDeep };
    Status status = Status::NotJson;
    nlohmann::json review; // when Parsed
};

// The reference reader: nlohmann::json over the whole body, with metadata.managedFields (any key
// of that name) dropped while parsing and nesting deeper than max_review_depth refused.
ReviewBody read_review_reference(std::string_view body);

// The fast reader: simdjson's DOM, then a nlohmann::json of only the members the engine reads
// (admission::review_members, admission::request_members; managedFields dropped as above). Gives
// up (nullopt) on any body simdjson refuses (not JSON, invalid UTF-8, nested 128 deep, numbers it
// cannot hold, a byte-order mark, ...): the reference reader then decides how to answer it.
// Whatever it reads, the engine decides exactly as on the reference reader's review.
std::optional<nlohmann::json> read_review_fast(std::string_view body);

// The fast reader, else the reference one. Never throws anything but std::bad_alloc.
ReviewBody read_review(std::string_view body);

} // namespace mtlsguard::server
