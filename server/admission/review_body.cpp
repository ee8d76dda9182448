// Reading an AdmissionReview body into what the engine decides on: simdjson straight into the model
// for the reviews it can read exactly like nlohmann::json would, and nlohmann::json for all others.
#include "server/admission/review_body.hpp"

#include "analysis/model/decode_fields.hpp"
#include "server/input/json_dom.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>

namespace mtlsguard::server {
namespace {

using nlohmann::json;
namespace dom = simdjson::dom;
using input::DomNode;
using input::managed_fields;

template <class T> T as(dom::element element) {
    return input::dom_value<T>(element);
}

// The review as nlohmann::json would read it, without managedFields.
void to_json(dom::element element, json& out) {
    input::to_json(element, out, input::ManagedFields::Drop);
}

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

// admission.cpp's reading of the envelope: a member is absent when null, a string member is empty
// when not a string.
std::optional<DomNode> envelope_member(const DomNode& object, std::string_view key) {
    return model::decoding::member(object, key);
}

std::string string_member(const DomNode& object, std::string_view key) {
    const auto v = envelope_member(object, key);
    return v && v->is_string() ? std::string(v->string()) : std::string();
}

std::string annotation(const DomNode& object, std::string_view key) {
    const auto metadata = envelope_member(object, "metadata");
    const auto annotations = metadata ? envelope_member(*metadata, "annotations") : std::nullopt;
    if (!annotations || !annotations->is_object())
        return {};
    const auto value = annotations->find(key);
    return value && value->is_string() ? std::string(value->string()) : std::string();
}

// Reads the review into `r` (filled in place: its objects are costly to move); false when the
// review is left to decide(json).
bool direct_request(dom::element parsed, admission::ReviewRequest& r) {
    const DomNode review(parsed);
    if (!review.is_object())
        return false;
    r.review_api_version = string_member(review, "apiVersion");
    if (r.review_api_version != "admission.k8s.io/v1" &&
        r.review_api_version != "admission.k8s.io/v1beta1")
        return false;
    if (string_member(review, "kind") != "AdmissionReview")
        return false;
    const auto request = envelope_member(review, "request");
    if (!request || !request->is_object())
        return false;
    r.uid = string_member(*request, "uid");
    r.operation = string_member(*request, "operation");
    if (r.uid.empty() || r.operation.empty())
        return false;
    r.namespace_name = string_member(*request, "namespace");
    r.name = string_member(*request, "name");
    if (const auto kind = envelope_member(*request, "kind"); kind && kind->is_object())
        r.kind = string_member(*kind, "kind");
    if (const auto dry = envelope_member(*request, "dryRun"); dry && dry->is_boolean())
        r.dry_run = dry->boolean();
    const auto object = envelope_member(*request, "object");
    const auto old_object = envelope_member(*request, "oldObject");
    // decode_object's complaint about a version that is not an object is left to decide(json).
    if ((object && !object->is_object()) || (old_object && !old_object->is_object()))
        return false;
    if (r.kind.empty()) {
        if (const auto& source = object ? object : old_object)
            r.kind = string_member(*source, "kind");
    }
    const std::string default_ns =
        r.namespace_name.empty() ? std::string("default") : r.namespace_name;
    const bool decodes = admission::decides_on_kind(r.kind);
    auto read = [&](const DomNode& node, std::optional<admission::ReviewObject>& into) {
        auto& version = into.emplace();
        if (decodes) {
            auto decoded = model::decoding::decode_admission_kind(node, default_ns);
            if (!decoded)
                return false; // another kind of object: decode_object knows it
            version.decoded = std::move(*decoded);
        }
        version.allow_conflict = annotation(node, admission::allow_conflict_annotation);
        return true;
    };
    return (!object || read(*object, r.object)) && (!old_object || read(*old_object, r.old_object));
}

// `read` of the body's parse: with the reader of this thread, or one of its own for a large body.
template <class Read> auto with_parse(std::string_view body, Read read) {
    if (body.size() > reused_parser_limit) {
        const auto reader = std::make_unique<Reader>();
        return read(reader->parse(body));
    }
    thread_local Reader reader;
    return read(reader.parse(body));
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
    return with_parse(
        body, [](simdjson::simdjson_result<dom::element> parsed) { return slim_review(parsed); });
}

std::optional<admission::ReviewRequest> read_review_direct(std::string_view body) {
    std::optional<admission::ReviewRequest> out;
    with_parse(body, [&out](simdjson::simdjson_result<dom::element> parsed) {
        dom::element root;
        if (parsed.get(root) == simdjson::SUCCESS && !direct_request(root, out.emplace()))
            out.reset();
        return 0;
    });
    return out;
}

ReviewBody read_review(std::string_view body) {
    // One parse for the direct reader and, on a review it leaves alone, the fast one.
    ReviewBody out;
    const bool read = with_parse(body, [&out](simdjson::simdjson_result<dom::element> parsed) {
        dom::element root;
        if (parsed.get(root) != simdjson::SUCCESS)
            return false;
        out.status = ReviewBody::Status::Parsed;
        if (direct_request(root, out.request.emplace()))
            return true;
        out.request.reset();
        auto review = slim_review(dom::element(root));
        if (review)
            out.review = std::move(*review);
        return review.has_value();
    });
    if (!read)
        out = read_review_reference(body);
    return out;
}

} // namespace mtlsguard::server
