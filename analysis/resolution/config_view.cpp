// A snapshot seen with one change applied, without copying it: what admission evaluates "after".
#include "analysis/resolution/config_view.hpp"

#include "analysis/resolution/destination_rule.hpp"

#include <algorithm>

namespace mtlsguard::resolution {

ConfigView::ConfigView(const model::Snapshot& snapshot) : snapshot_(&snapshot) {
    mesh_clients_ = snapshot.mesh_client_namespaces();
    init_clients();
    init_sidecar_outcomes(std::nullopt);
}

ConfigView::ConfigView(const model::Snapshot& snapshot,
                       std::shared_ptr<const model::NamespaceConfig> config, bool rules_changed)
    : snapshot_(&snapshot), override_config_(std::move(config)), rules_changed_(rules_changed) {
    auto id = snapshot.namespace_id(override_config_->name);
    override_ns_ = id ? *id : static_cast<NsId>(snapshot.namespaces().size());
    mesh_clients_ = snapshot.mesh_client_namespaces();
    // A namespace without workloads is assumed to run sidecar clients once it holds configuration.
    const NsId ns = *override_ns_;
    const bool no_workloads = !id || snapshot.namespaces()[ns].workloads.empty();
    const bool system = id && snapshot.namespaces()[ns].system;
    const bool injection = id && snapshot.namespaces()[ns].injection;
    const bool root = override_config_->name == snapshot.mesh().root_namespace;
    if (no_workloads && !system && !root) {
        std::erase(mesh_clients_, ns);
        if (injection || !override_config_->empty()) {
            mesh_clients_.insert(std::lower_bound(mesh_clients_.begin(), mesh_clients_.end(), ns),
                                 ns);
        }
    }
    init_clients();
    init_sidecar_outcomes(ns);
}

ConfigView::ConfigView(const model::Snapshot& snapshot,
                       std::vector<model::AlphaPolicy> mesh_policies)
    : snapshot_(&snapshot), mesh_policies_(std::move(mesh_policies)) {
    mesh_clients_ = snapshot.mesh_client_namespaces();
    init_clients();
    init_sidecar_outcomes(std::nullopt);
}

void ConfigView::restrict_clients_to(std::optional<NsId> ns) {
    const bool client = ns && is_mesh_client(*ns);
    mesh_clients_.clear();
    if (client)
        mesh_clients_.push_back(*ns);
    restricted_ = true;
    vs_namespaces_.clear();
    sidecar_namespaces_.clear();
    init_clients();
    sidecar_outcomes_ = build_sidecar_outcomes(*this);
}

ConfigView::ConfigView(const model::Snapshot& snapshot,
                       std::shared_ptr<const model::RelabelledNamespace> relabel)
    : snapshot_(&snapshot), relabel_(std::move(relabel)) {
    const auto& workload_ids = relabel_->record.workloads;
    relabel_workload_at_.reserve(workload_ids.size());
    for (std::size_t i = 0; i < workload_ids.size(); ++i)
        relabel_workload_at_.emplace(workload_ids[i], i);
    const auto& service_ids = relabel_->record.services;
    relabel_service_at_.reserve(service_ids.size());
    for (std::size_t i = 0; i < service_ids.size(); ++i)
        relabel_service_at_.emplace(service_ids[i], i);
    mesh_clients_ = relabel_->config ? relabel_->mesh_clients : snapshot.mesh_client_namespaces();
    init_clients();
    init_sidecar_outcomes(relabel_->ns);
    if (relabel_->config)
        reach_ =
            std::make_shared<const IndexReach>(*this, snapshot, std::vector<NsId>{relabel_->ns});
}

const model::Workload& ConfigView::workload(model::WorkloadId id) const noexcept {
    const model::Workload& w = snapshot_->workloads()[id];
    if (!relabel_ || w.ns != relabel_->ns)
        return w;
    return relabel_->workloads[relabel_workload_at_.find(id)->second];
}

const model::ServiceRecord& ConfigView::service(model::ServiceId id) const noexcept {
    const model::ServiceRecord& s = snapshot_->services()[id];
    if (!relabel_ || s.ns != relabel_->ns)
        return s;
    return relabel_->services[relabel_service_at_.find(id)->second];
}

model::WorkloadId ConfigView::workload_id(const model::Workload& workload) const noexcept {
    if (!relabel_ || workload.ns != relabel_->ns)
        return snapshot_->workload_id(workload);
    const auto& mine = relabel_->workloads;
    return relabel_->record.workloads[static_cast<std::size_t>(&workload - mine.data())];
}

const model::PeerAuthentication*
ConfigView::workload_policy(const model::Workload& workload) const noexcept {
    const model::NamespaceConfig& namespace_config = config(workload.ns);
    if (namespace_config.workload_policies.empty())
        return nullptr;
    const bool overlaid = relabel_ && workload.ns == relabel_->ns;
    const auto position = overlaid ? model::position_in(relabel_->workloads, workload)
                                   : snapshot_->workloads().find_position(workload);
    return namespace_config.workload_policy_at(position, workload.labels);
}

bool ConfigView::shares_servers(NsId ns) const noexcept {
    if (mesh_policies_ || !snapshot_->has_server_index() || ns >= snapshot_->namespaces().size())
        return false;
    const std::optional<NsId> relabelled =
        relabel_ ? std::optional<NsId>(relabel_->ns) : std::nullopt;
    for (const std::optional<NsId>& changed : {override_ns_, relabelled})
        if (changed && (*changed == ns || *changed == root_ns_))
            return false;
    return true;
}

model::ServiceId ConfigView::service_id(const model::ServiceRecord& service) const noexcept {
    if (!relabel_ || service.ns != relabel_->ns)
        return snapshot_->service_id(service);
    const auto& mine = relabel_->services;
    return relabel_->record.services[static_cast<std::size_t>(&service - mine.data())];
}

void ConfigView::init_clients() {
    auto root = namespace_id(snapshot_->mesh().root_namespace);
    root_ns_ = root ? *root : static_cast<NsId>(-1);
    is_client_.assign(namespace_count(), false);
    for (NsId ns : mesh_clients_)
        is_client_[ns] = true;
    // The snapshot lists which of its namespaces hold VirtualServices and Sidecars; only the
    // namespace whose configuration this view replaces may differ (reading all 5,000 namespaces'
    // configurations was a sixth of a namespace-scoped decision at Kubernetes' limit).
    std::optional<NsId> replaced = override_ns_;
    if (relabel_ && relabel_->config)
        replaced = relabel_->ns;
    auto adopt = [&](const std::vector<NsId>& listed, bool holds, bool clients_only,
                     std::vector<NsId>& into) {
        for (NsId ns : listed)
            if (ns != replaced && (!clients_only || is_client_[ns]))
                into.push_back(ns);
        if (replaced && holds && (!clients_only || is_client_[*replaced]))
            into.insert(std::lower_bound(into.begin(), into.end(), *replaced), *replaced);
    };
    const model::NamespaceConfig* own = replaced ? &config(*replaced) : nullptr;
    adopt(snapshot_->virtual_service_config_namespaces(), own && !own->virtual_services.empty(),
          false, vs_namespaces_);
    adopt(snapshot_->sidecar_config_namespaces(), own && !own->sidecars.empty(), true,
          sidecar_namespaces_);
}

void ConfigView::init_sidecar_outcomes(std::optional<NsId> touched) {
    if (snapshot_->has_client_index()) {
        const auto& shared = snapshot_->client_index().sidecars;
        auto holds_sidecars = [&](NsId ns) {
            const auto& mine = sidecar_namespaces_;
            return std::binary_search(mine.begin(), mine.end(), ns) ||
                   (shared &&
                    std::binary_search(shared->namespaces.begin(), shared->namespaces.end(), ns));
        };
        if (!touched || (*touched != root_ns_ && !holds_sidecars(*touched))) {
            sidecar_outcomes_ = shared;
            return;
        }
    }
    sidecar_outcomes_ = build_sidecar_outcomes(*this);
}

std::size_t ConfigView::namespace_count() const noexcept {
    const std::size_t base = snapshot_->namespaces().size();
    return override_ns_ && *override_ns_ == base ? base + 1 : base;
}

const std::string& ConfigView::namespace_name(NsId ns) const noexcept {
    static const std::string api_server(model::api_server_client_name);
    if (ns < snapshot_->namespaces().size())
        return snapshot_->namespaces()[ns].name;
    if (ns == model::api_server_client)
        return api_server;
    return override_config_->name;
}

std::optional<NsId> ConfigView::namespace_id(std::string_view name) const noexcept {
    if (auto id = snapshot_->namespace_id(name))
        return id;
    if (override_config_ && override_config_->name == name)
        return override_ns_;
    return std::nullopt;
}

const model::NamespaceConfig& ConfigView::config(NsId ns) const noexcept {
    if (override_ns_ && ns == *override_ns_)
        return *override_config_;
    if (relabel_ && relabel_->config && ns == relabel_->ns)
        return *relabel_->config;
    return snapshot_->config(ns);
}

const model::PeerAuthentication* ConfigView::mesh_peer_authentication() const noexcept {
    if (root_ns_ == static_cast<NsId>(-1))
        return nullptr;
    return config(root_ns_).namespace_policy;
}

const std::vector<model::AlphaPolicy>& ConfigView::mesh_policies() const noexcept {
    return mesh_policies_ ? *mesh_policies_ : snapshot_->mesh_policies();
}

const model::AlphaPolicy* ConfigView::default_mesh_policy() const noexcept {
    // Only the MeshPolicy named `default` counts; the list is oldest first.
    for (const auto& policy : mesh_policies())
        if (policy.ref.name == "default")
            return &policy;
    return nullptr;
}

bool ConfigView::has_alpha_policies() const noexcept {
    if (!mesh_policies().empty())
        return true;
    for (NsId ns = 0; ns < namespace_count(); ++ns)
        if (!config(ns).policies.empty())
            return true;
    return false;
}

} // namespace mtlsguard::resolution
