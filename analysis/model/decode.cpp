// Turns one Kubernetes object, as the API server sends it in JSON, into the engine's model.
#include "analysis/model/decode.hpp"

#include "analysis/model/decode_fields.hpp"
#include "analysis/model/json_node.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string_view>

namespace mtlsguard::model {
namespace decoding {

std::uint16_t port_key(std::string_view key, const std::string& path) {
    if (key.empty() || key.size() > 5 || key.find_first_not_of("0123456789") != std::string::npos)
        throw Failure{path + ": key \"" + std::string(key) + "\" is not a port number"};
    const long n = std::stol(std::string(key));
    if (n < 1 || n > 65535)
        throw Failure{path + ": port " + std::string(key) + " is outside 1..65535"};
    return static_cast<std::uint16_t>(n);
}

namespace {

// How an apiVersion's version part must read for a kind table entry to apply.
enum class VersionMatch : std::uint8_t {
    Any,         // every version of the group (the workload controllers: only the pod template)
    Exact,       // the version is one of those listed
    LastSegment, // the apiVersion ends with "/<one of those listed>" (as it always has been read)
};

// One row of the kind table: the apiVersions and kind decode_object reads, and what into.
struct KindEntry {
    std::string_view group; // empty: the core group, whose apiVersion is the version alone
    VersionMatch match;
    std::span<const std::string_view> versions;
    std::string_view kind;
    Kind decodes_as;
};

constexpr std::string_view peer_authentication_versions[] = {"v1beta1", "v1"};
constexpr std::string_view istio_networking_versions[] = {"v1alpha3", "v1beta1", "v1"};
constexpr std::string_view alpha_authentication_versions[] = {"v1alpha1"};
constexpr std::string_view core_versions[] = {"v1"};
// The API server's own callees (ambient.md §16), in the versions that have a service field.
constexpr std::string_view callee_versions[] = {"v1", "v1beta1"};

// Every kind the engine reads; any other apiVersion/kind pair is Kind::Unknown (skipped).
constexpr KindEntry kind_table[] = {
    {"security.istio.io", VersionMatch::LastSegment, peer_authentication_versions,
     "PeerAuthentication", Kind::PeerAuthentication},
    {"networking.istio.io", VersionMatch::LastSegment, istio_networking_versions, "DestinationRule",
     Kind::DestinationRule},
    {"networking.istio.io", VersionMatch::LastSegment, istio_networking_versions, "ServiceEntry",
     Kind::ServiceEntry},
    {"networking.istio.io", VersionMatch::LastSegment, istio_networking_versions, "VirtualService",
     Kind::VirtualService},
    {"networking.istio.io", VersionMatch::LastSegment, istio_networking_versions, "Sidecar",
     Kind::Sidecar},
    {"authentication.istio.io", VersionMatch::Exact, alpha_authentication_versions, "Policy",
     Kind::Policy},
    {"authentication.istio.io", VersionMatch::Exact, alpha_authentication_versions, "MeshPolicy",
     Kind::MeshPolicy},
    {"", VersionMatch::Exact, core_versions, "Service", Kind::Service},
    {"", VersionMatch::Exact, core_versions, "Namespace", Kind::Namespace},
    {"", VersionMatch::Exact, core_versions, "Pod", Kind::Pod},
    {"", VersionMatch::Exact, core_versions, "ConfigMap", Kind::ConfigMap},
    {"apps", VersionMatch::Any, {}, "Deployment", Kind::PodTemplateOwner},
    {"apps", VersionMatch::Any, {}, "StatefulSet", Kind::PodTemplateOwner},
    {"apps", VersionMatch::Any, {}, "DaemonSet", Kind::PodTemplateOwner},
    {"apps", VersionMatch::Any, {}, "ReplicaSet", Kind::PodTemplateOwner},
    {"extensions", VersionMatch::Any, {}, "Deployment", Kind::PodTemplateOwner},
    {"extensions", VersionMatch::Any, {}, "StatefulSet", Kind::PodTemplateOwner},
    {"extensions", VersionMatch::Any, {}, "DaemonSet", Kind::PodTemplateOwner},
    {"extensions", VersionMatch::Any, {}, "ReplicaSet", Kind::PodTemplateOwner},
    {"batch", VersionMatch::Any, {}, "Job", Kind::PodTemplateOwner},
    {"batch", VersionMatch::Any, {}, "CronJob", Kind::PodTemplateOwner},
    {"admissionregistration.k8s.io", VersionMatch::LastSegment, callee_versions,
     "ValidatingWebhookConfiguration", Kind::ApiServerCallee},
    {"admissionregistration.k8s.io", VersionMatch::LastSegment, callee_versions,
     "MutatingWebhookConfiguration", Kind::ApiServerCallee},
    {"apiregistration.k8s.io", VersionMatch::LastSegment, callee_versions, "APIService",
     Kind::ApiServerCallee},
    {"apiextensions.k8s.io", VersionMatch::LastSegment, callee_versions, "CustomResourceDefinition",
     Kind::ApiServerCallee},
};

// The version part of `api_version` when it names `group` ("<group>/<version>", or the version
// alone for the core group); nullopt for another group.
std::optional<std::string_view> version_in(std::string_view api_version, std::string_view group) {
    if (group.empty())
        return api_version;
    if (api_version.size() > group.size() && api_version.starts_with(group) &&
        api_version[group.size()] == '/')
        return api_version.substr(group.size() + 1);
    return std::nullopt;
}

bool version_matches(const KindEntry& entry, std::string_view version) {
    if (entry.match == VersionMatch::Any)
        return true;
    return std::any_of(entry.versions.begin(), entry.versions.end(), [&](std::string_view listed) {
        if (version == listed)
            return true;
        return entry.match == VersionMatch::LastSegment && version.size() > listed.size() &&
               version.ends_with(listed) && version[version.size() - listed.size() - 1] == '/';
    });
}

} // namespace

Kind classify(std::string_view api_version, std::string_view kind) noexcept {
    for (const KindEntry& entry : kind_table) {
        if (entry.kind != kind)
            continue;
        const auto version = version_in(api_version, entry.group);
        if (version && version_matches(entry, *version))
            return entry.decodes_as;
    }
    return Kind::Unknown;
}

DecodeOutcome decoded(DecodedObject object) {
    DecodeOutcome out;
    out.status = DecodeOutcome::Status::Decoded;
    out.object = std::move(object);
    return out;
}

DecodeOutcome failed(std::string message) {
    DecodeOutcome out;
    out.status = DecodeOutcome::Status::Error;
    out.error = std::move(message);
    return out;
}

bool injected_marker(const Labels& labels, const Labels& annotations) {
    const std::string* tls_mode = labels.find("security.istio.io/tlsMode");
    return (tls_mode && *tls_mode == "istio") || annotations.contains("sidecar.istio.io/status");
}

std::string strip_suffix(const std::string& name, const std::string& suffix) {
    if (!suffix.empty() && name.size() > suffix.size() + 1 &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        name[name.size() - suffix.size() - 1] == '-')
        return name.substr(0, name.size() - suffix.size() - 1);
    return name;
}

std::optional<std::string> cronjob_name(const std::string& job_name) {
    const auto dash = job_name.rfind('-');
    if (dash == std::string::npos || dash == 0)
        return std::nullopt;
    const std::string tail = job_name.substr(dash + 1);
    if (tail.size() < 8 || tail.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return job_name.substr(0, dash);
}

bool list_contains(std::string_view list, std::string_view item) noexcept {
    return any_list_entry(list, [&](std::string_view entry) { return entry == item; });
}

Labels stable_pod_labels(Labels labels) {
    labels.erase("pod-template-hash");
    labels.erase("controller-revision-hash");
    labels.erase("statefulset.kubernetes.io/pod-name");
    labels.erase("apps.kubernetes.io/pod-index");
    labels.erase("batch.kubernetes.io/controller-uid");
    labels.erase("controller-uid");
    labels.erase("batch.kubernetes.io/job-name");
    labels.erase("job-name");
    return labels;
}

} // namespace decoding

namespace {

using decoding::Failure;
using nlohmann::json;

using decoding::JsonNode;

// The helpers of decode_fields.hpp for the kinds only decode_object reads, on nlohmann::json.
const json* unwrap(const std::optional<JsonNode>& node) {
    return node ? node->value : nullptr;
}

const json* member(const json& object, std::string_view key) {
    return unwrap(decoding::member(JsonNode{&object}, key));
}

std::string type_name(const json& value) {
    return value.type_name();
}

std::string optional_string(const json& object, std::string_view key, std::string_view path) {
    return decoding::optional_string(JsonNode{&object}, key, path);
}

const json* optional_object(const json& object, std::string_view key, const std::string& path) {
    return unwrap(decoding::optional_object(JsonNode{&object}, key, path));
}

const json* optional_array(const json& object, std::string_view key, const std::string& path) {
    return unwrap(decoding::optional_array(JsonNode{&object}, key, path));
}

std::optional<bool> optional_bool(const json& object, std::string_view key,
                                  const std::string& path) {
    return decoding::optional_bool(JsonNode{&object}, key, path);
}

std::uint16_t port_number(const json& value, const std::string& path) {
    return decoding::port_number(JsonNode{&value}, path);
}

Labels string_map(const json* object, const std::string& path,
                  bool (*keep)(std::string_view) noexcept = nullptr) {
    return decoding::string_map(object ? std::optional<JsonNode>(JsonNode{object}) : std::nullopt,
                                path, keep);
}

using Meta = decoding::BasicMeta<JsonNode>;

Meta decode_meta(const json& object, std::string_view default_namespace, bool namespaced) {
    return decoding::decode_meta(JsonNode{&object}, default_namespace, namespaced);
}

ObjectRef make_ref(const json& object, std::string_view kind, const Meta& meta) {
    return decoding::make_ref(JsonNode{&object}, kind, meta);
}

std::string require_string(const json& value, const std::string& path) {
    return decoding::require_string(JsonNode{&value}, path);
}

using decoding::classify;
using decoding::decoded;
using decoding::failed;
using decoding::guarded;
using decoding::Kind;

using decoding::container_ports;
using decoding::has_proxy_container;
using decoding::injected_marker;
using decoding::owning_workload;
using decoding::stable_pod_labels;

PodLike decode_template_owner(const json& object, const Meta& meta, std::string_view kind) {
    const json* spec = optional_object(object, "spec", "");
    const json* template_spec = nullptr;
    std::string template_path;
    if (spec && kind == "CronJob") {
        const json* job = optional_object(*spec, "jobTemplate", "spec");
        const json* job_spec = job ? optional_object(*job, "spec", "spec.jobTemplate") : nullptr;
        template_spec =
            job_spec ? optional_object(*job_spec, "template", "spec.jobTemplate.spec") : nullptr;
        template_path = "spec.jobTemplate.spec.template";
    } else if (spec) {
        template_spec = optional_object(*spec, "template", "spec");
        template_path = "spec.template";
    }
    PodLike pod;
    pod.namespace_name = meta.namespace_name;
    pod.workload_kind = std::string(kind);
    pod.workload_name = meta.name;
    pod.from_template = true;
    // A ReplicaSet or Job owned by a controller is named after that controller.
    if ((kind == "ReplicaSet" || kind == "Job") && meta.owner_references) {
        Meta owner_meta = meta;
        auto [owner_kind, owner_name] = owning_workload(owner_meta);
        if (owner_kind != "Pod") {
            pod.workload_kind = owner_kind;
            pod.workload_name = owner_name;
        }
    }
    if (!template_spec)
        return pod;
    Labels labels;
    Labels annotations;
    if (const json* tmeta = optional_object(*template_spec, "metadata", template_path)) {
        labels = string_map(member(*tmeta, "labels"), template_path + ".metadata.labels");
        annotations =
            string_map(member(*tmeta, "annotations"), template_path + ".metadata.annotations",
                       decoding::read_annotation);
    }
    pod.labels = stable_pod_labels(labels);
    const json* pod_spec = optional_object(*template_spec, "spec", template_path);
    if (pod_spec)
        pod.container_ports = container_ports(JsonNode{pod_spec}, template_path + ".spec");
    decoding::decode_dataplane_facts(pod, labels, annotations,
                                     pod_spec ? std::optional<JsonNode>(JsonNode{pod_spec})
                                              : std::nullopt,
                                     template_path + ".spec");
    // Only the CNI writes this, on running pods; a template that carries it (copied from a pod)
    // still only predicts.
    pod.redirection = AmbientRedirection::Absent;
    if (injected_marker(labels, annotations) ||
        (pod_spec && has_proxy_container(JsonNode{pod_spec}))) {
        pod.sidecar = true;
        return pod;
    }
    pod.sidecar = pod.own_injection;
    return pod; // when nullopt, the namespace decides
}

ServiceEntry decode_service_entry(const json& object, const Meta& meta, std::string_view kind) {
    ServiceEntry se;
    se.ref = make_ref(object, kind, meta);
    const json* spec = optional_object(object, "spec", "");
    if (!spec)
        return se;
    if (const json* hosts = optional_array(*spec, "hosts", "spec")) {
        for (std::size_t i = 0; i < hosts->size(); ++i)
            se.hosts.push_back(
                require_string((*hosts)[i], "spec.hosts[" + std::to_string(i) + "]"));
    }
    const std::string location = optional_string(*spec, "location", "spec");
    if (!location.empty() && location != "MESH_EXTERNAL" && location != "MESH_INTERNAL")
        throw Failure{"spec.location: unknown value \"" + location + "\""};
    se.mesh_external = location != "MESH_INTERNAL";
    if (const json* ports = optional_array(*spec, "ports", "spec")) {
        for (std::size_t i = 0; i < ports->size(); ++i) {
            const std::string path = "spec.ports[" + std::to_string(i) + "]";
            const json* number = member((*ports)[i], "number");
            if (!number)
                throw Failure{path + ".number: missing"};
            se.ports.push_back(port_number(*number, path + ".number"));
        }
    }
    return se;
}

MeshConfig decode_mesh(const json& mesh, const std::string& path) {
    if (!mesh.is_object())
        throw Failure{path + ": expected a map"};
    MeshConfig config;
    const std::string root = optional_string(mesh, "rootNamespace", path);
    if (!root.empty())
        config.root_namespace = root;
    config.enable_auto_mtls = optional_bool(mesh, "enableAutoMtls", path);
    if (const json* export_to = optional_array(mesh, "defaultDestinationRuleExportTo", path)) {
        std::vector<std::string> values;
        for (std::size_t i = 0; i < export_to->size(); ++i)
            values.push_back(
                require_string((*export_to)[i], path + ".defaultDestinationRuleExportTo[" +
                                                    std::to_string(i) + "]"));
        config.default_destination_rule_export_to = std::move(values);
    }
    const std::string trust_domain = optional_string(mesh, "trustDomain", path);
    if (!trust_domain.empty())
        config.trust_domain = trust_domain;
    if (const json* policy = optional_object(mesh, "outboundTrafficPolicy", path))
        config.outbound_policy =
            decoding::outbound_policy(JsonNode{policy}, path + ".outboundTrafficPolicy");
    return config;
}

std::optional<MeshConfig> decode_istio_config_map(const json& object, const Meta& meta) {
    if (meta.name != "istio")
        return std::nullopt;
    const json* data = optional_object(object, "data", "");
    const json* mesh = data ? member(*data, "mesh") : nullptr;
    if (!mesh)
        return MeshConfig{};
    if (mesh->is_object())
        return decode_mesh(*mesh, "data.mesh");
    if (mesh->is_string()) {
        // server/ turns the YAML into JSON before it reaches the engine; JSON text is YAML too.
        const json parsed = json::parse(mesh->get_ref<const std::string&>(), nullptr, false);
        if (parsed.is_discarded() || !(parsed.is_object() || parsed.is_null()))
            throw Failure{"data.mesh: expected a map (the mesh config YAML)"};
        if (parsed.is_null())
            return MeshConfig{};
        return decode_mesh(parsed, "data.mesh");
    }
    throw Failure{"data.mesh: expected a string"};
}

LabelSelector decode_label_selector(const json& selector, const std::string& path) {
    if (!selector.is_object())
        throw Failure{path + ": expected a label selector (matchLabels, matchExpressions)"};
    LabelSelector out;
    out.match_labels = string_map(member(selector, "matchLabels"), path + ".matchLabels");
    if (const json* expressions = optional_array(selector, "matchExpressions", path)) {
        for (std::size_t i = 0; i < expressions->size(); ++i) {
            const std::string epath = path + ".matchExpressions[" + std::to_string(i) + "]";
            const json& e = (*expressions)[i];
            if (!e.is_object())
                throw Failure{epath + ": expected an object"};
            LabelRequirement r;
            r.key = optional_string(e, "key", epath);
            if (r.key.empty())
                throw Failure{epath + ".key: missing"};
            const std::string op = optional_string(e, "operator", epath);
            if (op == "In")
                r.op = LabelRequirement::Operator::In;
            else if (op == "NotIn")
                r.op = LabelRequirement::Operator::NotIn;
            else if (op == "Exists")
                r.op = LabelRequirement::Operator::Exists;
            else if (op == "DoesNotExist")
                r.op = LabelRequirement::Operator::DoesNotExist;
            else
                throw Failure{epath + ".operator: unknown value \"" + op +
                              "\" (expected In, NotIn, Exists or DoesNotExist)"};
            if (const json* values = optional_array(e, "values", epath))
                for (std::size_t j = 0; j < values->size(); ++j)
                    r.values.push_back(
                        require_string((*values)[j], epath + ".values[" + std::to_string(j) + "]"));
            const bool set_based =
                r.op == LabelRequirement::Operator::In || r.op == LabelRequirement::Operator::NotIn;
            if (set_based == r.values.empty())
                throw Failure{epath + ".values: " +
                              (set_based ? std::string("required for ") + op
                                         : std::string("must be empty for ") + op)};
            out.match_expressions.push_back(std::move(r));
        }
    }
    return out;
}

// AMBIENT_ENABLEMENT_SELECTOR: the chart's enablementSelectors rendered with toYaml. server/ turns
// the YAML into JSON; JSON text is YAML too.
std::vector<EnablementSelector> decode_enablement_selectors(const json& value,
                                                            const std::string& path) {
    json parsed;
    const json* list = &value;
    if (value.is_string()) {
        parsed = json::parse(value.get_ref<const std::string&>(), nullptr, false);
        if (parsed.is_discarded())
            throw Failure{path + ": expected a list of selectors (YAML or JSON)"};
        list = &parsed;
    }
    std::vector<EnablementSelector> out;
    if (list->is_null())
        return out;
    if (!list->is_array())
        throw Failure{path + ": expected a list of selectors, got " + list->type_name()};
    for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string ipath = path + "[" + std::to_string(i) + "]";
        const json& item = (*list)[i];
        if (!item.is_object())
            throw Failure{ipath + ": expected an object with podSelector and namespaceSelector"};
        EnablementSelector selector;
        if (const json* pod = member(item, "podSelector"))
            selector.pod_selector = decode_label_selector(*pod, ipath + ".podSelector");
        if (const json* ns = member(item, "namespaceSelector"))
            selector.namespace_selector = decode_label_selector(*ns, ipath + ".namespaceSelector");
        out.push_back(std::move(selector));
    }
    return out;
}

// The istio-cni chart's ConfigMap: the ambient enablement selectors and excluded namespaces.
std::optional<CniConfig> decode_cni_config_map(const json& object, const Meta& meta) {
    if (meta.name != "istio-cni-config")
        return std::nullopt;
    CniConfig config;
    config.source_namespace = meta.namespace_name;
    const json* data = optional_object(object, "data", "");
    if (!data)
        return config;
    if (const json* selectors = member(*data, "AMBIENT_ENABLEMENT_SELECTOR"))
        config.enablement_selectors =
            decode_enablement_selectors(*selectors, "data.AMBIENT_ENABLEMENT_SELECTOR");
    if (member(*data, "EXCLUDE_NAMESPACES")) {
        const std::string list = optional_string(*data, "EXCLUDE_NAMESPACES", "data");
        std::vector<std::string> names;
        std::size_t start = 0;
        while (start <= list.size()) {
            const auto comma = std::min(list.find(',', start), list.size());
            std::string name = list.substr(start, comma - start);
            name.erase(0, name.find_first_not_of(' '));
            name.erase(name.find_last_not_of(' ') + 1);
            if (!name.empty())
                names.push_back(std::move(name));
            start = comma + 1;
        }
        config.exclude_namespaces = std::move(names);
    }
    return config;
}

} // namespace

bool is_known_kind(std::string_view api_version, std::string_view kind) noexcept {
    return classify(api_version, kind) != Kind::Unknown;
}

DecodeOutcome decode_object(const json& object, std::string_view default_namespace) noexcept {
    return guarded<DecodeOutcome>([&]() -> DecodeOutcome {
        if (!object.is_object())
            return failed("the document is not an object (got " + type_name(object) + ")");
        const json* api_version = member(object, "apiVersion");
        const json* kind_field = member(object, "kind");
        if (!api_version || !kind_field)
            return failed("apiVersion and kind are required");
        if (!api_version->is_string() || !kind_field->is_string())
            return failed("apiVersion and kind must be strings");
        const auto& av = api_version->get_ref<const std::string&>();
        const auto& kind = kind_field->get_ref<const std::string&>();
        const Kind k = classify(av, kind);
        if (k == Kind::Unknown)
            return {};
        const bool namespaced =
            k != Kind::Namespace && k != Kind::MeshPolicy && k != Kind::ApiServerCallee;
        const Meta meta = decode_meta(object, default_namespace, namespaced);
        switch (k) {
        case Kind::PeerAuthentication:
            return decoded(decoding::decode_peer_authentication(JsonNode{&object}, meta, kind));
        case Kind::DestinationRule:
            return decoded(decoding::decode_destination_rule(JsonNode{&object}, meta, kind));
        case Kind::VirtualService:
            return decoded(decoding::decode_virtual_service(JsonNode{&object}, meta, kind));
        case Kind::Sidecar:
            return decoded(decoding::decode_sidecar(JsonNode{&object}, meta, kind));
        case Kind::Policy:
            return decoded(decoding::decode_alpha_policy(JsonNode{&object}, meta, kind, false));
        case Kind::MeshPolicy:
            return decoded(decoding::decode_alpha_policy(JsonNode{&object}, meta, kind, true));
        case Kind::Service:
            return decoded(decoding::decode_service(JsonNode{&object}, meta,
                                                    make_ref(object, "Service", meta)));
        case Kind::ServiceEntry:
            return decoded(decode_service_entry(object, meta, kind));
        case Kind::Namespace:
            return decoded(Namespace{meta.name, meta.labels});
        case Kind::Pod:
            return decoded(decoding::decode_pod(JsonNode{&object}, meta));
        case Kind::PodTemplateOwner:
            return decoded(decode_template_owner(object, meta, kind));
        case Kind::ConfigMap:
            if (auto mesh = decode_istio_config_map(object, meta)) {
                mesh->source_namespace = meta.namespace_name;
                return decoded(std::move(*mesh));
            }
            if (auto cni = decode_cni_config_map(object, meta))
                return decoded(std::move(*cni));
            return {};
        case Kind::ApiServerCallee:
            return decoded(decoding::decode_api_server_callee(JsonNode{&object}, meta, kind));
        case Kind::Unknown:
            break;
        }
        return {};
    });
}

DecodeOutcome decode_mesh_config(const json& mesh) noexcept {
    return guarded<DecodeOutcome>([&]() -> DecodeOutcome {
        if (mesh.is_null())
            return decoded(MeshConfig{});
        return decoded(decode_mesh(mesh, "mesh"));
    });
}

} // namespace mtlsguard::model
