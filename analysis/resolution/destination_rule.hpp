// Client side: which DestinationRule a sidecar in each namespace uses for a host, and its TLS per
// port.
#pragma once

#include "analysis/resolution/config_view.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mtlsguard::resolution {

// Index keys that can match `host`, most specific first: the host, "*.<suffix>" longest first, "*".
std::vector<std::string> candidate_keys(std::string_view host);

// pilot's MostSpecificHostMatch over one index: the entries of the most specific matching key.
const std::vector<model::ConsolidatedRule>*
most_specific(const model::DrIndex& index, const std::vector<std::string>& keys) noexcept;

// Among the entries of one key in the client's own namespace: a workloadSelector rule matching the
// client pods wins, else the last rule without a selector, else none (no fall-through).
const model::ConsolidatedRule*
choose_for_variant(const std::vector<model::ConsolidatedRule>& entries,
                   const model::ClientVariant* variant) noexcept;

// A class of sidecar clients: a namespace and one of its selector variants.
struct ClientClass {
    NsId ns = 0;
    std::uint16_t variant = 0;
    friend bool operator==(const ClientClass&, const ClientClass&) = default;
    friend auto operator<=>(const ClientClass&, const ClientClass&) = default;
};

// A list of client classes that holds one class without allocating: a snapshot's client index
// keeps one outcome per Sidecar that hides a host, for every host, most with a single class.
class ClassList {
  public:
    ClassList() noexcept = default;
    ClassList(std::initializer_list<ClientClass> classes) {
        for (const ClientClass& c : classes)
            push_back(c);
    }
    ClassList(const ClassList& other) { assign(other); }
    ClassList(ClassList&& other) noexcept { steal(other); }
    ClassList& operator=(const ClassList& other) {
        if (this != &other) {
            release();
            assign(other);
        }
        return *this;
    }
    ClassList& operator=(ClassList&& other) noexcept {
        if (this != &other) {
            release();
            steal(other);
        }
        return *this;
    }
    ~ClassList() { release(); }

    void push_back(ClientClass c) {
        if (size_ == capacity_)
            grow();
        data()[size_++] = c;
    }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    ClientClass* data() noexcept { return capacity_ > 1 ? heap_ : &one_; }
    const ClientClass* data() const noexcept { return capacity_ > 1 ? heap_ : &one_; }
    ClientClass* begin() noexcept { return data(); }
    ClientClass* end() noexcept { return data() + size_; }
    const ClientClass* begin() const noexcept { return data(); }
    const ClientClass* end() const noexcept { return data() + size_; }
    const ClientClass& operator[](std::size_t i) const noexcept { return data()[i]; }
    const ClientClass& front() const noexcept { return data()[0]; }
    const ClientClass& back() const noexcept { return data()[size_ - 1]; }
    friend bool operator==(const ClassList& a, const ClassList& b) noexcept {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

  private:
    void grow() {
        const std::uint32_t capacity = capacity_ * 2;
        auto* heap = new ClientClass[capacity];
        std::copy(begin(), end(), heap);
        const std::uint32_t size = size_;
        release();
        heap_ = heap;
        capacity_ = capacity;
        size_ = size;
    }
    void release() noexcept {
        if (capacity_ > 1)
            delete[] heap_;
        one_ = ClientClass{};
        capacity_ = 1;
        size_ = 0;
    }
    void assign(const ClassList& other) {
        if (other.size_ > 1) {
            heap_ = new ClientClass[other.size_];
            std::copy(other.begin(), other.end(), heap_);
            capacity_ = other.size_;
        } else if (other.size_ == 1) {
            one_ = other.front();
        }
        size_ = other.size_;
    }
    void steal(ClassList& other) noexcept {
        if (other.capacity_ > 1)
            heap_ = other.heap_;
        else
            one_ = other.one_;
        size_ = other.size_;
        capacity_ = other.capacity_;
        other.capacity_ = 1;
        other.size_ = 0;
        other.one_ = ClientClass{};
    }

    union {
        ClientClass one_{};
        ClientClass* heap_;
    };
    std::uint32_t size_ = 0;
    std::uint32_t capacity_ = 1; // 1: the class is held inline
};

// The sidecar clients that use the same DestinationRule (or none) for one host.
struct ClientOutcome {
    const model::ConsolidatedRule* rule = nullptr;
    ClassList members;
    // Also every mesh client namespace (all its variants) without an answer of its own
    // (HostClients::answers_for).
    bool generic = false;
    // The Sidecar resource that hides the host from these clients (ambient.md §14): they have no
    // cluster for it, so no DestinationRule (rule is null) and no auto mTLS.
    const model::Sidecar* hidden_by = nullptr;
};

// The outcomes of client classes whose own namespace's Sidecar resource hides a host (ambient.md
// §14): one per such Sidecar, whose members are every class using it, the same for every host it
// hides. A view holds them once, and each host keeps one bit per Sidecar instead of a copy: most
// Sidecars hide most hosts, and at Kubernetes' limit (5,000 namespaces, 850 of them holding
// Sidecars, 10,000 Services) the copies took 360 MB per client index. The root namespace's
// default Sidecar is not among them: the classes it hides are in HostClients::outcomes.
struct SidecarOutcomes {
    std::vector<ClientOutcome> outcomes;
    // Sorted: the mesh client namespaces holding Sidecars (ConfigView::sidecar_namespaces()),
    // which have an answer of their own for every host.
    std::vector<NsId> namespaces;
    // Sorted by Sidecar: which outcome a Sidecar's hidden classes are in.
    std::vector<std::pair<const model::Sidecar*, std::uint32_t>> slots;

    std::optional<std::uint32_t> slot_of(const model::Sidecar* sidecar) const noexcept;
};
// The SidecarOutcomes of `view`'s clients.
std::shared_ptr<const SidecarOutcomes> build_sidecar_outcomes(const ConfigView& view);

struct HostClients {
    std::vector<ClientOutcome> outcomes; // besides the Sidecar outcomes `hidden` marks
    // Sorted: namespaces with their own answer (not generic), besides sidecars->namespaces.
    std::vector<NsId> resolved;
    // Where in `outcomes` the one generic outcome is, if any: a host can have one outcome per
    // Sidecar of the mesh, too many to search for it.
    std::optional<std::uint32_t> generic;
    // The Sidecar outcomes of the view this host was resolved in, and which of them are this
    // host's (bit i: sidecars->outcomes[i]).
    std::shared_ptr<const SidecarOutcomes> sidecars;
    std::vector<std::uint64_t> hidden;

    // Whether the classes of `ns` have an answer of their own (else the generic outcome's).
    bool answers_for(NsId ns) const noexcept;
    // How many namespaces have an answer of their own.
    std::size_t own_answers() const noexcept;
    // Every outcome: `outcomes`, then the Sidecar outcomes `hidden` marks.
    template <class F> void for_each_outcome(F&& f) const {
        for (const ClientOutcome& outcome : outcomes)
            f(outcome);
        for (std::size_t word = 0; word < hidden.size(); ++word)
            for (std::uint64_t bits = hidden[word]; bits != 0; bits &= bits - 1)
                f(sidecars->outcomes[word * 64 + static_cast<std::size_t>(__builtin_ctzll(bits))]);
    }
};

// What the Sidecar namespaces of a view answer for the hosts of one namespace, found once for
// them all: at Kubernetes' limit, 10,000 hosts each asked 1,000 Sidecar namespaces the same
// question, 2 s of the first snapshot's build. A namespace each of whose classes uses a Sidecar of
// its own that imports nothing from the host's namespace (no egress entry names it, "*", or "."
// from within it) hides every one of its hosts; the others are resolved host by host.
struct HostNamespaceScan {
    // The Sidecar outcomes of the namespaces that hide every host (bit i: outcomes[i] of the
    // view's SidecarOutcomes); empty when the view has none.
    std::vector<std::uint64_t> hidden;
    // The other Sidecar namespaces, in ConfigView::sidecar_namespaces() order.
    std::vector<NsId> rest;
};
HostNamespaceScan scan_sidecar_namespaces(const ConfigView& view, NsId host_ns);

// What scan_sidecar_namespaces finds for every host namespace of a view, from one pass over its
// Sidecar namespaces: it asks each of them about each host namespace, which at Kubernetes' limit
// (5,000 namespaces, 1,000 with Sidecars) is 5 million questions with nearly all the same answer.
// Holds no reference into the view: a client index keeps its snapshot's (ClientIndex::scan_base).
struct SidecarScanBase {
    explicit SidecarScanBase(const ConfigView& view);
    // Equal to scan_sidecar_namespaces(view, host_ns), for `view` or a view with the same Sidecar
    // namespaces, Sidecars and Sidecar outcomes (ConfigView::shares_sidecar_scans).
    HostNamespaceScan scan(const ConfigView& view, NsId host_ns) const;
    // Whether every class of the Sidecar namespace `ns` uses a Sidecar of its own (with a slot)
    // that imports nothing from `host_ns`: its classes are only bits of every host's `hidden`.
    bool hides_all(const ConfigView& view, NsId ns, NsId host_ns) const;

    std::vector<std::uint64_t> all_hidden; // the slots of every namespace not in always_rest
    std::vector<NsId> always_rest;         // sorted
    // The slots of each Sidecar namespace that hides_all can hold for.
    std::unordered_map<NsId, std::vector<std::uint32_t>> slots;
    // By a namespace's name: the Sidecar namespaces (not in always_rest) importing from it.
    std::unordered_map<std::string, std::vector<NsId>> importers;

  private:
    const std::vector<NsId>* importers_of(const ConfigView& view, NsId host_ns) const;
};

// Resolves, for every sidecar client class of the mesh, the DestinationRule used for `host`,
// a host of namespace `service_ns`, grouping classes that get the same answer; classes whose
// Sidecar resource hides the host get none (ClientOutcome::hidden_by). Namespaces holding Sidecars
// are always resolved, and so is the host's own when the root namespace has a default Sidecar
// (its "./" entries mean each client's namespace); the generic outcome is everyone else's.
HostClients resolve_host_clients(const ConfigView& view, const std::string& host, NsId service_ns);
// The same, with the scan of `service_ns` made by scan_sidecar_namespaces over the same view.
HostClients resolve_host_clients(const ConfigView& view, const std::string& host, NsId service_ns,
                                 const HostNamespaceScan& scan);

// The DestinationRule a proxy in namespace `client_ns` that no workloadSelector rule selects
// uses for `host` (semantics §4): how a waypoint finds the rule for its backends (ambient.md §12).
const model::ConsolidatedRule* rule_for_namespace(const ConfigView& view, const std::string& host,
                                                  NsId service_ns, NsId client_ns);

// The snapshot's answers, by ServiceId and by ServiceEntry host index.
struct ClientIndex {
    std::vector<HostClients> services;
    std::vector<HostClients> external_hosts;
    std::shared_ptr<const SidecarOutcomes> sidecars; // the snapshot's own
    // The snapshot's own: a view that changes no Sidecar namespace scans with it.
    std::shared_ptr<const SidecarScanBase> scan_base;
};
std::shared_ptr<const ClientIndex> build_client_index(const model::Snapshot& snapshot);
// Which entries of `previous`'s client index a change to the configuration or the clients of the
// `changed` namespaces reaches, seen through `now` (the same namespaces; the others keep their
// NamespaceConfig and are mesh client namespaces in both or in neither). The others stay valid.
class IndexReach {
  public:
    IndexReach(const ConfigView& now, const model::Snapshot& previous, std::vector<NsId> changed);
    // Every entry: the root namespace changed, or a changed namespace has or had Sidecars.
    bool everything() const noexcept { return root_changed_ || !sidecar_changes_.empty(); }
    bool root_changed() const noexcept { return root_changed_; }
    // The changed namespaces, other than the root, that have or had Sidecars (sorted): each has an
    // answer of its own for every host, so every entry lists their classes.
    const std::vector<NsId>& sidecar_changes() const noexcept { return sidecar_changes_; }
    // Whether the entry `old` for `host`, a host of `host_ns`, may differ (`root`: the root
    // namespace's id).
    bool reaches(const std::string& host, NsId host_ns, NsId root, const HostClients& old) const;
    // The same, leaving out what the classes of sidecar_changes() are told: whether the entry
    // may differ in more than that.
    bool reaches_besides_sidecars(const std::string& host, NsId host_ns, NsId root,
                                  const HostClients& old) const;

  private:
    std::vector<NsId> changed_; // sorted
    bool root_changed_ = false;
    std::vector<NsId> sidecar_changes_;
    std::vector<const std::string*> keys_; // the changed namespaces' local DR host keys
    std::size_t clients_before_;           // mesh client namespaces, before and now
    std::size_t clients_now_;
    std::vector<bool> naming_; // by NsId: its exported rules name a namespace that moved in or
                               // out of the mesh clients; empty when none moved
};

// The client index of `snapshot`, which differs from `previous` only in the namespaces marked in
// `changed` (by NsId; both have the same namespaces, the others share their NamespaceConfig and
// are mesh client namespaces in both or in neither). `previous_service` and `previous_host` give,
// by ServiceId and external host index, the entry of `previous` for the same host, or 0xffffffff
// for a new one. Only the entries a changed namespace can reach are resolved again; the rest are
// copied.
std::shared_ptr<const ClientIndex>
update_client_index(const model::Snapshot& snapshot, const model::Snapshot& previous,
                    const std::vector<bool>& changed,
                    const std::vector<std::uint32_t>& previous_service,
                    const std::vector<std::uint32_t>& previous_host);
// What model::SnapshotBuilder hands every snapshot it builds (declared there too, so that the
// model needs no resolution header): update_client_index from `reuse`, else build_client_index.
std::shared_ptr<const ClientIndex> index_clients(const model::Snapshot& snapshot,
                                                 const model::SnapshotReuse* reuse);

// Expands an outcome to its client classes (generic members included).
std::vector<ClientClass> expand_members(const ConfigView& view, const ClientOutcome& outcome,
                                        const HostClients& clients);

// The namespaces of expand_members' classes, sorted and distinct, without listing the classes:
// a generic outcome holds most of the mesh's namespaces, and findings want only the names.
std::vector<NsId> outcome_namespaces(const ConfigView& view, const ClientOutcome& outcome,
                                     const HostClients& clients);

// TLS a cluster uses for one service port (and subset): `cluster` as the transport socket sees it
// (nullopt: automatic), `endpoint_marking` as the endpoint metadata sees it (Istio computes the
// two slightly differently), `passthrough` when the DR load balancer is PASSTHROUGH.
struct ClusterTls {
    model::TlsSetting cluster;
    model::TlsSetting endpoint_marking;
    bool passthrough = false;
    // The certificate fields of the `tls` block `cluster` came from; null when none was chosen.
    const model::TlsCredentials* credentials = nullptr;
};
ClusterTls cluster_tls(const model::ConsolidatedRule* rule, std::uint16_t service_port,
                       const model::Subset* subset) noexcept;

// Why istiod builds a sidecar's cluster with no TLS at all although the DestinationRule asks for
// SIMPLE or MUTUAL (semantics §4): the client then sends plaintext to every endpoint.
enum class TlsDrop : std::uint8_t {
    None,
    // MUTUAL without clientCertificate/privateKey and without credentialName: Istio's webhook
    // refuses it; istiod logs "client certificate and private key must not be empty".
    MutualWithoutCertificates,
    // SIMPLE/MUTUAL with a credentialName in a DestinationRule without workloadSelector: sidecars
    // do not load such credentials (they are for egress gateways) and get no TLS (Istio 1.7+).
    CredentialNameOnSidecar,
};
std::string_view to_string(TlsDrop drop) noexcept;
TlsDrop dropped_tls(const ClusterTls& tls, const model::ConsolidatedRule* rule,
                    model::IstioVersion version) noexcept;

} // namespace mtlsguard::resolution
