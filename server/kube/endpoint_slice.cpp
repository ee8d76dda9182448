// discovery.k8s.io/v1 EndpointSlices, reduced to what resolves a Service's named targetPort.
#include "server/kube/endpoint_slice.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace mtlsguard::kube {
namespace {

using nlohmann::json;

// A string member, "" when absent or null; nullopt when it is something else.
std::optional<std::string> optional_string(const json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return std::string();
    if (!it->is_string())
        return std::nullopt;
    return it->get<std::string>();
}

// A list member; Go writes an empty list as null. Null when it is not a list.
const json* optional_array(const json& object, const char* key, bool& wrong_type) {
    static const json empty = json::array();
    wrong_type = false;
    auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return &empty;
    if (!it->is_array()) {
        wrong_type = true;
        return nullptr;
    }
    return &*it;
}

std::optional<EndpointSlice> decode(const json& object, std::string& error) {
    if (!object.is_object()) {
        error = "not an object";
        return std::nullopt;
    }
    EndpointSlice slice;
    auto metadata = object.find("metadata");
    if (metadata == object.end() || !metadata->is_object()) {
        error = "metadata: missing";
        return std::nullopt;
    }
    auto ns = optional_string(*metadata, "namespace");
    if (!ns) {
        error = "metadata.namespace: not a string";
        return std::nullopt;
    }
    slice.namespace_name = std::move(*ns);
    if (auto labels = metadata->find("labels"); labels != metadata->end() && labels->is_object()) {
        auto service = optional_string(*labels, "kubernetes.io/service-name");
        if (!service) {
            error = "metadata.labels.kubernetes.io/service-name: not a string";
            return std::nullopt;
        }
        slice.service = std::move(*service);
    }

    bool wrong_type = false;
    const json* ports = optional_array(object, "ports", wrong_type);
    if (wrong_type) {
        error = "ports: not a list";
        return std::nullopt;
    }
    for (std::size_t i = 0; i < ports->size(); ++i) {
        const json& port = (*ports)[i];
        const std::string where = "ports[" + std::to_string(i) + "]";
        if (!port.is_object()) {
            error = where + ": not an object";
            return std::nullopt;
        }
        auto name = optional_string(port, "name");
        if (!name) {
            error = where + ".name: not a string";
            return std::nullopt;
        }
        auto number = port.find("port");
        if (number == port.end() || number->is_null())
            continue; // no number: nothing resolved
        if (!number->is_number_integer() || number->get<std::int64_t>() < 1 ||
            number->get<std::int64_t>() > 65535) {
            error = where + ".port: not a port number";
            return std::nullopt;
        }
        slice.ports.push_back(
            model::NamedPort{std::move(*name), static_cast<std::uint16_t>(number->get<int>())});
    }

    const json* endpoints = optional_array(object, "endpoints", wrong_type);
    if (wrong_type) {
        error = "endpoints: not a list";
        return std::nullopt;
    }
    for (std::size_t i = 0; i < endpoints->size(); ++i) {
        const json& endpoint = (*endpoints)[i];
        if (!endpoint.is_object()) {
            error = "endpoints[" + std::to_string(i) + "]: not an object";
            return std::nullopt;
        }
        auto ref = endpoint.find("targetRef");
        if (ref == endpoint.end() || !ref->is_object())
            continue; // an address outside the cluster's pods
        const auto kind = optional_string(*ref, "kind");
        const auto name = optional_string(*ref, "name");
        const auto ref_ns = optional_string(*ref, "namespace");
        if (!kind || *kind != "Pod" || !name || name->empty() || !ref_ns)
            continue;
        // A Service's endpoints are pods of its own namespace.
        if (!ref_ns->empty() && *ref_ns != slice.namespace_name)
            continue;
        slice.pods.push_back(*name);
    }
    std::sort(slice.pods.begin(), slice.pods.end());
    slice.pods.erase(std::unique(slice.pods.begin(), slice.pods.end()), slice.pods.end());
    slice.pods.shrink_to_fit();
    slice.ports.shrink_to_fit();
    return slice;
}

} // namespace

std::optional<EndpointSlice> decode_endpoint_slice(const json& object,
                                                   std::string& error) noexcept {
    try {
        return decode(object, error);
    } catch (const std::exception& e) {
        error = std::string("unreadable: ") + e.what(); // out of memory, in practice
        return std::nullopt;
    }
}

} // namespace mtlsguard::kube
