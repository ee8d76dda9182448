// decode_object's decoding of the admission kinds, written once over any JSON tree (see Node).
#pragma once

// PeerAuthentication, DestinationRule, VirtualService, Sidecar, Policy and MeshPolicy: what an
// AdmissionReview carries, so that a reader can decode them straight from its own parse instead of
// building a nlohmann::json.

#include "analysis/model/decode.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtlsguard::model::decoding {

// A JSON tree as decode sees it: a cheap, copyable handle to one value with
//   bool is_null(), is_object(), is_array(), is_string(), is_boolean(), is_unsigned() (an integer
//     nlohmann::json would hold unsigned), is_signed() (one it would hold signed), is_float()
//   std::string_view string(); bool boolean(); std::uint64_t unsigned_value();
//   std::int64_t signed_value(); double float_value()
//   std::optional<Node> find(std::string_view key)     the last of duplicate keys, null included
//   for_each_member(f(std::string_view key, Node))     in key order, duplicates: the last one
//   for_each_item(f(std::size_t index, Node))
//   std::string type_name()                            as nlohmann::json names it
//   std::string dump()                                 a boolean or number as nlohmann dumps it
// Those orders and spellings are nlohmann::json's, so that errors and results are the same for
// every tree that holds the same document.

// Decoding stops at the first problem; the error names the field as a dotted path.
struct Failure {
    std::string message;
};

template <class Node> std::optional<Node> member(const Node& object, std::string_view key) {
    if (!object.is_object())
        return std::nullopt;
    auto found = object.find(key);
    if (!found || found->is_null())
        return std::nullopt;
    return found;
}

template <class Node> std::string require_string(const Node& value, const std::string& path) {
    if (!value.is_string())
        throw Failure{path + ": expected a string, got " + value.type_name()};
    return std::string(value.string());
}

// The field's path is spelled out only for the error: decoding a review reads many such fields.
template <class Node>
std::string optional_string(const Node& object, std::string_view key, std::string_view path) {
    const auto v = member(object, key);
    if (!v)
        return {};
    if (!v->is_string())
        throw Failure{std::string(path) + "." + std::string(key) + ": expected a string, got " +
                      v->type_name()};
    return std::string(v->string());
}

template <class Node>
std::optional<Node> optional_object(const Node& object, std::string_view key,
                                    const std::string& path) {
    auto v = member(object, key);
    if (v && !v->is_object())
        throw Failure{path + "." + std::string(key) + ": expected an object, got " +
                      v->type_name()};
    return v;
}

template <class Node>
std::optional<Node> optional_array(const Node& object, std::string_view key,
                                   const std::string& path) {
    auto v = member(object, key);
    if (v && !v->is_array())
        throw Failure{path + "." + std::string(key) + ": expected a list, got " + v->type_name()};
    return v;
}

template <class Node>
std::optional<bool> optional_bool(const Node& object, std::string_view key,
                                  const std::string& path) {
    const auto v = member(object, key);
    if (!v)
        return std::nullopt;
    if (v->is_boolean())
        return v->boolean();
    // ConfigMap-borne YAML sometimes quotes booleans.
    if (v->is_string()) {
        const std::string_view s = v->string();
        if (s == "true")
            return true;
        if (s == "false")
            return false;
    }
    throw Failure{path + "." + std::string(key) + ": expected true or false"};
}

template <class Node> std::uint16_t port_number(const Node& value, const std::string& path) {
    std::string shown; // the number as written, for the message
    bool in_range = false;
    std::int64_t n = 0;
    if (value.is_unsigned()) {
        const std::uint64_t u = value.unsigned_value();
        in_range = u >= 1 && u <= 65535;
        n = in_range ? static_cast<std::int64_t>(u) : 0;
        shown = std::to_string(u);
    } else if (value.is_signed()) {
        n = value.signed_value();
        in_range = n >= 1 && n <= 65535;
        shown = std::to_string(n);
    } else if (value.is_float()) {
        const double d = value.float_value();
        if (!(d >= 1 && d <= 65535) || d != static_cast<double>(static_cast<std::int64_t>(d)))
            throw Failure{path + ": port must be a whole number from 1 to 65535"};
        n = static_cast<std::int64_t>(d);
        in_range = true;
    } else {
        throw Failure{path + ": expected a port number, got " + value.type_name()};
    }
    if (!in_range)
        throw Failure{path + ": port " + shown + " is outside 1..65535"};
    return static_cast<std::uint16_t>(n);
}

std::uint16_t port_key(std::string_view key, const std::string& path);

// The annotations the engine reads (decode_dataplane_facts, injected_marker). A real pod carries
// 2-4 KB of others (kubectl's last-applied configuration, Prometheus' scrape settings): at 150,000
// pods copying them cost the sync about half a gigabyte of copies, to be dropped at once.
inline bool read_annotation(std::string_view key) noexcept {
    return key.starts_with("sidecar.istio.io/") || key.starts_with("ambient.istio.io/") ||
           key.starts_with("traffic.sidecar.istio.io/");
}

// A map of strings; with `keep`, only its entries whose key `keep` accepts (all are checked).
template <class Node>
Labels string_map(const std::optional<Node>& object, const std::string& path,
                  bool (*keep)(std::string_view) noexcept = nullptr) {
    if (!object)
        return {};
    if (!object->is_object())
        throw Failure{path + ": expected a map of strings"};
    std::vector<std::pair<std::string, std::string>> entries;
    object->for_each_member([&](std::string_view key, const Node& v) {
        const bool kept = !keep || keep(key);
        if (v.is_string()) {
            if (kept)
                entries.emplace_back(key, v.string());
        } else if (v.is_boolean() || v.is_unsigned() || v.is_signed() || v.is_float()) {
            // YAML turns `inject: true` into a boolean; Kubernetes would reject it, we are lenient.
            if (kept)
                entries.emplace_back(key, v.dump());
        } else {
            throw Failure{path + "." + std::string(key) + ": expected a string"};
        }
    });
    return Labels(std::move(entries));
}

template <class Node> struct BasicMeta {
    std::string name;
    std::string namespace_name;
    Labels labels;
    Labels annotations; // only those the engine reads (read_annotation)
    std::string creation_timestamp;
    std::optional<Node> owner_references;
};

template <class Node>
BasicMeta<Node> decode_meta(const Node& object, std::string_view default_namespace,
                            bool namespaced) {
    const auto metadata = optional_object(object, "metadata", "");
    if (!metadata)
        throw Failure{"metadata: missing"};
    BasicMeta<Node> meta;
    meta.name = optional_string(*metadata, "name", "metadata");
    if (meta.name.empty())
        throw Failure{"metadata.name: missing"};
    if (namespaced) {
        meta.namespace_name = optional_string(*metadata, "namespace", "metadata");
        if (meta.namespace_name.empty())
            meta.namespace_name = std::string(default_namespace);
    }
    meta.labels = string_map(member(*metadata, "labels"), "metadata.labels");
    meta.annotations =
        string_map(member(*metadata, "annotations"), "metadata.annotations", read_annotation);
    meta.creation_timestamp = optional_string(*metadata, "creationTimestamp", "metadata");
    meta.owner_references = optional_array(*metadata, "ownerReferences", "metadata");
    return meta;
}

template <class Node, class Meta>
ObjectRef make_ref(const Node& object, std::string_view kind, const Meta& meta) {
    return ObjectRef{optional_string(object, "apiVersion", ""), std::string(kind),
                     meta.namespace_name, meta.name};
}

template <class Meta> Age make_age(const Meta& meta) {
    return Age{meta.creation_timestamp, meta.name, meta.namespace_name};
}

template <class Node>
Labels match_labels(const Node& spec, std::string_view key, const std::string& path) {
    const auto selector = optional_object(spec, key, path);
    if (!selector)
        return {};
    return string_map(member(*selector, "matchLabels"),
                      path + "." + std::string(key) + ".matchLabels");
}

template <class Node> MtlsMode mtls_mode_field(const Node& holder, const std::string& path) {
    const auto mode = member(holder, "mode");
    if (!mode)
        return MtlsMode::Unset;
    const std::string text = require_string(*mode, path + ".mode");
    auto parsed = parse_mtls_mode(text);
    if (!parsed)
        throw Failure{path + ".mode: unknown value \"" + text +
                      "\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)"};
    return *parsed;
}

template <class Node, class Meta>
PeerAuthentication decode_peer_authentication(const Node& object, const Meta& meta,
                                              std::string_view kind) {
    PeerAuthentication pa;
    pa.ref = make_ref(object, kind, meta);
    pa.age = make_age(meta);
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        return pa; // an empty spec is a valid, mode-UNSET policy
    pa.selector = match_labels(*spec, "selector", "spec");
    if (const auto mtls = optional_object(*spec, "mtls", "spec"))
        pa.mode = mtls_mode_field(*mtls, "spec.mtls");
    if (const auto ports = optional_object(*spec, "portLevelMtls", "spec")) {
        ports->for_each_member([&](std::string_view key, const Node& value) {
            const std::string path = "spec.portLevelMtls." + std::string(key);
            const std::uint16_t port = port_key(key, path);
            if (!value.is_object() && !value.is_null())
                throw Failure{path + ": expected an object with a mode"};
            pa.port_level[port] = value.is_null() ? MtlsMode::Unset : mtls_mode_field(value, path);
        });
    }
    return pa;
}

template <class Node> TlsSetting tls_field(const Node& holder, const std::string& path) {
    const auto tls = optional_object(holder, "tls", path);
    if (!tls)
        return std::nullopt;
    const auto mode = member(*tls, "mode");
    if (!mode)
        return TlsMode::Disable; // ClientTLSSettings.mode defaults to DISABLE
    const std::string text = require_string(*mode, path + ".tls.mode");
    auto parsed = parse_tls_mode(text);
    if (!parsed)
        throw Failure{path + ".tls.mode: unknown value \"" + text +
                      "\" (expected DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL)"};
    return parsed;
}

template <class Node> TlsCredentials tls_credentials(const Node& holder, const std::string& path) {
    TlsCredentials out;
    const auto tls = optional_object(holder, "tls", path);
    if (!tls)
        return out;
    const std::string tls_path = path + ".tls";
    out.client_certificate = !optional_string(*tls, "clientCertificate", tls_path).empty();
    out.private_key = !optional_string(*tls, "privateKey", tls_path).empty();
    out.credential_name = optional_string(*tls, "credentialName", tls_path);
    return out;
}

template <class Node>
TrafficPolicy decode_traffic_policy(const Node& policy, const std::string& path) {
    TrafficPolicy tp;
    tp.tls = tls_field(policy, path);
    tp.credentials = tls_credentials(policy, path);
    if (const auto lb = optional_object(policy, "loadBalancer", path)) {
        tp.passthrough_load_balancer =
            optional_string(*lb, "simple", path + ".loadBalancer") == "PASSTHROUGH";
    }
    if (const auto ports = optional_array(policy, "portLevelSettings", path)) {
        ports->for_each_item([&](std::size_t i, const Node& item) {
            const std::string item_path = path + ".portLevelSettings[" + std::to_string(i) + "]";
            if (!item.is_object())
                throw Failure{item_path + ": expected an object"};
            PortTrafficPolicy port;
            const auto selector = optional_object(item, "port", item_path);
            const auto number = selector ? member(*selector, "number") : std::nullopt;
            if (!number)
                throw Failure{item_path + ".port.number: missing"};
            port.port = port_number(*number, item_path + ".port.number");
            port.tls = tls_field(item, item_path);
            port.credentials = tls_credentials(item, item_path);
            tp.port_level.push_back(port);
        });
    }
    return tp;
}

template <class Node, class Meta>
DestinationRule decode_destination_rule(const Node& object, const Meta& meta,
                                        std::string_view kind) {
    DestinationRule dr;
    dr.ref = make_ref(object, kind, meta);
    dr.age = make_age(meta);
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        throw Failure{"spec.host: missing"};
    dr.host = optional_string(*spec, "host", "spec");
    if (dr.host.empty())
        throw Failure{"spec.host: missing"};
    if (const auto export_to = optional_array(*spec, "exportTo", "spec")) {
        export_to->for_each_item([&](std::size_t i, const Node& item) {
            dr.export_to.push_back(
                require_string(item, "spec.exportTo[" + std::to_string(i) + "]"));
        });
    }
    if (optional_object(*spec, "workloadSelector", "spec")) {
        Labels selector = match_labels(*spec, "workloadSelector", "spec");
        // An empty workloadSelector selects every pod of the namespace, like Istio does.
        dr.workload_selector = std::move(selector);
    }
    if (const auto tp = optional_object(*spec, "trafficPolicy", "spec"))
        dr.traffic_policy = decode_traffic_policy(*tp, "spec.trafficPolicy");
    if (const auto subsets = optional_array(*spec, "subsets", "spec")) {
        subsets->for_each_item([&](std::size_t i, const Node& item) {
            const std::string path = "spec.subsets[" + std::to_string(i) + "]";
            if (!item.is_object())
                throw Failure{path + ": expected an object"};
            Subset subset;
            subset.name = optional_string(item, "name", path);
            if (subset.name.empty())
                throw Failure{path + ".name: missing"};
            subset.labels = string_map(member(item, "labels"), path + ".labels");
            if (const auto tp = optional_object(item, "trafficPolicy", path))
                subset.traffic_policy = decode_traffic_policy(*tp, path + ".trafficPolicy");
            dr.subsets.push_back(std::move(subset));
        });
    }
    return dr;
}

// A list of strings at `path`.`key`.
template <class Node>
std::vector<std::string> string_list(const Node& object, std::string_view key,
                                     const std::string& path) {
    std::vector<std::string> out;
    if (const auto list = optional_array(object, key, path)) {
        list->for_each_item([&](std::size_t i, const Node& item) {
            out.push_back(require_string(item, path + "." + std::string(key) + "[" +
                                                   std::to_string(i) + "]"));
        });
    }
    return out;
}

// One `destination` object of a route or mirror: host is required, subset and port are not.
template <class Node>
RouteDestination route_destination(const Node& destination, const std::string& path) {
    if (!destination.is_object())
        throw Failure{path + ": expected an object, got " + destination.type_name()};
    RouteDestination out;
    out.path = path;
    out.host = optional_string(destination, "host", path);
    if (out.host.empty())
        throw Failure{path + ".host: missing"};
    out.subset = optional_string(destination, "subset", path);
    if (const auto port = optional_object(destination, "port", path))
        if (const auto number = member(*port, "number"))
            out.port = port_number(*number, path + ".port.number");
    return out;
}

template <class Node, class Meta>
VirtualService decode_virtual_service(const Node& object, const Meta& meta, std::string_view kind) {
    VirtualService vs;
    vs.ref = make_ref(object, kind, meta);
    vs.age = make_age(meta);
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        return vs;
    vs.hosts = string_list(*spec, "hosts", "spec");
    vs.gateways = string_list(*spec, "gateways", "spec");
    vs.export_to = string_list(*spec, "exportTo", "spec");
    for (const std::string_view section : {"http", "tcp", "tls"}) {
        const std::string section_path = "spec." + std::string(section);
        const auto routes = optional_array(*spec, section, "spec");
        if (!routes)
            continue;
        routes->for_each_item([&](std::size_t i, const Node& route) {
            const std::string route_path = section_path + "[" + std::to_string(i) + "]";
            if (!route.is_object())
                throw Failure{route_path + ": expected an object, got " + route.type_name()};
            const auto first = vs.destinations.size();
            // Only match[].sourceNamespace narrows which clients take the route; the other
            // conditions may match any client's requests.
            std::vector<std::string> sources;
            bool any_source = true;
            if (const auto matches = optional_array(route, "match", route_path)) {
                bool unnamed = false;
                matches->for_each_item([&](std::size_t k, const Node& match) {
                    const std::string path = route_path + ".match[" + std::to_string(k) + "]";
                    if (!match.is_object())
                        throw Failure{path + ": expected an object, got " + match.type_name()};
                    const std::string source = optional_string(match, "sourceNamespace", path);
                    if (source.empty())
                        unnamed = true;
                    else
                        sources.push_back(source);
                });
                any_source = unnamed || sources.empty();
            }
            // route[] (weighted destinations) and mirrors[] (mirror policies) hold the same
            // {destination: ...} entries.
            auto listed_destinations = [&](std::string_view key) {
                const auto list = optional_array(route, key, route_path);
                if (!list)
                    return;
                list->for_each_item([&](std::size_t j, const Node& entry) {
                    const std::string path =
                        route_path + "." + std::string(key) + "[" + std::to_string(j) + "]";
                    if (!entry.is_object())
                        throw Failure{path + ": expected an object, got " + entry.type_name()};
                    const auto destination = member(entry, "destination");
                    if (!destination)
                        throw Failure{path + ".destination: missing"};
                    vs.destinations.push_back(
                        route_destination(*destination, path + ".destination"));
                });
            };
            listed_destinations("route");
            if (section == "http") {
                if (const auto mirror = member(route, "mirror"))
                    vs.destinations.push_back(route_destination(*mirror, route_path + ".mirror"));
                listed_destinations("mirrors");
            }
            if (!any_source)
                for (auto d = first; d < vs.destinations.size(); ++d)
                    vs.destinations[d].source_namespaces = sources;
        });
    }
    return vs;
}

// An outboundTrafficPolicy object's mode at `path` (the object itself); nullopt when unset.
template <class Node>
std::optional<OutboundPolicy> outbound_policy(const Node& policy, const std::string& path) {
    const std::string mode = optional_string(policy, "mode", path);
    if (mode.empty())
        return std::nullopt;
    if (mode == "ALLOW_ANY")
        return OutboundPolicy::AllowAny;
    if (mode == "REGISTRY_ONLY")
        return OutboundPolicy::RegistryOnly;
    throw Failure{path + ".mode: unknown value \"" + mode + "\""};
}

template <class Node, class Meta>
Sidecar decode_sidecar(const Node& object, const Meta& meta, std::string_view kind) {
    Sidecar sidecar;
    sidecar.ref = make_ref(object, kind, meta);
    sidecar.age = make_age(meta);
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        return sidecar;
    if (const auto selector = optional_object(*spec, "workloadSelector", "spec"))
        sidecar.workload_selector =
            string_map(member(*selector, "labels"), "spec.workloadSelector.labels");
    std::size_t listeners = 0;
    if (const auto egress = optional_array(*spec, "egress", "spec")) {
        egress->for_each_item([&](std::size_t i, const Node& listener) {
            const std::string path = "spec.egress[" + std::to_string(i) + "]";
            if (!listener.is_object())
                throw Failure{path + ": expected an object, got " + listener.type_name()};
            ++listeners;
            for (std::string& entry : string_list(listener, "hosts", path)) {
                // Istio skips (and logs) an entry without exactly one '/': so does this.
                const auto slash = entry.find('/');
                if (slash == std::string::npos || entry.find('/', slash + 1) != std::string::npos)
                    continue;
                sidecar.egress_hosts.push_back(
                    SidecarHost{entry.substr(0, slash), entry.substr(slash + 1)});
            }
        });
    }
    if (listeners == 0)
        sidecar.egress_hosts.push_back(SidecarHost{"*", "*"}); // Istio's default listener
    if (const auto policy = optional_object(*spec, "outboundTrafficPolicy", "spec"))
        sidecar.outbound_policy = outbound_policy(*policy, "spec.outboundTrafficPolicy");
    return sidecar;
}

template <class Node, class Meta>
AlphaPolicy decode_alpha_policy(const Node& object, const Meta& meta, std::string_view kind,
                                bool mesh_policy) {
    AlphaPolicy policy;
    policy.ref = make_ref(object, kind, meta);
    policy.age = make_age(meta);
    policy.mesh_policy = mesh_policy;
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        return policy; // no peers: plaintext only
    if (const auto targets = optional_array(*spec, "targets", "spec")) {
        targets->for_each_item([&](std::size_t i, const Node& item) {
            const std::string path = "spec.targets[" + std::to_string(i) + "]";
            if (!item.is_object())
                throw Failure{path + ": expected an object"};
            AlphaTarget target;
            target.name = optional_string(item, "name", path);
            if (target.name.empty())
                throw Failure{path + ".name: missing"};
            if (const auto ports = optional_array(item, "ports", path)) {
                ports->for_each_item([&](std::size_t j, const Node& p) {
                    const std::string port_path = path + ".ports[" + std::to_string(j) + "]";
                    if (!p.is_object())
                        throw Failure{port_path + ": expected an object"};
                    AlphaPortSelector selector;
                    if (const auto number = member(p, "number"))
                        selector.number = port_number(*number, port_path + ".number");
                    selector.name = optional_string(p, "name", port_path);
                    if (!selector.number && selector.name.empty())
                        throw Failure{port_path + ": needs a number or a name"};
                    target.ports.push_back(std::move(selector));
                });
            }
            policy.targets.push_back(std::move(target));
        });
    }
    if (const auto peers = optional_array(*spec, "peers", "spec")) {
        bool found = false;
        peers->for_each_item([&](std::size_t i, const Node& peer) {
            if (found)
                return;
            const std::string path = "spec.peers[" + std::to_string(i) + "]";
            if (!peer.is_object())
                throw Failure{path + ": expected an object"};
            const auto mtls = peer.find("mtls");
            if (!mtls)
                return; // a jwt peer
            // `mtls:` null, `{}` or `mode: STRICT` all mean STRICT.
            policy.mode = MtlsMode::Strict;
            if (mtls->is_object()) {
                const MtlsMode m = mtls_mode_field(*mtls, path + ".mtls");
                if (m == MtlsMode::Permissive)
                    policy.mode = MtlsMode::Permissive;
                else if (m == MtlsMode::Disable)
                    throw Failure{path + ".mtls.mode: v1alpha1 accepts only STRICT or PERMISSIVE"};
            } else if (!mtls->is_null()) {
                throw Failure{path + ".mtls: expected an object"};
            }
            found = true;
        });
    }
    return policy;
}

// Pods and Services: the bulk of a cluster's objects, which the live snapshot reads straight from
// its own parse of each list page.

template <class Node>
std::vector<NamedPort> container_ports(const Node& pod_spec, const std::string& path) {
    std::vector<NamedPort> out;
    for (const char* list : {"containers", "initContainers"}) {
        const auto containers = optional_array(pod_spec, list, path);
        if (!containers)
            continue;
        containers->for_each_item([&](std::size_t i, const Node& c) {
            const std::string cpath = path + "." + list + "[" + std::to_string(i) + "]";
            if (!c.is_object())
                throw Failure{cpath + ": expected an object"};
            const auto ports = optional_array(c, "ports", cpath);
            if (!ports)
                return;
            ports->for_each_item([&](std::size_t j, const Node& p) {
                const std::string ppath = cpath + ".ports[" + std::to_string(j) + "]";
                if (!p.is_object())
                    throw Failure{ppath + ": expected an object"};
                const auto number = member(p, "containerPort");
                if (!number)
                    throw Failure{ppath + ".containerPort: missing"};
                out.push_back(NamedPort{optional_string(p, "name", ppath),
                                        port_number(*number, ppath + ".containerPort")});
            });
        });
    }
    return out;
}

template <class Node> bool has_proxy_container(const Node& pod_spec) {
    bool found = false;
    for (const char* list : {"containers", "initContainers"}) {
        const auto containers = member(pod_spec, list);
        if (!containers || !containers->is_array())
            continue;
        containers->for_each_item([&](std::size_t, const Node& c) {
            const auto name = member(c, "name");
            if (name && name->is_string() && name->string() == "istio-proxy")
                found = true;
        });
    }
    return found;
}

bool injected_marker(const Labels& labels, const Labels& annotations);
// "<deployment>" of "<deployment>-<hash>"; the name itself when it does not end so.
std::string strip_suffix(const std::string& name, const std::string& suffix);
// The CronJob of a Job named <cronjob>-<scheduled minute>; nullopt for other names.
std::optional<std::string> cronjob_name(const std::string& job_name);
// Labels that differ pod by pod within one controller and say nothing about selection by policy.
Labels stable_pod_labels(Labels labels);

// The controller a pod belongs to, so that a workload is named after its Deployment, not a pod.
template <class Node>
std::pair<std::string, std::string> owning_workload(const BasicMeta<Node>& meta) {
    if (meta.owner_references) {
        std::optional<Node> chosen;
        meta.owner_references->for_each_item([&](std::size_t, const Node& ref) {
            if (!ref.is_object())
                return;
            const auto controller = member(ref, "controller");
            if (!chosen || (controller && controller->is_boolean() && controller->boolean()))
                chosen = ref;
        });
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

// Whether `holds` is true of some entry of a comma-separated list (a label or annotation value
// such as "80, 443" or "10.0.0.0/8,192.168.0.0/16"), each entry without its surrounding spaces.
template <typename Predicate> bool any_list_entry(std::string_view list, Predicate holds) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        std::string_view entry = list.substr(0, comma);
        while (!entry.empty() && entry.front() == ' ')
            entry.remove_prefix(1);
        while (!entry.empty() && entry.back() == ' ')
            entry.remove_suffix(1);
        if (holds(entry))
            return true;
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// Whether a comma-separated list (a label or annotation value) holds `item`, spaces aside.
bool list_contains(std::string_view list, std::string_view item) noexcept;

// The ambient and interception facts of a pod or pod template (ambient.md §10, §11, §13), from its
// labels, annotations and spec. `pod_spec` is absent for metadata-only pods (the live cluster
// lists pods as PartialObjectMetadata): hostNetwork is then false.
template <class Node>
void decode_dataplane_facts(PodLike& pod, const Labels& labels, const Labels& annotations,
                            const std::optional<Node>& pod_spec, const std::string& spec_path) {
    pod.sidecar_status = annotations.contains("sidecar.istio.io/status");
    if (const std::string* redirection = annotations.find("ambient.istio.io/redirection")) {
        pod.redirection = *redirection == "enabled"   ? AmbientRedirection::Enabled
                          : *redirection == "pending" ? AmbientRedirection::Pending
                                                      : AmbientRedirection::Other;
    }
    const std::string* bypass = annotations.find("ambient.istio.io/bypass-inbound-capture");
    pod.bypass_inbound_capture = bypass && *bypass == "true";
    const std::string* tunnel = labels.find("networking.istio.io/tunnel");
    pod.tunnel_http = tunnel && list_contains(*tunnel, "http");
    auto annotation = [&](std::string_view key) -> std::optional<std::string> {
        const std::string* value = annotations.find(key);
        return value ? std::optional<std::string>(*value) : std::nullopt;
    };
    pod.interception.exclude_inbound_ports =
        annotation("traffic.sidecar.istio.io/excludeInboundPorts");
    pod.interception.include_inbound_ports =
        annotation("traffic.sidecar.istio.io/includeInboundPorts");
    pod.interception.exclude_outbound_ports =
        annotation("traffic.sidecar.istio.io/excludeOutboundPorts");
    pod.interception.include_outbound_ports =
        annotation("traffic.sidecar.istio.io/includeOutboundPorts");
    pod.interception.exclude_outbound_ip_ranges =
        annotation("traffic.sidecar.istio.io/excludeOutboundIPRanges");
    pod.interception.include_outbound_ip_ranges =
        annotation("traffic.sidecar.istio.io/includeOutboundIPRanges");
    if (pod_spec)
        pod.host_network = optional_bool(*pod_spec, "hostNetwork", spec_path).value_or(false);
    // Opting out works by label or annotation; opting in only by label, because only the label is
    // seen by the injector webhook's objectSelector in a namespace that is not labelled itself.
    const std::string* inject_label = labels.find("sidecar.istio.io/inject");
    const std::string* inject_annotation = annotations.find("sidecar.istio.io/inject");
    if ((inject_label && *inject_label == "false") ||
        (inject_annotation && *inject_annotation == "false"))
        pod.own_injection = false;
    else if (inject_label && *inject_label == "true")
        pod.own_injection = true;
}

template <class Node> PodLike decode_pod(const Node& object, const BasicMeta<Node>& meta) {
    PodLike pod;
    pod.namespace_name = meta.namespace_name;
    auto [kind, name] = owning_workload(meta);
    pod.workload_kind = std::move(kind);
    pod.workload_name = std::move(name);
    pod.labels = stable_pod_labels(meta.labels);
    const auto spec = optional_object(object, "spec", "");
    bool proxy = injected_marker(meta.labels, meta.annotations);
    if (spec) {
        proxy = proxy || has_proxy_container(*spec);
        pod.container_ports = container_ports(*spec, "spec");
    }
    pod.sidecar = proxy;
    decode_dataplane_facts(pod, meta.labels, meta.annotations, spec, "spec");
    return pod;
}

// `ref` names the Service (its apiVersion is the object's own).
template <class Node>
Service decode_service(const Node& object, const BasicMeta<Node>& meta, ObjectRef ref) {
    Service svc;
    svc.ref = std::move(ref);
    svc.labels = meta.labels;
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        return svc;
    if (const auto selector = optional_object(*spec, "selector", "spec")) {
        Labels labels = string_map(selector, "spec.selector");
        if (!labels.empty())
            svc.selector = std::move(labels); // {} selects nothing in Kubernetes
    }
    const std::string cluster_ip = optional_string(*spec, "clusterIP", "spec");
    svc.headless = cluster_ip == "None";
    svc.cluster_ipv4 = parse_ipv4(cluster_ip);
    svc.external_name = optional_string(*spec, "type", "spec") == "ExternalName";
    if (const auto ports = optional_array(*spec, "ports", "spec")) {
        ports->for_each_item([&](std::size_t i, const Node& p) {
            const std::string path = "spec.ports[" + std::to_string(i) + "]";
            if (!p.is_object())
                throw Failure{path + ": expected an object"};
            ServicePort port;
            port.name = optional_string(p, "name", path);
            const auto number = member(p, "port");
            if (!number)
                throw Failure{path + ".port: missing"};
            port.port = port_number(*number, path + ".port");
            const std::string protocol = optional_string(p, "protocol", path);
            if (!protocol.empty() && protocol != "TCP" && protocol != "UDP" && protocol != "SCTP")
                throw Failure{path + ".protocol: unknown value \"" + protocol + "\""};
            port.tcp = protocol.empty() || protocol == "TCP";
            if (const auto target = member(p, "targetPort")) {
                if (target->is_string())
                    port.target_port_name = std::string(target->string());
                else
                    port.target_port_number = port_number(*target, path + ".targetPort");
            } else {
                port.target_port_number = port.port;
            }
            svc.ports.push_back(std::move(port));
        });
    }
    return svc;
}

// A clientConfig.service (or APIService spec.service) reference: namespace and name required,
// port 443 unless given.
template <class Node>
ApiServerCall decode_service_reference(const Node& service, const std::string& path) {
    ApiServerCall call;
    call.namespace_name = optional_string(service, "namespace", path);
    if (call.namespace_name.empty())
        throw Failure{path + ".namespace: missing"};
    call.service = optional_string(service, "name", path);
    if (call.service.empty())
        throw Failure{path + ".name: missing"};
    if (const auto port = member(service, "port"))
        call.port = port_number(*port, path + ".port");
    call.path = optional_string(service, "path", path);
    return call;
}

// A webhook clientConfig: the Service it names, or nullopt for a `url` (outside the mesh).
template <class Node>
std::optional<ApiServerCall> decode_client_config(const Node& holder, std::string_view key,
                                                  const std::string& path) {
    const auto config = optional_object(holder, key, path);
    const std::string config_path = path + "." + std::string(key);
    if (!config)
        throw Failure{config_path + ": missing"};
    if (const auto service = optional_object(*config, "service", config_path))
        return decode_service_reference(*service, config_path + ".service");
    if (optional_string(*config, "url", config_path).empty())
        throw Failure{config_path + ": needs service or url"};
    return std::nullopt;
}

// ValidatingWebhookConfiguration, MutatingWebhookConfiguration, APIService or
// CustomResourceDefinition: the Services the API server calls (ambient.md §16).
template <class Node, class Meta>
ApiServerCallee decode_api_server_callee(const Node& object, const Meta& meta,
                                         std::string_view kind) {
    ApiServerCallee callee;
    callee.ref = make_ref(object, kind, meta);
    if (kind == "ValidatingWebhookConfiguration" || kind == "MutatingWebhookConfiguration") {
        const auto webhooks = member(object, "webhooks");
        if (!webhooks)
            return callee;
        if (!webhooks->is_array())
            throw Failure{"webhooks: expected a list, got " + webhooks->type_name()};
        webhooks->for_each_item([&](std::size_t i, const Node& webhook) {
            const std::string path = "webhooks[" + std::to_string(i) + "]";
            if (!webhook.is_object())
                throw Failure{path + ": expected an object"};
            const std::string name = optional_string(webhook, "name", path);
            if (name.empty())
                throw Failure{path + ".name: missing"};
            if (auto call = decode_client_config(webhook, "clientConfig", path)) {
                call->webhook = name;
                callee.calls.push_back(std::move(*call));
            }
        });
        return callee;
    }
    const auto spec = optional_object(object, "spec", "");
    if (!spec)
        return callee;
    if (kind == "APIService") {
        // No service: the API server serves the group itself.
        if (const auto service = optional_object(*spec, "service", "spec"))
            callee.calls.push_back(decode_service_reference(*service, "spec.service"));
        return callee;
    }
    const auto conversion = optional_object(*spec, "conversion", "spec");
    if (!conversion || optional_string(*conversion, "strategy", "spec.conversion") != "Webhook")
        return callee;
    // v1: conversion.webhook.clientConfig; v1beta1: conversion.webhookClientConfig.
    std::optional<ApiServerCall> call;
    if (const auto webhook = optional_object(*conversion, "webhook", "spec.conversion"))
        call = decode_client_config(*webhook, "clientConfig", "spec.conversion.webhook");
    else
        call = decode_client_config(*conversion, "webhookClientConfig", "spec.conversion");
    if (call)
        callee.calls.push_back(std::move(*call));
    return callee;
}

// The kinds decode_object sorts objects into.
enum class Kind : std::uint8_t {
    Unknown,
    PeerAuthentication,
    DestinationRule,
    VirtualService,
    Sidecar,
    Policy,
    MeshPolicy,
    Service,
    ServiceEntry,
    Namespace,
    Pod,
    PodTemplateOwner,
    ConfigMap,
    ApiServerCallee // webhook configurations, APIService, CustomResourceDefinition
};

Kind classify(std::string_view api_version, std::string_view kind) noexcept;

DecodeOutcome decoded(DecodedObject object);
DecodeOutcome failed(std::string message);

// Runs a decoder and turns whatever it throws into a failed outcome: nothing leaves the decoders.
template <class Result, class Decode> Result guarded(Decode&& decode) noexcept {
    try {
        return decode();
    } catch (const Failure& failure) {
        return failed(failure.message);
    } catch (const std::exception& e) {
        return failed(std::string("internal decoding error: ") + e.what());
    } catch (...) {
        return failed("internal decoding error");
    }
}

// decode_object for a document whose kind is one of the admission kinds above, on any Node; nullopt
// for every other document (the caller decodes those with decode_object). Never throws.
template <class Node>
std::optional<DecodeOutcome> decode_admission_kind(const Node& object,
                                                   std::string_view default_namespace) noexcept {
    return guarded<std::optional<DecodeOutcome>>([&]() -> std::optional<DecodeOutcome> {
        if (!object.is_object())
            return std::nullopt;
        const auto api_version = member(object, "apiVersion");
        const auto kind_field = member(object, "kind");
        if (!api_version || !kind_field || !api_version->is_string() || !kind_field->is_string())
            return std::nullopt;
        const std::string_view kind = kind_field->string();
        const Kind k = classify(api_version->string(), kind);
        if (k != Kind::PeerAuthentication && k != Kind::DestinationRule && k != Kind::Policy &&
            k != Kind::MeshPolicy && k != Kind::VirtualService && k != Kind::Sidecar &&
            k != Kind::Namespace)
            return std::nullopt;
        const auto meta =
            decode_meta(object, default_namespace, k != Kind::MeshPolicy && k != Kind::Namespace);
        switch (k) {
        case Kind::Namespace:
            return decoded(Namespace{meta.name, meta.labels});
        case Kind::PeerAuthentication:
            return decoded(decode_peer_authentication(object, meta, kind));
        case Kind::DestinationRule:
            return decoded(decode_destination_rule(object, meta, kind));
        case Kind::VirtualService:
            return decoded(decode_virtual_service(object, meta, kind));
        case Kind::Sidecar:
            return decoded(decode_sidecar(object, meta, kind));
        case Kind::Policy:
            return decoded(decode_alpha_policy(object, meta, kind, false));
        default:
            return decoded(decode_alpha_policy(object, meta, kind, true));
        }
    });
}

// decode_object for a v1 Pod, Service or Namespace on any Node, as if the object carried this
// apiVersion and kind (list items of built-in types carry neither); nullopt for any other kind
// (the caller decodes those with decode_object). Never throws.
template <class Node>
std::optional<DecodeOutcome> decode_listed_kind(const Node& object, std::string_view api_version,
                                                std::string_view kind) noexcept {
    return guarded<std::optional<DecodeOutcome>>([&]() -> std::optional<DecodeOutcome> {
        const Kind k = classify(api_version, kind);
        if (k != Kind::Pod && k != Kind::Service && k != Kind::Namespace)
            return std::nullopt;
        if (!object.is_object())
            return failed("the document is not an object (got " + object.type_name() + ")");
        const auto meta = decode_meta(object, "default", k != Kind::Namespace);
        switch (k) {
        case Kind::Pod:
            return decoded(decode_pod(object, meta));
        case Kind::Service:
            return decoded(decode_service(
                object, meta,
                ObjectRef{std::string(api_version), "Service", meta.namespace_name, meta.name}));
        default:
            return decoded(Namespace{meta.name, meta.labels});
        }
    });
}

} // namespace mtlsguard::model::decoding
