// discovery.k8s.io/v1 EndpointSlices, reduced to what resolves a Service's named targetPort.
#include "server/kube/endpoint_slice.hpp"

#include "analysis/model/json_node.hpp"
#include "server/input/json_dom.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace mtlsguard::kube {
namespace {

// A string member, "" when absent or null; nullopt when it is something else.
template <class Node>
std::optional<std::string> optional_string(const Node& object, std::string_view key) {
    const auto it = object.find(key);
    if (!it || it->is_null())
        return std::string();
    if (!it->is_string())
        return std::nullopt;
    return std::string(it->string());
}

// A list member: nullopt when absent or null (Go writes an empty list as null), and also, with
// `wrong_type` set, when it is something else.
template <class Node>
std::optional<Node> optional_array(const Node& object, std::string_view key, bool& wrong_type) {
    wrong_type = false;
    auto it = object.find(key);
    if (!it || it->is_null())
        return std::nullopt;
    if (!it->is_array()) {
        wrong_type = true;
        return std::nullopt;
    }
    return it;
}

template <class Node> std::optional<std::uint16_t> port_number(const Node& value) {
    // A tree built in code may hold a positive number signed; a parse holds it unsigned.
    if (value.is_unsigned()) {
        const std::uint64_t n = value.unsigned_value();
        if (n >= 1 && n <= 65535)
            return static_cast<std::uint16_t>(n);
    } else if (value.is_signed()) {
        const std::int64_t n = value.signed_value();
        if (n >= 1 && n <= 65535)
            return static_cast<std::uint16_t>(n);
    }
    return std::nullopt; // negative, fractional, out of range, or no number at all
}

template <class Node> std::optional<EndpointSlice> decode(const Node& object, std::string& error) {
    if (!object.is_object()) {
        error = "not an object";
        return std::nullopt;
    }
    EndpointSlice slice;
    const auto metadata = object.find("metadata");
    if (!metadata || !metadata->is_object()) {
        error = "metadata: missing";
        return std::nullopt;
    }
    auto ns = optional_string(*metadata, "namespace");
    if (!ns) {
        error = "metadata.namespace: not a string";
        return std::nullopt;
    }
    slice.namespace_name = std::move(*ns);
    if (const auto labels = metadata->find("labels"); labels && labels->is_object()) {
        auto service = optional_string(*labels, "kubernetes.io/service-name");
        if (!service) {
            error = "metadata.labels.kubernetes.io/service-name: not a string";
            return std::nullopt;
        }
        slice.service = std::move(*service);
    }

    bool wrong_type = false;
    const auto ports = optional_array(object, "ports", wrong_type);
    if (wrong_type) {
        error = "ports: not a list";
        return std::nullopt;
    }
    bool failed = false;
    if (ports) {
        ports->for_each_item([&](std::size_t i, const Node& port) {
            if (failed)
                return;
            const std::string where = "ports[" + std::to_string(i) + "]";
            if (!port.is_object()) {
                error = where + ": not an object";
                failed = true;
                return;
            }
            auto name = optional_string(port, "name");
            if (!name) {
                error = where + ".name: not a string";
                failed = true;
                return;
            }
            const auto number = port.find("port");
            if (!number || number->is_null())
                return; // no number: nothing resolved
            const auto value = port_number(*number);
            if (!value) {
                error = where + ".port: not a port number";
                failed = true;
                return;
            }
            slice.ports.push_back(model::NamedPort{std::move(*name), *value});
        });
    }
    if (failed)
        return std::nullopt;

    const auto endpoints = optional_array(object, "endpoints", wrong_type);
    if (wrong_type) {
        error = "endpoints: not a list";
        return std::nullopt;
    }
    if (endpoints) {
        endpoints->for_each_item([&](std::size_t i, const Node& endpoint) {
            if (failed)
                return;
            if (!endpoint.is_object()) {
                error = "endpoints[" + std::to_string(i) + "]: not an object";
                failed = true;
                return;
            }
            const auto ref = endpoint.find("targetRef");
            if (!ref || !ref->is_object())
                return; // an address outside the cluster's pods
            const auto kind = optional_string(*ref, "kind");
            auto name = optional_string(*ref, "name");
            const auto ref_ns = optional_string(*ref, "namespace");
            if (!kind || *kind != "Pod" || !name || name->empty() || !ref_ns)
                return;
            // A Service's endpoints are pods of its own namespace.
            if (!ref_ns->empty() && *ref_ns != slice.namespace_name)
                return;
            slice.pods.push_back(std::move(*name));
        });
    }
    if (failed)
        return std::nullopt;
    std::sort(slice.pods.begin(), slice.pods.end());
    slice.pods.erase(std::unique(slice.pods.begin(), slice.pods.end()), slice.pods.end());
    slice.pods.shrink_to_fit();
    slice.ports.shrink_to_fit();
    return slice;
}

template <class Node>
std::optional<EndpointSlice> decode_guarded(const Node& object, std::string& error) noexcept {
    try {
        return decode(object, error);
    } catch (const std::exception& e) {
        error = std::string("unreadable: ") + e.what(); // out of memory, in practice
        return std::nullopt;
    }
}

} // namespace

std::optional<EndpointSlice> decode_endpoint_slice(const nlohmann::json& object,
                                                   std::string& error) noexcept {
    return decode_guarded(model::decoding::JsonNode{&object}, error);
}

std::optional<EndpointSlice> decode_parsed_endpoint_slice(const input::DomNode& object,
                                                          std::string& error) noexcept {
    return decode_guarded(object, error);
}

} // namespace mtlsguard::kube
