// nlohmann::json seen as a model::decoding::Node (decode_fields.hpp), for decoders written once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mtlsguard::model::decoding {

// A handle to one value of a nlohmann::json tree, which must outlive it.
struct JsonNode {
    const nlohmann::json* value;

    bool is_null() const noexcept { return value->is_null(); }
    bool is_object() const noexcept { return value->is_object(); }
    bool is_array() const noexcept { return value->is_array(); }
    bool is_string() const noexcept { return value->is_string(); }
    bool is_boolean() const noexcept { return value->is_boolean(); }
    bool is_unsigned() const noexcept { return value->is_number_unsigned(); }
    bool is_signed() const noexcept {
        return value->is_number_integer() && !value->is_number_unsigned();
    }
    bool is_float() const noexcept { return value->is_number_float(); }
    std::string_view string() const { return value->get_ref<const std::string&>(); }
    bool boolean() const { return value->get<bool>(); }
    std::uint64_t unsigned_value() const { return value->get<std::uint64_t>(); }
    std::int64_t signed_value() const { return value->get<std::int64_t>(); }
    double float_value() const { return value->get<double>(); }
    std::optional<JsonNode> find(std::string_view key) const {
        auto it = value->find(key);
        if (it == value->end())
            return std::nullopt;
        return JsonNode{&*it};
    }
    template <class F> void for_each_member(F&& f) const {
        for (auto it = value->begin(); it != value->end(); ++it)
            f(std::string_view(it.key()), JsonNode{&it.value()});
    }
    template <class F> void for_each_item(F&& f) const {
        for (std::size_t i = 0; i < value->size(); ++i)
            f(i, JsonNode{&(*value)[i]});
    }
    std::string type_name() const { return value->type_name(); }
    std::string dump() const { return value->dump(); }
};

} // namespace mtlsguard::model::decoding
