// The immutable, indexed picture of a cluster that every analysis and admission decision reads.
#include "analysis/model/snapshot.hpp"

#include "analysis/model/dataplane.hpp"
#include "analysis/model/decode.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <tuple>

namespace mtlsguard::model {
namespace {

// std::stable_sort's order, without its buffer and moves for the few objects a namespace mostly
// holds (admission builds a namespace's config twice per review): insertion sort is as stable.
template <typename T, typename Less> void stable_sort_objects(std::vector<T>& objects, Less less) {
    constexpr std::size_t few = 16;
    if (objects.size() > few) {
        std::stable_sort(objects.begin(), objects.end(), less);
        return;
    }
    for (std::size_t i = 1; i < objects.size(); ++i) {
        std::size_t at = i; // after every earlier object that is not greater
        while (at > 0 && less(objects[i], objects[at - 1]))
            --at;
        if (at != i) {
            const auto first = objects.begin();
            std::rotate(first + static_cast<std::ptrdiff_t>(at),
                        first + static_cast<std::ptrdiff_t>(i),
                        first + static_cast<std::ptrdiff_t>(i + 1));
        }
    }
}

template <typename T> void sort_oldest_first(std::vector<T>& objects) {
    stable_sort_objects(objects, [](const T& a, const T& b) { return a.age.older_than(b.age); });
}

bool is_system_namespace(std::string_view name) {
    return name == "kube-system" || name == "kube-public" || name == "kube-node-lease";
}

// Istio's installs label their own components with the key `istio` or `release: istio`.
bool is_control_plane(const Labels& labels) {
    const std::string* release = labels.find("release");
    return labels.contains("istio") || (release && *release == "istio");
}

bool namespace_injects(const Labels& labels) {
    const std::string* injection = labels.find("istio-injection");
    if (injection)
        return *injection == "enabled";
    return labels.contains("istio.io/rev");
}

std::optional<std::string> label_value(const Labels& labels, std::string_view key) {
    const std::string* value = labels.find(key);
    return value ? std::optional<std::string>(*value) : std::nullopt;
}

// What a NamespaceRecord derives from its labels; build() and build_update() share it.
void derive_from_labels(NamespaceRecord& record) {
    record.injection = namespace_injects(record.labels);
    record.dataplane_mode = label_value(record.labels, "istio.io/dataplane-mode");
    record.use_waypoint = label_value(record.labels, "istio.io/use-waypoint");
    // In the analyzers' words (util.NamespaceInAmbientMode): injection wins.
    record.sidecar_and_ambient =
        record.injection && record.dataplane_mode && *record.dataplane_mode == "ambient";
}

std::vector<std::string> resolve_export_to(const DestinationRule& dr, const MeshSettings& mesh) {
    std::vector<std::string> values;
    if (dr.workload_selector) {
        values.push_back(dr.ref.namespace_name); // selector rules are always private
    } else {
        const auto& source = dr.export_to.empty() ? mesh.default_dr_export_to : dr.export_to;
        for (const auto& v : source)
            values.push_back(v == "." ? dr.ref.namespace_name : v);
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

bool same_selector(const Labels* a, const Labels* b) {
    if (!a || !b)
        return a == b;
    return *a == *b;
}

bool superset_of(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return std::includes(a.begin(), a.end(), b.begin(), b.end());
}

void merge_into(ConsolidatedRule& rule, const DestinationRule& dr) {
    rule.members.push_back(&dr);
    if (!rule.traffic_policy() && dr.traffic_policy)
        rule.policy_source = &dr;
    for (const auto& subset : dr.subsets) {
        const bool duplicate = std::any_of(rule.subsets.begin(), rule.subsets.end(),
                                           [&](const Subset* s) { return s->name == subset.name; });
        if (!duplicate)
            rule.subsets.push_back(&subset);
    }
}

ConsolidatedRule new_rule(const DestinationRule& dr, std::vector<std::string> export_to) {
    ConsolidatedRule rule;
    rule.export_to = std::move(export_to);
    rule.selector = dr.workload_selector ? &*dr.workload_selector : nullptr;
    merge_into(rule, dr);
    return rule;
}

// pilot's mergeDestinationRule with enhanced merge: same host, same selector, equal exportTo merge;
// a superset exportTo merges and is also kept on its own; anything else stays separate.
void add_to_index(DrIndex& index, const std::string& key, const DestinationRule& dr,
                  const std::vector<std::string>& export_to) {
    auto& entries = key.find('*') != std::string::npos ? index.wildcard[key] : index.specific[key];
    bool keep_separately = true;
    for (auto& existing : entries) {
        if (!same_selector(existing.selector,
                           dr.workload_selector ? &*dr.workload_selector : nullptr))
            continue;
        if (existing.export_to == export_to) {
            merge_into(existing, dr);
            keep_separately = false;
        } else if (!existing.export_to.empty() && superset_of(export_to, existing.export_to)) {
            merge_into(existing, dr);
        }
    }
    if (keep_separately)
        entries.push_back(new_rule(dr, export_to));
}

} // namespace

bool ConsolidatedRule::exported_to(std::string_view client_namespace) const noexcept {
    return std::binary_search(export_to.begin(), export_to.end(), std::string_view("*")) ||
           std::find(export_to.begin(), export_to.end(), client_namespace) != export_to.end();
}

const PeerAuthentication*
NamespaceConfig::workload_policy_for(const Labels& pod_labels) const noexcept {
    for (const PeerAuthentication* pa : workload_policies)
        if (pa->selector.subset_of(pod_labels))
            return pa;
    return nullptr;
}

std::string Snapshot::resolve_host(std::string_view host, std::string_view dr_namespace) const {
    if (host.find('.') != std::string_view::npos || host.find('*') != std::string_view::npos)
        return std::string(host);
    std::string out;
    out.reserve(host.size() + dr_namespace.size() + settings_.cluster_domain.size() + 6);
    out.append(host)
        .append(".")
        .append(dr_namespace)
        .append(".svc.")
        .append(settings_.cluster_domain);
    return out;
}

std::optional<NsId> Snapshot::namespace_id(std::string_view name) const noexcept {
    auto it = namespace_ids_.find(std::string(name));
    if (it == namespace_ids_.end())
        return std::nullopt;
    return it->second;
}

const std::vector<NsId>*
Snapshot::namespaces_with_local_key(const std::string& key) const noexcept {
    auto it = local_keys_->find(key);
    return it == local_keys_->end() ? nullptr : &it->second;
}

const std::vector<ServiceId>* Snapshot::services_for_host(const std::string& host) const noexcept {
    auto it = hosts_->services_by_host.find(host);
    return it == hosts_->services_by_host.end() ? nullptr : &it->second;
}

const std::vector<NsId>*
Snapshot::virtual_service_namespaces_for(const std::string& key) const noexcept {
    auto it = virtual_service_hosts_->find(key);
    return it == virtual_service_hosts_->end() ? nullptr : &it->second;
}

bool Snapshot::host_key_matches_anything(const std::string& key) const noexcept {
    const auto& known = hosts_->known_hosts;
    if (key == "*")
        return !known.empty();
    if (key.size() > 1 && key[0] == '*')
        return known.count(key.substr(1)) > 0;
    auto it = known.find(key);
    return it != known.end() && it->second;
}

bool Snapshot::has_alpha_policies() const noexcept {
    if (!mesh_policies_.empty())
        return true;
    for (const auto& config : configs_)
        if (!config->policies.empty())
            return true;
    return false;
}

namespace {

// The Sidecar a pod of the namespace uses: the oldest whose workloadSelector matches it, else the
// namespace's default (pilot's doGetSidecarScope; the root's default is the caller's fallback).
const Sidecar* sidecar_for(const NamespaceConfig& config, const Labels& labels) {
    for (const auto& sidecar : config.sidecars)
        if (sidecar.workload_selector && sidecar.workload_selector->subset_of(labels))
            return &sidecar;
    return config.default_sidecar;
}

// The workload policy of each of the namespace's workloads (`workloads`, else the snapshot's).
void match_workload_policies(NamespaceConfig& config, const Snapshot& snapshot,
                             const std::vector<Workload>* workloads) {
    const auto ns = snapshot.namespace_id(config.name);
    if (config.workload_policies.empty() || !ns)
        return;
    const auto& ids = snapshot.namespaces()[*ns].workloads;
    config.workload_policy_by_position.reserve(ids.size());
    for (std::uint32_t at = 0; at < ids.size(); ++at) {
        const Workload& w = workloads ? (*workloads)[at] : snapshot.workloads()[ids[at]];
        config.workload_policy_by_position.push_back(config.workload_policy_for(w.labels));
    }
}

// Client pods that match the same selector rules and use the same Sidecar form one variant.
void make_variants(NamespaceConfig& config, const Snapshot& snapshot,
                   const std::vector<Workload>* workloads) {
    std::vector<const DestinationRule*> selector_rules;
    for (const auto& dr : config.destination_rules)
        if (dr.workload_selector)
            selector_rules.push_back(&dr);
    config.variants.push_back(ClientVariant{{}, config.default_sidecar, {}});
    const auto ns = snapshot.namespace_id(config.name);
    if (!ns)
        return;
    std::map<std::pair<std::vector<const DestinationRule*>, const Sidecar*>, std::size_t> by_match;
    const auto& ids = snapshot.namespaces()[*ns].workloads;
    for (std::uint32_t id = 0; id < ids.size(); ++id) {
        const Workload& w = workloads ? (*workloads)[id] : snapshot.workloads()[ids[id]];
        if (!w.sidecar)
            continue;
        std::vector<const DestinationRule*> matching;
        for (const DestinationRule* dr : selector_rules)
            if (dr->workload_selector->subset_of(w.labels))
                matching.push_back(dr);
        const Sidecar* sidecar = config.sidecars.empty() ? nullptr : sidecar_for(config, w.labels);
        if (matching.empty() && sidecar == config.default_sidecar) {
            config.variants[0].workloads.push_back(id);
            continue;
        }
        auto [it, inserted] =
            by_match.emplace(std::make_pair(matching, sidecar), config.variants.size());
        if (inserted)
            config.variants.push_back(ClientVariant{std::move(matching), sidecar, {}});
        config.variants[it->second].workloads.push_back(id);
    }
}

} // namespace

std::shared_ptr<const NamespaceConfig>
build_namespace_config(std::string name, std::vector<PeerAuthentication> peer_authentications,
                       std::vector<DestinationRule> destination_rules,
                       std::vector<AlphaPolicy> policies,
                       std::vector<VirtualService> virtual_services, std::vector<Sidecar> sidecars,
                       const Snapshot& snapshot, const std::vector<Workload>* workloads) {
    auto config = std::make_shared<NamespaceConfig>();
    config->name = std::move(name);
    config->is_root = config->name == snapshot.mesh().root_namespace;
    config->peer_authentications = std::move(peer_authentications);
    config->destination_rules = std::move(destination_rules);
    config->policies = std::move(policies);
    config->virtual_services = std::move(virtual_services);
    config->sidecars = std::move(sidecars);
    sort_oldest_first(config->virtual_services);
    for (std::uint32_t i = 0; i < config->virtual_services.size(); ++i) {
        const auto& vs = config->virtual_services[i];
        if (!vs.gateways.empty() &&
            std::find(vs.gateways.begin(), vs.gateways.end(), "mesh") == vs.gateways.end())
            continue; // for gateways only: no sidecar route (ambient.md §15)
        for (const auto& host : vs.hosts) {
            std::string key = snapshot.resolve_host(host, config->name);
            config->virtual_service_wildcard_host =
                config->virtual_service_wildcard_host || key.starts_with('*');
            auto& list = config->virtual_services_by_host[std::move(key)];
            if (list.empty() || list.back() != i)
                list.push_back(i);
        }
    }
    // pilot sorts Sidecars as DestinationRules: a workloadSelector first, then by age.
    stable_sort_objects(config->sidecars, [](const Sidecar& a, const Sidecar& b) {
        if (a.workload_selector.has_value() != b.workload_selector.has_value())
            return a.workload_selector.has_value();
        return a.age.older_than(b.age);
    });
    for (const auto& sidecar : config->sidecars)
        if (!sidecar.workload_selector && !config->default_sidecar)
            config->default_sidecar = &sidecar;
    sort_oldest_first(config->peer_authentications);
    sort_oldest_first(config->policies);
    // pilot sorts rules with a workloadSelector first, then by age.
    stable_sort_objects(config->destination_rules,
                        [](const DestinationRule& a, const DestinationRule& b) {
                            if (a.workload_selector.has_value() != b.workload_selector.has_value())
                                return a.workload_selector.has_value();
                            return a.age.older_than(b.age);
                        });

    for (const auto& pa : config->peer_authentications) {
        if (pa.selector.empty()) {
            if (!config->namespace_policy)
                config->namespace_policy = &pa;
        } else if (!config->is_root) {
            config->workload_policies.push_back(
                &pa); // selector policies in the root apply to nothing
        }
    }

    for (const auto& dr : config->destination_rules) {
        const std::string key = snapshot.resolve_host(dr.host, config->name);
        const auto export_to = resolve_export_to(dr, snapshot.mesh());
        const bool private_only = export_to.size() == 1 && export_to[0] == config->name;
        const bool visible_here =
            std::binary_search(export_to.begin(), export_to.end(), std::string("*")) ||
            std::binary_search(export_to.begin(), export_to.end(), config->name);
        if (config->is_root ? private_only : visible_here)
            add_to_index(config->local, key, dr, export_to);
        if (!private_only)
            add_to_index(config->exported, key, dr, export_to);
    }

    match_workload_policies(*config, snapshot, workloads);
    make_variants(*config, snapshot, workloads);
    return config;
}

SnapshotBuilder::SnapshotBuilder(Settings settings) : settings_(std::move(settings)) {}

std::optional<std::string> SnapshotBuilder::add(const nlohmann::json& object,
                                                std::string_view default_namespace) {
    DecodeOutcome outcome = decode_object(object, default_namespace);
    if (outcome.status == DecodeOutcome::Status::Error)
        return std::move(outcome.error);
    if (outcome.status == DecodeOutcome::Status::Decoded)
        add(std::move(*outcome.object));
    return std::nullopt;
}

void SnapshotBuilder::add_pods(std::shared_ptr<const PodLike> pod, std::uint32_t count) {
    if (!pod || count == 0)
        return;
    count_ += count;
    pods_.emplace_back(std::move(pod), count);
}

void SnapshotBuilder::add(DecodedObject object) {
    ++count_;
    std::visit(
        [this](auto&& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<T, PeerAuthentication>)
                peer_authentications_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, DestinationRule>)
                destination_rules_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, VirtualService>)
                virtual_services_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, Sidecar>)
                sidecars_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, AlphaPolicy>) {
                alpha_seen_ = true;
                policies_.push_back(std::move(o));
            } else if constexpr (std::is_same_v<T, Service>)
                services_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, ServiceEntry>)
                service_entries_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, PodLike>)
                pods_.emplace_back(std::make_shared<const PodLike>(std::move(o)), 1);
            else if constexpr (std::is_same_v<T, Namespace>)
                namespaces_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, MeshConfig>) {
                // Only the ConfigMap of the Istio namespace is the mesh config.
                if (o.source_namespace == settings_.istio_namespace)
                    mesh_from_config_map_ = std::move(o);
            } else if constexpr (std::is_same_v<T, CniConfig>) {
                if (o.source_namespace == settings_.istio_namespace)
                    cni_config_ = std::move(o);
            } else if constexpr (std::is_same_v<T, ApiServerCallee>) {
                api_server_callees_.push_back(std::move(o));
            }
        },
        std::move(object));
}

const std::vector<ApiServerCallRef>* Snapshot::api_server_calls(const std::string& namespace_name,
                                                                const std::string& name) const {
    const auto& index = api_server_callees_->by_service;
    if (index.empty())
        return nullptr;
    auto it = index.find(std::make_pair(namespace_name, name));
    return it == index.end() ? nullptr : &it->second;
}

std::string_view object_namespace(const DecodedObject& object) noexcept {
    return std::visit(
        [](const auto& o) -> std::string_view {
            using T = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<T, PodLike>)
                return o.namespace_name;
            else if constexpr (std::is_same_v<T, Namespace>)
                return o.name;
            else if constexpr (std::is_same_v<T, MeshConfig> || std::is_same_v<T, CniConfig> ||
                               std::is_same_v<T, ApiServerCallee>)
                return {};
            else if constexpr (std::is_same_v<T, AlphaPolicy>)
                return o.mesh_policy ? std::string_view() : std::string_view(o.ref.namespace_name);
            else
                return o.ref.namespace_name;
        },
        object);
}

namespace {

using NamespaceIds = std::unordered_map<std::string, NsId>;

void count_object(std::vector<std::size_t>& counts, const NamespaceIds& ids,
                  const std::string& ns) {
    if (auto it = ids.find(ns); it != ids.end())
        ++counts[it->second];
}

// What sets the pods of one controller apart into workloads: labels and dataplane state.
struct WorkloadKey {
    std::string namespace_name;
    std::string kind;
    std::string name;
    Dataplane dataplane = Dataplane::None;
    bool ambient_predicted = false;
    bool ambient_pending = false;
    bool waypoint = false;
    bool sidecar_beats_ambient = false;
    bool bypass_inbound_capture = false;
    Interception interception;
    Labels labels;

    friend auto operator<=>(const WorkloadKey&, const WorkloadKey&) = default;
};

// Pods to workloads, appended to `out` in the order of the pods: running pods win over the
// templates of the same controller.
void make_workloads(
    const std::vector<std::pair<std::shared_ptr<const PodLike>, std::uint32_t>>& pods,
    const NamespaceIds& ids, const std::vector<NamespaceRecord>& namespaces,
    const Settings& settings, const CniConfig* cni, std::vector<Workload>& out,
    std::vector<std::size_t>& counts) {
    std::set<std::pair<std::string, std::string>> controllers_with_pods;
    for (const auto& [pod, n] : pods)
        if (!pod->from_template)
            controllers_with_pods.emplace(pod->namespace_name, pod->workload_name);
    std::map<WorkloadKey, WorkloadId> workload_ids;
    for (const auto& [shared, n] : pods) {
        const PodLike& pod = *shared;
        if (pod.from_template &&
            controllers_with_pods.count({pod.namespace_name, pod.workload_name})) {
            for (std::uint32_t i = 0; i < n; ++i)
                count_object(counts, ids, pod.namespace_name);
            continue;
        }
        const NsId ns = ids.at(pod.namespace_name);
        counts[ns] += n;
        const DataplaneDecision d =
            classify_dataplane(pod, pod.sidecar.value_or(namespaces[ns].injection),
                               namespaces[ns].labels, settings.version, cni);
        WorkloadKey key{pod.namespace_name,
                        pod.workload_kind,
                        pod.workload_name,
                        d.dataplane,
                        d.predicted,
                        d.pending,
                        d.waypoint,
                        d.sidecar_beats_ambient,
                        pod.bypass_inbound_capture,
                        pod.interception,
                        pod.labels};
        auto [it, inserted] =
            workload_ids.emplace(std::move(key), static_cast<WorkloadId>(out.size()));
        if (inserted) {
            Workload w;
            w.ns = ns;
            w.kind = pod.workload_kind;
            w.name = pod.workload_name;
            w.labels = pod.labels;
            w.dataplane = d.dataplane;
            w.sidecar = d.dataplane == Dataplane::Sidecar;
            w.ambient_predicted = d.predicted;
            w.ambient_pending = d.pending;
            w.tunnel_http = pod.tunnel_http;
            w.waypoint = d.waypoint;
            w.sidecar_beats_ambient = d.sidecar_beats_ambient;
            w.bypass_inbound_capture = pod.bypass_inbound_capture;
            w.interception = pod.interception;
            w.control_plane = is_control_plane(pod.labels);
            w.names_waypoint = pod.labels.contains("istio.io/use-waypoint");
            w.from_template = pod.from_template;
            w.host_network = pod.host_network;
            // A template's decision includes an injected marker (a manually injected proxy).
            w.own_injection = pod.from_template ? pod.sidecar : pod.own_injection;
            out.push_back(std::move(w));
        }
        Workload& w = out[it->second];
        w.pods += n;
        for (const auto& port : pod.container_ports) {
            const bool known = std::any_of(w.ports.begin(), w.ports.end(), [&](const NamedPort& p) {
                return p.number == port.number && p.name == port.name;
            });
            if (!known)
                w.ports.push_back(port);
        }
    }
}

// The waypoint a Service's ambient clients go through: its own istio.io/use-waypoint label
// (`own`), else its namespace's; in the namespace istio.io/use-waypoint-namespace names.
std::optional<ObjectRef> service_waypoint(const Service& svc, const std::optional<std::string>& own,
                                          const NamespaceRecord& space) {
    const auto& chosen = own ? own : space.use_waypoint;
    if (!chosen || chosen->empty() || *chosen == "none")
        return std::nullopt;
    const std::string* waypoint_ns = own ? svc.labels.find("istio.io/use-waypoint-namespace")
                                         : space.labels.find("istio.io/use-waypoint-namespace");
    return ObjectRef{"gateway.networking.k8s.io/v1", "Gateway",
                     waypoint_ns ? *waypoint_ns : svc.ref.namespace_name, *chosen};
}

// A Service and the workloads behind it; the namespace's workloads are in the table already.
ServiceRecord make_service_record(Service svc, NsId ns, const std::vector<NamespaceRecord>& spaces,
                                  const RecordTable<Workload>& workloads,
                                  const std::string& domain) {
    ServiceRecord record;
    record.ns = ns;
    record.host = svc.ref.name + "." + svc.ref.namespace_name + ".svc." + domain;
    record.analysed_as_server =
        !spaces[ns].system && !is_control_plane(svc.labels) && !svc.external_name;
    record.use_waypoint = label_value(svc.labels, "istio.io/use-waypoint");
    record.waypoint = service_waypoint(svc, record.use_waypoint, spaces[ns]);
    if (svc.selector) {
        const auto& ids = spaces[ns].workloads;
        for (std::uint32_t at = 0; at < ids.size(); ++at)
            if (svc.selector->subset_of(workloads[ids[at]].labels))
                record.endpoint_positions.push_back(at);
    }
    record.service = std::move(svc);
    return record;
}

std::shared_ptr<const ApiServerCallees> index_api_server_callees(std::vector<ApiServerCallee> in) {
    auto out = std::make_shared<ApiServerCallees>();
    out->objects = std::move(in);
    std::stable_sort(out->objects.begin(), out->objects.end(), [](const auto& a, const auto& b) {
        return std::tie(a.ref.kind, a.ref.name) < std::tie(b.ref.kind, b.ref.name);
    });
    for (const auto& callee : out->objects)
        for (const auto& call : callee.calls)
            out->by_service[{call.namespace_name, call.service}].push_back(
                ApiServerCallRef{&callee, &call});
    return out;
}

// Moves records numbered by their position in `flat` into one block per namespace, in the order
// of that namespace's id list (`ids`: NamespaceRecord::workloads or ::services), and places them.
template <typename T>
void fill_table(RecordTable<T>& table, std::vector<T>& flat,
                const std::vector<NamespaceRecord>& spaces,
                std::vector<std::uint32_t> NamespaceRecord::*ids) {
    table.reset(spaces.size(), flat.size());
    for (NsId ns = 0; ns < spaces.size(); ++ns) {
        const auto& list = spaces[ns].*ids;
        if (list.empty())
            continue;
        auto block = std::make_shared<std::vector<T>>();
        block->reserve(list.size());
        for (std::uint32_t id : list)
            block->push_back(std::move(flat[id]));
        table.place(ns, std::move(block), list);
    }
    flat.clear();
}

// Fills `table` (a build_update's) namespace by namespace in id order: an unchanged namespace's
// block is `before`'s, with ids following the last namespace's; a changed one's records are
// make(ns, k, its record) for each k of `changed[ns]`, listed in the record's `ids` as they come.
template <typename T, typename Make>
void renumber_into(RecordTable<T>& table, const RecordTable<T>& before,
                   std::vector<NamespaceRecord>& spaces,
                   const std::vector<NamespaceRecord>& previous_spaces,
                   std::vector<std::uint32_t> NamespaceRecord::*ids,
                   const std::vector<bool>& rebuilt,
                   const std::vector<std::vector<std::size_t>>& changed, Make make) {
    std::size_t total = 0;
    for (NsId ns = 0; ns < spaces.size(); ++ns)
        total += rebuilt[ns] ? changed[ns].size() : (previous_spaces[ns].*ids).size();
    table.reset(spaces.size(), total);
    std::uint32_t next = 0;
    for (NsId ns = 0; ns < spaces.size(); ++ns) {
        NamespaceRecord& record = spaces[ns];
        auto& list = record.*ids; // a copy of the previous one's when unchanged
        if (!rebuilt[ns]) {
            std::iota(list.begin(), list.end(), next);
            next += static_cast<std::uint32_t>(list.size());
            if (!list.empty())
                table.place(ns, before.block(ns), list);
            continue;
        }
        if (changed[ns].empty())
            continue;
        auto block = std::make_shared<std::vector<T>>();
        block->reserve(changed[ns].size());
        for (std::size_t k : changed[ns]) {
            list.push_back(next++);
            block->push_back(make(ns, k, record));
        }
        table.place(ns, std::move(block), list);
    }
}

void add_external_hosts(const ServiceEntry& se, NsId ns, std::vector<ExternalHost>& out) {
    for (const auto& host : se.hosts) {
        ExternalHost h;
        h.ref = se.ref;
        h.ns = ns;
        h.host = host;
        h.mesh_external = se.mesh_external;
        h.ports = se.ports;
        out.push_back(std::move(h));
    }
}

} // namespace

namespace {

// Which kinds of client a namespace runs, one workload at a time.
void note_client_kind(NamespaceRecord& ns, const Workload& w) {
    if (w.sidecar)
        ns.has_sidecar_workloads = true;
    else if (w.control_plane || w.waypoint)
        return; // proxies themselves, not clients
    else if (w.dataplane == Dataplane::Ambient) {
        ns.has_ambient_workloads = true;
        ns.has_captured_workloads = ns.has_captured_workloads || !w.ambient_predicted;
    } else
        ns.has_plain_workloads = true;
}

// A sidecar client whose annotations let some outbound connections skip the sidecar (§13).
bool skips_sidecar_outbound(const Workload& w) {
    const Interception& i = w.interception;
    return w.dataplane == Dataplane::Sidecar && !w.control_plane &&
           (i.exclude_outbound_ports || i.exclude_outbound_ip_ranges ||
            (i.include_outbound_ip_ranges && *i.include_outbound_ip_ranges != "*"));
}

} // namespace

void SnapshotBuilder::index_namespace_workloads(Snapshot& s, const std::vector<Workload>& all) {
    for (WorkloadId id = 0; id < all.size(); ++id) {
        const Workload& w = all[id];
        NamespaceRecord& ns = s.namespaces_[w.ns];
        ns.workloads.push_back(id);
        note_client_kind(ns, w);
    }
}

void SnapshotBuilder::index_hosts(Snapshot& s) {
    auto hosts = std::make_shared<Snapshot::HostIndex>();
    hosts->services_by_host.reserve(s.services_.size());
    for (ServiceId id = 0; id < s.services_.size(); ++id)
        hosts->services_by_host[s.services_[id].host].push_back(id);
    // Hosts and their ".suffix"es, so that a wildcard DR host can be checked in one lookup.
    auto know = [&](const std::string& host) {
        hosts->known_hosts[host] = true;
        for (std::size_t dot = host.find('.'); dot != std::string::npos;
             dot = host.find('.', dot + 1))
            hosts->known_hosts.try_emplace(host.substr(dot), false);
    };
    for (const auto& svc : s.services_)
        know(svc.host);
    for (const auto& h : s.external_hosts_)
        if (h.host.find('*') == std::string::npos)
            know(h.host);
    s.hosts_ = std::move(hosts);
}

void SnapshotBuilder::index_local_keys(Snapshot& s) {
    auto local_keys = std::make_shared<Snapshot::LocalKeys>();
    for (NsId id = 0; id < s.namespaces_.size(); ++id)
        for (const auto* keys : {&s.configs_[id]->local.specific, &s.configs_[id]->local.wildcard})
            for (const auto& [key, rules] : *keys)
                (*local_keys)[key].push_back(id);
    s.local_keys_ = std::move(local_keys);
}

void SnapshotBuilder::index_virtual_service_hosts(Snapshot& s) {
    auto hosts = std::make_shared<Snapshot::LocalKeys>();
    s.virtual_service_wildcards_ = false;
    for (NsId id = 0; id < s.namespaces_.size(); ++id) {
        const NamespaceConfig& config = *s.configs_[id];
        s.virtual_service_wildcards_ =
            s.virtual_service_wildcards_ || config.virtual_service_wildcard_host;
        for (const auto& [key, positions] : config.virtual_services_by_host)
            (*hosts)[key].push_back(id);
    }
    s.virtual_service_hosts_ = std::move(hosts);
}

void SnapshotBuilder::list_config_namespaces(Snapshot& s) {
    s.virtual_service_config_namespaces_.clear();
    s.sidecar_config_namespaces_.clear();
    for (NsId id = 0; id < s.namespaces_.size(); ++id) {
        const NamespaceConfig& config = *s.configs_[id];
        if (!config.virtual_services.empty())
            s.virtual_service_config_namespaces_.push_back(id);
        if (!config.sidecars.empty())
            s.sidecar_config_namespaces_.push_back(id);
    }
}

void SnapshotBuilder::index_clients(Snapshot& s) {

    // Who the clients are.
    for (NsId id = 0; id < s.namespaces_.size(); ++id) {
        const NamespaceRecord& ns = s.namespaces_[id];
        if (ns.system)
            continue;
        const bool is_root = ns.name == s.mesh_.root_namespace;
        const bool assumed =
            ns.workloads.empty() && !is_root && (ns.injection || !s.configs_[id]->empty());
        if (ns.has_sidecar_workloads || assumed)
            s.mesh_clients_.push_back(id);
        if (ns.has_plain_workloads)
            s.non_mesh_clients_.push_back(id);
        if (ns.has_ambient_workloads) {
            s.ambient_clients_.push_back(id);
            (ns.has_captured_workloads ? s.captured_clients_ : s.predicted_ambient_clients_)
                .push_back(id);
        }
        for (WorkloadId w : ns.workloads)
            if (skips_sidecar_outbound(s.workloads_[w]))
                s.outbound_bypass_clients_.push_back(w);
    }
}

namespace {

// Whether the snapshot shows ztunnel at work: a pod the CNI has annotated, or its selectors.
bool ambient_runs(const Snapshot& s) {
    if (s.cni_config() && s.cni_config()->enablement_selectors)
        return true;
    return std::any_of(s.workloads().begin(), s.workloads().end(), [](const Workload& w) {
        return w.dataplane == Dataplane::Ambient && !w.ambient_predicted;
    });
}

// The pod facts a workload keeps, as the enablement selectors and classify_dataplane read them.
PodLike pod_of(const Workload& w, const std::string& namespace_name) {
    PodLike pod;
    pod.namespace_name = namespace_name;
    pod.workload_kind = w.kind;
    pod.workload_name = w.name;
    pod.labels = w.labels;
    pod.from_template = w.from_template;
    pod.host_network = w.host_network;
    pod.tunnel_http = w.tunnel_http;
    pod.bypass_inbound_capture = w.bypass_inbound_capture;
    pod.interception = w.interception;
    pod.own_injection = w.own_injection;
    return pod;
}

// A running pod keeps its sidecar, or its lack of one, until it restarts; the CNI captures or
// releases the others at once when the selectors' answer changes (ambient-notes §1.1). A pod whose
// answer stays keeps its state: the CNI's annotation says more than the labels.
void recapture_at_once(Workload& w, const PodLike& pod, const Labels& before, const Labels& after,
                       const Settings& settings, const CniConfig* cni, bool ambient_running) {
    if (w.waypoint)
        return;
    const bool was = enablement_selects(pod, before, settings.version, cni);
    const bool now = enablement_selects(pod, after, settings.version, cni);
    if (was == now)
        return;
    if (w.sidecar) {
        w.sidecar_beats_ambient = now;
        return;
    }
    w.dataplane = now ? Dataplane::Ambient : Dataplane::None;
    w.ambient_predicted = now && (w.from_template || !ambient_running);
    w.ambient_pending = false;
}

// A pod created again: injected by its own decision or its namespace's labels, else captured as
// the selectors predict (no CNI annotation yet).
void relabel_after_restart(Workload& w, PodLike pod, const Labels& after, const Settings& settings,
                           const CniConfig* cni) {
    if (w.waypoint)
        return;
    pod.from_template = true;
    const bool sidecar = w.own_injection.value_or(namespace_injects(after));
    const DataplaneDecision d = classify_dataplane(pod, sidecar, after, settings.version, cni);
    w.dataplane = d.dataplane;
    w.sidecar = d.dataplane == Dataplane::Sidecar;
    w.ambient_predicted = d.predicted;
    w.ambient_pending = d.pending;
    w.sidecar_beats_ambient = d.sidecar_beats_ambient;
}

// Puts `ns` into the sorted list, or takes it out.
void set_member(std::vector<NsId>& list, NsId ns, bool member) {
    const auto at = std::lower_bound(list.begin(), list.end(), ns);
    const bool listed = at != list.end() && *at == ns;
    if (member && !listed)
        list.insert(at, ns);
    else if (!member && listed)
        list.erase(at);
}

// The client lists of `previous` with the overlay's namespace decided anew, as index_clients
// decides (system namespaces are never clients). At once, the sidecar clients stay as they are.
void relist_clients(RelabelledNamespace& out, const Snapshot& previous) {
    const NamespaceRecord& record = out.record;
    const NsId ns = out.ns;
    out.non_mesh_clients = previous.non_mesh_client_namespaces();
    out.ambient_clients = previous.ambient_client_namespaces();
    out.captured_clients = previous.captured_client_namespaces();
    out.predicted_ambient_clients = previous.predicted_ambient_client_namespaces();
    const bool client = !record.system;
    const bool ambient = client && record.has_ambient_workloads;
    set_member(out.non_mesh_clients, ns, client && record.has_plain_workloads);
    set_member(out.ambient_clients, ns, ambient);
    set_member(out.captured_clients, ns, ambient && record.has_captured_workloads);
    set_member(out.predicted_ambient_clients, ns, ambient && !record.has_captured_workloads);
    if (!out.config)
        return;
    const bool assumed = record.workloads.empty() &&
                         record.name != previous.mesh().root_namespace &&
                         (record.injection || !out.config->empty());
    out.mesh_clients = previous.mesh_client_namespaces();
    set_member(out.mesh_clients, ns, client && (record.has_sidecar_workloads || assumed));
    // Grouped by namespace in id order, as index_clients lists them.
    const auto& workloads = previous.workloads();
    for (WorkloadId id : previous.outbound_bypass_clients())
        if (workloads[id].ns < ns)
            out.outbound_bypass_clients.push_back(id);
    for (std::size_t i = 0; client && i < out.workloads.size(); ++i)
        if (skips_sidecar_outbound(out.workloads[i]))
            out.outbound_bypass_clients.push_back(record.workloads[i]);
    for (WorkloadId id : previous.outbound_bypass_clients())
        if (workloads[id].ns > ns)
            out.outbound_bypass_clients.push_back(id);
}

} // namespace

RelabelledNamespace SnapshotBuilder::relabel_overlay(const Snapshot& previous, NsId ns,
                                                     Labels labels, RelabelTiming timing) {
    RelabelledNamespace out;
    out.ns = ns;
    out.record = previous.namespaces_[ns];
    NamespaceRecord& record = out.record;
    const bool at_once = timing == RelabelTiming::AtOnce;
    const bool ambient_running = at_once && ambient_runs(previous);
    const CniConfig* cni = previous.cni_config_ ? &*previous.cni_config_ : nullptr;
    const Labels before = record.labels;
    const bool injection_before = record.injection;
    record.labels = std::move(labels);
    derive_from_labels(record);
    if (at_once)
        record.injection = injection_before; // the injector acts on pods being created only
    record.has_sidecar_workloads = record.has_plain_workloads = false;
    record.has_captured_workloads = record.has_ambient_workloads = false;
    out.workloads.reserve(record.workloads.size());
    for (WorkloadId id : record.workloads) {
        Workload& w = out.workloads.emplace_back(previous.workloads_[id]);
        if (at_once)
            recapture_at_once(w, pod_of(w, record.name), before, record.labels, previous.settings_,
                              cni, ambient_running);
        else
            relabel_after_restart(w, pod_of(w, record.name), record.labels, previous.settings_,
                                  cni);
        note_client_kind(record, w);
    }
    out.services.reserve(record.services.size());
    for (ServiceId id : record.services) {
        ServiceRecord& svc = out.services.emplace_back(previous.services_[id]);
        svc.waypoint = service_waypoint(svc.service, svc.use_waypoint, record);
    }
    if (!at_once) {
        // Which pods are sidecar clients may change, and with them the client variants.
        const NamespaceConfig& old = previous.config(ns);
        out.config = build_namespace_config(
            record.name, old.peer_authentications, old.destination_rules, old.policies,
            old.virtual_services, old.sidecars, previous, &out.workloads);
    }
    relist_clients(out, previous);
    return out;
}

std::shared_ptr<const Snapshot> SnapshotBuilder::relabel_namespace(const Snapshot& previous,
                                                                   NsId ns, Labels labels,
                                                                   RelabelTiming timing) {
    auto snap = std::make_shared<Snapshot>(previous);
    Snapshot& s = *snap;
    RelabelledNamespace overlay = relabel_overlay(previous, ns, std::move(labels), timing);
    // The other namespaces' blocks stay shared with `previous`.
    if (!overlay.workloads.empty())
        s.workloads_.place(
            ns, std::make_shared<const std::vector<Workload>>(std::move(overlay.workloads)),
            overlay.record.workloads);
    if (!overlay.services.empty())
        s.services_.place(
            ns, std::make_shared<const std::vector<ServiceRecord>>(std::move(overlay.services)),
            overlay.record.services);
    s.namespaces_[ns] = std::move(overlay.record);
    s.non_mesh_clients_ = std::move(overlay.non_mesh_clients);
    s.ambient_clients_ = std::move(overlay.ambient_clients);
    s.captured_clients_ = std::move(overlay.captured_clients);
    s.predicted_ambient_clients_ = std::move(overlay.predicted_ambient_clients);
    if (!overlay.config) {
        // At once: the client index stays (see RelabelledNamespace); the namespace's servers
        // are resolved again, the others' stay.
        s.server_index_ = resolution::index_servers(s, &previous);
        return snap;
    }
    s.configs_[ns] = std::move(overlay.config);
    list_config_namespaces(s);
    s.mesh_clients_ = std::move(overlay.mesh_clients);
    s.outbound_bypass_clients_ = std::move(overlay.outbound_bypass_clients);
    // Only the entries the namespace's new clients and rules reach are resolved again.
    std::vector<bool> changed(s.namespaces_.size(), false);
    changed[ns] = true;
    std::vector<std::uint32_t> same_services(s.services_.size());
    std::iota(same_services.begin(), same_services.end(), 0u);
    std::vector<std::uint32_t> same_hosts(s.external_hosts_.size());
    std::iota(same_hosts.begin(), same_hosts.end(), 0u);
    const SnapshotReuse reuse{previous, changed, same_services, same_hosts};
    s.client_index_ = resolution::index_clients(s, &reuse);
    s.server_index_ = resolution::index_servers(s, &previous);
    return snap;
}

template <typename Note> void SnapshotBuilder::for_each_object_namespace(Note note) const {
    for (const auto& o : peer_authentications_)
        note(o.ref.namespace_name);
    for (const auto& o : destination_rules_)
        note(o.ref.namespace_name);
    for (const auto& o : virtual_services_)
        note(o.ref.namespace_name);
    for (const auto& o : sidecars_)
        note(o.ref.namespace_name);
    for (const auto& o : policies_)
        if (!o.mesh_policy)
            note(o.ref.namespace_name);
    for (const auto& o : services_)
        note(o.ref.namespace_name);
    for (const auto& o : service_entries_)
        note(o.ref.namespace_name);
    for (const auto& o : pods_)
        note(o.first->namespace_name);
}

void SnapshotBuilder::count_configuration(std::vector<std::size_t>& counts,
                                          const NamespaceIds& ids) const {
    // Services, ServiceEntries and pods are counted where they become records.
    for (const auto& ns : namespaces_)
        count_object(counts, ids, ns.name);
    for (const auto& o : peer_authentications_)
        count_object(counts, ids, o.ref.namespace_name);
    for (const auto& o : destination_rules_)
        count_object(counts, ids, o.ref.namespace_name);
    for (const auto& o : virtual_services_)
        count_object(counts, ids, o.ref.namespace_name);
    for (const auto& o : sidecars_)
        count_object(counts, ids, o.ref.namespace_name);
    for (const auto& o : policies_)
        if (!o.mesh_policy)
            count_object(counts, ids, o.ref.namespace_name);
}

void SnapshotBuilder::make_configs(Snapshot& s, const std::vector<bool>& rebuilt,
                                   const Snapshot* previous) {
    std::map<std::string, std::vector<PeerAuthentication>> pas;
    std::map<std::string, std::vector<DestinationRule>> drs;
    std::map<std::string, std::vector<AlphaPolicy>> alphas;
    std::map<std::string, std::vector<VirtualService>> vss;
    std::map<std::string, std::vector<Sidecar>> sidecars;
    for (auto& o : virtual_services_)
        vss[o.ref.namespace_name].push_back(std::move(o));
    for (auto& o : sidecars_)
        sidecars[o.ref.namespace_name].push_back(std::move(o));
    for (auto& o : peer_authentications_)
        pas[o.ref.namespace_name].push_back(std::move(o));
    for (auto& o : destination_rules_)
        drs[o.ref.namespace_name].push_back(std::move(o));
    for (auto& o : policies_) {
        if (o.mesh_policy)
            s.mesh_policies_.push_back(std::move(o));
        else
            alphas[o.ref.namespace_name].push_back(std::move(o));
    }
    sort_oldest_first(s.mesh_policies_);
    s.configs_.reserve(s.namespaces_.size());
    for (NsId id = 0; id < s.namespaces_.size(); ++id) {
        const std::string& name = s.namespaces_[id].name;
        s.configs_.push_back(
            rebuilt[id] || !previous
                ? build_namespace_config(name, std::move(pas[name]), std::move(drs[name]),
                                         std::move(alphas[name]), std::move(vss[name]),
                                         std::move(sidecars[name]), s)
                : previous->configs_[id]);
    }
}

std::shared_ptr<const Snapshot> SnapshotBuilder::build() {
    auto snap = std::make_shared<Snapshot>();
    Snapshot& s = *snap;
    s.settings_ = settings_;
    s.object_count_ = count_;

    // Mesh settings: version defaults, then the ConfigMap, then --mesh-config.
    s.mesh_.auto_mtls = settings_.version.modern();
    for (const auto* source : {mesh_from_config_map_ ? &*mesh_from_config_map_ : nullptr,
                               settings_.mesh_override ? &*settings_.mesh_override : nullptr}) {
        if (!source)
            continue;
        s.mesh_config_seen_ = true;
        if (source->root_namespace)
            s.mesh_.root_namespace = *source->root_namespace;
        if (source->enable_auto_mtls)
            s.mesh_.auto_mtls = *source->enable_auto_mtls;
        if (source->default_destination_rule_export_to)
            s.mesh_.default_dr_export_to = *source->default_destination_rule_export_to;
        if (source->outbound_policy)
            s.mesh_.outbound_policy = *source->outbound_policy;
    }

    // Namespaces: declared ones and every one an object lives in, numbered in name order.
    std::map<std::string, Labels> names;
    std::set<std::string> declared;
    for (auto& ns : namespaces_) {
        declared.insert(ns.name);
        names[ns.name] = std::move(ns.labels);
    }
    auto note = [&](const std::string& ns) {
        if (!ns.empty())
            names.try_emplace(ns);
    };
    note(s.mesh_.root_namespace);
    for_each_object_namespace(note);
    for (auto& [name, labels] : names) {
        NamespaceRecord record;
        record.name = name;
        record.labels = std::move(labels);
        record.declared = declared.count(name) > 0;
        derive_from_labels(record);
        record.system = is_system_namespace(name);
        s.namespace_ids_.emplace(name, static_cast<NsId>(s.namespaces_.size()));
        s.namespaces_.push_back(std::move(record));
    }
    auto ns_of = [&](const std::string& name) { return s.namespace_ids_.at(name); };
    auto& counts = s.namespace_object_counts_;
    counts.assign(s.namespaces_.size(), 0);
    count_configuration(counts, s.namespace_ids_);

    s.cni_config_ = std::move(cni_config_);
    std::vector<Workload> workloads;
    make_workloads(pods_, s.namespace_ids_, s.namespaces_, settings_,
                   s.cni_config_ ? &*s.cni_config_ : nullptr, workloads, counts);
    pods_.clear();
    index_namespace_workloads(s, workloads);
    fill_table(s.workloads_, workloads, s.namespaces_, &NamespaceRecord::workloads);

    // Services and the workloads behind them.
    std::vector<ServiceRecord> services;
    services.reserve(services_.size());
    for (auto& svc : services_) {
        const NsId ns = ns_of(svc.ref.namespace_name);
        ++counts[ns];
        services.push_back(make_service_record(std::move(svc), ns, s.namespaces_, s.workloads_,
                                               settings_.cluster_domain));
        s.namespaces_[ns].services.push_back(static_cast<ServiceId>(services.size() - 1));
    }
    services_.clear();
    fill_table(s.services_, services, s.namespaces_, &NamespaceRecord::services);

    for (auto& se : service_entries_) {
        const NsId ns = ns_of(se.ref.namespace_name);
        ++counts[ns];
        add_external_hosts(se, ns, s.external_hosts_);
    }
    service_entries_.clear();
    index_hosts(s);

    s.api_server_callees_ = index_api_server_callees(std::move(api_server_callees_));

    // Configuration, namespace by namespace.
    make_configs(s, std::vector<bool>(s.namespaces_.size(), true), nullptr);
    index_local_keys(s);
    index_virtual_service_hosts(s);
    list_config_namespaces(s);
    index_clients(s);
    // Admission re-evaluates flows under a changed policy; who uses which rule stays the same.
    s.client_index_ = resolution::index_clients(s, nullptr);
    s.server_index_ = resolution::index_servers(s, nullptr);
    return snap;
}

std::shared_ptr<const Snapshot>
SnapshotBuilder::build_update(const Snapshot& previous, const std::vector<std::string>& changed) {
    const Settings& settings = previous.settings_;
    // The istio-cni ConfigMap decides which pods are ambient everywhere: when it is among the
    // objects, or its namespace changed (it may be gone), build from all objects.
    const bool cni_changed =
        cni_config_ || (previous.cni_config_ &&
                        std::find(changed.begin(), changed.end(),
                                  previous.cni_config_->source_namespace) != changed.end());
    if (mesh_from_config_map_ || cni_changed || settings_.version != settings.version ||
        settings_.cluster_domain != settings.cluster_domain ||
        settings_.istio_namespace != settings.istio_namespace ||
        settings_.mesh_override.has_value() != settings.mesh_override.has_value())
        return nullptr;
    if (std::any_of(policies_.begin(), policies_.end(),
                    [](const AlphaPolicy& p) { return p.mesh_policy; }))
        return nullptr;
    if (!api_server_callees_.empty())
        return nullptr;

    // The namespaces stay as they were: every changed one that existed still does, and no other.
    const std::set<std::string> changed_set(changed.begin(), changed.end());
    std::set<std::string> present;
    bool outside = false; // an object of a namespace not declared as changed
    auto note = [&](const std::string& ns) {
        if (ns.empty())
            return;
        present.insert(ns);
        outside = outside || changed_set.count(ns) == 0;
    };
    for (const auto& o : namespaces_)
        note(o.name);
    for_each_object_namespace(note);
    if (outside)
        return nullptr;
    const std::size_t namespace_count = previous.namespaces_.size();
    std::vector<bool> rebuilt(namespace_count, false);
    for (const auto& name : changed_set) {
        const auto id = previous.namespace_id(name);
        const bool now = present.count(name) > 0 || name == previous.mesh_.root_namespace;
        if (id.has_value() != now)
            return nullptr;
        if (id)
            rebuilt[*id] = true;
    }

    auto snap = std::make_shared<Snapshot>();
    Snapshot& s = *snap;
    s.settings_ = settings;
    s.mesh_ = previous.mesh_;
    s.mesh_config_seen_ = previous.mesh_config_seen_;
    s.mesh_policies_ = previous.mesh_policies_;
    s.api_server_callees_ = previous.api_server_callees_;
    s.namespace_ids_ = previous.namespace_ids_;
    s.namespaces_.reserve(namespace_count);
    for (NsId id = 0; id < namespace_count; ++id) {
        const NamespaceRecord& old = previous.namespaces_[id];
        if (!rebuilt[id]) {
            // As it was, with what its labels and workloads say; the ids are renumbered below.
            s.namespaces_.push_back(old);
            continue;
        }
        NamespaceRecord record;
        record.name = old.name;
        record.system = old.system;
        for (const auto& ns : namespaces_) {
            if (ns.name != old.name)
                continue;
            record.declared = true;
            record.labels = ns.labels; // the last one wins, as in build()
        }
        derive_from_labels(record);
        s.namespaces_.push_back(std::move(record));
    }
    auto& counts = s.namespace_object_counts_;
    counts = previous.namespace_object_counts_;
    std::size_t others = previous.object_count_; // objects of no namespace: unchanged
    for (NsId id = 0; id < namespace_count; ++id) {
        others -= counts[id];
        if (rebuilt[id])
            counts[id] = 0;
    }
    count_configuration(counts, s.namespace_ids_);

    // Workloads, then Services, namespace by namespace in id order: the changed namespaces' anew,
    // the others' blocks taken over with new ids (a Service's endpoints are positions within its
    // namespace: they stay).
    s.cni_config_ = previous.cni_config_;
    std::vector<Workload> fresh;
    make_workloads(pods_, s.namespace_ids_, s.namespaces_, settings,
                   s.cni_config_ ? &*s.cni_config_ : nullptr, fresh, counts);
    pods_.clear();
    std::vector<std::vector<std::size_t>> fresh_by_ns(namespace_count);
    for (std::size_t at = 0; at < fresh.size(); ++at)
        fresh_by_ns[fresh[at].ns].push_back(at);
    renumber_into(s.workloads_, previous.workloads_, s.namespaces_, previous.namespaces_,
                  &NamespaceRecord::workloads, rebuilt, fresh_by_ns,
                  [&](NsId, std::size_t at, NamespaceRecord& record) {
                      note_client_kind(record, fresh[at]);
                      return std::move(fresh[at]);
                  });

    std::vector<std::vector<std::size_t>> services_by_ns(namespace_count);
    for (std::size_t i = 0; i < services_.size(); ++i)
        services_by_ns[s.namespace_ids_.at(services_[i].ref.namespace_name)].push_back(i);
    renumber_into(s.services_, previous.services_, s.namespaces_, previous.namespaces_,
                  &NamespaceRecord::services, rebuilt, services_by_ns,
                  [&](NsId ns, std::size_t i, NamespaceRecord&) {
                      ++counts[ns];
                      return make_service_record(std::move(services_[i]), ns, s.namespaces_,
                                                 s.workloads_, settings.cluster_domain);
                  });
    services_.clear();
    constexpr std::uint32_t none = 0xffffffffu;
    std::vector<std::uint32_t> previous_service; // by new ServiceId; `none` for a new record
    previous_service.reserve(s.services_.size());
    for (NsId ns = 0; ns < namespace_count; ++ns) {
        const auto& before = previous.namespaces_[ns].services;
        if (rebuilt[ns])
            previous_service.resize(previous_service.size() + services_by_ns[ns].size(), none);
        else
            previous_service.insert(previous_service.end(), before.begin(), before.end());
    }

    std::vector<std::vector<std::uint32_t>> previous_hosts_by_ns(namespace_count);
    for (std::uint32_t i = 0; i < previous.external_hosts_.size(); ++i)
        previous_hosts_by_ns[previous.external_hosts_[i].ns].push_back(i);
    std::vector<std::vector<std::size_t>> entries_by_ns(namespace_count);
    for (std::size_t i = 0; i < service_entries_.size(); ++i)
        entries_by_ns[s.namespace_ids_.at(service_entries_[i].ref.namespace_name)].push_back(i);
    std::vector<std::uint32_t> previous_host; // by new external host index; `none` when new
    for (NsId ns = 0; ns < namespace_count; ++ns) {
        if (rebuilt[ns]) {
            for (std::size_t i : entries_by_ns[ns]) {
                ++counts[ns];
                add_external_hosts(service_entries_[i], ns, s.external_hosts_);
            }
            previous_host.resize(s.external_hosts_.size(), none);
            continue;
        }
        for (std::uint32_t old : previous_hosts_by_ns[ns]) {
            s.external_hosts_.push_back(previous.external_hosts_[old]);
            previous_host.push_back(old);
        }
    }
    service_entries_.clear();
    // The host indexes hold ServiceIds and host names only: unchanged when the changed namespaces
    // kept their hosts (their pods or policies changed, say).
    bool same_hosts = s.services_.size() == previous.services_.size() &&
                      s.external_hosts_.size() == previous.external_hosts_.size();
    for (NsId ns = 0; same_hosts && ns < namespace_count; ++ns) {
        if (!rebuilt[ns])
            continue;
        const auto& now = s.namespaces_[ns].services;
        const auto& before = previous.namespaces_[ns].services;
        same_hosts = now == before;
        for (std::size_t i = 0; same_hosts && i < now.size(); ++i)
            same_hosts = s.services_[now[i]].host == previous.services_[before[i]].host;
    }
    for (std::size_t i = 0; same_hosts && i < s.external_hosts_.size(); ++i)
        same_hosts = s.external_hosts_[i].host == previous.external_hosts_[i].host;
    if (same_hosts)
        s.hosts_ = previous.hosts_;
    else
        index_hosts(s);

    // Configuration: the changed namespaces anew; the others keep theirs, which hold no
    // WorkloadIds (ClientVariant counts positions within the namespace). No MeshPolicy is among
    // the added objects (checked above); the previous ones were copied.
    make_configs(s, rebuilt, &previous);
    // Step 1 of the DR lookup finds namespaces by their local keys: the index stays when the
    // changed namespaces' keys did.
    bool same_keys = true;
    for (NsId id = 0; same_keys && id < namespace_count; ++id) {
        if (!rebuilt[id])
            continue;
        const auto& now = s.configs_[id]->local;
        const auto& before = previous.configs_[id]->local;
        same_keys = now.specific.size() == before.specific.size() &&
                    now.wildcard.size() == before.wildcard.size();
        for (const auto* pair : {&now.specific, &now.wildcard}) {
            const auto& other = pair == &now.specific ? before.specific : before.wildcard;
            for (auto it = pair->begin(); same_keys && it != pair->end(); ++it)
                same_keys = other.count(it->first) > 0;
        }
    }
    if (same_keys)
        s.local_keys_ = previous.local_keys_;
    else
        index_local_keys(s);
    index_virtual_service_hosts(s); // a few thousand entries at most: cheaper than comparing
    list_config_namespaces(s);
    index_clients(s);

    s.object_count_ = others;
    for (std::size_t count : counts)
        s.object_count_ += count;
    // The previous index's entries hold only where the unchanged namespaces stayed mesh clients,
    // or not, as they were.
    const SnapshotReuse reuse{previous, rebuilt, previous_service, previous_host};
    s.client_index_ =
        resolution::index_clients(s, s.mesh_clients_ == previous.mesh_clients_ ? &reuse : nullptr);
    s.server_index_ = resolution::index_servers(s, &previous);
    return snap;
}

} // namespace mtlsguard::model
