// Findings about single objects: ignored duplicates, selectors and hosts that match nothing, legacy
// use.
#include "analysis/conflict/object_checks.hpp"

#include "analysis/resolution/ambient.hpp"

#include <map>
#include <set>

namespace mtlsguard::conflict {
namespace {

using resolution::ConfigView;
using resolution::NsId;

Finding make(Code code, const model::ObjectRef& resource,
             std::vector<model::ObjectRef> related = {}, std::string text = {}, long number = 0) {
    Finding f;
    f.code = code;
    f.severity = severity_of(code);
    f.resource = resource;
    f.related = std::move(related);
    f.detail = Detail{std::move(text), number};
    return f;
}

std::vector<const model::Workload*> workloads_of(const ConfigView& view, NsId ns) {
    std::vector<const model::Workload*> out;
    const auto& snapshot = view.snapshot();
    if (ns >= snapshot.namespaces().size())
        return out;
    for (model::WorkloadId id : snapshot.namespaces()[ns].workloads)
        out.push_back(&snapshot.workloads()[id]);
    return out;
}

// Ports a workload listens on: its declared container ports and what its Services target.
std::set<std::uint16_t> target_ports(const ConfigView& view, NsId ns, const model::Workload& w) {
    std::set<std::uint16_t> ports;
    for (const auto& p : w.ports)
        ports.insert(p.number);
    const auto& snapshot = view.snapshot();
    if (ns >= snapshot.namespaces().size())
        return ports;
    const std::uint32_t position = snapshot.workloads().position_of(w);
    for (model::ServiceId sid : snapshot.namespaces()[ns].services) {
        const auto& svc = snapshot.services()[sid];
        const auto& at = svc.endpoint_positions;
        if (std::find(at.begin(), at.end(), position) == at.end())
            continue;
        for (const auto& port : svc.service.ports)
            if (auto t = resolution::target_port_of(w, port))
                ports.insert(t);
    }
    return ports;
}

void check_peer_authentications(const ConfigView& view, NsId ns,
                                const model::NamespaceConfig& config, std::vector<Finding>& out) {
    const auto workloads = workloads_of(view, ns);
    for (const auto& pa : config.peer_authentications) {
        if (pa.selector.empty()) {
            if (config.namespace_policy && config.namespace_policy != &pa)
                out.push_back(make(Code::MTG205, pa.ref, {config.namespace_policy->ref},
                                   config.is_root ? "mesh-wide" : "namespace-wide"));
            if (!pa.port_level.empty())
                out.push_back(make(Code::MTG209, pa.ref, {},
                                   config.is_root ? "mesh-wide" : "namespace-wide"));
            continue;
        }
        if (config.is_root) {
            out.push_back(make(Code::MTG206, pa.ref, {}, "root-selector"));
            continue;
        }
        std::vector<const model::Workload*> selected;
        for (const auto* w : workloads)
            if (pa.selector.subset_of(w->labels))
                selected.push_back(w);
        if (selected.empty()) {
            out.push_back(make(Code::MTG206, pa.ref, {}, "no-workload"));
            continue;
        }
        std::size_t shadowed = 0;
        const model::PeerAuthentication* older = nullptr;
        for (const auto* w : selected) {
            const auto* first = config.workload_policy_for(w->labels);
            if (first && first != &pa) {
                ++shadowed;
                older = first;
            }
        }
        if (older)
            out.push_back(make(Code::MTG205, pa.ref, {older->ref}, "workload",
                               static_cast<long>(shadowed == selected.size() ? 0 : shadowed)));
        std::set<std::uint16_t> known;
        for (const auto* w : selected) {
            const auto ports = target_ports(view, ns, *w);
            known.insert(ports.begin(), ports.end());
        }
        if (known.empty())
            continue; // nothing known about the ports: no guess
        for (const auto& [port, mode] : pa.port_level) {
            if (known.count(port))
                continue;
            std::string listing;
            for (auto p : known)
                listing += (listing.empty() ? "" : ", ") + std::to_string(p);
            out.push_back(make(Code::MTG204, pa.ref, {}, listing, port));
        }
    }
}

// Policies that do not do what they say (ambient.md §11, §13): a DISABLE that ztunnel reads as
// "not STRICT" (MTG213), and a STRICT that a port skipping interception leaves unenforced (MTG210:
// the ambient bypass annotation, or a sidecar's excluded inbound port). One finding per policy,
// naming the workloads.
void check_unenforced_policies(const ConfigView& view, NsId ns, std::vector<Finding>& out) {
    std::map<const model::PeerAuthentication*, std::vector<std::string>> disabled, bypassed,
        excluded;
    for (const auto* w : workloads_of(view, ns)) {
        const bool ambient = w->dataplane == model::Dataplane::Ambient;
        if (w->waypoint || (!ambient && !w->sidecar))
            continue;
        auto ports = target_ports(view, ns, *w);
        if (ambient)
            ports.insert(0); // the workload's own mode
        for (auto port : ports) {
            auto mode = ambient ? resolution::ambient_server_mode(view, *w, port)
                                : resolution::peer_authentication_mode(view, *w, port);
            if (!ambient) {
                if (!resolution::intercepts_inbound(w->interception, port) &&
                    mode.accept == resolution::ServerAccept::Strict)
                    mode.bypassed = true;
            }
            const auto* pa = mode.peer_authentication;
            if (!pa)
                continue;
            const auto entry = pa->port_level.find(port);
            const model::MtlsMode said =
                mode.port_level && entry != pa->port_level.end() ? entry->second : pa->mode;
            auto note = [&](auto& map) {
                auto& names = map[pa];
                if (std::find(names.begin(), names.end(), w->name) == names.end())
                    names.push_back(w->name);
            };
            if (ambient && said == model::MtlsMode::Disable)
                note(disabled);
            if (mode.bypassed)
                note(ambient ? bypassed : excluded);
        }
    }
    auto report = [&](Code code, const auto& map, const std::string& how) {
        for (const auto& [pa, names] : map) {
            std::string listing;
            for (const auto& name : names)
                listing += (listing.empty() ? "" : ", ") + name;
            out.push_back(make(code, pa->ref, {}, how + listing, static_cast<long>(names.size())));
        }
    };
    report(Code::MTG213, disabled, "");
    report(Code::MTG210, bypassed, "bypass:");
    report(Code::MTG210, excluded, "excluded:");
}

void check_alpha_policies(const ConfigView& view, NsId ns, const model::NamespaceConfig& config,
                          std::vector<Finding>& out) {
    const auto& snapshot = view.snapshot();
    const model::AlphaPolicy* namespace_wide = nullptr;
    std::map<std::string, const model::AlphaPolicy*> whole_service;
    for (const auto& policy : config.policies) {
        out.push_back(make(Code::MTG208, policy.ref));
        if (policy.targets.empty()) {
            if (namespace_wide)
                out.push_back(
                    make(Code::MTG205, policy.ref, {namespace_wide->ref}, "namespace-wide"));
            else
                namespace_wide = &policy;
            continue;
        }
        for (const auto& target : policy.targets) {
            const model::ServiceRecord* service = nullptr;
            if (ns < snapshot.namespaces().size())
                for (model::ServiceId sid : snapshot.namespaces()[ns].services)
                    if (snapshot.services()[sid].service.ref.name == target.name)
                        service = &snapshot.services()[sid];
            if (!service) {
                out.push_back(make(Code::MTG206, policy.ref, {}, "target:" + target.name));
                continue;
            }
            if (target.ports.empty()) {
                auto [it, inserted] = whole_service.emplace(target.name, &policy);
                if (!inserted && it->second != &policy)
                    out.push_back(
                        make(Code::MTG205, policy.ref, {it->second->ref}, "target:" + target.name));
            }
            for (const auto& selector : target.ports) {
                const bool found =
                    std::any_of(service->service.ports.begin(), service->service.ports.end(),
                                [&](const model::ServicePort& p) {
                                    return selector.number ? *selector.number == p.port
                                                           : selector.name == p.name;
                                });
                if (!found)
                    out.push_back(
                        make(Code::MTG204, policy.ref, {service->service.ref},
                             selector.number ? std::to_string(*selector.number) : selector.name,
                             selector.number ? *selector.number : 0));
            }
        }
    }
}

void check_destination_rules(const ConfigView& view, const model::NamespaceConfig& config,
                             std::vector<Finding>& out) {
    std::set<const model::DestinationRule*> ignored;
    for (const auto* index : {&config.local, &config.exported})
        for (const auto* map : {&index->specific, &index->wildcard})
            for (const auto& [key, rules] : *map)
                for (const auto& rule : rules)
                    for (const auto* member : rule.members)
                        if (member != rule.policy_source && member->traffic_policy &&
                            rule.policy_source && ignored.insert(member).second)
                            out.push_back(make(Code::MTG205, member->ref, {rule.policy_source->ref},
                                               "host:" + key));
    for (const auto& dr : config.destination_rules) {
        const std::string key = view.snapshot().resolve_host(dr.host, config.name);
        if (!view.snapshot().host_key_matches_anything(key))
            out.push_back(make(Code::MTG206, dr.ref, {}, "host:" + key));
    }
}

bool covers_every_service(const std::string& host, const std::string& domain) {
    return host == "*" || host == "*.local" || host == "*." + domain || host == "*.svc." + domain;
}

void check_mesh_level(const ConfigView& view, std::vector<Finding>& out) {
    for (const auto& policy : view.mesh_policies()) {
        out.push_back(make(Code::MTG208, policy.ref));
        if (policy.ref.name != "default")
            out.push_back(make(Code::MTG205, policy.ref, {}, "meshpolicy-name"));
    }
    // TIS0503: mesh-wide DISABLE, auto mTLS off, and no mesh-wide DestinationRule DISABLE.
    const auto* mesh = view.mesh_peer_authentication();
    if (!mesh || mesh->mode != model::MtlsMode::Disable || view.mesh().auto_mtls)
        return;
    const NsId root = view.root_namespace_id();
    if (root >= view.namespace_count())
        return;
    for (const auto& dr : view.config(root).destination_rules) {
        if (dr.workload_selector || !dr.traffic_policy ||
            dr.traffic_policy->tls != model::TlsMode::Disable)
            continue;
        const bool exported_to_all =
            dr.export_to.empty() ||
            std::find(dr.export_to.begin(), dr.export_to.end(), "*") != dr.export_to.end();
        if (exported_to_all &&
            covers_every_service(dr.host, view.snapshot().settings().cluster_domain))
            return;
    }
    out.push_back(make(Code::MTG207, mesh->ref));
}

// The API group of a workload kind, for the finding's resource.
std::string workload_api_version(std::string_view kind) {
    if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" ||
        kind == "ReplicaSet")
        return "apps/v1";
    if (kind == "Job" || kind == "CronJob")
        return "batch/v1";
    return "v1";
}

// MTG212: labelled for sidecar injection and for ambient; injection wins (ambient-notes §1.2).
void check_dataplane_labels(const ConfigView& view, NsId ns, std::vector<Finding>& out) {
    const auto& snapshot = view.snapshot();
    if (ns >= snapshot.namespaces().size() || !view.version().at_least(18))
        return;
    const model::NamespaceRecord& record = snapshot.namespaces()[ns];
    if (record.sidecar_and_ambient) {
        const std::string* injection = record.labels.find("istio-injection");
        const std::string label = injection ? "istio-injection=" + *injection
                                            : "istio.io/rev=" + *record.labels.find("istio.io/rev");
        out.push_back(
            make(Code::MTG212, model::ObjectRef{"v1", "Namespace", "", record.name}, {}, label));
    }
    for (const model::Workload* w : workloads_of(view, ns)) {
        if (!w->sidecar_beats_ambient)
            continue;
        const std::string* own = w->labels.find("istio.io/dataplane-mode");
        const bool own_label = own && *own == "ambient";
        if (!own_label && record.sidecar_and_ambient)
            continue; // the namespace's finding says it
        out.push_back(
            make(Code::MTG212,
                 model::ObjectRef{workload_api_version(w->kind), w->kind, record.name, w->name}, {},
                 own_label ? "pod label istio.io/dataplane-mode=ambient"
                           : "namespace label istio.io/dataplane-mode=ambient"));
    }
}

} // namespace

std::vector<Finding> check_objects(const ConfigView& view, std::optional<NsId> only,
                                   bool mesh_level) {
    std::vector<Finding> out;
    for (NsId ns = 0; ns < view.namespace_count(); ++ns) {
        if (only && ns != *only)
            continue;
        const auto& config = view.config(ns);
        if (view.version().minor != 4)
            check_peer_authentications(view, ns, config, out);
        if (view.version().modern())
            check_unenforced_policies(view, ns, out);
        check_alpha_policies(view, ns, config, out);
        check_destination_rules(view, config, out);
        check_dataplane_labels(view, ns, out);
    }
    if (mesh_level || (only && *only == view.root_namespace_id()))
        check_mesh_level(view, out);
    return out;
}

} // namespace mtlsguard::conflict
