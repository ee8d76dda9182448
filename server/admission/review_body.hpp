// Reading an AdmissionReview body into what the engine decides on: simdjson straight into the model
// for the reviews it can read exactly like nlohmann::json would, and nlohmann::json for all others.
#pragma once

#include "analysis/admission/admission.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

namespace mtlsguard::server {

inline constexpr std::size_t max_review_depth = 128;

struct ReviewBody {
    enum class Status : std::uint8_t { Parsed, NotJson, TooDeep };
    Status status = Status::NotJson;
    // When Parsed: the review already read (read_review_direct), or else its JSON.
    std::optional<admission::ReviewRequest> request;
    nlohmann::json review;
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

// The direct reader: simdjson's DOM read straight into an admission::ReviewRequest, objects decoded
// by model::decoding over the DOM, with no nlohmann::json built. Gives up (nullopt) where the fast
// reader does, and on every review that is not well formed or whose objects are not of the kinds
// the engine decides on (decide(json) then has the last word). Whatever it reads, the engine
// decides exactly as on the reference reader's review.
std::optional<admission::ReviewRequest> read_review_direct(std::string_view body);

// The direct reader, else the fast one, else the reference one. Never throws anything but
// std::bad_alloc.
ReviewBody read_review(std::string_view body);

} // namespace mtlsguard::server
