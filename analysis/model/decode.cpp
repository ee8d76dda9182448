// Turns one Kubernetes object, as the API server sends it in JSON, into the engine's model.
#include "analysis/model/decode.hpp"

#include <nlohmann/json.hpp>

namespace mtlsguard::model {
namespace {

using nlohmann::json;

// Decoding stops at the first problem; the error names the field as a dotted path.
struct Failure {
    std::string message;
};

const json* member(const json& object, std::string_view key) {
    if (!object.is_object())
        return nullptr;
    auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return nullptr;
    return &*it;
}

std::string type_name(const json& value) {
    return value.type_name();
}

std::string require_string(const json& value, const std::string& path) {
    if (!value.is_string())
        throw Failure{path + ": expected a string, got " + type_name(value)};
    return value.get_ref<const std::string&>();
}

// The field's path is spelled out only for the error: decoding a review reads many such fields.
std::string optional_string(const json& object, std::string_view key, std::string_view path) {
    const json* v = member(object, key);
    if (!v)
        return {};
    if (!v->is_string())
        throw Failure{std::string(path) + "." + std::string(key) + ": expected a string, got " +
                      type_name(*v)};
    return v->get_ref<const std::string&>();
}

const json* optional_object(const json& object, std::string_view key, const std::string& path) {
    const json* v = member(object, key);
    if (v && !v->is_object())
        throw Failure{path + "." + std::string(key) + ": expected an object, got " + type_name(*v)};
    return v;
}

const json* optional_array(const json& object, std::string_view key, const std::string& path) {
    const json* v = member(object, key);
    if (v && !v->is_array())
        throw Failure{path + "." + std::string(key) + ": expected a list, got " + type_name(*v)};
    return v;
}

std::optional<bool> optional_bool(const json& object, std::string_view key,
                                  const std::string& path) {
    const json* v = member(object, key);
    if (!v)
        return std::nullopt;
    if (v->is_boolean())
        return v->get<bool>();
    // ConfigMap-borne YAML sometimes quotes booleans.
    if (v->is_string()) {
        const auto& s = v->get_ref<const std::string&>();
        if (s == "true")
            return true;
        if (s == "false")
            return false;
    }
    throw Failure{path + "." + std::string(key) + ": expected true or false"};
}

std::uint16_t port_number(const json& value, const std::string& path) {
    std::string shown; // the number as written, for the message
    bool in_range = false;
    std::int64_t n = 0;
    if (value.is_number_unsigned()) {
        const auto u = value.get<std::uint64_t>();
        in_range = u >= 1 && u <= 65535;
        n = in_range ? static_cast<std::int64_t>(u) : 0;
        shown = std::to_string(u);
    } else if (value.is_number_integer()) {
        n = value.get<std::int64_t>();
        in_range = n >= 1 && n <= 65535;
        shown = std::to_string(n);
    } else if (value.is_number_float()) {
        const double d = value.get<double>();
        if (!(d >= 1 && d <= 65535) || d != static_cast<double>(static_cast<std::int64_t>(d)))
            throw Failure{path + ": port must be a whole number from 1 to 65535"};
        n = static_cast<std::int64_t>(d);
        in_range = true;
    } else {
        throw Failure{path + ": expected a port number, got " + type_name(value)};
    }
    if (!in_range)
        throw Failure{path + ": port " + shown + " is outside 1..65535"};
    return static_cast<std::uint16_t>(n);
}

std::uint16_t port_key(const std::string& key, const std::string& path) {
    if (key.empty() || key.size() > 5 || key.find_first_not_of("0123456789") != std::string::npos)
        throw Failure{path + ": key \"" + key + "\" is not a port number"};
    const long n = std::stol(key);
    if (n < 1 || n > 65535)
        throw Failure{path + ": port " + key + " is outside 1..65535"};
    return static_cast<std::uint16_t>(n);
}

Labels string_map(const json* object, const std::string& path) {
    if (!object)
        return {};
    if (!object->is_object())
        throw Failure{path + ": expected a map of strings"};
    std::vector<std::pair<std::string, std::string>> entries;
    entries.reserve(object->size());
    for (auto it = object->begin(); it != object->end(); ++it) {
        const json& v = it.value();
        if (v.is_string()) {
            entries.emplace_back(it.key(), v.get_ref<const std::string&>());
        } else if (v.is_boolean() || v.is_number()) {
            // YAML turns `inject: true` into a boolean; Kubernetes would reject it, we are lenient.
            entries.emplace_back(it.key(), v.dump());
        } else {
            throw Failure{path + "." + it.key() + ": expected a string"};
        }
    }
    return Labels(std::move(entries));
}

struct Meta {
    std::string name;
    std::string namespace_name;
    Labels labels;
    Labels annotations;
    std::string creation_timestamp;
    const json* owner_references = nullptr;
};

Meta decode_meta(const json& object, std::string_view default_namespace, bool namespaced) {
    const json* metadata = optional_object(object, "metadata", "");
    if (!metadata)
        throw Failure{"metadata: missing"};
    Meta meta;
    meta.name = optional_string(*metadata, "name", "metadata");
    if (meta.name.empty())
        throw Failure{"metadata.name: missing"};
    if (namespaced) {
        meta.namespace_name = optional_string(*metadata, "namespace", "metadata");
        if (meta.namespace_name.empty())
            meta.namespace_name = std::string(default_namespace);
    }
    meta.labels = string_map(member(*metadata, "labels"), "metadata.labels");
    meta.annotations = string_map(member(*metadata, "annotations"), "metadata.annotations");
    meta.creation_timestamp = optional_string(*metadata, "creationTimestamp", "metadata");
    meta.owner_references = optional_array(*metadata, "ownerReferences", "metadata");
    return meta;
}

ObjectRef make_ref(const json& object, std::string_view kind, const Meta& meta) {
    return ObjectRef{optional_string(object, "apiVersion", ""), std::string(kind),
                     meta.namespace_name, meta.name};
}

Age make_age(const Meta& meta) {
    return Age{meta.creation_timestamp, meta.name, meta.namespace_name};
}

Labels match_labels(const json& spec, std::string_view key, const std::string& path) {
    const json* selector = optional_object(spec, key, path);
    if (!selector)
        return {};
    return string_map(member(*selector, "matchLabels"),
                      path + "." + std::string(key) + ".matchLabels");
}

MtlsMode mtls_mode_field(const json& holder, const std::string& path) {
    const json* mode = member(holder, "mode");
    if (!mode)
        return MtlsMode::Unset;
    const std::string text = require_string(*mode, path + ".mode");
    auto parsed = parse_mtls_mode(text);
    if (!parsed)
        throw Failure{path + ".mode: unknown value \"" + text +
                      "\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)"};
    return *parsed;
}

PeerAuthentication decode_peer_authentication(const json& object, const Meta& meta,
                                              std::string_view kind) {
    PeerAuthentication pa;
    pa.ref = make_ref(object, kind, meta);
    pa.age = make_age(meta);
    const json* spec = optional_object(object, "spec", "");
    if (!spec)
        return pa; // an empty spec is a valid, mode-UNSET policy
    pa.selector = match_labels(*spec, "selector", "spec");
    if (const json* mtls = optional_object(*spec, "mtls", "spec"))
        pa.mode = mtls_mode_field(*mtls, "spec.mtls");
    if (const json* ports = optional_object(*spec, "portLevelMtls", "spec")) {
        for (auto it = ports->begin(); it != ports->end(); ++it) {
            const std::string path = "spec.portLevelMtls." + it.key();
            const std::uint16_t port = port_key(it.key(), path);
            if (!it.value().is_object() && !it.value().is_null())
                throw Failure{path + ": expected an object with a mode"};
            pa.port_level[port] =
                it.value().is_null() ? MtlsMode::Unset : mtls_mode_field(it.value(), path);
        }
    }
    return pa;
}

TlsSetting tls_field(const json& holder, const std::string& path) {
    const json* tls = optional_object(holder, "tls", path);
    if (!tls)
        return std::nullopt;
    const json* mode = member(*tls, "mode");
    if (!mode)
        return TlsMode::Disable; // ClientTLSSettings.mode defaults to DISABLE
    const std::string text = require_string(*mode, path + ".tls.mode");
    auto parsed = parse_tls_mode(text);
    if (!parsed)
        throw Failure{path + ".tls.mode: unknown value \"" + text +
                      "\" (expected DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL)"};
    return parsed;
}

TrafficPolicy decode_traffic_policy(const json& policy, const std::string& path) {
    TrafficPolicy tp;
    tp.tls = tls_field(policy, path);
    if (const json* lb = optional_object(policy, "loadBalancer", path)) {
        tp.passthrough_load_balancer =
            optional_string(*lb, "simple", path + ".loadBalancer") == "PASSTHROUGH";
    }
    if (const json* ports = optional_array(policy, "portLevelSettings", path)) {
        for (std::size_t i = 0; i < ports->size(); ++i) {
            const std::string item_path = path + ".portLevelSettings[" + std::to_string(i) + "]";
            const json& item = (*ports)[i];
            if (!item.is_object())
                throw Failure{item_path + ": expected an object"};
            PortTrafficPolicy port;
            const json* selector = optional_object(item, "port", item_path);
            const json* number = selector ? member(*selector, "number") : nullptr;
            if (!number)
                throw Failure{item_path + ".port.number: missing"};
            port.port = port_number(*number, item_path + ".port.number");
            port.tls = tls_field(item, item_path);
            tp.port_level.push_back(port);
        }
    }
    return tp;
}

DestinationRule decode_destination_rule(const json& object, const Meta& meta,
                                        std::string_view kind) {
    DestinationRule dr;
    dr.ref = make_ref(object, kind, meta);
    dr.age = make_age(meta);
    const json* spec = optional_object(object, "spec", "");
    if (!spec)
        throw Failure{"spec.host: missing"};
    dr.host = optional_string(*spec, "host", "spec");
    if (dr.host.empty())
        throw Failure{"spec.host: missing"};
    if (const json* export_to = optional_array(*spec, "exportTo", "spec")) {
        for (std::size_t i = 0; i < export_to->size(); ++i)
            dr.export_to.push_back(
                require_string((*export_to)[i], "spec.exportTo[" + std::to_string(i) + "]"));
    }
    if (optional_object(*spec, "workloadSelector", "spec")) {
        Labels selector = match_labels(*spec, "workloadSelector", "spec");
        // An empty workloadSelector selects every pod of the namespace, like Istio does.
        dr.workload_selector = std::move(selector);
    }
    if (const json* tp = optional_object(*spec, "trafficPolicy", "spec"))
        dr.traffic_policy = decode_traffic_policy(*tp, "spec.trafficPolicy");
    if (const json* subsets = optional_array(*spec, "subsets", "spec")) {
        for (std::size_t i = 0; i < subsets->size(); ++i) {
            const std::string path = "spec.subsets[" + std::to_string(i) + "]";
            const json& item = (*subsets)[i];
            if (!item.is_object())
                throw Failure{path + ": expected an object"};
            Subset subset;
            subset.name = optional_string(item, "name", path);
            if (subset.name.empty())
                throw Failure{path + ".name: missing"};
            subset.labels = string_map(member(item, "labels"), path + ".labels");
            if (const json* tp = optional_object(item, "trafficPolicy", path))
                subset.traffic_policy = decode_traffic_policy(*tp, path + ".trafficPolicy");
            dr.subsets.push_back(std::move(subset));
        }
    }
    return dr;
}

AlphaPolicy decode_alpha_policy(const json& object, const Meta& meta, std::string_view kind,
                                bool mesh_policy) {
    AlphaPolicy policy;
    policy.ref = make_ref(object, kind, meta);
    policy.age = make_age(meta);
    policy.mesh_policy = mesh_policy;
    const json* spec = optional_object(object, "spec", "");
    if (!spec)
        return policy; // no peers: plaintext only
    if (const json* targets = optional_array(*spec, "targets", "spec")) {
        for (std::size_t i = 0; i < targets->size(); ++i) {
            const std::string path = "spec.targets[" + std::to_string(i) + "]";
            const json& item = (*targets)[i];
            if (!item.is_object())
                throw Failure{path + ": expected an object"};
            AlphaTarget target;
            target.name = optional_string(item, "name", path);
            if (target.name.empty())
                throw Failure{path + ".name: missing"};
            if (const json* ports = optional_array(item, "ports", path)) {
                for (std::size_t j = 0; j < ports->size(); ++j) {
                    const std::string port_path = path + ".ports[" + std::to_string(j) + "]";
                    const json& p = (*ports)[j];
                    if (!p.is_object())
                        throw Failure{port_path + ": expected an object"};
                    AlphaPortSelector selector;
                    if (const json* number = member(p, "number"))
                        selector.number = port_number(*number, port_path + ".number");
                    selector.name = optional_string(p, "name", port_path);
                    if (!selector.number && selector.name.empty())
                        throw Failure{port_path + ": needs a number or a name"};
                    target.ports.push_back(std::move(selector));
                }
            }
            policy.targets.push_back(std::move(target));
        }
    }
    if (const json* peers = optional_array(*spec, "peers", "spec")) {
        for (std::size_t i = 0; i < peers->size(); ++i) {
            const std::string path = "spec.peers[" + std::to_string(i) + "]";
            const json& peer = (*peers)[i];
            if (!peer.is_object())
                throw Failure{path + ": expected an object"};
            auto it = peer.find("mtls");
            if (it == peer.end())
                continue; // a jwt peer
            // `mtls:` null, `{}` or `mode: STRICT` all mean STRICT.
            policy.mode = MtlsMode::Strict;
            if (it->is_object()) {
                const MtlsMode m = mtls_mode_field(*it, path + ".mtls");
                if (m == MtlsMode::Permissive)
                    policy.mode = MtlsMode::Permissive;
                else if (m == MtlsMode::Disable)
                    throw Failure{path + ".mtls.mode: v1alpha1 accepts only STRICT or PERMISSIVE"};
            } else if (!it->is_null()) {
                throw Failure{path + ".mtls: expected an object"};
            }
            break;
        }
    }
    return policy;
}

std::vector<NamedPort> container_ports(const json& pod_spec, const std::string& path) {
    std::vector<NamedPort> out;
    for (const char* list : {"containers", "initContainers"}) {
        const json* containers = optional_array(pod_spec, list, path);
        if (!containers)
            continue;
        for (std::size_t i = 0; i < containers->size(); ++i) {
            const json& c = (*containers)[i];
            const std::string cpath = path + "." + list + "[" + std::to_string(i) + "]";
            if (!c.is_object())
                throw Failure{cpath + ": expected an object"};
            const json* ports = optional_array(c, "ports", cpath);
            if (!ports)
                continue;
            for (std::size_t j = 0; j < ports->size(); ++j) {
                const json& p = (*ports)[j];
                const std::string ppath = cpath + ".ports[" + std::to_string(j) + "]";
                if (!p.is_object())
                    throw Failure{ppath + ": expected an object"};
                const json* number = member(p, "containerPort");
                if (!number)
                    throw Failure{ppath + ".containerPort: missing"};
                out.push_back(NamedPort{optional_string(p, "name", ppath),
                                        port_number(*number, ppath + ".containerPort")});
            }
        }
    }
    return out;
}

bool has_proxy_container(const json& pod_spec) {
    for (const char* list : {"containers", "initContainers"}) {
        const json* containers = member(pod_spec, list);
        if (!containers || !containers->is_array())
            continue;
        for (const json& c : *containers) {
            const json* name = member(c, "name");
            if (name && name->is_string() && name->get_ref<const std::string&>() == "istio-proxy")
                return true;
        }
    }
    return false;
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

// CronJob-created Jobs are named <cronjob>-<scheduled minute>.
std::optional<std::string> cronjob_name(const std::string& job_name) {
    const auto dash = job_name.rfind('-');
    if (dash == std::string::npos || dash == 0)
        return std::nullopt;
    const std::string tail = job_name.substr(dash + 1);
    if (tail.size() < 8 || tail.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return job_name.substr(0, dash);
}

// The controller a pod belongs to, so that a workload is named after its Deployment, not a pod.
std::pair<std::string, std::string> owning_workload(const Meta& meta) {
    if (meta.owner_references) {
        const json* chosen = nullptr;
        for (const json& ref : *meta.owner_references) {
            if (!ref.is_object())
                continue;
            const json* controller = member(ref, "controller");
            if (!chosen || (controller && controller->is_boolean() && controller->get<bool>()))
                chosen = &ref;
        }
        if (chosen) {
            const std::string kind = optional_string(*chosen, "kind", "metadata.ownerReferences");
            const std::string name = optional_string(*chosen, "name", "metadata.ownerReferences");
            if (!name.empty()) {
                if (kind == "ReplicaSet") {
                    const std::string* hash = meta.labels.find("pod-template-hash");
                    if (hash) {
                        const std::string deployment = strip_suffix(name, *hash);
                        if (deployment != name)
                            return {"Deployment", deployment};
                    }
                    return {"ReplicaSet", name};
                }
                if (kind == "Job") {
                    if (auto cron = cronjob_name(name))
                        return {"CronJob", *cron};
                }
                return {kind.empty() ? "Pod" : kind, name};
            }
        }
    }
    return {"Pod", meta.name};
}

// Labels that differ pod by pod within one controller and say nothing about selection by policy.
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

PodLike decode_pod(const json& object, const Meta& meta) {
    PodLike pod;
    pod.namespace_name = meta.namespace_name;
    auto [kind, name] = owning_workload(meta);
    pod.workload_kind = std::move(kind);
    pod.workload_name = std::move(name);
    pod.labels = stable_pod_labels(meta.labels);
    const json* spec = optional_object(object, "spec", "");
    bool proxy = injected_marker(meta.labels, meta.annotations);
    if (spec) {
        proxy = proxy || has_proxy_container(*spec);
        pod.container_ports = container_ports(*spec, "spec");
    }
    pod.sidecar = proxy;
    return pod;
}

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
            string_map(member(*tmeta, "annotations"), template_path + ".metadata.annotations");
    }
    pod.labels = stable_pod_labels(labels);
    const json* pod_spec = optional_object(*template_spec, "spec", template_path);
    if (pod_spec)
        pod.container_ports = container_ports(*pod_spec, template_path + ".spec");
    if (injected_marker(labels, annotations) || (pod_spec && has_proxy_container(*pod_spec))) {
        pod.sidecar = true;
        return pod;
    }
    // Opting out works by label or annotation; opting in only by label, because only the label is
    // seen by the injector webhook's objectSelector in a namespace that is not labelled itself.
    const std::string* label = labels.find("sidecar.istio.io/inject");
    const std::string* annotation = annotations.find("sidecar.istio.io/inject");
    if ((label && *label == "false") || (annotation && *annotation == "false"))
        pod.sidecar = false;
    else if (label && *label == "true")
        pod.sidecar = true;
    return pod; // otherwise the namespace decides
}

Service decode_service(const json& object, const Meta& meta) {
    Service svc;
    svc.ref = make_ref(object, "Service", meta);
    svc.labels = meta.labels;
    const json* spec = optional_object(object, "spec", "");
    if (!spec)
        return svc;
    if (const json* selector = optional_object(*spec, "selector", "spec")) {
        Labels labels = string_map(selector, "spec.selector");
        if (!labels.empty())
            svc.selector = std::move(labels); // {} selects nothing in Kubernetes
    }
    svc.headless = optional_string(*spec, "clusterIP", "spec") == "None";
    svc.external_name = optional_string(*spec, "type", "spec") == "ExternalName";
    if (const json* ports = optional_array(*spec, "ports", "spec")) {
        for (std::size_t i = 0; i < ports->size(); ++i) {
            const std::string path = "spec.ports[" + std::to_string(i) + "]";
            const json& p = (*ports)[i];
            if (!p.is_object())
                throw Failure{path + ": expected an object"};
            ServicePort port;
            port.name = optional_string(p, "name", path);
            const json* number = member(p, "port");
            if (!number)
                throw Failure{path + ".port: missing"};
            port.port = port_number(*number, path + ".port");
            const std::string protocol = optional_string(p, "protocol", path);
            if (!protocol.empty() && protocol != "TCP" && protocol != "UDP" && protocol != "SCTP")
                throw Failure{path + ".protocol: unknown value \"" + protocol + "\""};
            port.tcp = protocol.empty() || protocol == "TCP";
            if (const json* target = member(p, "targetPort")) {
                if (target->is_string())
                    port.target_port_name = target->get<std::string>();
                else
                    port.target_port_number = port_number(*target, path + ".targetPort");
            } else {
                port.target_port_number = port.port;
            }
            svc.ports.push_back(std::move(port));
        }
    }
    return svc;
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

bool group_is(std::string_view api_version, std::string_view group) {
    return api_version.size() > group.size() && api_version.substr(0, group.size()) == group &&
           api_version[group.size()] == '/';
}

enum class Kind : std::uint8_t {
    Unknown,
    PeerAuthentication,
    DestinationRule,
    Policy,
    MeshPolicy,
    Service,
    ServiceEntry,
    Namespace,
    Pod,
    PodTemplateOwner,
    ConfigMap
};

Kind classify(std::string_view api_version, std::string_view kind) {
    if (group_is(api_version, "security.istio.io")) {
        if (kind == "PeerAuthentication" &&
            (api_version.ends_with("/v1beta1") || api_version.ends_with("/v1")))
            return Kind::PeerAuthentication;
        return Kind::Unknown;
    }
    if (group_is(api_version, "networking.istio.io")) {
        const bool served = api_version.ends_with("/v1alpha3") ||
                            api_version.ends_with("/v1beta1") || api_version.ends_with("/v1");
        if (!served)
            return Kind::Unknown;
        if (kind == "DestinationRule")
            return Kind::DestinationRule;
        if (kind == "ServiceEntry")
            return Kind::ServiceEntry;
        return Kind::Unknown;
    }
    if (api_version == "authentication.istio.io/v1alpha1") {
        if (kind == "Policy")
            return Kind::Policy;
        if (kind == "MeshPolicy")
            return Kind::MeshPolicy;
        return Kind::Unknown;
    }
    if (api_version == "v1") {
        if (kind == "Service")
            return Kind::Service;
        if (kind == "Namespace")
            return Kind::Namespace;
        if (kind == "Pod")
            return Kind::Pod;
        if (kind == "ConfigMap")
            return Kind::ConfigMap;
        return Kind::Unknown;
    }
    if (group_is(api_version, "apps") || group_is(api_version, "extensions")) {
        if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" ||
            kind == "ReplicaSet")
            return Kind::PodTemplateOwner;
        return Kind::Unknown;
    }
    if (group_is(api_version, "batch") && (kind == "Job" || kind == "CronJob"))
        return Kind::PodTemplateOwner;
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

} // namespace

bool is_known_kind(std::string_view api_version, std::string_view kind) noexcept {
    return classify(api_version, kind) != Kind::Unknown;
}

DecodeOutcome decode_object(const json& object, std::string_view default_namespace) noexcept {
    try {
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
        const bool namespaced = k != Kind::Namespace && k != Kind::MeshPolicy;
        const Meta meta = decode_meta(object, default_namespace, namespaced);
        switch (k) {
        case Kind::PeerAuthentication:
            return decoded(decode_peer_authentication(object, meta, kind));
        case Kind::DestinationRule:
            return decoded(decode_destination_rule(object, meta, kind));
        case Kind::Policy:
            return decoded(decode_alpha_policy(object, meta, kind, false));
        case Kind::MeshPolicy:
            return decoded(decode_alpha_policy(object, meta, kind, true));
        case Kind::Service:
            return decoded(decode_service(object, meta));
        case Kind::ServiceEntry:
            return decoded(decode_service_entry(object, meta, kind));
        case Kind::Namespace:
            return decoded(Namespace{meta.name, meta.labels});
        case Kind::Pod:
            return decoded(decode_pod(object, meta));
        case Kind::PodTemplateOwner:
            return decoded(decode_template_owner(object, meta, kind));
        case Kind::ConfigMap:
            if (auto mesh = decode_istio_config_map(object, meta)) {
                mesh->source_namespace = meta.namespace_name;
                return decoded(std::move(*mesh));
            }
            return {};
        case Kind::Unknown:
            break;
        }
        return {};
    } catch (const Failure& failure) {
        return failed(failure.message);
    } catch (const std::exception& e) {
        return failed(std::string("internal decoding error: ") + e.what());
    } catch (...) {
        return failed("internal decoding error");
    }
}

DecodeOutcome decode_mesh_config(const json& mesh) noexcept {
    try {
        if (mesh.is_null())
            return decoded(MeshConfig{});
        return decoded(decode_mesh(mesh, "mesh"));
    } catch (const Failure& failure) {
        return failed(failure.message);
    } catch (const std::exception& e) {
        return failed(std::string("internal decoding error: ") + e.what());
    } catch (...) {
        return failed("internal decoding error");
    }
}

} // namespace mtlsguard::model
