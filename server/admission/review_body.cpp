// Reading an AdmissionReview body into what the engine decides on: simdjson straight into the model
// for the reviews it can read exactly like nlohmann::json would, and nlohmann::json for all others.
#include "server/admission/review_body.hpp"

#include "analysis/model/decode_fields.hpp"

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

// simdjson's DOM as a model::decoding::Node, seen as the readers' nlohmann::json sees the same
// text: managedFields dropped everywhere, the last of duplicate keys winning, members in key order.
class DomNode {
  public:
    explicit DomNode(dom::element element) : element_(element) {}

    bool is_null() const noexcept { return type() == dom::element_type::NULL_VALUE; }
    bool is_object() const noexcept { return type() == dom::element_type::OBJECT; }
    bool is_array() const noexcept { return type() == dom::element_type::ARRAY; }
    bool is_string() const noexcept { return type() == dom::element_type::STRING; }
    bool is_boolean() const noexcept { return type() == dom::element_type::BOOL; }
    // nlohmann::json holds non-negative integers unsigned and negative ones signed (see to_json).
    bool is_unsigned() const {
        return type() == dom::element_type::UINT64 ||
               (type() == dom::element_type::INT64 && as<std::int64_t>(element_) >= 0);
    }
    bool is_signed() const {
        return type() == dom::element_type::INT64 && as<std::int64_t>(element_) < 0;
    }
    bool is_float() const noexcept { return type() == dom::element_type::DOUBLE; }
    std::string_view string() const { return as<std::string_view>(element_); }
    bool boolean() const { return as<bool>(element_); }
    std::uint64_t unsigned_value() const {
        return type() == dom::element_type::UINT64
                   ? as<std::uint64_t>(element_)
                   : static_cast<std::uint64_t>(as<std::int64_t>(element_));
    }
    std::int64_t signed_value() const { return as<std::int64_t>(element_); }
    double float_value() const { return as<double>(element_); }

    std::optional<DomNode> find(std::string_view key) const {
        if (key == managed_fields)
            return std::nullopt;
        std::optional<DomNode> found;
        for (const dom::key_value_pair field : as<dom::object>(element_))
            if (field.key == key)
                found = DomNode(field.value);
        return found;
    }
    template <class F> void for_each_member(F&& f) const {
        const auto object = as<dom::object>(element_);
        // Most objects come with their keys sorted and unique: no copy needed for those.
        bool in_order = true;
        std::string_view previous;
        bool first = true;
        for (const dom::key_value_pair field : object) {
            if (!first && !(previous < field.key)) {
                in_order = false;
                break;
            }
            previous = field.key;
            first = false;
        }
        if (in_order) {
            for (const dom::key_value_pair field : object)
                if (field.key != managed_fields)
                    f(field.key, DomNode(field.value));
            return;
        }
        std::vector<std::pair<std::string_view, dom::element>> fields;
        for (const dom::key_value_pair field : object)
            if (field.key != managed_fields)
                fields.emplace_back(field.key, field.value);
        std::stable_sort(fields.begin(), fields.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t i = 0; i < fields.size(); ++i)
            if (i + 1 == fields.size() || fields[i + 1].first != fields[i].first)
                f(fields[i].first, DomNode(fields[i].second));
    }
    template <class F> void for_each_item(F&& f) const {
        std::size_t i = 0;
        for (const dom::element item : as<dom::array>(element_))
            f(i++, DomNode(item));
    }
    std::string type_name() const {
        switch (type()) {
        case dom::element_type::OBJECT:
            return "object";
        case dom::element_type::ARRAY:
            return "array";
        case dom::element_type::STRING:
            return "string";
        case dom::element_type::BOOL:
            return "boolean";
        case dom::element_type::NULL_VALUE:
            return "null";
        default:
            return "number";
        }
    }
    std::string dump() const {
        json value;
        to_json(element_, value);
        return value.dump();
    }

  private:
    dom::element_type type() const noexcept { return element_.type(); }
    dom::element element_;
};

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
