// The decoded Kubernetes and Istio objects the engine reasons about, reduced to what mTLS needs.
#pragma once

#include "analysis/model/types.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mtlsguard::model {

// security.istio.io PeerAuthentication (v1beta1, v1).
struct PeerAuthentication {
    ObjectRef ref;
    Age age;
    Labels selector; // spec.selector.matchLabels; empty = mesh- or namespace-wide
    MtlsMode mode = MtlsMode::Unset;
    std::map<std::uint16_t, MtlsMode> port_level; // keyed by workload (target) port

    friend bool operator==(const PeerAuthentication&, const PeerAuthentication&) = default;
};

// One `tls` block of a DestinationRule; absent means "no TLS settings here".
using TlsSetting = std::optional<TlsMode>;

// The certificate fields of a `tls` block: istiod drops SIMPLE/MUTUAL blocks that lack them, or
// that name a credential a sidecar may not load (semantics §4).
struct TlsCredentials {
    bool client_certificate = false; // clientCertificate set
    bool private_key = false;        // privateKey set
    std::string credential_name;

    friend bool operator==(const TlsCredentials&, const TlsCredentials&) = default;
};

struct PortTrafficPolicy {
    std::uint16_t port = 0;
    TlsSetting tls;
    TlsCredentials credentials;

    friend bool operator==(const PortTrafficPolicy&, const PortTrafficPolicy&) = default;
};

struct TrafficPolicy {
    TlsSetting tls;
    TlsCredentials credentials;
    bool passthrough_load_balancer = false; // loadBalancer.simple: PASSTHROUGH
    std::vector<PortTrafficPolicy> port_level;

    friend bool operator==(const TrafficPolicy&, const TrafficPolicy&) = default;
};

struct Subset {
    std::string name;
    Labels labels;
    std::optional<TrafficPolicy> traffic_policy;

    friend bool operator==(const Subset&, const Subset&) = default;
};

// networking.istio.io DestinationRule (v1alpha3, v1beta1, v1).
struct DestinationRule {
    ObjectRef ref;
    Age age;
    std::string host; // as written; resolved to an FQDN by the index
    std::vector<std::string> export_to;
    std::optional<Labels> workload_selector;
    std::optional<TrafficPolicy> traffic_policy;
    std::vector<Subset> subsets;

    friend bool operator==(const DestinationRule&, const DestinationRule&) = default;
};

// One destination of a VirtualService route or mirror (ambient.md §15).
struct RouteDestination {
    std::string host;   // as written; short names resolve in the VirtualService's namespace
    std::string subset; // empty: the service-level cluster
    std::optional<std::uint16_t> port;
    std::string path; // where it is written, e.g. spec.http[0].route[1].destination
    // The route's match[].sourceNamespace values; empty when some match (or none) has none:
    // then the route applies to clients of every namespace.
    std::vector<std::string> source_namespaces;

    friend bool operator==(const RouteDestination&, const RouteDestination&) = default;
};

// networking.istio.io VirtualService (v1alpha3, v1beta1, v1): only what picks subset clusters.
struct VirtualService {
    ObjectRef ref;
    Age age;
    std::vector<std::string> hosts;
    std::vector<std::string> gateways;
    std::vector<std::string> export_to;
    std::vector<RouteDestination> destinations;

    friend bool operator==(const VirtualService&, const VirtualService&) = default;
};

// What a sidecar does with traffic to a host it has no cluster for (outboundTrafficPolicy.mode).
enum class OutboundPolicy : std::uint8_t { AllowAny, RegistryOnly };

// One entry of a Sidecar's egress[].hosts, split at its one '/': the namespace part ("." the
// client's own namespace, "*" any, "~" none) and the host part (an FQDN, or a wildcard such as
// "*" or "*.example.com").
struct SidecarHost {
    std::string namespace_part;
    std::string host;

    friend bool operator==(const SidecarHost&, const SidecarHost&) = default;
};

// networking.istio.io Sidecar (v1alpha3, v1beta1, v1): only what decides which hosts its clients
// see (ambient.md §14); ingress listeners change nothing about what clients send.
struct Sidecar {
    ObjectRef ref;
    Age age;
    std::optional<Labels> workload_selector; // spec.workloadSelector.labels
    // The hosts of every egress listener (no egress at all: Istio's default, "*/*"); empty when
    // the listeners hold no usable entry, so nothing is imported.
    std::vector<SidecarHost> egress_hosts;
    std::optional<OutboundPolicy> outbound_policy; // spec.outboundTrafficPolicy.mode

    friend bool operator==(const Sidecar&, const Sidecar&) = default;
};

// A port selector of a legacy Policy target: a Service port number or name.
struct AlphaPortSelector {
    std::optional<std::uint16_t> number;
    std::string name;

    friend bool operator==(const AlphaPortSelector&, const AlphaPortSelector&) = default;
};

struct AlphaTarget {
    std::string name; // a Service in the Policy's namespace
    std::vector<AlphaPortSelector> ports;

    friend bool operator==(const AlphaTarget&, const AlphaTarget&) = default;
};

// authentication.istio.io/v1alpha1 Policy (namespaced) or MeshPolicy (cluster-scoped).
struct AlphaPolicy {
    ObjectRef ref;
    Age age;
    bool mesh_policy = false;
    std::vector<AlphaTarget> targets;
    // The first peers[] entry of type mtls: STRICT or PERMISSIVE; no mtls peer: DISABLE
    // (plaintext).
    MtlsMode mode = MtlsMode::Disable;

    friend bool operator==(const AlphaPolicy&, const AlphaPolicy&) = default;
};

struct ServicePort {
    std::string name;
    std::uint16_t port = 0;
    std::optional<std::uint16_t> target_port_number; // empty when the target port is named
    std::string target_port_name;
    bool tcp = true; // UDP and SCTP carry no mTLS

    friend bool operator==(const ServicePort&, const ServicePort&) = default;
};

struct Service {
    ObjectRef ref;
    Labels labels;
    std::optional<Labels> selector; // empty optional: no selector, endpoints unknown
    bool headless = false;
    bool external_name = false;
    // spec.clusterIP when an IPv4 address (host order): what a client's outbound IP ranges are
    // matched against (ambient.md §13). Absent in most manifests; the API server fills it in.
    std::optional<std::uint32_t> cluster_ipv4;
    std::vector<ServicePort> ports;

    friend bool operator==(const Service&, const Service&) = default;
};

// networking.istio.io ServiceEntry: only the hosts and whether they are outside the mesh matter.
struct ServiceEntry {
    ObjectRef ref;
    std::vector<std::string> hosts;
    bool mesh_external = true;
    std::vector<std::uint16_t> ports;

    friend bool operator==(const ServiceEntry&, const ServiceEntry&) = default;
};

struct NamedPort {
    std::string name;
    std::uint16_t number = 0;

    friend bool operator==(const NamedPort&, const NamedPort&) = default;
};

// One matchExpressions entry of a Kubernetes label selector.
struct LabelRequirement {
    enum class Operator : std::uint8_t { In, NotIn, Exists, DoesNotExist };
    std::string key;
    Operator op = Operator::In;
    std::vector<std::string> values;

    friend bool operator==(const LabelRequirement&, const LabelRequirement&) = default;
};

// A Kubernetes metav1.LabelSelector; an empty one selects everything.
struct LabelSelector {
    Labels match_labels;
    std::vector<LabelRequirement> match_expressions;

    bool empty() const noexcept { return match_labels.empty() && match_expressions.empty(); }
    bool matches(const Labels& labels) const noexcept;
    friend bool operator==(const LabelSelector&, const LabelSelector&) = default;
};

// One entry of the CNI's ambient enablement selectors: a pod is enrolled when both match.
struct EnablementSelector {
    LabelSelector pod_selector;
    LabelSelector namespace_selector;

    friend bool operator==(const EnablementSelector&, const EnablementSelector&) = default;
};

// The pod annotation ambient.istio.io/redirection that the CNI agent writes on live pods.
enum class AmbientRedirection : std::uint8_t { Absent, Enabled, Pending, Other };

// The traffic.sidecar.istio.io/* interception annotations, as written (ambient.md §13); absent
// ones are nullopt (includeInboundPorts "" is not the same as absent: it intercepts nothing).
struct Interception {
    std::optional<std::string> exclude_inbound_ports;
    std::optional<std::string> include_inbound_ports;
    std::optional<std::string> exclude_outbound_ports;
    std::optional<std::string> include_outbound_ports;
    std::optional<std::string> exclude_outbound_ip_ranges;
    std::optional<std::string> include_outbound_ip_ranges;

    friend bool operator==(const Interception&, const Interception&) = default;
    friend auto operator<=>(const Interception&, const Interception&) = default;
};

// A pod, or a pod template that has not been scheduled yet (manifests in Git).
struct PodLike {
    std::string namespace_name;
    std::string workload_kind; // Deployment, StatefulSet, ..., or Pod
    std::string workload_name; // the controller's name
    Labels labels;
    bool from_template = false;
    // For pods: whether a sidecar runs. For templates: an explicit sidecar or inject decision.
    std::optional<bool> sidecar;
    std::vector<NamedPort> container_ports;
    // Ambient and interception facts (ambient.md §10, §11, §13).
    bool sidecar_status = false; // annotation sidecar.istio.io/status: the injector ran
    AmbientRedirection redirection = AmbientRedirection::Absent; // never set on templates
    bool bypass_inbound_capture = false; // ambient.istio.io/bypass-inbound-capture: "true"
    // spec.hostNetwork. Live pods are listed as metadata only (no spec): false for them.
    bool host_network = false;
    bool tunnel_http = false; // label networking.istio.io/tunnel lists "http"
    Interception interception;
    // The pod's own sidecar.istio.io/inject decision (false by label or annotation, true by
    // label), which beats its namespace's labels when the pod is (re)created (semantics §2).
    std::optional<bool> own_injection;

    friend bool operator==(const PodLike&, const PodLike&) = default;
};

struct Namespace {
    std::string name;
    Labels labels;

    friend bool operator==(const Namespace&, const Namespace&) = default;
};

// meshConfig, from the `istio` ConfigMap or --mesh-config.
struct MeshConfig {
    std::optional<std::string> root_namespace;
    std::optional<bool> enable_auto_mtls;
    std::optional<std::vector<std::string>> default_destination_rule_export_to;
    std::optional<std::string> trust_domain;
    std::optional<OutboundPolicy> outbound_policy; // outboundTrafficPolicy.mode
    std::string source_namespace; // of the `istio` ConfigMap it came from; empty for --mesh-config

    friend bool operator==(const MeshConfig&, const MeshConfig&) = default;
};

// The ambient keys of the istio-cni ConfigMap `istio-cni-config` (in the Istio namespace).
struct CniConfig {
    // AMBIENT_ENABLEMENT_SELECTOR (1.27+); nullopt when the key is absent.
    std::optional<std::vector<EnablementSelector>> enablement_selectors;
    // EXCLUDE_NAMESPACES, comma-separated; nullopt when the key is absent.
    std::optional<std::vector<std::string>> exclude_namespaces;
    std::string source_namespace; // of the ConfigMap it came from

    friend bool operator==(const CniConfig&, const CniConfig&) = default;
};

// One Service the Kubernetes API server calls over its own TLS (ambient.md §16): a webhook's,
// an APIService's or a CRD conversion webhook's `service` reference.
struct ApiServerCall {
    std::string webhook; // webhooks[].name; empty for an APIService or a CRD conversion
    std::string namespace_name;
    std::string service;
    std::uint16_t port = 443; // the Service port
    std::string path;

    friend bool operator==(const ApiServerCall&, const ApiServerCall&) = default;
};

// A cluster-scoped object whose Services the API server calls: Validating- and
// MutatingWebhookConfiguration, APIService, CustomResourceDefinition (conversion webhook).
// clientConfig.url entries point outside the mesh and are left out.
struct ApiServerCallee {
    ObjectRef ref; // namespace_name empty
    std::vector<ApiServerCall> calls;

    friend bool operator==(const ApiServerCallee&, const ApiServerCallee&) = default;
};

using DecodedObject =
    std::variant<PeerAuthentication, DestinationRule, AlphaPolicy, Service, ServiceEntry, PodLike,
                 Namespace, MeshConfig, CniConfig, ApiServerCallee, VirtualService, Sidecar>;

} // namespace mtlsguard::model
