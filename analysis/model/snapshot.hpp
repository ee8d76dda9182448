// The immutable, indexed picture of a cluster that every analysis and admission decision reads.
#pragma once

#include "analysis/model/objects.hpp"
#include "analysis/model/record_table.hpp"

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace mtlsguard::model {

using NsId = std::uint32_t;
using WorkloadId = std::uint32_t;
using ServiceId = std::uint32_t;

class Snapshot;

// What an incremental build took over from `previous`: the layers above model/ bring their own
// indexes up to date from it instead of building them again.
struct SnapshotReuse {
    const Snapshot& previous;
    const std::vector<bool>& rebuilt;                   // by NsId: built from the added objects
    const std::vector<std::uint32_t>& previous_service; // by ServiceId; 0xffffffff: new
    const std::vector<std::uint32_t>& previous_host;    // by external host index; 0xffffffff: new
};

} // namespace mtlsguard::model

// The layer above the model resolves which DestinationRule every client uses for every host, once
// per snapshot. The model only holds that index and never reads it: SnapshotBuilder calls the
// function below (defined with the index in the resolution layer, destination_rule.cpp) as the
// last step of every build, so that no snapshot lacks its index and no caller builds it again.
namespace mtlsguard::resolution {
struct ClientIndex;
// The client index of a finished `snapshot`: from scratch, or from `reuse->previous`'s where the
// change cannot reach.
std::shared_ptr<const ClientIndex> index_clients(const model::Snapshot& snapshot,
                                                 const model::SnapshotReuse* reuse);
// The same for the servers: every Service port's endpoints and what each accepts
// (server_index.cpp), after the client index; `previous`'s entries where they still hold.
struct ServerIndex;
std::shared_ptr<const ServerIndex> index_servers(const model::Snapshot& snapshot,
                                                 const model::Snapshot* previous);
} // namespace mtlsguard::resolution

namespace mtlsguard::model {

// What the caller decides, not the cluster: which Istio, which DNS domain, an explicit mesh config.
struct Settings {
    IstioVersion version = IstioVersion::current();
    std::string cluster_domain = "cluster.local";
    std::string istio_namespace = "istio-system"; // where the `istio` ConfigMap is read from
    std::optional<MeshConfig> mesh_override;      // --mesh-config: beats an `istio` ConfigMap
};

// meshConfig after defaults, version and overrides are applied.
struct MeshSettings {
    std::string root_namespace = "istio-system";
    bool auto_mtls = true;
    std::vector<std::string> default_dr_export_to{"*"};
    // What sidecars do with hosts a Sidecar resource hides, unless it says (ambient.md §14).
    OutboundPolicy outbound_policy = OutboundPolicy::AllowAny;
};

// The pods of one controller that share labels and dataplane state (everything below but `ports`
// and `pods`); named after the controller. Two pods of one Deployment, one captured by ztunnel
// and one not yet, are two workloads.
struct Workload {
    NsId ns = 0;
    std::string kind;
    std::string name;
    Labels labels;
    Dataplane dataplane = Dataplane::None; // ambient.md §10
    bool sidecar = false;                  // dataplane == Dataplane::Sidecar
    bool ambient_predicted = false; // ambient by the enablement selectors only (a template, or a
                                    // live pod the CNI has not annotated): findings warn
    bool ambient_pending = false;   // ambient.istio.io/redirection=pending: captured, not serving
    bool tunnel_http = false;       // label networking.istio.io/tunnel lists http: takes HBONE
    bool waypoint = false; // a waypoint proxy: never a sidecar server nor a client (dataplane None)
    bool sidecar_beats_ambient = false;  // a sidecar also labelled for ambient (MTG212)
    bool bypass_inbound_capture = false; // ambient.istio.io/bypass-inbound-capture=true
    Interception interception;           // traffic.sidecar.istio.io/* annotations, as written
    bool control_plane = false;          // Istio's own components: they set up their own TLS
    // Labelled istio.io/use-waypoint: resolution::waypoint_for reads the labels only then (it is
    // asked for every endpoint of every ambient flow, and most workloads name no waypoint).
    bool names_waypoint = false;
    // What a Namespace relabel needs to decide the dataplane again (ambient.md §17), taken from
    // the workload's first pod: a template (no pod runs yet), spec.hostNetwork, and the pod's own
    // sidecar.istio.io/inject decision.
    bool from_template = false;
    bool host_network = false;
    std::optional<bool> own_injection;
    std::vector<NamedPort> ports;
    std::uint32_t pods = 0;
};

struct ServiceRecord {
    Service service;
    NsId ns = 0;
    std::string host; // <name>.<ns>.svc.<domain>
    // The workloads behind it, as positions in its namespace's NamespaceRecord::workloads (a
    // Service selects pods of its own namespace only): unlike WorkloadIds, they stay when other
    // namespaces' workloads are renumbered, so the record can be shared by the next snapshot.
    std::vector<std::uint32_t> endpoint_positions;
    bool analysed_as_server = true; // false for kube-system, kube-public and the control plane
    // The Service's istio.io/use-waypoint label as written (`none` opts out of the namespace's).
    std::optional<std::string> use_waypoint;
    // The waypoint its ambient clients go through: the Service's label, else its namespace's,
    // names a Gateway in the namespace of istio.io/use-waypoint-namespace (default: the
    // Service's own). nullopt for none or `none`.
    std::optional<ObjectRef> waypoint;
};

// One host of a ServiceEntry; MESH_EXTERNAL hosts have no sidecar behind them.
struct ExternalHost {
    ObjectRef ref;
    NsId ns = 0;
    std::string host;
    bool mesh_external = true;
    std::vector<std::uint16_t> ports;
};

struct NamespaceRecord {
    std::string name;
    Labels labels;
    bool declared = false;  // a Namespace object was in the input
    bool injection = false; // labelled istio-injection=enabled or istio.io/rev
    bool system = false;    // kube-system, kube-public, kube-node-lease
    std::vector<WorkloadId> workloads;
    std::vector<ServiceId> services;
    bool has_sidecar_workloads = false;
    bool has_plain_workloads = false;    // workloads with no proxy (none) that count as clients
    bool has_captured_workloads = false; // ambient workloads the CNI has annotated (not predicted)
    bool has_ambient_workloads = false;  // ambient workloads (predicted ones too), not the control
                                         // plane
    std::optional<std::string> dataplane_mode; // label istio.io/dataplane-mode
    std::optional<std::string> use_waypoint;   // label istio.io/use-waypoint
    bool sidecar_and_ambient = false; // injection label and dataplane-mode=ambient (MTG212)
};

// Several DestinationRules for the very same host, merged as pilot merges them.
struct ConsolidatedRule {
    std::vector<const DestinationRule*> members;    // oldest first
    const DestinationRule* policy_source = nullptr; // whose top-level trafficPolicy applies
    std::vector<const Subset*> subsets;             // concatenated by unique name
    std::vector<std::string> export_to;             // resolved: "." became the namespace; sorted
    const Labels* selector = nullptr;               // workloadSelector, shared by all members

    const TrafficPolicy* traffic_policy() const noexcept {
        return policy_source && policy_source->traffic_policy ? &*policy_source->traffic_policy
                                                              : nullptr;
    }
    bool exported_to(std::string_view client_namespace) const noexcept;
};

// Rules of one namespace by host key; a key is an FQDN, or a wildcard such as
// "*.ns.svc.cluster.local".
struct DrIndex {
    std::unordered_map<std::string, std::vector<ConsolidatedRule>> specific;
    std::unordered_map<std::string, std::vector<ConsolidatedRule>> wildcard;
    bool empty() const noexcept { return specific.empty() && wildcard.empty(); }
};

// The client pods of a namespace that see the same workloadSelector DestinationRules and use the
// same Sidecar resource of their namespace.
struct ClientVariant {
    std::vector<const DestinationRule*> selector_rules; // the selector DRs matching these pods
    // The Sidecar of this namespace these pods use (ambient.md §14); null: none of the
    // namespace's applies, and the root namespace's default (if any) does.
    const Sidecar* sidecar = nullptr;
    // Positions in NamespaceRecord::workloads, not WorkloadIds: a config stays valid, and can be
    // shared by the next snapshot, when other namespaces' workloads are renumbered. Empty for an
    // assumed client namespace.
    std::vector<std::uint32_t> workloads;
};

// The policies and DestinationRules of one namespace, with the indexes pilot would build.
// Built once, shared by pointer, never copied: the indexes point into its own vectors.
struct NamespaceConfig {
    std::string name;
    bool is_root = false;
    std::vector<PeerAuthentication> peer_authentications; // oldest first
    std::vector<DestinationRule> destination_rules;       // selector ones first, then oldest first
    std::vector<AlphaPolicy> policies;                    // legacy, oldest first
    std::vector<VirtualService> virtual_services;         // oldest first (ambient.md §15)
    // The VirtualServices bound to the mesh (gateways empty or `mesh`), by each of their hosts as
    // resolved in this namespace (an FQDN or a wildcard key): positions in virtual_services.
    std::unordered_map<std::string, std::vector<std::uint32_t>> virtual_services_by_host;
    bool virtual_service_wildcard_host = false; // some key above is a wildcard
    std::vector<Sidecar> sidecars; // selector ones first, then oldest first (ambient.md §14)
    // The oldest Sidecar without a workloadSelector: the namespace's default (in the root
    // namespace, the mesh's default for namespaces without one of their own).
    const Sidecar* default_sidecar = nullptr;
    // Root: the mesh-wide policy. Elsewhere: the namespace-wide one. Oldest with an empty selector.
    const PeerAuthentication* namespace_policy = nullptr;
    std::vector<const PeerAuthentication*>
        workload_policies; // non-root, selector set, oldest first
    // workload_policy_for each workload of the namespace, by its position in the namespace's
    // workload list (empty when there is no selector policy): every endpoint of every flow asks,
    // and matching the selectors against the pod labels was a sixth of a Namespace relabel.
    std::vector<const PeerAuthentication*> workload_policy_by_position;
    DrIndex local;    // what clients in this namespace see first (root: only its private rules)
    DrIndex exported; // what this namespace exports to others
    // [0] is the pods that match no selector rule and no selector Sidecar.
    std::vector<ClientVariant> variants;

    NamespaceConfig() = default;
    NamespaceConfig(const NamespaceConfig&) = delete;
    NamespaceConfig& operator=(const NamespaceConfig&) = delete;

    bool empty() const noexcept {
        return peer_authentications.empty() && destination_rules.empty() && policies.empty();
    }
    // The oldest selector policy whose selector matches the pod labels.
    const PeerAuthentication* workload_policy_for(const Labels& pod_labels) const noexcept;
    // The same for the workload at `position` of the namespace's workload list, whose labels are
    // `pod_labels` (matched when the position is unknown or the table is empty).
    const PeerAuthentication* workload_policy_at(std::optional<std::uint32_t> position,
                                                 const Labels& pod_labels) const noexcept {
        if (position && *position < workload_policy_by_position.size())
            return workload_policy_by_position[*position];
        return workload_policy_for(pod_labels);
    }
};

// The objects the API server calls (ambient.md §16), indexed by the Service they name. Shared
// by pointer between snapshots, never copied: the index points into `objects`.
struct ApiServerCallRef {
    const ApiServerCallee* callee = nullptr;
    const ApiServerCall* call = nullptr;
};
struct ApiServerCallees {
    std::vector<ApiServerCallee> objects; // by kind, then name
    std::map<std::pair<std::string, std::string>, std::vector<ApiServerCallRef>, std::less<>>
        by_service; // (namespace, name) -> the calls naming that Service
};

// The client namespace name flows from the API server carry (not a real namespace), and the id
// that stands for it among client namespace ids.
inline constexpr std::string_view api_server_client_name = "kube-apiserver";
inline constexpr NsId api_server_client = 0xfffffffeu;

// When a Namespace label change reaches the pods (ambient.md §17).
enum class RelabelTiming : std::uint8_t {
    // At once: running pods keep their sidecar, or their lack of one; the CNI captures or releases
    // the others as the enablement selectors now say; Services switch waypoints. Injection labels
    // act on no running pod.
    AtOnce,
    // Once every pod is created again: injection and capture decided anew, as for templates.
    AfterRestart,
};

// A Namespace relabel as an overlay on its snapshot (ambient.md §17): the parts that change,
// computed without copying the rest.
struct RelabelledNamespace {
    NsId ns = 0;
    NamespaceRecord record;
    std::vector<Workload> workloads;     // record.workloads' workloads, in that order
    std::vector<ServiceRecord> services; // record.services' Services, in that order
    // The snapshot's client namespace lists with this namespace's membership decided anew.
    std::vector<NsId> non_mesh_clients;
    std::vector<NsId> ambient_clients;
    std::vector<NsId> captured_clients;
    std::vector<NsId> predicted_ambient_clients;
    // After a restart only: the namespace's configuration (its client variants follow the pods
    // that have a sidecar now), the sidecar client namespaces, and the clients that skip their
    // sidecar for some destinations. Null and empty at once, where no pod gains or loses its
    // sidecar and no configuration changes: these, and the client index, stay the snapshot's.
    std::shared_ptr<const NamespaceConfig> config;
    std::vector<NsId> mesh_clients;
    std::vector<WorkloadId> outbound_bypass_clients;
};

// The namespace whose part of a snapshot an object feeds (a Namespace object: its own); empty for
// what applies cluster-wide (a MeshPolicy, the mesh config).
std::string_view object_namespace(const DecodedObject& object) noexcept;

// Builds a NamespaceConfig from its objects. Its client variants come from the namespace's
// workloads in `snapshot`, or from `workloads` (the same workloads, in the same order, as a
// relabel overlay has them).
std::shared_ptr<const NamespaceConfig>
build_namespace_config(std::string name, std::vector<PeerAuthentication> peer_authentications,
                       std::vector<DestinationRule> destination_rules,
                       std::vector<AlphaPolicy> policies,
                       std::vector<VirtualService> virtual_services, std::vector<Sidecar> sidecars,
                       const Snapshot& snapshot, const std::vector<Workload>* workloads = nullptr);

// The immutable snapshot. Build it with SnapshotBuilder; share it by shared_ptr<const Snapshot>.
class Snapshot {
  public:
    const Settings& settings() const noexcept { return settings_; }
    const MeshSettings& mesh() const noexcept { return mesh_; }
    bool mesh_config_seen() const noexcept { return mesh_config_seen_; }

    const std::vector<NamespaceRecord>& namespaces() const noexcept { return namespaces_; }
    std::optional<NsId> namespace_id(std::string_view name) const noexcept;
    const RecordTable<Workload>& workloads() const noexcept { return workloads_; }
    const RecordTable<ServiceRecord>& services() const noexcept { return services_; }
    // The id of one of workloads() or services() (not of a relabel overlay's copy).
    WorkloadId workload_id(const Workload& w) const noexcept {
        return namespaces_[w.ns].workloads[workloads_.position_of(w)];
    }
    ServiceId service_id(const ServiceRecord& s) const noexcept {
        return namespaces_[s.ns].services[services_.position_of(s)];
    }
    // The id of the workload at `position` of a Service's endpoint_positions.
    WorkloadId endpoint_id(const ServiceRecord& s, std::uint32_t position) const noexcept {
        return namespaces_[s.ns].workloads[position];
    }
    const std::vector<ExternalHost>& external_hosts() const noexcept { return external_hosts_; }
    // MeshPolicy objects, oldest first.
    const std::vector<AlphaPolicy>& mesh_policies() const noexcept { return mesh_policies_; }
    // Per namespace (by NsId); never null.
    const NamespaceConfig& config(NsId ns) const noexcept { return *configs_[ns]; }
    const std::shared_ptr<const NamespaceConfig>& config_ptr(NsId ns) const noexcept {
        return configs_[ns];
    }
    // Namespaces whose `local` index holds this host key (for step 1 of the DR lookup).
    const std::vector<NsId>* namespaces_with_local_key(const std::string& key) const noexcept;
    const std::unordered_map<std::string, std::vector<NsId>>& local_key_index() const noexcept {
        return *local_keys_;
    }
    // Services by FQDN host.
    const std::vector<ServiceId>* services_for_host(const std::string& host) const noexcept;
    // Namespaces holding a mesh-bound VirtualService with this resolved host key (FQDN or
    // wildcard), in id order; null when none does.
    const std::vector<NsId>* virtual_service_namespaces_for(const std::string& key) const noexcept;
    // Whether some mesh-bound VirtualService names a wildcard host: else an FQDN is the only key
    // worth looking up.
    bool virtual_service_wildcard_hosts() const noexcept { return virtual_service_wildcards_; }
    // Sorted: the namespaces whose configuration holds VirtualServices, and those whose holds
    // Sidecars (a view starts from these instead of reading every namespace's configuration).
    const std::vector<NsId>& virtual_service_config_namespaces() const noexcept {
        return virtual_service_config_namespaces_;
    }
    const std::vector<NsId>& sidecar_config_namespaces() const noexcept {
        return sidecar_config_namespaces_;
    }
    bool has_alpha_policies() const noexcept;
    // Whether a DestinationRule host key (FQDN or wildcard) matches any Service or ServiceEntry
    // host.
    bool host_key_matches_anything(const std::string& key) const noexcept;

    // Sidecar client namespaces (with workloads, or assumed: labelled or holding config).
    const std::vector<NsId>& mesh_client_namespaces() const noexcept { return mesh_clients_; }
    // Namespaces running workloads with no proxy at all (system namespaces, waypoints and
    // ambient workloads excluded).
    const std::vector<NsId>& non_mesh_client_namespaces() const noexcept {
        return non_mesh_clients_;
    }
    // Namespaces running ambient workloads, predicted ones included (system namespaces and
    // waypoints excluded). A namespace with plain and ambient workloads is here and above.
    const std::vector<NsId>& ambient_client_namespaces() const noexcept { return ambient_clients_; }
    // The same, split: namespaces with a workload the CNI has captured, and those whose ambient
    // workloads are all only predicted (findings that rest on those clients are warnings).
    const std::vector<NsId>& captured_client_namespaces() const noexcept {
        return captured_clients_;
    }
    const std::vector<NsId>& predicted_ambient_client_namespaces() const noexcept {
        return predicted_ambient_clients_;
    }
    // What the API server calls: webhook configurations, APIServices, CRD conversion webhooks.
    const std::vector<ApiServerCallee>& api_server_callees() const noexcept {
        return api_server_callees_->objects;
    }
    // The calls that name the Service namespace/name; null when none does.
    const std::vector<ApiServerCallRef>* api_server_calls(const std::string& namespace_name,
                                                          const std::string& name) const;
    // Sidecar client workloads whose annotations let some outbound connections skip the sidecar
    // (ambient.md §13: excludeOutboundPorts, excludeOutboundIPRanges, includeOutboundIPRanges),
    // by namespace. Usually few: flows check each of them per service port.
    const std::vector<WorkloadId>& outbound_bypass_clients() const noexcept {
        return outbound_bypass_clients_;
    }
    // The istio-cni ConfigMap of the Istio namespace, if the input had one.
    const std::optional<CniConfig>& cni_config() const noexcept { return cni_config_; }

    // The FQDN of a DestinationRule host as pilot resolves it.
    std::string resolve_host(std::string_view host, std::string_view dr_namespace) const;

    std::size_t object_count() const noexcept { return object_count_; }
    // Precomputed DestinationRule resolution for every Service and ServiceEntry host.
    const resolution::ClientIndex& client_index() const noexcept { return *client_index_; }
    bool has_client_index() const noexcept { return client_index_ != nullptr; }
    // Every Service port's endpoints with their server modes, as this snapshot resolves them.
    const resolution::ServerIndex& server_index() const noexcept { return *server_index_; }
    bool has_server_index() const noexcept { return server_index_ != nullptr; }

  private:
    friend class SnapshotBuilder;
    Settings settings_;
    MeshSettings mesh_;
    bool mesh_config_seen_ = false;
    std::vector<NamespaceRecord> namespaces_;
    std::unordered_map<std::string, NsId> namespace_ids_;
    RecordTable<Workload> workloads_;
    RecordTable<ServiceRecord> services_;
    std::vector<ExternalHost> external_hosts_;
    std::vector<AlphaPolicy> mesh_policies_;
    std::vector<std::shared_ptr<const NamespaceConfig>> configs_;
    // Shared with the next snapshot when a change leaves them as they are.
    using LocalKeys = std::unordered_map<std::string, std::vector<NsId>>;
    struct HostIndex {
        std::unordered_map<std::string, std::vector<ServiceId>> services_by_host;
        std::unordered_map<std::string, bool> known_hosts; // every known host, and ".suffix"es
    };
    std::shared_ptr<const LocalKeys> local_keys_ = std::make_shared<const LocalKeys>();
    std::shared_ptr<const LocalKeys> virtual_service_hosts_ = std::make_shared<const LocalKeys>();
    bool virtual_service_wildcards_ = false;
    std::vector<NsId> virtual_service_config_namespaces_;
    std::vector<NsId> sidecar_config_namespaces_;
    std::shared_ptr<const HostIndex> hosts_ = std::make_shared<const HostIndex>();
    std::vector<NsId> mesh_clients_;
    std::vector<NsId> non_mesh_clients_;
    std::vector<NsId> ambient_clients_;
    std::vector<NsId> captured_clients_;
    std::vector<NsId> predicted_ambient_clients_;
    std::vector<WorkloadId> outbound_bypass_clients_;
    std::optional<CniConfig> cni_config_;
    std::shared_ptr<const ApiServerCallees> api_server_callees_ =
        std::make_shared<const ApiServerCallees>();
    std::size_t object_count_ = 0;
    std::vector<std::size_t>
        namespace_object_counts_; // by NsId: objects object_namespace() puts there
    std::shared_ptr<const resolution::ClientIndex> client_index_;
    std::shared_ptr<const resolution::ServerIndex> server_index_;
};

// Collects decoded objects, then builds the indexed Snapshot in one pass.
class SnapshotBuilder {
  public:
    explicit SnapshotBuilder(Settings settings = {});

    // Decodes and adds one object (kinds the engine does not use are ignored).
    // Returns the decode error for a malformed object of a known kind; the object is not added.
    std::optional<std::string> add(const nlohmann::json& object,
                                   std::string_view default_namespace = "default");
    void add(DecodedObject object);
    // `count` pods alike to the engine (one controller's, as the live store groups them), shared
    // rather than copied: at 150,000 pods, copies took 160 MB during each full build.
    void add_pods(std::shared_ptr<const PodLike> pod, std::uint32_t count);
    // Holds mesh config from --mesh-config; it beats any `istio` ConfigMap.
    void set_mesh_override(MeshConfig mesh) { settings_.mesh_override = std::move(mesh); }
    bool has_alpha_policies() const noexcept { return alpha_seen_; }
    void set_version(IstioVersion version) { settings_.version = version; }

    std::shared_ptr<const Snapshot> build();

    // The snapshot that follows `previous` when only the objects of the `changed` namespaces
    // differ: this builder holds all objects of those namespaces and nothing else, in the order a
    // full build would see them. Everything else (other namespaces' workloads, services, configs,
    // most of the client index) is taken over from `previous`, so that the cost follows the size
    // of the change. The result is what build() would give with all objects added namespace by
    // namespace. Null when the change reaches further: a namespace appears or disappears (NsIds
    // would shift), the mesh config, the istio-cni ConfigMap, a MeshPolicy or an object the API
    // server calls (webhook configuration, APIService, CRD) is among the objects (or the CNI
    // ConfigMap's namespace changed), or the settings differ; then build from all objects.
    std::shared_ptr<const Snapshot> build_update(const Snapshot& previous,
                                                 const std::vector<std::string>& changed);

    // The snapshot after the namespace `ns` of `previous` gets the labels `labels`, as it is at
    // `timing`. Workloads and Services keep their ids. Pods captured only since the change are
    // predicted ambient unless `previous` shows ambient at work (a pod the CNI has annotated, or
    // the CNI's ambient selectors): without ztunnel a label captures nothing. Costs O(mesh): the
    // snapshot is copied; after a restart, the client index entries the namespace reaches are
    // resolved again.
    static std::shared_ptr<const Snapshot> relabel_namespace(const Snapshot& previous, NsId ns,
                                                             Labels labels, RelabelTiming timing);
    // What relabel_namespace(previous, ns, labels, timing) changes, as an overlay
    // (resolution::ConfigView reads through it); costs O(the namespace) plus copying the client
    // namespace lists.
    static RelabelledNamespace relabel_overlay(const Snapshot& previous, NsId ns, Labels labels,
                                               RelabelTiming timing);

  private:
    // Steps build() and build_update() share.
    // Lists every workload of `all` (numbered by position) in its namespace's record.
    static void index_namespace_workloads(Snapshot& s, const std::vector<Workload>& all);
    static void index_hosts(Snapshot& s);
    static void index_local_keys(Snapshot& s);
    static void index_virtual_service_hosts(Snapshot& s);
    static void list_config_namespaces(Snapshot& s);
    static void index_clients(Snapshot& s);
    // Calls `note` with the namespace of every namespaced object added, Namespaces aside.
    template <typename Note> void for_each_object_namespace(Note note) const;
    // Counts every added Namespace and namespaced configuration object in its namespace.
    void count_configuration(std::vector<std::size_t>& counts,
                             const std::unordered_map<std::string, NsId>& ids) const;
    // Moves the MeshPolicies into `s` and builds the configs of the namespaces marked in
    // `rebuilt` from the added objects; the others are taken from `previous`.
    void make_configs(Snapshot& s, const std::vector<bool>& rebuilt, const Snapshot* previous);

    Settings settings_;
    std::optional<MeshConfig> mesh_from_config_map_;
    std::optional<CniConfig> cni_config_;
    std::vector<PeerAuthentication> peer_authentications_;
    std::vector<DestinationRule> destination_rules_;
    std::vector<AlphaPolicy> policies_;
    std::vector<VirtualService> virtual_services_;
    std::vector<Sidecar> sidecars_;
    std::vector<Service> services_;
    std::vector<ServiceEntry> service_entries_;
    std::vector<std::pair<std::shared_ptr<const PodLike>, std::uint32_t>> pods_; // with counts
    std::vector<Namespace> namespaces_;
    std::vector<ApiServerCallee> api_server_callees_;
    bool alpha_seen_ = false;
    std::size_t count_ = 0;
};

} // namespace mtlsguard::model
