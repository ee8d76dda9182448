// Which resources the API server serves, and the version mtls-guard reads each one in.
#pragma once

#include "server/kube/http_client.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtlsguard::kube {

// Everything the engine reads from a cluster, one reflector each.
enum class ResourceKind : std::uint8_t {
    Namespaces,
    Services,
    Pods,
    IstioConfigMap,
    PeerAuthentications,
    DestinationRules,
    ServiceEntries,
    Policies,
    MeshPolicies,
    EndpointSlices, // where live pods' named ports resolve; not an engine object
    // What the API server calls over its own TLS (ambient.md §16); read when served.
    ValidatingWebhookConfigurations,
    MutatingWebhookConfigurations,
    ApiServices,
    // Istio's routing (ambient.md §15) and client scoping (§14) resources.
    VirtualServices,
    Sidecars,
    CniConfigMap, // istio-cni-config: which pods are ambient (§10, from Istio 1.27)
    // CRDs whose conversion webhook the API server calls (§16). Read by the CRD watch that also
    // notices Istio's CRDs, not by a reflector of its own: CRDs are large, one list is enough.
    CrdConversionWebhooks,
};
inline constexpr std::array<ResourceKind, 17> all_resource_kinds = {
    ResourceKind::Namespaces,
    ResourceKind::Services,
    ResourceKind::Pods,
    ResourceKind::IstioConfigMap,
    ResourceKind::PeerAuthentications,
    ResourceKind::DestinationRules,
    ResourceKind::ServiceEntries,
    ResourceKind::Policies,
    ResourceKind::MeshPolicies,
    ResourceKind::EndpointSlices,
    ResourceKind::ValidatingWebhookConfigurations,
    ResourceKind::MutatingWebhookConfigurations,
    ResourceKind::ApiServices,
    ResourceKind::VirtualServices,
    ResourceKind::Sidecars,
    ResourceKind::CniConfigMap,
    ResourceKind::CrdConversionWebhooks};

// Static facts about one kind.
struct KindSpec {
    ResourceKind kind;
    std::string_view name;        // the resource (plural), also the metrics label: "pods"
    std::string_view group;       // "" for the core group
    std::string_view object_kind; // "Pod"
    bool namespaced = true;
    bool custom = false;        // served through a CRD that may come and go (Istio's)
    bool metadata_only = false; // read as PartialObjectMetadata: labels, annotations, owners
    std::vector<std::string_view> versions; // the versions the engine decodes, newest first
    bool discovered = true; // false: not looked up by discovery, no reflector of its own
};
const KindSpec& spec_of(ResourceKind kind) noexcept;
// "peerauthentications.security.istio.io" -> PeerAuthentications: CRD names worth rediscovering.
std::optional<ResourceKind> kind_of_crd(std::string_view crd_name) noexcept;

// What a reflector lists and watches.
struct ResourceTarget {
    std::string name; // "pods", for logs and metrics
    std::string path; // the collection, e.g. "/apis/security.istio.io/v1/peerauthentications"
    std::string field_selector; // "" or e.g. "metadata.name=istio"
    bool metadata_only = false;
    std::string api_version; // put on every object: list items of built-in types carry none
    std::string kind;
};

// The target for `kind` in `version`. The istio and istio-cni-config ConfigMaps are read from
// `istio_namespace` only, each by a field selector on its name (a selector cannot say "a or b").
ResourceTarget make_target(ResourceKind kind, std::string_view version,
                           std::string_view istio_namespace);
// CustomResourceDefinitions as whole objects: their names tell when Istio's appear, and their
// spec.conversion which Services the API server calls. The metadata alone would not show the
// conversion webhook, and a second, full watch would read every CRD twice.
ResourceTarget crd_target();
// CRDs per list page: one with its OpenAPI schema is often 100 KiB to 1 MiB (etcd allows 1.5 MiB),
// so that a page of the usual 500 could exceed the page limit; 50 keep a page's text and parse to
// tens of MiB.
inline constexpr std::size_t crd_page_size = 50;

// One entry of an APIResourceList.
struct ApiResource {
    std::string name; // plural; "pods/status" for subresources
    bool namespaced = false;
    std::string kind;
    std::vector<std::string> verbs;
    bool can_list_and_watch() const noexcept;
};

// GET /api/v1 or /apis/<group>/<version>. Throws std::runtime_error with the reason.
std::vector<ApiResource> parse_api_resource_list(const nlohmann::json& document);
// GET /apis: group name -> the versions it serves, as listed. Throws std::runtime_error.
std::map<std::string, std::vector<std::string>>
parse_api_group_list(const nlohmann::json& document);

// version -> resources served in it, for one group.
using GroupResources = std::map<std::string, std::vector<ApiResource>>;

// The newest version (in the spec's order) that serves the kind's resource with list and watch.
std::optional<std::string> choose_version(const KindSpec& spec, const GroupResources& served);

struct DiscoveryResult {
    std::map<ResourceKind, std::string> versions; // kinds served, and the version chosen
    bool crd_api = false; // apiextensions.k8s.io/v1 customresourcedefinitions can be watched
};

// One discovery pass: /api/v1, /apis, then /apis/<group>/<version> for Istio's groups,
// discovery.k8s.io (EndpointSlices, read when served: without them named ports stay unknown),
// admissionregistration.k8s.io and apiregistration.k8s.io (webhook configurations and
// APIServices, read when served). Runs on the client's executor; call cancel() there too.
class Discovery : public std::enable_shared_from_this<Discovery> {
  public:
    using Done = std::function<void(std::optional<DiscoveryResult> result, std::string error)>;
    Discovery(std::shared_ptr<ApiClient> client, std::chrono::milliseconds timeout);
    void run(Done done);
    void cancel();

  private:
    void fetch(const std::string& path, std::function<void(const nlohmann::json&)> use);
    void fetch_next();
    void fail(std::string error);
    void finish();

    std::shared_ptr<ApiClient> client_;
    std::chrono::milliseconds timeout_;
    Done done_;
    std::shared_ptr<HttpCall> call_;
    std::vector<std::pair<std::string, std::string>> pending_versions_; // group, version
    std::map<std::string, GroupResources> served_;                      // group -> resources
    bool crd_api_ = false;
    bool cancelled_ = false;
};

} // namespace mtlsguard::kube
