// simdjson's DOM read as nlohmann::json reads the same text: converted to it, or seen as a Node.
#pragma once

// simdjson parses several times faster than nlohmann::json and builds no tree of its own; these
// let a reader decode straight from its parse, and convert what it cannot decode that way.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <simdjson.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtlsguard::input {

namespace dom = simdjson::dom;

inline constexpr std::string_view managed_fields = "managedFields";

// The value of an element whose type() was just checked, so that get() cannot fail.
template <class T> T dom_value(dom::element element) {
    T value{};
    if (element.get(value) != simdjson::SUCCESS)
        throw std::logic_error("simdjson element of an unexpected type");
    return value;
}

enum class ManagedFields : std::uint8_t { Keep, Drop };

// Text up to this size is parsed with the caller's reused parser (one per thread, typically);
// larger text gets a parser of its own, so that one huge document does not pin its buffers.
inline constexpr std::size_t reused_parser_limit = std::size_t{8} << 20;

// A parse of `text` with at most `max_depth` nested containers: `root` points into `reused` or
// into `own`, and stays valid until either parses again. nullopt when simdjson refuses the text
// (not JSON, too deep, a number it cannot hold) or memory runs out: a reference parser decides
// then, and words the error.
struct DomParse {
    std::unique_ptr<dom::parser> own;
    std::optional<dom::element> root;
};
DomParse parse_dom(dom::parser& reused, std::string_view text, std::size_t max_depth) noexcept;
// The same, read where it lies when `text` has simdjson's padding as spare capacity past its end
// (see with_parse_padding); otherwise simdjson copies it first, as parse_dom does.
DomParse parse_dom_in_place(dom::parser& reused, const std::string& text,
                            std::size_t max_depth) noexcept;
// Gives `text` the spare capacity parse_dom_in_place reads in place (a copy only if it has less).
void with_parse_padding(std::string& text);

// The value as nlohmann::json builds it from the same text: non-negative integers unsigned,
// negative ones signed, others double; the last of duplicate keys wins. (One difference nobody can
// observe: simdjson reads -0 as the integer 0, nlohmann as a signed 0.) With Drop, every
// managedFields member is left out: often most of an object's bytes, and never read.
void to_json(dom::element element, nlohmann::json& out, ManagedFields managed);

// simdjson's DOM as a model::decoding::Node (analysis/model/decode_fields.hpp), seen as a
// nlohmann::json parse of the same text would be: the last of duplicate keys winning, members in
// key order, managedFields dropped everywhere (no decoder reads them). The parse must outlive it.
class DomNode {
  public:
    explicit DomNode(dom::element element) : element_(element) {}
    dom::element element() const noexcept { return element_; }

    bool is_null() const noexcept { return type() == dom::element_type::NULL_VALUE; }
    bool is_object() const noexcept { return type() == dom::element_type::OBJECT; }
    bool is_array() const noexcept { return type() == dom::element_type::ARRAY; }
    bool is_string() const noexcept { return type() == dom::element_type::STRING; }
    bool is_boolean() const noexcept { return type() == dom::element_type::BOOL; }
    // nlohmann::json holds non-negative integers unsigned and negative ones signed (see to_json).
    bool is_unsigned() const {
        return type() == dom::element_type::UINT64 ||
               (type() == dom::element_type::INT64 && dom_value<std::int64_t>(element_) >= 0);
    }
    bool is_signed() const {
        return type() == dom::element_type::INT64 && dom_value<std::int64_t>(element_) < 0;
    }
    bool is_float() const noexcept { return type() == dom::element_type::DOUBLE; }
    std::string_view string() const { return dom_value<std::string_view>(element_); }
    bool boolean() const { return dom_value<bool>(element_); }
    std::uint64_t unsigned_value() const {
        return type() == dom::element_type::UINT64
                   ? dom_value<std::uint64_t>(element_)
                   : static_cast<std::uint64_t>(dom_value<std::int64_t>(element_));
    }
    std::int64_t signed_value() const { return dom_value<std::int64_t>(element_); }
    double float_value() const { return dom_value<double>(element_); }

    std::optional<DomNode> find(std::string_view key) const {
        if (key == managed_fields)
            return std::nullopt;
        std::optional<DomNode> found;
        for (const dom::key_value_pair field : dom_value<dom::object>(element_))
            if (field.key == key)
                found = DomNode(field.value);
        return found;
    }
    template <class F> void for_each_member(F&& f) const {
        const auto object = dom_value<dom::object>(element_);
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
        for (const dom::element item : dom_value<dom::array>(element_))
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
        nlohmann::json value;
        to_json(element_, value, ManagedFields::Drop);
        return value.dump();
    }

  private:
    dom::element_type type() const noexcept { return element_.type(); }
    dom::element element_;
};

} // namespace mtlsguard::input
