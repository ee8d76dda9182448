// simdjson's parse, and its DOM converted to nlohmann::json (the Node view is all in the header).
#include "server/input/json_dom.hpp"

namespace mtlsguard::input {

using nlohmann::json;

namespace {

// A parser is sized for a document with some room, so that the pages of a list, alike but not
// equal in size, reuse its buffers instead of each allocating (and faulting in) 14 bytes a byte.
constexpr std::size_t parser_granule = std::size_t{64} << 10;

DomParse parse_with(dom::parser& reused, std::string_view text, std::size_t max_depth,
                    bool padded) noexcept {
    DomParse out;
    try {
        dom::parser* parser = &reused;
        if (text.size() > reused_parser_limit)
            parser = (out.own = std::make_unique<dom::parser>()).get();
        if (parser->max_depth() != max_depth || parser->capacity() < text.size()) {
            const std::size_t wanted = std::max<std::size_t>(text.size(), 4096);
            const std::size_t sized =
                out.own ? wanted : (wanted + parser_granule - 1) / parser_granule * parser_granule;
            if (parser->allocate(sized, max_depth) != simdjson::SUCCESS)
                return out;
        }
        dom::element root;
        if (parser->parse(text.data(), text.size(), !padded).get(root) == simdjson::SUCCESS)
            out.root = root;
    } catch (...) {
        out.root.reset(); // out of memory
    }
    return out;
}

} // namespace

DomParse parse_dom(dom::parser& reused, std::string_view text, std::size_t max_depth) noexcept {
    return parse_with(reused, text, max_depth, false);
}

DomParse parse_dom_in_place(dom::parser& reused, const std::string& text,
                            std::size_t max_depth) noexcept {
    return parse_with(reused, text, max_depth,
                      text.capacity() - text.size() >= simdjson::SIMDJSON_PADDING);
}

void with_parse_padding(std::string& text) {
    if (text.capacity() - text.size() < simdjson::SIMDJSON_PADDING)
        text.reserve(text.size() + simdjson::SIMDJSON_PADDING);
}

void to_json(dom::element element, nlohmann::json& out, ManagedFields managed) {
    switch (element.type()) {
    case dom::element_type::OBJECT: {
        const auto object = dom_value<dom::object>(element);
        out = json::object();
        auto& members = out.get_ref<json::object_t&>();
        for (const dom::key_value_pair field : object) {
            if (managed == ManagedFields::Drop && field.key == managed_fields)
                continue;
            to_json(field.value, members[json::string_t(field.key)], managed);
        }
        return;
    }
    case dom::element_type::ARRAY: {
        const auto array = dom_value<dom::array>(element);
        out = json::array();
        auto& items = out.get_ref<json::array_t&>();
        items.reserve(array.size());
        for (const dom::element item : array)
            to_json(item, items.emplace_back(), managed);
        return;
    }
    case dom::element_type::STRING: {
        out = json::string_t(dom_value<std::string_view>(element));
        return;
    }
    case dom::element_type::INT64: {
        const auto n = dom_value<std::int64_t>(element);
        if (n >= 0)
            out = static_cast<std::uint64_t>(n);
        else
            out = n;
        return;
    }
    case dom::element_type::UINT64: {
        out = dom_value<std::uint64_t>(element);
        return;
    }
    case dom::element_type::DOUBLE: {
        out = dom_value<double>(element);
        return;
    }
    case dom::element_type::BOOL: {
        out = dom_value<bool>(element);
        return;
    }
    case dom::element_type::NULL_VALUE:
        out = nullptr;
        return;
    }
}

} // namespace mtlsguard::input
