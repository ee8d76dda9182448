// discovery.k8s.io/v1 EndpointSlices, reduced to what resolves a Service's named targetPort.
#pragma once

#include "analysis/model/objects.hpp"

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::input {
class DomNode;
} // namespace mtlsguard::input

namespace mtlsguard::kube {

// Live pods are read as metadata, without container ports: the slices of a Service say which
// number each of its named targetPorts resolved to, for the pods they list.
struct EndpointSlice {
    std::string namespace_name;
    std::string service; // the kubernetes.io/service-name label; empty: no Service's
    // name: the Service port's name ("" for its single unnamed port); number: the resolved port.
    std::vector<model::NamedPort> ports;
    std::vector<std::string> pods; // Pod targetRefs of the slice's namespace, sorted, unique
};

// Decodes one EndpointSlice. nullopt with `error` ("field.path: what is wrong") when a field has
// the wrong type or a port is out of range; endpoints that are not pods are left out. Never
// throws.
std::optional<EndpointSlice> decode_endpoint_slice(const nlohmann::json& object,
                                                   std::string& error) noexcept;
// The same, straight from a list page's parse.
std::optional<EndpointSlice> decode_parsed_endpoint_slice(const input::DomNode& object,
                                                          std::string& error) noexcept;

} // namespace mtlsguard::kube
