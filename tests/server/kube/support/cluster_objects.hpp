// Cluster objects as the API server holds them, and a small seeded mesh, for the kube and serve
// tests that run against the fake API server.
#pragma once

#include "tests/server/kube/support/fake_api_server.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mtlsguard::kube::testing {

using nlohmann::json;

inline json ns_object(const std::string& name, bool injected) {
    json metadata = {{"name", name}};
    if (injected)
        metadata["labels"] = {{"istio-injection", "enabled"}};
    return {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", metadata}};
}

inline json service(const std::string& ns, const std::string& name) {
    return {
        {"apiVersion", "v1"},
        {"kind", "Service"},
        {"metadata", {{"name", name}, {"namespace", ns}}},
        {"spec", {{"selector", {{"app", name}}}, {"ports", {{{"name", "http"}, {"port", 80}}}}}}};
}

inline json pod(const std::string& ns, const std::string& app, int n, bool sidecar = true) {
    json labels = {{"app", app}, {"pod-template-hash", "5d8f"}};
    json metadata = {{"name", app + "-5d8f-" + std::to_string(n)},
                     {"namespace", ns},
                     {"labels", labels},
                     {"ownerReferences",
                      {{{"apiVersion", "apps/v1"},
                        {"kind", "ReplicaSet"},
                        {"name", app + "-5d8f"},
                        {"uid", "rs-" + app},
                        {"controller", true}}}}};
    if (sidecar) {
        metadata["labels"]["security.istio.io/tlsMode"] = "istio";
        metadata["annotations"] = {
            {"sidecar.istio.io/status", "{\"containers\":[\"istio-proxy\"]}"}};
    }
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", metadata},
            {"spec", {{"containers", {{{"name", "app"}, {"ports", {{{"containerPort", 80}}}}}}}}}};
}

inline json peer_authentication(const std::string& ns, const std::string& name,
                                const std::string& mode) {
    return {{"apiVersion", "security.istio.io/v1"},
            {"kind", "PeerAuthentication"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec", {{"mtls", {{"mode", mode}}}}}};
}

inline json destination_rule(const std::string& ns, const std::string& name,
                             const std::string& host, const std::string& tls) {
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "DestinationRule"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec", {{"host", host}, {"trafficPolicy", {{"tls", {{"mode", tls}}}}}}}};
}

// The EndpointSlice the endpoint controller writes for `service`: one port, named as the Service
// port (`port_name`, "" for an unnamed one), resolved to `number` for these pods.
inline json endpoint_slice(const std::string& ns, const std::string& name,
                           const std::string& service, const std::string& port_name, int number,
                           const std::vector<std::string>& pods) {
    json endpoints = json::array();
    for (const auto& pod_name : pods)
        endpoints.push_back(
            {{"addresses", {"10.0.0.1"}},
             {"conditions", {{"ready", true}}},
             {"targetRef", {{"kind", "Pod"}, {"name", pod_name}, {"namespace", ns}}}});
    json port = {{"port", number}, {"protocol", "TCP"}};
    if (!port_name.empty())
        port["name"] = port_name;
    return {{"apiVersion", "discovery.k8s.io/v1"},
            {"kind", "EndpointSlice"},
            {"metadata",
             {{"name", name},
              {"namespace", ns},
              {"labels", {{"kubernetes.io/service-name", service}}}}},
            {"addressType", "IPv4"},
            {"ports", json::array({port})},
            {"endpoints", endpoints}};
}

inline json crd(const std::string& name) {
    return {{"apiVersion", "apiextensions.k8s.io/v1"},
            {"kind", "CustomResourceDefinition"},
            {"metadata", {{"name", name}}},
            {"spec", {{"group", name.substr(name.find('.') + 1)}}}};
}

// A CRD as the API server holds it: an OpenAPI schema (what makes CRDs large) and, when `service`
// is given, a conversion webhook calling it (apiextensions.k8s.io/v1: spec.conversion.webhook).
inline json crd_with_schema(const std::string& name, const std::string& service_namespace = {},
                            const std::string& service = {}, int port = 443) {
    json properties = json::object();
    for (int i = 0; i < 40; ++i)
        properties["field" + std::to_string(i)] = {
            {"type", "string"},
            {"description",
             "A field documented at length, as generated schemas are. " + std::string(200, 'x')}};
    const std::string plural = name.substr(0, name.find('.'));
    json spec = {
        {"group", name.substr(name.find('.') + 1)},
        {"names", {{"plural", plural}, {"kind", "Thing"}, {"listKind", "ThingList"}}},
        {"scope", "Namespaced"},
        {"versions",
         {{{"name", "v1"},
           {"served", true},
           {"storage", true},
           {"schema",
            {{"openAPIV3Schema",
              {{"type", "object"},
               {"properties", {{"spec", {{"type", "object"}, {"properties", properties}}}}}}}}}},
          {{"name", "v1beta1"}, {"served", true}, {"storage", false}}}},
        {"conversion", {{"strategy", "None"}}}};
    if (!service.empty())
        spec["conversion"] = {{"strategy", "Webhook"},
                              {"webhook",
                               {{"conversionReviewVersions", json::array({"v1"})},
                                {"clientConfig",
                                 {{"service",
                                   {{"namespace", service_namespace},
                                    {"name", service},
                                    {"path", "/convert"},
                                    {"port", port}}},
                                  {"caBundle", "LS0tLS1CRUdJTi=="}}}}}};
    return {{"apiVersion", "apiextensions.k8s.io/v1"},
            {"kind", "CustomResourceDefinition"},
            {"metadata", {{"name", name}}},
            {"spec", spec}};
}

// A VirtualService routing `host` to `subset` of it, for sidecar clients (gateways: mesh).
inline json virtual_service(const std::string& ns, const std::string& name, const std::string& host,
                            const std::string& subset) {
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "VirtualService"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec",
             {{"hosts", json::array({host})},
              {"http", {{{"route", {{{"destination", {{"host", host}, {"subset", subset}}}}}}}}}}}};
}

// A Sidecar limiting the namespace's clients to their own namespace and istio-system.
inline json sidecar(const std::string& ns, const std::string& name) {
    return {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "Sidecar"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec", {{"egress", {{{"hosts", {"./*", "istio-system/*"}}}}}}}};
}

// The istio-cni chart's ConfigMap (1.27+): the enablement selectors are YAML inside a string.
inline json cni_config_map(const std::string& ns, const std::string& excluded) {
    return {{"apiVersion", "v1"},
            {"kind", "ConfigMap"},
            {"metadata", {{"name", "istio-cni-config"}, {"namespace", ns}}},
            {"data",
             {{"AMBIENT_ENABLED", "true"},
              {"AMBIENT_ENABLEMENT_SELECTOR",
               "- podSelector:\n    matchLabels:\n      istio.io/dataplane-mode: ambient\n"
               "- namespaceSelector:\n    matchLabels:\n      istio.io/dataplane-mode: ambient\n"
               "  podSelector:\n    matchExpressions:\n    - key: istio.io/dataplane-mode\n"
               "      operator: NotIn\n      values:\n      - none\n"},
              {"EXCLUDE_NAMESPACES", excluded}}}};
}

// A small mesh without any PeerAuthentication: shop (one service with two sidecar pods) and front
// (a sidecar client), Istio's CRDs and API, and its mesh config.
inline void seed_open_mesh(FakeApiServer& server) {
    // Istio installs all its CRDs together.
    for (const auto& resource : istio_resources()) {
        server.add_resource(resource);
        server.create("apiextensions.k8s.io", "customresourcedefinitions",
                      crd(resource.plural + "." + resource.group));
    }
    server.create("", "namespaces", ns_object("istio-system", false));
    server.create("", "namespaces", ns_object("shop", true));
    server.create("", "namespaces", ns_object("front", true));
    server.create("", "services", service("shop", "web"));
    server.create("", "pods", pod("shop", "web", 1));
    server.create("", "pods", pod("shop", "web", 2));
    server.create("", "pods", pod("front", "client", 1));
    server.create("", "configmaps",
                  {{"apiVersion", "v1"},
                   {"kind", "ConfigMap"},
                   {"metadata", {{"name", "istio"}, {"namespace", "istio-system"}}},
                   {"data",
                    {{"mesh", "# the mesh config, as istioctl writes it\n"
                              "rootNamespace: istio-system\n"
                              "defaultDestinationRuleExportTo:\n- \".\"\n"}}}});
    // Another ConfigMap of the Istio namespace must not be read at all.
    server.create("", "configmaps",
                  {{"apiVersion", "v1"},
                   {"kind", "ConfigMap"},
                   {"metadata", {{"name", "istio-ca-root-cert"}, {"namespace", "istio-system"}}},
                   {"data", {{"root-cert.pem", "x"}}}});
}

// The same mesh with shop STRICT.
inline void seed_mesh(FakeApiServer& server) {
    seed_open_mesh(server);
    server.create("security.istio.io", "peerauthentications",
                  peer_authentication("shop", "default", "STRICT"));
}

} // namespace mtlsguard::kube::testing
