// A snapshot seen with one change applied, without copying it: what admission evaluates "after".
#pragma once

#include "analysis/model/snapshot.hpp"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace mtlsguard::resolution {

using model::NsId;
struct HostClients;
struct SidecarOutcomes;
class IndexReach;

// Reads configuration through an optional override of one namespace's NamespaceConfig or of the
// MeshPolicy list; everything else comes from the shared, immutable snapshot.
class ConfigView {
  public:
    explicit ConfigView(const model::Snapshot& snapshot);
    // The namespace `name` (possibly unknown to the snapshot) uses `config` instead.
    // `rules_changed`: whether `config` holds other DestinationRules than the snapshot's.
    ConfigView(const model::Snapshot& snapshot,
               std::shared_ptr<const model::NamespaceConfig> config, bool rules_changed = true);
    // The cluster-scoped MeshPolicy objects are replaced.
    ConfigView(const model::Snapshot& snapshot, std::vector<model::AlphaPolicy> mesh_policies);
    // One namespace relabelled (ambient.md §17): its workloads, Services, client namespace lists
    // and, after a restart, its configuration are the overlay's; the client index entries the
    // relabel reaches are resolved again when asked for.
    ConfigView(const model::Snapshot& snapshot,
               std::shared_ptr<const model::RelabelledNamespace> relabel);

    // From now on the view's only clients are the sidecar clients of namespace `ns` (none when it
    // is not a mesh client, or nullopt): what a change that reaches no other client, such as a
    // namespace's Sidecar resource (ambient.md §14), needs evaluated. Flows of clients without a
    // sidecar, ambient clients, bypassing clients and the API server are left out.
    void restrict_clients_to(std::optional<NsId> ns);
    bool sidecar_clients_only() const noexcept { return restricted_; }

    const model::Snapshot& snapshot() const noexcept { return *snapshot_; }
    const model::MeshSettings& mesh() const noexcept { return snapshot_->mesh(); }
    model::IstioVersion version() const noexcept { return snapshot_->settings().version; }

    // Namespaces: the snapshot's, plus at most one the change introduces (id = snapshot count);
    // namespace_name also names model::api_server_client.
    std::size_t namespace_count() const noexcept;
    const std::string& namespace_name(NsId ns) const noexcept;
    std::optional<NsId> namespace_id(std::string_view name) const noexcept;
    const model::NamespaceConfig& config(NsId ns) const noexcept;
    std::optional<NsId> overridden_namespace() const noexcept { return override_ns_; }

    const model::PeerAuthentication* mesh_peer_authentication() const noexcept;
    const std::vector<model::AlphaPolicy>& mesh_policies() const noexcept;
    const model::AlphaPolicy* default_mesh_policy() const noexcept;
    bool has_alpha_policies() const noexcept;

    // Workloads and Services by id: the snapshot's, or the relabel overlay's.
    const model::Workload& workload(model::WorkloadId id) const noexcept;
    const model::ServiceRecord& service(model::ServiceId id) const noexcept;
    // The id of a workload or Service that workload() or service() returned.
    model::WorkloadId workload_id(const model::Workload& workload) const noexcept;
    model::ServiceId service_id(const model::ServiceRecord& service) const noexcept;
    // The selector PeerAuthentication of one of workload()'s workloads (semantics §3): the
    // namespace config's answer by position, matched against the labels for any other workload.
    const model::PeerAuthentication*
    workload_policy(const model::Workload& workload) const noexcept;
    // Whether the view's workloads of namespace `ns` are a relabel overlay's, not the snapshot's.
    bool overlays_workloads_of(NsId ns) const noexcept { return relabel_ && relabel_->ns == ns; }
    // Whether the servers of namespace `ns` accept what they accept in the snapshot: the view
    // changes neither that namespace (its configuration or workloads) nor the root namespace (the
    // mesh-wide policy) nor the MeshPolicy list. Then the snapshot's ServerIndex answers for it.
    bool shares_servers(NsId ns) const noexcept;
    // The workload at `position` of a Service's endpoint_positions (asked for every endpoint of
    // every flow): the relabel overlay holds its namespace's workloads in that same order.
    const model::Workload& endpoint(const model::ServiceRecord& service,
                                    std::uint32_t position) const noexcept {
        if (relabel_ && service.ns == relabel_->ns)
            return relabel_->workloads[position];
        return snapshot_->workloads()[snapshot_->endpoint_id(service, position)];
    }

    const std::vector<NsId>& mesh_client_namespaces() const noexcept { return mesh_clients_; }
    const std::vector<NsId>& non_mesh_client_namespaces() const noexcept {
        return relabel_ ? relabel_->non_mesh_clients : snapshot_->non_mesh_client_namespaces();
    }
    // Namespaces running ambient (ztunnel-captured) clients: all, those with a workload the CNI
    // has captured, those whose ambient workloads are only predicted.
    const std::vector<NsId>& ambient_client_namespaces() const noexcept {
        return relabel_ ? relabel_->ambient_clients : snapshot_->ambient_client_namespaces();
    }
    const std::vector<NsId>& captured_client_namespaces() const noexcept {
        return relabel_ ? relabel_->captured_clients : snapshot_->captured_client_namespaces();
    }
    const std::vector<NsId>& predicted_ambient_client_namespaces() const noexcept {
        return relabel_ ? relabel_->predicted_ambient_clients
                        : snapshot_->predicted_ambient_client_namespaces();
    }
    // Sidecar client workloads that skip their sidecar for some destinations (ambient.md §13).
    const std::vector<model::WorkloadId>& outbound_bypass_clients() const noexcept {
        return relabel_ && relabel_->config ? relabel_->outbound_bypass_clients
                                            : snapshot_->outbound_bypass_clients();
    }
    NsId root_namespace_id() const noexcept { return root_ns_; }
    // Which DestinationRule each client class uses for a Service / ServiceEntry host: the
    // snapshot's precomputed answer, or computed into `scratch` when this view changes rules or
    // restricts its clients.
    const HostClients& service_clients(model::ServiceId service, HostClients& scratch) const;
    const HostClients& external_clients(std::size_t index, HostClients& scratch) const;
    bool rules_changed() const noexcept { return rules_changed_; }
    bool is_mesh_client(NsId ns) const noexcept { return ns < is_client_.size() && is_client_[ns]; }
    // Namespaces holding VirtualServices (ambient.md §15), in id order.
    const std::vector<NsId>& virtual_service_namespaces() const noexcept { return vs_namespaces_; }
    // Sidecar client namespaces holding Sidecar resources (ambient.md §14), in id order.
    const std::vector<NsId>& sidecar_namespaces() const noexcept { return sidecar_namespaces_; }
    // The outcomes of the classes these namespaces' own Sidecars hide hosts from, shared by every
    // host the view resolves (the snapshot's when the view changes none of them).
    const std::shared_ptr<const SidecarOutcomes>& sidecar_outcomes() const noexcept {
        return sidecar_outcomes_;
    }
    // Whether the view's Sidecar namespaces, their Sidecars and Sidecar outcomes are the
    // snapshot's (it changes none of them): then the snapshot's SidecarScanBase answers for it.
    bool shares_sidecar_scans() const noexcept;

  private:
    void init_clients();
    // The snapshot's Sidecar outcomes, unless `touched` (a namespace the view changes) holds
    // Sidecars in the view or the snapshot, or is the root namespace: then the view's own.
    void init_sidecar_outcomes(std::optional<NsId> touched);

    const model::Snapshot* snapshot_;
    std::shared_ptr<const model::NamespaceConfig> override_config_;
    std::optional<NsId> override_ns_;
    std::optional<std::vector<model::AlphaPolicy>> mesh_policies_;
    std::shared_ptr<const model::RelabelledNamespace> relabel_;
    // Where each of the relabel overlay's workloads and Services sits in its vectors, by id:
    // workload() and service() are asked for every endpoint of every flow.
    std::unordered_map<model::WorkloadId, std::size_t> relabel_workload_at_;
    std::unordered_map<model::ServiceId, std::size_t> relabel_service_at_;
    std::shared_ptr<const IndexReach> reach_; // after a restart: the index entries to resolve
    std::vector<NsId> mesh_clients_;
    std::vector<bool> is_client_;
    std::vector<NsId> vs_namespaces_;
    std::vector<NsId> sidecar_namespaces_;
    std::shared_ptr<const SidecarOutcomes> sidecar_outcomes_;
    bool rules_changed_ = false;
    bool restricted_ = false;
    NsId root_ns_ = 0;
    std::shared_ptr<const model::NamespaceConfig> empty_config_;
};

} // namespace mtlsguard::resolution
