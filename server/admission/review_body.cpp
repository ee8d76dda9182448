// Reading an AdmissionReview body into the JSON the engine decides on: a fast simdjson reader for
// the bodies it can read exactly like nlohmann::json would, and nlohmann::json for all others.
#include "server/admission/review_body.hpp"

#include "analysis/admission/admission.hpp"

#include <algorithm>
#include <memory>
#include <simdjson.h>
#include <stdexcept>

namespace mtlsguard::server {
namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

constexpr std::string_view managed_fields = "managedFields";

// simdjson refuses a document whose elements sit 128 containers deep (DEPTH_ERROR): everything it
// accepts is within max_review_depth for the reference reader (which refuses only beyond 128).
constexpr std::size_t simdjson_max_depth = 128;
static_assert(simdjson_max_depth <= max_review_depth);

// Bodies up to this size reuse a parser per thread; larger ones get a parser of their own, so a few
// huge bodies do not pin their buffers (several times the body size) to every I/O thread.
constexpr std::size_t reused_parser_limit = 256 * 1024;

bool is_one_of(std::string_view key, const auto& names) {
    return std::find(names.begin(), names.end(), key) != names.end();
}

// The value of an element whose type() was just checked, so that get() cannot fail.
template <class T> T as(dom::element element) {
    T value{};
    if (element.get(value) != simdjson::SUCCESS)
        throw std::logic_error("simdjson element of an unexpected type");
    return value;
}

// The value as nlohmann::json builds it from the same text: non-negative integers unsigned,
// negative ones signed, others double; the last of duplicate keys wins; managedFields dropped. (One
// difference nobody can observe: simdjson reads -0 as the integer 0, nlohmann as a signed 0.)
void to_json(dom::element element, json& out) {
    switch (element.type()) {
    case dom::element_type::OBJECT: {
        const auto object = as<dom::object>(element);
        out = json::object();
        auto& members = out.get_ref<json::object_t&>();
        for (const dom::key_value_pair field : object) {
            if (field.key == managed_fields)
                continue;
            to_json(field.value, members[json::string_t(field.key)]);
        }
        return;
    }
    case dom::element_type::ARRAY: {
        const auto array = as<dom::array>(element);
        out = json::array();
        auto& items = out.get_ref<json::array_t&>();
        items.reserve(array.size());
        for (const dom::element item : array)
            to_json(item, items.emplace_back());
        return;
    }
    case dom::element_type::STRING: {
        out = json::string_t(as<std::string_view>(element));
        return;
    }
    case dom::element_type::INT64: {
        const auto n = as<std::int64_t>(element);
        if (n >= 0)
            out = static_cast<std::uint64_t>(n);
        else
            out = n;
        return;
    }
    case dom::element_type::UINT64: {
        out = as<std::uint64_t>(element);
        return;
    }
    case dom::element_type::DOUBLE: {
        out = as<double>(element);
        return;
    }
    case dom::element_type::BOOL: {
        out = as<bool>(element);
        return;
    }
    case dom::element_type::NULL_VALUE:
        out = nullptr;
        return;
    }
}

// The request with only the members the engine reads.
void request_to_json(dom::element request, json& out) {
    if (request.type() != dom::element_type::OBJECT) {
        to_json(request, out);
        return;
    }
    const auto object = as<dom::object>(request);
    out = json::object();
    auto& members = out.get_ref<json::object_t&>();
    for (const dom::key_value_pair field : object)
        if (is_one_of(field.key, admission::request_members))
            to_json(field.value, members[json::string_t(field.key)]);
}

// A parser limited to simdjson_max_depth. It copies each body into a padded buffer of its own
// (simdjson reads up to SIMDJSON_PADDING bytes past the end), kept for the next body.
struct Reader {
    dom::parser parser;

    simdjson::simdjson_result<dom::element> parse(std::string_view body) {
        if (parser.max_depth() != simdjson_max_depth) {
            if (const auto error =
                    parser.allocate(std::max<std::size_t>(body.size(), 4096), simdjson_max_depth))
                return error;
        }
        return parser.parse(body.data(), body.size(), true);
    }
};

std::optional<json> slim_review(simdjson::simdjson_result<dom::element> parsed) {
    dom::element root;
    if (parsed.get(root) != simdjson::SUCCESS)
        return std::nullopt;
    json review;
    if (root.type() != dom::element_type::OBJECT) {
        to_json(root, review); // not a review at all; the engine says so
        return review;
    }
    const auto object = as<dom::object>(root);
    review = json::object();
    auto& members = review.get_ref<json::object_t&>();
    for (const dom::key_value_pair field : object) {
        if (field.key == "request")
            request_to_json(field.value, members[json::string_t(field.key)]);
        else if (is_one_of(field.key, admission::review_members))
            to_json(field.value, members[json::string_t(field.key)]);
    }
    return review;
}

} // namespace

ReviewBody read_review_reference(std::string_view body) {
    // One pass: the parse callback refuses absurd nesting and drops metadata.managedFields (often
    // most of an object's bytes, never read by the engine) before it is built.
    bool too_deep = false;
    const json::parser_callback_t filter = [&too_deep](int depth, json::parse_event_t event,
                                                       json& value) {
        if (depth > static_cast<int>(max_review_depth)) {
            too_deep = true;
            return false;
        }
        return !(event == json::parse_event_t::key && value == managed_fields);
    };
    ReviewBody read;
    read.review = json::parse(body.begin(), body.end(), filter, false);
    if (too_deep)
        read.status = ReviewBody::Status::TooDeep;
    else if (read.review.is_discarded())
        read.status = ReviewBody::Status::NotJson;
    else
        read.status = ReviewBody::Status::Parsed;
    if (read.status != ReviewBody::Status::Parsed)
        read.review = nullptr;
    return read;
}

std::optional<json> read_review_fast(std::string_view body) {
    if (body.size() > reused_parser_limit) {
        const auto reader = std::make_unique<Reader>();
        return slim_review(reader->parse(body));
    }
    thread_local Reader reader;
    return slim_review(reader.parse(body));
}

ReviewBody read_review(std::string_view body) {
    if (auto review = read_review_fast(body))
        return {ReviewBody::Status::Parsed, std::move(*review)};
    return read_review_reference(body);
}

} // namespace mtlsguard::server
