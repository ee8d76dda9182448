// Small factories for the Kubernetes and Istio objects the engine unit tests feed to the snapshot.
#pragma once

#include "analysis/analyze.hpp"
#include "analysis/model/snapshot.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::test {

using nlohmann::json;
using LabelMap = std::map<std::string, std::string>;

// A creationTimestamp on day `n` of January 2024: a smaller n is older.
inline std::string day(int n) {
    std::string d = std::to_string(n);
    if (d.size() < 2)
        d = "0" + d;
    return "2024-01-" + d + "T00:00:00Z";
}

// Common metadata for every builder; `Self` is the concrete builder so chains keep their type.
template <typename Self> class ObjectBuilder {
  public:
    Self& created(const std::string& timestamp) {
        body_["metadata"]["creationTimestamp"] = timestamp;
        return self();
    }
    Self& label(const std::string& key, const std::string& value) {
        body_["metadata"]["labels"][key] = value;
        return self();
    }
    Self& annotate(const std::string& key, const std::string& value) {
        body_["metadata"]["annotations"][key] = value;
        return self();
    }
    const json& body() const { return body_; }

  protected:
    ObjectBuilder(const std::string& api_version, const std::string& kind,
                  const std::string& namespace_name, const std::string& name) {
        body_ = {{"apiVersion", api_version}, {"kind", kind}, {"metadata", {{"name", name}}}};
        if (!namespace_name.empty())
            body_["metadata"]["namespace"] = namespace_name;
    }
    Self& self() { return static_cast<Self&>(*this); }
    json body_;
};

template <typename Self> void to_json(json& out, const ObjectBuilder<Self>& builder) {
    out = builder.body();
}

class PeerAuthenticationBuilder : public ObjectBuilder<PeerAuthenticationBuilder> {
  public:
    PeerAuthenticationBuilder(const std::string& ns, const std::string& name,
                              const std::string& api_version)
        : ObjectBuilder(api_version, "PeerAuthentication", ns, name) {
        body_["spec"] = json::object();
    }
    PeerAuthenticationBuilder& mode(const std::string& mode) {
        body_["spec"]["mtls"]["mode"] = mode;
        return *this;
    }
    PeerAuthenticationBuilder& strict() { return mode("STRICT"); }
    PeerAuthenticationBuilder& permissive() { return mode("PERMISSIVE"); }
    PeerAuthenticationBuilder& disable() { return mode("DISABLE"); }
    PeerAuthenticationBuilder& unset() { return mode("UNSET"); }
    PeerAuthenticationBuilder& selecting(const LabelMap& labels) {
        body_["spec"]["selector"]["matchLabels"] = labels;
        return *this;
    }
    PeerAuthenticationBuilder& port(int number, const std::string& mode) {
        body_["spec"]["portLevelMtls"][std::to_string(number)]["mode"] = mode;
        return *this;
    }
};

inline PeerAuthenticationBuilder
peer_authentication(const std::string& ns, const std::string& name,
                    const std::string& api_version = "security.istio.io/v1") {
    return PeerAuthenticationBuilder(ns, name, api_version);
}

class DestinationRuleBuilder : public ObjectBuilder<DestinationRuleBuilder> {
  public:
    DestinationRuleBuilder(const std::string& ns, const std::string& name, const std::string& host,
                           const std::string& api_version)
        : ObjectBuilder(api_version, "DestinationRule", ns, name) {
        body_["spec"] = {{"host", host}};
    }
    // A tls block as Istio accepts it: MUTUAL comes with its certificate files (without them
    // istiod drops the block, semantics §4; set the fields by hand to test that).
    static json tls_block(const std::string& mode) {
        json block = {{"mode", mode}};
        if (mode == "MUTUAL") {
            block["clientCertificate"] = "/etc/certs/client.pem";
            block["privateKey"] = "/etc/certs/client-key.pem";
        }
        return block;
    }
    DestinationRuleBuilder& tls(const std::string& mode) {
        body_["spec"]["trafficPolicy"]["tls"] = tls_block(mode);
        return *this;
    }
    // A trafficPolicy without a tls block (e.g. only a load balancer setting).
    DestinationRuleBuilder& traffic_policy_without_tls() {
        body_["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"] = 100;
        return *this;
    }
    DestinationRuleBuilder& port_tls(int port, const std::string& mode) {
        body_["spec"]["trafficPolicy"]["portLevelSettings"].push_back(
            {{"port", {{"number", port}}}, {"tls", tls_block(mode)}});
        return *this;
    }
    // A portLevelSettings entry for the port that sets something other than tls.
    DestinationRuleBuilder& port_without_tls(int port) {
        body_["spec"]["trafficPolicy"]["portLevelSettings"].push_back(
            {{"port", {{"number", port}}},
             {"connectionPool", {{"tcp", {{"maxConnections", 10}}}}}});
        return *this;
    }
    DestinationRuleBuilder& passthrough() {
        body_["spec"]["trafficPolicy"]["loadBalancer"]["simple"] = "PASSTHROUGH";
        return *this;
    }
    DestinationRuleBuilder& export_to(const std::vector<std::string>& namespaces) {
        body_["spec"]["exportTo"] = namespaces;
        return *this;
    }
    DestinationRuleBuilder& for_clients(const LabelMap& labels) {
        body_["spec"]["workloadSelector"]["matchLabels"] = labels;
        return *this;
    }
    DestinationRuleBuilder& subset(const std::string& name, const LabelMap& labels,
                                   const std::optional<std::string>& tls_mode = std::nullopt) {
        json subset = {{"name", name}, {"labels", labels}};
        if (tls_mode)
            subset["trafficPolicy"]["tls"] = tls_block(*tls_mode);
        body_["spec"]["subsets"].push_back(std::move(subset));
        return *this;
    }
    DestinationRuleBuilder& subset_policy(const std::string& name, const LabelMap& labels,
                                          const json& traffic_policy) {
        body_["spec"]["subsets"].push_back(
            {{"name", name}, {"labels", labels}, {"trafficPolicy", traffic_policy}});
        return *this;
    }
};

inline DestinationRuleBuilder
destination_rule(const std::string& ns, const std::string& name, const std::string& host,
                 const std::string& api_version = "networking.istio.io/v1") {
    return DestinationRuleBuilder(ns, name, host, api_version);
}

// networking.istio.io VirtualService: hosts, gateways, exportTo and route destinations.
class VirtualServiceBuilder : public ObjectBuilder<VirtualServiceBuilder> {
  public:
    VirtualServiceBuilder(const std::string& ns, const std::string& name,
                          const std::vector<std::string>& hosts, const std::string& api_version)
        : ObjectBuilder(api_version, "VirtualService", ns, name) {
        body_["spec"] = {{"hosts", hosts}};
    }
    static json destination(const std::string& host, const std::string& subset, int port) {
        json d = {{"host", host}};
        if (!subset.empty())
            d["subset"] = subset;
        if (port)
            d["port"]["number"] = port;
        return d;
    }
    // An http route with one destination (`section`: http, tcp or tls).
    VirtualServiceBuilder& route(const std::string& host, const std::string& subset = "",
                                 int port = 0, const std::string& section = "http") {
        body_["spec"][section].push_back(
            {{"route", json::array({{{"destination", destination(host, subset, port)}}})}});
        return *this;
    }
    VirtualServiceBuilder& mirror(const std::string& host, const std::string& subset) {
        body_["spec"]["http"].push_back(
            {{"route", json::array({{{"destination", destination(host, "", 0)}}})},
             {"mirror", destination(host, subset, 0)}});
        return *this;
    }
    VirtualServiceBuilder& gateways(const std::vector<std::string>& names) {
        body_["spec"]["gateways"] = names;
        return *this;
    }
    VirtualServiceBuilder& export_to(const std::vector<std::string>& namespaces) {
        body_["spec"]["exportTo"] = namespaces;
        return *this;
    }
};

inline VirtualServiceBuilder
virtual_service(const std::string& ns, const std::string& name,
                const std::vector<std::string>& hosts,
                const std::string& api_version = "networking.istio.io/v1") {
    return VirtualServiceBuilder(ns, name, hosts, api_version);
}

// networking.istio.io Sidecar: egress hosts, workloadSelector, outboundTrafficPolicy (ambient.md
// §14).
class SidecarBuilder : public ObjectBuilder<SidecarBuilder> {
  public:
    SidecarBuilder(const std::string& ns, const std::string& name, const std::string& api_version)
        : ObjectBuilder(api_version, "Sidecar", ns, name) {
        body_["spec"] = json::object();
    }
    // One egress listener with these hosts ("ns/host").
    SidecarBuilder& egress(const std::vector<std::string>& hosts) {
        body_["spec"]["egress"].push_back({{"hosts", hosts}});
        return *this;
    }
    SidecarBuilder& for_workloads(const LabelMap& labels) {
        body_["spec"]["workloadSelector"]["labels"] = labels;
        return *this;
    }
    SidecarBuilder& outbound(const std::string& mode) {
        body_["spec"]["outboundTrafficPolicy"]["mode"] = mode;
        return *this;
    }
};

inline SidecarBuilder sidecar(const std::string& ns, const std::string& name,
                              const std::string& api_version = "networking.istio.io/v1") {
    return SidecarBuilder(ns, name, api_version);
}

// authentication.istio.io/v1alpha1 Policy or MeshPolicy.
class AlphaPolicyBuilder : public ObjectBuilder<AlphaPolicyBuilder> {
  public:
    AlphaPolicyBuilder(const std::string& kind, const std::string& ns, const std::string& name)
        : ObjectBuilder("authentication.istio.io/v1alpha1", kind, ns, name) {
        body_["spec"] = json::object();
    }
    AlphaPolicyBuilder& strict() { return peers(json::array({{{"mtls", json::object()}}})); }
    AlphaPolicyBuilder& permissive() {
        return peers(json::array({{{"mtls", {{"mode", "PERMISSIVE"}}}}}));
    }
    // No mtls peer at all: the sidecar accepts plaintext only.
    AlphaPolicyBuilder& plaintext_only() {
        return peers(json::array({{{"jwt", {{"issuer", "https://issuer.example"}}}}}));
    }
    AlphaPolicyBuilder& peers(const json& peers) {
        body_["spec"]["peers"] = peers;
        return *this;
    }
    AlphaPolicyBuilder& target(const std::string& service) {
        body_["spec"]["targets"].push_back({{"name", service}});
        return *this;
    }
    AlphaPolicyBuilder& target_port(const std::string& service, int number) {
        body_["spec"]["targets"].push_back(
            {{"name", service}, {"ports", json::array({{{"number", number}}})}});
        return *this;
    }
    AlphaPolicyBuilder& target_port_name(const std::string& service, const std::string& port) {
        body_["spec"]["targets"].push_back(
            {{"name", service}, {"ports", json::array({{{"name", port}}})}});
        return *this;
    }
};

inline AlphaPolicyBuilder policy(const std::string& ns, const std::string& name) {
    return AlphaPolicyBuilder("Policy", ns, name);
}
inline AlphaPolicyBuilder mesh_policy(const std::string& name) {
    return AlphaPolicyBuilder("MeshPolicy", "", name);
}

class ServiceBuilder : public ObjectBuilder<ServiceBuilder> {
  public:
    ServiceBuilder(const std::string& ns, const std::string& name)
        : ObjectBuilder("v1", "Service", ns, name) {
        body_["spec"] = {{"ports", json::array()}};
    }
    ServiceBuilder& selecting(const LabelMap& labels) {
        body_["spec"]["selector"] = labels;
        return *this;
    }
    ServiceBuilder& port(int number, int target, const std::string& name = "",
                         const std::string& protocol = "") {
        json p = {{"port", number}, {"targetPort", target}};
        if (!name.empty())
            p["name"] = name;
        if (!protocol.empty())
            p["protocol"] = protocol;
        body_["spec"]["ports"].push_back(std::move(p));
        return *this;
    }
    ServiceBuilder& named_target_port(int number, const std::string& target,
                                      const std::string& name = "") {
        json p = {{"port", number}, {"targetPort", target}};
        if (!name.empty())
            p["name"] = name;
        body_["spec"]["ports"].push_back(std::move(p));
        return *this;
    }
    ServiceBuilder& headless() {
        body_["spec"]["clusterIP"] = "None";
        return *this;
    }
    ServiceBuilder& cluster_ip(const std::string& address) {
        body_["spec"]["clusterIP"] = address;
        return *this;
    }
};

inline ServiceBuilder service(const std::string& ns, const std::string& name) {
    return ServiceBuilder(ns, name);
}

// A controller with a pod template (Deployment, StatefulSet, ...), or a running Pod.
class WorkloadBuilder : public ObjectBuilder<WorkloadBuilder> {
  public:
    WorkloadBuilder(const std::string& api_version, const std::string& kind, const std::string& ns,
                    const std::string& name)
        : ObjectBuilder(api_version, kind, ns, name), pod_(kind == "Pod"),
          cron_(kind == "CronJob") {
        json pod_spec = {{"containers", json::array({{{"name", "app"}, {"image", "app:1"}}})}};
        if (pod_)
            body_["spec"] = pod_spec;
        else
            pod_template() = {{"metadata", json::object()}, {"spec", pod_spec}};
    }
    // Labels of the pods (the template's for controllers, the pod's own for a Pod).
    WorkloadBuilder& labels(const LabelMap& labels) {
        for (const auto& [k, v] : labels)
            pod_meta()["labels"][k] = v;
        return *this;
    }
    WorkloadBuilder& pod_annotation(const std::string& key, const std::string& value) {
        pod_meta()["annotations"][key] = value;
        return *this;
    }
    // Already injected: the tlsMode label and an istio-proxy container, as the injector leaves
    // them.
    WorkloadBuilder& with_sidecar() {
        pod_meta()["labels"]["security.istio.io/tlsMode"] = "istio";
        return with_proxy_container();
    }
    WorkloadBuilder& with_proxy_container() {
        pod_spec()["containers"].push_back({{"name", "istio-proxy"}, {"image", "proxyv2"}});
        return *this;
    }
    WorkloadBuilder& inject_label(const std::string& value) {
        pod_meta()["labels"]["sidecar.istio.io/inject"] = value;
        return *this;
    }
    WorkloadBuilder& inject_annotation(const std::string& value) {
        return pod_annotation("sidecar.istio.io/inject", value);
    }
    WorkloadBuilder& container_port(int number, const std::string& name = "") {
        json p = {{"containerPort", number}};
        if (!name.empty())
            p["name"] = name;
        pod_spec()["containers"][0]["ports"].push_back(std::move(p));
        return *this;
    }
    WorkloadBuilder& owned_by(const std::string& kind, const std::string& name) {
        body_["metadata"]["ownerReferences"].push_back(
            {{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", name}, {"controller", true}});
        return *this;
    }

  private:
    json& pod_template() {
        return cron_ ? body_["spec"]["jobTemplate"]["spec"]["template"] : body_["spec"]["template"];
    }
    json& pod_meta() { return pod_ ? body_["metadata"] : pod_template()["metadata"]; }
    json& pod_spec() { return pod_ ? body_["spec"] : pod_template()["spec"]; }
    bool pod_;
    bool cron_;
};

inline WorkloadBuilder deployment(const std::string& ns, const std::string& name) {
    return WorkloadBuilder("apps/v1", "Deployment", ns, name);
}
inline WorkloadBuilder pod(const std::string& ns, const std::string& name) {
    return WorkloadBuilder("v1", "Pod", ns, name);
}
inline WorkloadBuilder controller(const std::string& api_version, const std::string& kind,
                                  const std::string& ns, const std::string& name) {
    return WorkloadBuilder(api_version, kind, ns, name);
}

class NamespaceBuilder : public ObjectBuilder<NamespaceBuilder> {
  public:
    explicit NamespaceBuilder(const std::string& name)
        : ObjectBuilder("v1", "Namespace", "", name) {}
    NamespaceBuilder& injected() { return label("istio-injection", "enabled"); }
};

inline NamespaceBuilder kube_namespace(const std::string& name) {
    return NamespaceBuilder(name);
}

inline json service_entry(const std::string& ns, const std::string& name,
                          const std::vector<std::string>& hosts,
                          const std::string& location = "MESH_EXTERNAL",
                          const std::vector<int>& ports = {443}) {
    json se = {{"apiVersion", "networking.istio.io/v1"},
               {"kind", "ServiceEntry"},
               {"metadata", {{"name", name}, {"namespace", ns}}},
               {"spec", {{"hosts", hosts}, {"location", location}}}};
    for (int p : ports)
        se["spec"]["ports"].push_back(
            {{"number", p}, {"name", "p" + std::to_string(p)}, {"protocol", "TLS"}});
    return se;
}

// ambient.md §16: a Validating- or MutatingWebhookConfiguration with one webhook calling the
// Service ns/name (port omitted: the API server's default 443).
inline json
webhook_configuration(const std::string& name, const std::string& service_ns,
                      const std::string& service_name, std::optional<int> port = {},
                      const std::string& kind = "ValidatingWebhookConfiguration",
                      const std::string& api_version = "admissionregistration.k8s.io/v1") {
    json service = {{"namespace", service_ns}, {"name", service_name}, {"path", "/validate"}};
    if (port)
        service["port"] = *port;
    return {{"apiVersion", api_version},
            {"kind", kind},
            {"metadata", {{"name", name}}},
            {"webhooks", json::array({{{"name", "check." + name + ".example.com"},
                                       {"clientConfig", {{"service", service}}}}})}};
}

// ambient.md §16: opa/webhook (sidecar, container port 8443) behind Service webhook 443 -> 8443,
// called by the API server through the ValidatingWebhookConfiguration opa-validating (port 443 by
// default).
inline std::vector<json> webhook_cluster(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        json(kube_namespace("opa").injected()),
        json(deployment("opa", "webhook")
                 .labels({{"app", "webhook"}})
                 .with_sidecar()
                 .container_port(8443)),
        json(service("opa", "webhook").selecting({{"app", "webhook"}}).port(443, 8443, "https")),
        webhook_configuration("opa-validating", "opa", "webhook"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

// ambient.md §16: an APIService backed by the Service ns/name.
inline json api_service(const std::string& name, const std::string& service_ns,
                        const std::string& service_name, std::optional<int> port = {},
                        const std::string& api_version = "apiregistration.k8s.io/v1") {
    json service = {{"namespace", service_ns}, {"name", service_name}};
    if (port)
        service["port"] = *port;
    return {{"apiVersion", api_version},
            {"kind", "APIService"},
            {"metadata", {{"name", name}}},
            {"spec", {{"group", "metrics.k8s.io"}, {"version", "v1beta1"}, {"service", service}}}};
}

// ambient.md §16: a CustomResourceDefinition whose conversion webhook is the Service ns/name
// (v1: conversion.webhook.clientConfig; v1beta1: conversion.webhookClientConfig).
inline json crd_with_conversion(const std::string& name, const std::string& service_ns,
                                const std::string& service_name, std::optional<int> port = {},
                                const std::string& api_version = "apiextensions.k8s.io/v1") {
    json service = {{"namespace", service_ns}, {"name", service_name}, {"path", "/convert"}};
    if (port)
        service["port"] = *port;
    json conversion = {{"strategy", "Webhook"}};
    if (api_version == "apiextensions.k8s.io/v1beta1")
        conversion["webhookClientConfig"] = {{"service", service}};
    else
        conversion["webhook"] = {{"clientConfig", {{"service", service}}},
                                 {"conversionReviewVersions", json::array({"v1"})}};
    return {{"apiVersion", api_version},
            {"kind", "CustomResourceDefinition"},
            {"metadata", {{"name", name}}},
            {"spec", {{"group", "example.com"}, {"conversion", conversion}}}};
}

// The `istio` ConfigMap with data.mesh already turned from YAML into a JSON object.
inline json istio_config_map(const json& mesh, const std::string& ns = "istio-system") {
    return {{"apiVersion", "v1"},
            {"kind", "ConfigMap"},
            {"metadata", {{"name", "istio"}, {"namespace", ns}}},
            {"data", {{"mesh", mesh}}}};
}

inline json auto_mtls(bool on) {
    return istio_config_map({{"enableAutoMtls", on}});
}

inline model::Settings settings_for(model::IstioVersion version) {
    model::Settings settings;
    settings.version = version;
    return settings;
}

// Builds a snapshot; every object must decode.
inline std::shared_ptr<const model::Snapshot> snapshot_of(const std::vector<json>& objects,
                                                          model::Settings settings = {}) {
    model::SnapshotBuilder builder(std::move(settings));
    for (const auto& object : objects) {
        const auto error = builder.add(object);
        INFO(object.dump());
        REQUIRE(error.value_or("") == "");
    }
    return builder.build();
}

// A model label set, for comparisons.
inline model::Labels labels_of(const LabelMap& labels) {
    return model::Labels(
        std::vector<std::pair<std::string, std::string>>(labels.begin(), labels.end()));
}

// --- Lookups into a built snapshot -------------------------------------------------------------

inline model::NsId ns_id(const model::Snapshot& snapshot, const std::string& name) {
    const auto id = snapshot.namespace_id(name);
    INFO("namespace " << name);
    REQUIRE(id.has_value());
    return *id;
}

inline const model::Workload& workload_named(const model::Snapshot& snapshot, const std::string& ns,
                                             const std::string& name) {
    const model::Workload* found = nullptr;
    for (const auto& w : snapshot.workloads())
        if (snapshot.namespaces()[w.ns].name == ns && w.name == name) {
            INFO("workload " << ns << "/" << name << " is not unique");
            REQUIRE(found == nullptr);
            found = &w;
        }
    INFO("workload " << ns << "/" << name);
    REQUIRE(found != nullptr);
    return *found;
}

inline model::ServiceId service_id(const model::Snapshot& snapshot, const std::string& ns,
                                   const std::string& name) {
    for (model::ServiceId id = 0; id < snapshot.services().size(); ++id) {
        const auto& ref = snapshot.services()[id].service.ref;
        if (ref.namespace_name == ns && ref.name == name)
            return id;
    }
    FAIL("no service " << ns << "/" << name);
    return 0;
}

inline const model::ServiceRecord& service_named(const model::Snapshot& snapshot,
                                                 const std::string& ns, const std::string& name) {
    return snapshot.services()[service_id(snapshot, ns, name)];
}

inline const model::ServicePort& port_of(const model::ServiceRecord& service, int number) {
    for (const auto& p : service.service.ports)
        if (p.port == number)
            return p;
    FAIL("service " << service.host << " has no port " << number);
    return service.service.ports.front();
}

inline std::vector<std::string> names_of(const model::Snapshot& snapshot,
                                         const std::vector<model::NsId>& ids) {
    std::vector<std::string> out;
    for (auto id : ids)
        out.push_back(snapshot.namespaces()[id].name);
    return out;
}

inline std::string fqdn(const std::string& service, const std::string& ns) {
    return service + "." + ns + ".svc.cluster.local";
}

// --- Matrix rows and findings ------------------------------------------------------------------

// The one matrix row for (client namespace, sidecar or not, host, endpoint workload, subset).
// Rows of sidecar clients that skip their sidecar (ambient.md §13) only when `bypass`.
inline std::optional<MatrixRow> row_of(const std::vector<MatrixRow>& rows,
                                       const std::string& client_ns, bool client_sidecar,
                                       const std::string& host, const std::string& workload,
                                       const std::string& subset = "", bool bypass = false) {
    std::optional<MatrixRow> found;
    for (const auto& r : rows)
        if (r.client_namespace == client_ns && r.client_sidecar == client_sidecar &&
            r.host == host && r.workload_name == workload && r.subset == subset &&
            r.bypass.empty() != bypass) {
            INFO("several matrix rows for " << client_ns << " -> " << host << " " << workload);
            REQUIRE_FALSE(found.has_value());
            found = r;
        }
    return found;
}

inline std::vector<MatrixRow> matrix_rows(const model::Snapshot& snapshot) {
    auto result = matrix(snapshot);
    REQUIRE(result.internal_error == "");
    return result.rows;
}

// "client server verdict" of the row of sidecar clients in `client_ns` that skip their sidecar
// (ambient.md §13), or "no row".
inline std::string bypass_flow_of(const std::vector<MatrixRow>& rows, const std::string& client_ns,
                                  const std::string& host, const std::string& workload) {
    const auto r = row_of(rows, client_ns, true, host, workload, "", true);
    return r ? r->client + " " + r->server + " " + r->verdict : "no row";
}

// "client server verdict" of one row, or "no row" when the flow does not exist.
inline std::string flow_of(const std::vector<MatrixRow>& rows, const std::string& client_ns,
                           bool client_sidecar, const std::string& host,
                           const std::string& workload, const std::string& subset = "") {
    const auto r = row_of(rows, client_ns, client_sidecar, host, workload, subset);
    if (!r)
        return "no row";
    return r->client + " " + r->server + " " + r->verdict;
}

inline std::vector<conflict::Finding> findings_of(const model::Snapshot& snapshot) {
    auto result = analyze(snapshot);
    REQUIRE(result.internal_error == "");
    return result.findings;
}

inline std::vector<conflict::Finding> with_code(const std::vector<conflict::Finding>& findings,
                                                std::string_view code) {
    std::vector<conflict::Finding> out;
    for (const auto& f : findings)
        if (conflict::to_string(f.code) == code)
            out.push_back(f);
    return out;
}

inline std::vector<std::string> codes_of(const std::vector<conflict::Finding>& findings) {
    std::vector<std::string> out;
    for (const auto& f : findings)
        out.emplace_back(conflict::to_string(f.code));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// "Kind name.namespace" of every finding with the code, sorted.
inline std::vector<std::string> reported_on(const std::vector<conflict::Finding>& findings,
                                            std::string_view code) {
    std::vector<std::string> out;
    for (const auto& f : with_code(findings, code))
        out.push_back(f.resource.kind + " " + model::display_name(f.resource));
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace mtlsguard::test
