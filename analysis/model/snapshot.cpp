// The immutable, indexed picture of a cluster that every analysis and admission decision reads.
#include "analysis/model/snapshot.hpp"

#include "analysis/model/decode.hpp"
#include "analysis/resolution/destination_rule.hpp"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

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
    auto it = local_keys_.find(key);
    return it == local_keys_.end() ? nullptr : &it->second;
}

const std::vector<ServiceId>* Snapshot::services_for_host(const std::string& host) const noexcept {
    auto it = services_by_host_.find(host);
    return it == services_by_host_.end() ? nullptr : &it->second;
}

bool Snapshot::host_key_matches_anything(const std::string& key) const noexcept {
    if (key == "*")
        return !known_hosts_.empty();
    if (key.size() > 1 && key[0] == '*')
        return known_hosts_.count(key.substr(1)) > 0;
    auto it = known_hosts_.find(key);
    return it != known_hosts_.end() && it->second;
}

bool Snapshot::has_alpha_policies() const noexcept {
    if (!mesh_policies_.empty())
        return true;
    for (const auto& config : configs_)
        if (!config->policies.empty())
            return true;
    return false;
}

std::shared_ptr<const NamespaceConfig>
build_namespace_config(std::string name, std::vector<PeerAuthentication> peer_authentications,
                       std::vector<DestinationRule> destination_rules,
                       std::vector<AlphaPolicy> policies, const Snapshot& snapshot) {
    auto config = std::make_shared<NamespaceConfig>();
    config->name = std::move(name);
    config->is_root = config->name == snapshot.mesh().root_namespace;
    config->peer_authentications = std::move(peer_authentications);
    config->destination_rules = std::move(destination_rules);
    config->policies = std::move(policies);
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

    // Client pods that match the same selector rules form one variant.
    std::vector<const DestinationRule*> selector_rules;
    for (const auto& dr : config->destination_rules)
        if (dr.workload_selector)
            selector_rules.push_back(&dr);
    config->variants.emplace_back();
    if (auto ns = snapshot.namespace_id(config->name)) {
        std::map<std::vector<const DestinationRule*>, std::size_t> by_match;
        for (WorkloadId id : snapshot.namespaces()[*ns].workloads) {
            const Workload& w = snapshot.workloads()[id];
            if (!w.sidecar)
                continue;
            std::vector<const DestinationRule*> matching;
            for (const DestinationRule* dr : selector_rules)
                if (dr->workload_selector->subset_of(w.labels))
                    matching.push_back(dr);
            if (matching.empty()) {
                config->variants[0].workloads.push_back(id);
                continue;
            }
            auto [it, inserted] = by_match.emplace(matching, config->variants.size());
            if (inserted)
                config->variants.push_back(ClientVariant{matching, {}});
            config->variants[it->second].workloads.push_back(id);
        }
    }
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

void SnapshotBuilder::add(DecodedObject object) {
    ++count_;
    std::visit(
        [this](auto&& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<T, PeerAuthentication>)
                peer_authentications_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, DestinationRule>)
                destination_rules_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, AlphaPolicy>) {
                alpha_seen_ = true;
                policies_.push_back(std::move(o));
            } else if constexpr (std::is_same_v<T, Service>)
                services_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, ServiceEntry>)
                service_entries_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, PodLike>)
                pods_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, Namespace>)
                namespaces_.push_back(std::move(o));
            else if constexpr (std::is_same_v<T, MeshConfig>) {
                // Only the ConfigMap of the Istio namespace is the mesh config.
                if (o.source_namespace == settings_.istio_namespace)
                    mesh_from_config_map_ = std::move(o);
            }
        },
        std::move(object));
}

std::shared_ptr<const Snapshot> SnapshotBuilder::build() {
    auto snap = std::make_shared<Snapshot>();
    Snapshot& s = *snap;
    s.settings_ = settings_;
    s.object_count_ = count_;

    // Mesh settings: version defaults, then the ConfigMap, then --mesh-config.
    s.mesh_.auto_mtls = settings_.version == IstioVersion::Current;
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
    for (const auto& o : peer_authentications_)
        note(o.ref.namespace_name);
    for (const auto& o : destination_rules_)
        note(o.ref.namespace_name);
    for (const auto& o : policies_)
        if (!o.mesh_policy)
            note(o.ref.namespace_name);
    for (const auto& o : services_)
        note(o.ref.namespace_name);
    for (const auto& o : service_entries_)
        note(o.ref.namespace_name);
    for (const auto& o : pods_)
        note(o.namespace_name);
    for (auto& [name, labels] : names) {
        NamespaceRecord record;
        record.name = name;
        record.labels = std::move(labels);
        record.declared = declared.count(name) > 0;
        record.injection = namespace_injects(record.labels);
        record.system = is_system_namespace(name);
        s.namespace_ids_.emplace(name, static_cast<NsId>(s.namespaces_.size()));
        s.namespaces_.push_back(std::move(record));
    }
    auto ns_of = [&](const std::string& name) { return s.namespace_ids_.at(name); };

    // Workloads: running pods win over the templates of the same controller.
    std::set<std::pair<std::string, std::string>> controllers_with_pods;
    for (const auto& pod : pods_)
        if (!pod.from_template)
            controllers_with_pods.emplace(pod.namespace_name, pod.workload_name);
    std::map<std::tuple<std::string, std::string, std::string, bool, Labels>, WorkloadId>
        workload_ids;
    for (auto& pod : pods_) {
        if (pod.from_template &&
            controllers_with_pods.count({pod.namespace_name, pod.workload_name}))
            continue;
        const NsId ns = ns_of(pod.namespace_name);
        const bool sidecar = pod.sidecar.value_or(s.namespaces_[ns].injection);
        auto key = std::make_tuple(pod.namespace_name, pod.workload_kind, pod.workload_name,
                                   sidecar, pod.labels);
        auto [it, inserted] =
            workload_ids.emplace(std::move(key), static_cast<WorkloadId>(s.workloads_.size()));
        if (inserted) {
            Workload w;
            w.ns = ns;
            w.kind = pod.workload_kind;
            w.name = pod.workload_name;
            w.labels = pod.labels;
            w.sidecar = sidecar;
            w.control_plane = is_control_plane(pod.labels);
            s.workloads_.push_back(std::move(w));
        }
        Workload& w = s.workloads_[it->second];
        ++w.pods;
        for (const auto& port : pod.container_ports) {
            const bool known = std::any_of(w.ports.begin(), w.ports.end(), [&](const NamedPort& p) {
                return p.number == port.number && p.name == port.name;
            });
            if (!known)
                w.ports.push_back(port);
        }
    }
    pods_.clear();
    for (WorkloadId id = 0; id < s.workloads_.size(); ++id) {
        const Workload& w = s.workloads_[id];
        NamespaceRecord& ns = s.namespaces_[w.ns];
        ns.workloads.push_back(id);
        if (w.sidecar)
            ns.has_sidecar_workloads = true;
        else if (!w.control_plane)
            ns.has_plain_workloads = true;
    }

    // Services and the workloads behind them.
    for (auto& svc : services_) {
        ServiceRecord record;
        record.ns = ns_of(svc.ref.namespace_name);
        record.host =
            svc.ref.name + "." + svc.ref.namespace_name + ".svc." + settings_.cluster_domain;
        record.analysed_as_server =
            !s.namespaces_[record.ns].system && !is_control_plane(svc.labels) && !svc.external_name;
        if (svc.selector) {
            for (WorkloadId id : s.namespaces_[record.ns].workloads)
                if (svc.selector->subset_of(s.workloads_[id].labels))
                    record.endpoints.push_back(id);
        }
        record.service = std::move(svc);
        const auto id = static_cast<ServiceId>(s.services_.size());
        s.services_by_host_[record.host].push_back(id);
        s.namespaces_[record.ns].services.push_back(id);
        s.services_.push_back(std::move(record));
    }
    services_.clear();

    for (auto& se : service_entries_) {
        for (const auto& host : se.hosts) {
            ExternalHost h;
            h.ref = se.ref;
            h.ns = ns_of(se.ref.namespace_name);
            h.host = host;
            h.mesh_external = se.mesh_external;
            h.ports = se.ports;
            s.external_hosts_.push_back(std::move(h));
        }
    }
    service_entries_.clear();

    // Hosts and their ".suffix"es, so that a wildcard DR host can be checked in one lookup.
    auto know = [&](const std::string& host) {
        s.known_hosts_[host] = true;
        for (std::size_t dot = host.find('.'); dot != std::string::npos;
             dot = host.find('.', dot + 1))
            s.known_hosts_.try_emplace(host.substr(dot), false);
    };
    for (const auto& svc : s.services_)
        know(svc.host);
    for (const auto& h : s.external_hosts_)
        if (h.host.find('*') == std::string::npos)
            know(h.host);

    // Configuration, namespace by namespace.
    std::map<std::string, std::vector<PeerAuthentication>> pas;
    std::map<std::string, std::vector<DestinationRule>> drs;
    std::map<std::string, std::vector<AlphaPolicy>> alphas;
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
        s.configs_.push_back(build_namespace_config(
            name, std::move(pas[name]), std::move(drs[name]), std::move(alphas[name]), s));
        for (const auto* keys :
             {&s.configs_.back()->local.specific, &s.configs_.back()->local.wildcard})
            for (const auto& [key, rules] : *keys)
                s.local_keys_[key].push_back(id);
    }

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
    }
    // Admission re-evaluates flows under a changed policy; who uses which rule stays the same.
    s.client_index_ = resolution::build_client_index(s);
    return snap;
}

} // namespace mtlsguard::model
