// Which resources the API server serves, and the version mtls-guard reads each one in.
#include "server/kube/discovery.hpp"

#include "server/kube/watch_event.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace mtlsguard::kube {
namespace {

using nlohmann::json;

const std::array<KindSpec, all_resource_kinds.size()>& specs() {
    static const std::array<KindSpec, all_resource_kinds.size()> table = {{
        {ResourceKind::Namespaces, "namespaces", "", "Namespace", false, false, false, {"v1"}},
        {ResourceKind::Services, "services", "", "Service", true, false, false, {"v1"}},
        {ResourceKind::Pods, "pods", "", "Pod", true, false, true, {"v1"}},
        {ResourceKind::IstioConfigMap, "configmaps", "", "ConfigMap", true, false, false, {"v1"}},
        {ResourceKind::PeerAuthentications,
         "peerauthentications",
         "security.istio.io",
         "PeerAuthentication",
         true,
         true,
         false,
         {"v1", "v1beta1"}},
        {ResourceKind::DestinationRules,
         "destinationrules",
         "networking.istio.io",
         "DestinationRule",
         true,
         true,
         false,
         {"v1", "v1beta1", "v1alpha3"}},
        {ResourceKind::ServiceEntries,
         "serviceentries",
         "networking.istio.io",
         "ServiceEntry",
         true,
         true,
         false,
         {"v1", "v1beta1", "v1alpha3"}},
        {ResourceKind::Policies,
         "policies",
         "authentication.istio.io",
         "Policy",
         true,
         true,
         false,
         {"v1alpha1"}},
        {ResourceKind::MeshPolicies,
         "meshpolicies",
         "authentication.istio.io",
         "MeshPolicy",
         false,
         true,
         false,
         {"v1alpha1"}},
        {ResourceKind::EndpointSlices,
         "endpointslices",
         "discovery.k8s.io",
         "EndpointSlice",
         true,
         false,
         false,
         {"v1"}},
        {ResourceKind::ValidatingWebhookConfigurations,
         "validatingwebhookconfigurations",
         "admissionregistration.k8s.io",
         "ValidatingWebhookConfiguration",
         false,
         false,
         false,
         {"v1", "v1beta1"}},
        {ResourceKind::MutatingWebhookConfigurations,
         "mutatingwebhookconfigurations",
         "admissionregistration.k8s.io",
         "MutatingWebhookConfiguration",
         false,
         false,
         false,
         {"v1", "v1beta1"}},
        {ResourceKind::ApiServices,
         "apiservices",
         "apiregistration.k8s.io",
         "APIService",
         false,
         false,
         false,
         {"v1", "v1beta1"}},
        {ResourceKind::VirtualServices,
         "virtualservices",
         "networking.istio.io",
         "VirtualService",
         true,
         true,
         false,
         {"v1", "v1beta1", "v1alpha3"}},
        {ResourceKind::Sidecars,
         "sidecars",
         "networking.istio.io",
         "Sidecar",
         true,
         true,
         false,
         {"v1", "v1beta1", "v1alpha3"}},
        {ResourceKind::CniConfigMap, "configmaps", "", "ConfigMap", true, false, false, {"v1"}},
        {ResourceKind::CrdConversionWebhooks,
         "customresourcedefinitions",
         "apiextensions.k8s.io",
         "CustomResourceDefinition",
         false,
         false,
         false,
         {"v1"},
         false},
    }};
    return table;
}

std::string required_string(const json& object, const char* key, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
        throw std::runtime_error(where + ": " + key + " is missing");
    return it->get<std::string>();
}

const json& required_array(const json& object, const char* key, const std::string& where) {
    static const json empty = json::array();
    auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return empty; // Go writes an empty list as null
    if (!it->is_array())
        throw std::runtime_error(where + ": " + key + " is not a list");
    return *it;
}

// A named group some kind is read from: Istio's, discovery.k8s.io, and the API server's callees'.
bool is_read_group(std::string_view group) {
    if (group.empty())
        return false;
    for (const auto& spec : specs())
        if (spec.discovered && spec.group == group)
            return true;
    return false;
}

bool version_wanted(std::string_view group, std::string_view version) {
    for (const auto& spec : specs())
        if (spec.discovered && spec.group == group &&
            std::find(spec.versions.begin(), spec.versions.end(), version) != spec.versions.end())
            return true;
    return false;
}

// RFC 3986 path segments here are DNS labels and names; refuse anything else in a path.
bool safe_path_segment(std::string_view text) {
    return !text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") ==
                                std::string_view::npos;
}

} // namespace

const KindSpec& spec_of(ResourceKind kind) noexcept {
    return specs()[static_cast<std::size_t>(kind)];
}

std::optional<ResourceKind> kind_of_crd(std::string_view crd_name) noexcept {
    for (const auto& spec : specs()) {
        if (!spec.custom)
            continue;
        if (crd_name.size() == spec.name.size() + 1 + spec.group.size() &&
            crd_name.substr(0, spec.name.size()) == spec.name &&
            crd_name[spec.name.size()] == '.' &&
            crd_name.substr(spec.name.size() + 1) == spec.group)
            return spec.kind;
    }
    return std::nullopt;
}

ResourceTarget make_target(ResourceKind kind, std::string_view version,
                           std::string_view istio_namespace) {
    const KindSpec& spec = spec_of(kind);
    ResourceTarget target;
    target.name = std::string(spec.name);
    target.metadata_only = spec.metadata_only;
    target.kind = std::string(spec.object_kind);
    const std::string group_version = spec.group.empty()
                                          ? std::string(version)
                                          : std::string(spec.group) + "/" + std::string(version);
    target.api_version = group_version;
    const std::string root = spec.group.empty() ? "/api/" : "/apis/";
    if (kind == ResourceKind::IstioConfigMap || kind == ResourceKind::CniConfigMap) {
        if (!safe_path_segment(istio_namespace))
            throw std::invalid_argument("bad Istio namespace name \"" +
                                        std::string(istio_namespace) + "\"");
        target.path = root + group_version + "/namespaces/" + std::string(istio_namespace) + "/" +
                      std::string(spec.name);
        const bool istio = kind == ResourceKind::IstioConfigMap;
        target.field_selector = istio ? "metadata.name=istio" : "metadata.name=istio-cni-config";
        // Logs and the stale warning tell the two lists apart by this name.
        target.name = istio ? "configmaps" : "configmaps (istio-cni-config)";
    } else {
        target.path = root + group_version + "/" + std::string(spec.name);
    }
    return target;
}

ResourceTarget crd_target() {
    ResourceTarget target;
    target.name = "customresourcedefinitions";
    target.path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    target.api_version = "apiextensions.k8s.io/v1";
    target.kind = "CustomResourceDefinition";
    return target;
}

bool ApiResource::can_list_and_watch() const noexcept {
    return std::find(verbs.begin(), verbs.end(), "list") != verbs.end() &&
           std::find(verbs.begin(), verbs.end(), "watch") != verbs.end();
}

std::vector<ApiResource> parse_api_resource_list(const json& document) {
    const std::string where = "APIResourceList";
    if (!document.is_object())
        throw std::runtime_error(where + ": not an object");
    std::vector<ApiResource> out;
    for (const json& item : required_array(document, "resources", where)) {
        if (!item.is_object())
            throw std::runtime_error(where + ": a resource is not an object");
        ApiResource resource;
        resource.name = required_string(item, "name", where + " resource");
        resource.kind = item.value("kind", "");
        auto namespaced = item.find("namespaced");
        resource.namespaced =
            namespaced != item.end() && namespaced->is_boolean() && namespaced->get<bool>();
        for (const json& verb : required_array(item, "verbs", where + " " + resource.name))
            if (verb.is_string())
                resource.verbs.push_back(verb.get<std::string>());
        out.push_back(std::move(resource));
    }
    return out;
}

std::map<std::string, std::vector<std::string>> parse_api_group_list(const json& document) {
    const std::string where = "APIGroupList";
    if (!document.is_object())
        throw std::runtime_error(where + ": not an object");
    std::map<std::string, std::vector<std::string>> out;
    for (const json& group : required_array(document, "groups", where)) {
        if (!group.is_object())
            throw std::runtime_error(where + ": a group is not an object");
        const std::string name = required_string(group, "name", where + " group");
        auto& versions = out[name];
        for (const json& version : required_array(group, "versions", where + " " + name)) {
            if (!version.is_object())
                throw std::runtime_error(where + " " + name + ": a version is not an object");
            versions.push_back(required_string(version, "version", where + " " + name));
        }
    }
    return out;
}

std::optional<std::string> choose_version(const KindSpec& spec, const GroupResources& served) {
    for (std::string_view version : spec.versions) {
        auto it = served.find(std::string(version));
        if (it == served.end())
            continue;
        for (const ApiResource& resource : it->second)
            if (resource.name == spec.name && resource.can_list_and_watch())
                return std::string(version);
    }
    return std::nullopt;
}

Discovery::Discovery(std::shared_ptr<ApiClient> client, std::chrono::milliseconds timeout)
    : client_(std::move(client)), timeout_(timeout) {}

void Discovery::run(Done done) {
    done_ = std::move(done);
    fetch("/api/v1", [this](const json& document) {
        GroupResources core;
        core["v1"] = parse_api_resource_list(document);
        for (ResourceKind kind : all_resource_kinds) {
            const KindSpec& spec = spec_of(kind);
            if (spec.custom || !spec.group.empty())
                continue; // Istio's come and go; EndpointSlices are optional
            if (!choose_version(spec, core))
                throw std::runtime_error("the API server does not serve " + std::string(spec.name) +
                                         " v1 with list and watch");
        }
        served_[""] = std::move(core);
        fetch("/apis", [this](const json& groups_document) {
            for (const auto& [group, versions] : parse_api_group_list(groups_document)) {
                if (group == "apiextensions.k8s.io")
                    crd_api_ = std::find(versions.begin(), versions.end(), "v1") != versions.end();
                if (!is_read_group(group))
                    continue;
                served_[group]; // the group exists even if none of its versions is usable
                for (const auto& version : versions)
                    if (version_wanted(group, version))
                        pending_versions_.emplace_back(group, version);
            }
            fetch_next();
        });
    });
}

void Discovery::fetch_next() {
    if (pending_versions_.empty())
        return finish();
    auto [group, version] = pending_versions_.front();
    pending_versions_.erase(pending_versions_.begin());
    fetch("/apis/" + group + "/" + version,
          [this, group = group, version = version](const json& document) {
              if (!document.is_null()) // null: listed in /apis but gone since (404)
                  served_[group][version] = parse_api_resource_list(document);
              fetch_next();
          });
}

void Discovery::fetch(const std::string& path, std::function<void(const json&)> use) {
    if (cancelled_)
        return;
    HttpRequest request;
    request.target = path;
    request.timeout = timeout_;
    request.body_limit = std::size_t{16} << 20;
    const bool group_version = path.rfind("/apis/", 0) == 0;
    // Weak: the call in flight must not keep the discovery that holds it alive.
    call_ = client_->get(request, [weak = weak_from_this(), path, group_version,
                                   use = std::move(use)](HttpResult result) {
        auto self = weak.lock();
        if (!self || self->cancelled_)
            return;
        self->call_.reset();
        if (group_version && result.status == 404 && !result.error) {
            // A CRD deleted between /apis and this request: its versions are simply not served.
            try {
                use(json());
            } catch (const std::exception& e) {
                self->fail("discovery " + path + ": " + e.what());
            }
            return;
        }
        if (result.status == 401)
            self->client_->token_rejected();
        if (!result.ok())
            return self->fail("discovery " + path + ": " + result.describe());
        std::string error;
        auto document = parse_json_limited(result.body, error);
        if (!document)
            return self->fail("discovery " + path + ": " + error);
        try {
            use(*document);
        } catch (const std::exception& e) {
            self->fail("discovery " + path + ": " + e.what());
        }
    });
}

void Discovery::fail(std::string error) {
    if (cancelled_ || !done_)
        return;
    cancelled_ = true;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::nullopt, std::move(error));
}

void Discovery::finish() {
    if (cancelled_ || !done_)
        return;
    DiscoveryResult result;
    result.crd_api = crd_api_;
    for (ResourceKind kind : all_resource_kinds) {
        const KindSpec& spec = spec_of(kind);
        if (!spec.discovered)
            continue;
        auto group = served_.find(std::string(spec.group));
        if (group == served_.end())
            continue;
        if (auto version = choose_version(spec, group->second))
            result.versions.emplace(kind, std::move(*version));
    }
    auto done = std::move(done_);
    done_ = nullptr;
    cancelled_ = true; // a Discovery runs once
    done(std::move(result), {});
}

void Discovery::cancel() {
    cancelled_ = true;
    done_ = nullptr;
    if (call_)
        call_->cancel();
    call_.reset();
}

} // namespace mtlsguard::kube
