// Client side: which DestinationRule a sidecar in each namespace uses for a host, and its TLS per
// port.
#include "analysis/resolution/destination_rule.hpp"

#include "analysis/resolution/sidecar.hpp"

#include <algorithm>
#include <iterator>
#include <optional>
#include <unordered_map>

namespace mtlsguard::resolution {
namespace {

const model::PortTrafficPolicy* port_entry(const model::TrafficPolicy& policy, std::uint16_t port) {
    for (const auto& entry : policy.port_level)
        if (entry.port == port)
            return &entry; // the first matching entry wins
    return nullptr;
}

// pilot's trafficPolicyTLSModeForPort: a port entry overrides only when it sets tls.
model::TlsSetting marking_for_port(const model::TrafficPolicy* policy, std::uint16_t port) {
    if (!policy)
        return std::nullopt;
    model::TlsSetting mode = policy->tls;
    if (const auto* entry = port_entry(*policy, port); entry && entry->tls)
        mode = entry->tls;
    return mode;
}

// Steps 2 and 3 of the lookup: rules exported by `owner` for the most specific key, if that key's
// rules are visible to the client; the last one wins. No retry with a less specific key.
const model::ConsolidatedRule* exported_rule(const ConfigView& view, NsId owner,
                                             const std::vector<std::string>& keys,
                                             std::string_view client_ns) {
    const auto* entries = most_specific(view.config(owner).exported, keys);
    if (!entries)
        return nullptr;
    const model::ConsolidatedRule* chosen = nullptr;
    for (const auto& rule : *entries)
        if (!rule.selector && rule.exported_to(client_ns))
            chosen = &rule;
    return chosen;
}

const model::ConsolidatedRule* default_rule(const ConfigView& view, NsId service_ns,
                                            const std::vector<std::string>& keys,
                                            std::string_view client_ns) {
    if (service_ns < view.namespace_count())
        if (const auto* rule = exported_rule(view, service_ns, keys, client_ns))
            return rule;
    if (view.root_namespace_id() < view.namespace_count())
        return exported_rule(view, view.root_namespace_id(), keys, client_ns);
    return nullptr;
}

// Where each Sidecar's hidden outcome is in the HostClients being built: a host hidden by every
// Sidecar of the mesh has one outcome per Sidecar, too many to search one by one.
using HiddenSlots = std::unordered_map<const model::Sidecar*, std::size_t>;

void add_outcome(HostClients& out, HiddenSlots& hidden, const model::ConsolidatedRule* rule,
                 const model::Sidecar* hidden_by, ClientClass member) {
    if (hidden_by && out.sidecars) {
        // A Sidecar of the class's own namespace: its outcome is the view's, with every class
        // that uses it as members.
        if (const auto slot = out.sidecars->slot_of(hidden_by)) {
            out.hidden[*slot / 64] |= std::uint64_t{1} << (*slot % 64);
            return;
        }
    }
    if (hidden_by) {
        // Hidden outcomes have no rule.
        auto [it, inserted] = hidden.try_emplace(hidden_by, out.outcomes.size());
        if (inserted)
            out.outcomes.push_back(ClientOutcome{nullptr, {member}, false, hidden_by});
        else
            out.outcomes[it->second].members.push_back(member);
        return;
    }
    for (auto& outcome : out.outcomes) {
        if (outcome.rule == rule && outcome.hidden_by == nullptr) {
            outcome.members.push_back(member);
            return;
        }
    }
    out.outcomes.push_back(ClientOutcome{rule, {member}, false, nullptr});
}

// The host one resolve_host_clients call is about, as the Sidecar check needs it.
struct HostInScope {
    const std::string& host;
    std::string_view host_ns; // the name of its namespace
    HiddenSlots& hidden;
};

// The Sidecar that hides the host from a client class, if any.
const model::Sidecar* hiding_sidecar(const ConfigView& view, const HostInScope& target,
                                     ClientClass member) {
    const model::Sidecar* sidecar = sidecar_of(view, member.ns, member.variant);
    if (sidecar &&
        !sidecar_imports(*sidecar, view.namespace_name(member.ns), target.host, target.host_ns))
        return sidecar;
    return nullptr;
}

// One client class's answer: `rule`, unless the Sidecar the class uses hides the host.
void add_class(HostClients& out, const ConfigView& view, const HostInScope& target,
               const model::ConsolidatedRule* rule, ClientClass member) {
    if (const model::Sidecar* sidecar = hiding_sidecar(view, target, member))
        add_outcome(out, target.hidden, nullptr, sidecar, member);
    else
        add_outcome(out, target.hidden, rule, nullptr, member);
}

// Everyone else: a namespace no rule names, seeing only what is exported to all, through the
// mesh's default Sidecar if there is one (they have none of their own).
void add_generic(HostClients& out, const ConfigView& view, const HostInScope& target,
                 NsId service_ns, const std::vector<std::string>& keys,
                 const model::Sidecar* mesh_default) {
    const model::Sidecar* hidden_by =
        mesh_default && !sidecar_imports(*mesh_default, {}, target.host, target.host_ns)
            ? mesh_default
            : nullptr;
    const auto* rule =
        hidden_by ? nullptr : default_rule(view, service_ns, keys, std::string_view());
    auto it = std::find_if(out.outcomes.begin(), out.outcomes.end(), [&](const auto& o) {
        return o.rule == rule && o.hidden_by == hidden_by;
    });
    if (it == out.outcomes.end())
        it = out.outcomes.insert(out.outcomes.end(), ClientOutcome{rule, {}, false, hidden_by});
    it->generic = true;
    out.generic = static_cast<std::uint32_t>(it - out.outcomes.begin());
}

// An entry whose host no Sidecar outcome hides keeps no bits at all.
void clear_if_none_hidden(HostClients& out) {
    if (std::all_of(out.hidden.begin(), out.hidden.end(), [](std::uint64_t w) { return w == 0; }))
        out.hidden.clear();
}

void note_export_names(const model::DrIndex& index, const std::vector<std::string>& keys,
                       std::vector<std::string>& names) {
    if (const auto* entries = most_specific(index, keys))
        for (const auto& rule : *entries)
            for (const auto& name : rule.export_to)
                if (name != "*")
                    names.push_back(name);
}

} // namespace

std::vector<std::string> candidate_keys(std::string_view host) {
    std::vector<std::string> keys;
    keys.emplace_back(host);
    for (std::size_t dot = host.find('.'); dot != std::string_view::npos;
         dot = host.find('.', dot + 1)) {
        // Built piecewise: GCC 12 at -O3 warns falsely (-Wrestrict) about "*" + std::string.
        std::string key;
        key.reserve(host.size() - dot + 1);
        key.push_back('*');
        key.append(host.substr(dot));
        keys.push_back(std::move(key));
    }
    keys.emplace_back("*");
    return keys;
}

const std::vector<model::ConsolidatedRule>*
most_specific(const model::DrIndex& index, const std::vector<std::string>& keys) noexcept {
    if (index.empty())
        return nullptr;
    if (auto it = index.specific.find(keys.front()); it != index.specific.end())
        return &it->second;
    for (std::size_t i = 1; i < keys.size(); ++i)
        if (auto it = index.wildcard.find(keys[i]); it != index.wildcard.end())
            return &it->second;
    return nullptr;
}

const model::ConsolidatedRule*
choose_for_variant(const std::vector<model::ConsolidatedRule>& entries,
                   const model::ClientVariant* variant) noexcept {
    const model::ConsolidatedRule* catch_all = nullptr;
    for (const auto& rule : entries) {
        if (!rule.selector) {
            catch_all = &rule;
        } else if (variant &&
                   std::find(variant->selector_rules.begin(), variant->selector_rules.end(),
                             rule.members.front()) != variant->selector_rules.end()) {
            return &rule;
        }
    }
    return catch_all;
}

std::optional<std::uint32_t>
SidecarOutcomes::slot_of(const model::Sidecar* sidecar) const noexcept {
    const auto it = std::lower_bound(slots.begin(), slots.end(), sidecar,
                                     [](const auto& slot, const model::Sidecar* s) {
                                         return std::less<const model::Sidecar*>()(slot.first, s);
                                     });
    if (it == slots.end() || it->first != sidecar)
        return std::nullopt;
    return it->second;
}

std::shared_ptr<const SidecarOutcomes> build_sidecar_outcomes(const ConfigView& view) {
    auto out = std::make_shared<SidecarOutcomes>();
    const model::Sidecar* mesh_default = mesh_default_sidecar(view);
    for (NsId ns : view.sidecar_namespaces()) {
        out->namespaces.push_back(ns);
        // A namespace's variants are next to each other: its Sidecars are the slots from here on.
        // Only those are searched: searching every slot made a mesh of S Sidecars cost S².
        const std::size_t own_slots = out->slots.size();
        const auto variants = view.config(ns).variants.size();
        for (std::size_t v = 0; v < variants; ++v) {
            const model::Sidecar* sidecar = sidecar_of(view, ns, v);
            if (!sidecar || sidecar == mesh_default)
                continue;
            const ClientClass member{ns, static_cast<std::uint16_t>(v)};
            const auto from = out->slots.begin() + static_cast<std::ptrdiff_t>(own_slots);
            const auto it = std::find_if(from, out->slots.end(),
                                         [&](const auto& slot) { return slot.first == sidecar; });
            if (it != out->slots.end()) {
                out->outcomes[it->second].members.push_back(member);
                continue;
            }
            out->slots.emplace_back(sidecar, static_cast<std::uint32_t>(out->outcomes.size()));
            out->outcomes.push_back(ClientOutcome{nullptr, {member}, false, sidecar});
        }
    }
    std::sort(out->namespaces.begin(), out->namespaces.end());
    std::sort(out->slots.begin(), out->slots.end(), [](const auto& a, const auto& b) {
        return std::less<const model::Sidecar*>()(a.first, b.first);
    });
    return out;
}

bool HostClients::answers_for(NsId ns) const noexcept {
    return std::binary_search(resolved.begin(), resolved.end(), ns) ||
           (sidecars &&
            std::binary_search(sidecars->namespaces.begin(), sidecars->namespaces.end(), ns));
}

std::size_t HostClients::own_answers() const noexcept {
    return resolved.size() + (sidecars ? sidecars->namespaces.size() : 0);
}

HostNamespaceScan scan_sidecar_namespaces(const ConfigView& view, NsId host_ns) {
    HostNamespaceScan scan;
    const auto& sidecars = view.sidecar_outcomes();
    if (!sidecars || sidecars->namespaces.empty()) {
        scan.rest = view.sidecar_namespaces();
        return scan;
    }
    scan.hidden.assign((sidecars->outcomes.size() + 63) / 64, 0);
    const std::string_view host_ns_name = host_ns < view.namespace_count()
                                              ? std::string_view(view.namespace_name(host_ns))
                                              : std::string_view();
    std::vector<std::uint32_t> slots;
    for (NsId ns : view.sidecar_namespaces()) {
        // Every class must use a Sidecar with a slot (not the mesh's default) that imports
        // nothing from the host's namespace: then add_class would only set its slot's bit.
        slots.clear();
        const auto variants = view.config(ns).variants.size();
        bool hides_all = true;
        for (std::size_t v = 0; v < variants && hides_all; ++v) {
            const model::Sidecar* sidecar = sidecar_of(view, ns, v);
            const auto slot = sidecar ? sidecars->slot_of(sidecar) : std::nullopt;
            hides_all =
                slot && !sidecar_may_import_from(*sidecar, view.namespace_name(ns), host_ns_name);
            if (hides_all)
                slots.push_back(*slot);
        }
        if (!hides_all) {
            scan.rest.push_back(ns);
            continue;
        }
        for (std::uint32_t slot : slots)
            scan.hidden[slot / 64] |= std::uint64_t{1} << (slot % 64);
    }
    return scan;
}

HostClients resolve_host_clients(const ConfigView& view, const std::string& host, NsId service_ns) {
    return resolve_host_clients(view, host, service_ns, scan_sidecar_namespaces(view, service_ns));
}

HostClients resolve_host_clients(const ConfigView& view, const std::string& host, NsId service_ns,
                                 const HostNamespaceScan& scan) {
    HostClients out;
    if (const auto& sidecars = view.sidecar_outcomes(); sidecars && !sidecars->namespaces.empty()) {
        out.sidecars = sidecars;
        out.hidden.assign((sidecars->outcomes.size() + 63) / 64, 0);
    }
    const auto keys = candidate_keys(host);
    const auto override_ns = view.overridden_namespace();
    static thread_local HiddenSlots hidden;
    hidden.clear();
    const HostInScope target{host,
                             service_ns < view.namespace_count()
                                 ? std::string_view(view.namespace_name(service_ns))
                                 : std::string_view(),
                             hidden};

    // Step 1: client namespaces whose own rules match the host (most specific key per namespace).
    std::vector<NsId> step1;
    auto take_step1 = [&](NsId ns, const std::vector<model::ConsolidatedRule>& entries) {
        step1.push_back(ns);
        const auto& variants = view.config(ns).variants;
        for (std::size_t v = 0; v < variants.size(); ++v)
            add_class(out, view, target, choose_for_variant(entries, &variants[v]),
                      ClientClass{ns, static_cast<std::uint16_t>(v)});
    };
    if (override_ns && view.is_mesh_client(*override_ns))
        if (const auto* entries = most_specific(view.config(*override_ns).local, keys))
            take_step1(*override_ns, *entries);
    const auto& snapshot = view.snapshot();
    std::vector<bool> seen;
    for (std::size_t k = 0; k < keys.size(); ++k) {
        const auto* namespaces = snapshot.namespaces_with_local_key(keys[k]);
        if (!namespaces)
            continue;
        if (seen.empty())
            seen.assign(view.namespace_count(), false);
        for (NsId ns : *namespaces) {
            if (seen[ns] || (override_ns && ns == *override_ns))
                continue;
            seen[ns] = true;
            if (!view.is_mesh_client(ns))
                continue;
            const auto& index = view.config(ns).local; // a relabel's own, after a restart
            const auto& map = k == 0 ? index.specific : index.wildcard;
            take_step1(ns, map.at(keys[k]));
        }
    }

    // Namespaces named in the exportTo of the rules steps 2 and 3 would pick get their own
    // answer; so do those with Sidecars of their own, and the host's own namespace when the mesh
    // has a default Sidecar (ambient.md §14).
    std::vector<std::string> names;
    if (service_ns < view.namespace_count())
        note_export_names(view.config(service_ns).exported, keys, names);
    if (view.root_namespace_id() < view.namespace_count())
        note_export_names(view.config(view.root_namespace_id()).exported, keys, names);
    // Every namespace with an answer of its own, the Sidecar outcomes' included.
    std::vector<NsId> own = std::move(step1);
    std::sort(own.begin(), own.end());
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    auto resolve_namespace = [&](NsId ns) {
        if (!view.is_mesh_client(ns) || std::binary_search(own.begin(), own.end(), ns))
            return;
        // The rule only for classes that see the host: most Sidecars hide most hosts.
        std::optional<const model::ConsolidatedRule*> rule;
        const auto variants = view.config(ns).variants.size();
        for (std::size_t v = 0; v < variants; ++v) {
            const ClientClass member{ns, static_cast<std::uint16_t>(v)};
            if (const model::Sidecar* sidecar = hiding_sidecar(view, target, member)) {
                add_outcome(out, hidden, nullptr, sidecar, member);
                continue;
            }
            if (!rule)
                rule = default_rule(view, service_ns, keys, view.namespace_name(ns));
            add_outcome(out, hidden, *rule, nullptr, member);
        }
        own.insert(std::lower_bound(own.begin(), own.end(), ns), ns);
    };
    for (const auto& name : names)
        if (auto ns = view.namespace_id(name))
            resolve_namespace(*ns);
    for (NsId ns : scan.rest)
        resolve_namespace(ns);
    // The others hide the host from all their classes; like the rest, each has an answer of its
    // own.
    for (std::size_t w = 0; w < scan.hidden.size() && w < out.hidden.size(); ++w)
        out.hidden[w] |= scan.hidden[w];
    const auto& sidecar_ns = view.sidecar_namespaces();
    // Usually the view's Sidecar outcomes are its own: then no Sidecar namespace is among
    // `resolved`, and `own` is counted with them instead of merged (10,000 hosts × 1,000 Sidecar
    // namespaces, at Kubernetes' limit).
    const bool own_outcomes = out.sidecars && out.sidecars->namespaces == sidecar_ns;
    if (!own_outcomes && !sidecar_ns.empty()) {
        std::vector<NsId> merged;
        merged.reserve(own.size() + sidecar_ns.size());
        std::set_union(own.begin(), own.end(), sidecar_ns.begin(), sidecar_ns.end(),
                       std::back_inserter(merged));
        own = std::move(merged);
    }
    auto sidecar_namespace = [&](NsId ns) {
        return std::binary_search(sidecar_ns.begin(), sidecar_ns.end(), ns);
    };
    const model::Sidecar* mesh_default = mesh_default_sidecar(view);
    if (mesh_default && service_ns < view.namespace_count() &&
        !(own_outcomes && sidecar_namespace(service_ns)))
        resolve_namespace(service_ns);

    const std::size_t answers =
        own_outcomes
            ? sidecar_ns.size() +
                  static_cast<std::size_t>(std::count_if(
                      own.begin(), own.end(), [&](NsId ns) { return !sidecar_namespace(ns); }))
            : own.size();
    if (answers < view.mesh_client_namespaces().size())
        add_generic(out, view, target, service_ns, keys, mesh_default);
    out.outcomes.shrink_to_fit(); // kept for the snapshot's lifetime in its client index
    if (out.sidecars)
        std::set_difference(own.begin(), own.end(), out.sidecars->namespaces.begin(),
                            out.sidecars->namespaces.end(), std::back_inserter(out.resolved));
    else
        out.resolved = std::move(own);
    out.resolved.shrink_to_fit();
    clear_if_none_hidden(out);
    out.hidden.shrink_to_fit();
    return out;
}

const model::ConsolidatedRule* rule_for_namespace(const ConfigView& view, const std::string& host,
                                                  NsId service_ns, NsId client_ns) {
    const auto keys = candidate_keys(host);
    if (client_ns < view.namespace_count())
        if (const auto* entries = most_specific(view.config(client_ns).local, keys))
            return choose_for_variant(*entries, nullptr);
    return default_rule(view, service_ns, keys, view.namespace_name(client_ns));
}

SidecarScanBase::SidecarScanBase(const ConfigView& view) {
    const auto& sidecars = view.sidecar_outcomes();
    if (!sidecars || sidecars->namespaces.empty()) {
        always_rest = view.sidecar_namespaces();
        return;
    }
    all_hidden.assign((sidecars->outcomes.size() + 63) / 64, 0);
    std::vector<std::string_view> names;
    for (NsId ns : view.sidecar_namespaces()) {
        // As scan_sidecar_namespaces: every class uses a Sidecar with a slot; here none of
        // them imports from every namespace ("*"), and `names` are those it imports from.
        std::vector<std::uint32_t> own_slots;
        names.clear();
        bool clean = true;
        const auto variants = view.config(ns).variants.size();
        for (std::size_t v = 0; v < variants && clean; ++v) {
            const model::Sidecar* sidecar = sidecar_of(view, ns, v);
            const auto slot = sidecar ? sidecars->slot_of(sidecar) : std::nullopt;
            clean = slot.has_value();
            if (!clean)
                break;
            own_slots.push_back(*slot);
            for (const auto& entry : sidecar->egress_hosts) {
                const std::string_view part = entry.namespace_part == "."
                                                  ? std::string_view(view.namespace_name(ns))
                                                  : std::string_view(entry.namespace_part);
                clean = part != "*";
                if (!clean)
                    break;
                if (!part.empty())
                    names.push_back(part);
            }
        }
        if (!clean) {
            always_rest.push_back(ns);
            continue;
        }
        for (std::uint32_t slot : own_slots)
            all_hidden[slot / 64] |= std::uint64_t{1} << (slot % 64);
        for (std::string_view name : names)
            importers[std::string(name)].push_back(ns);
        slots.emplace(ns, std::move(own_slots));
    }
}

const std::vector<NsId>* SidecarScanBase::importers_of(const ConfigView& view, NsId host_ns) const {
    if (host_ns >= view.namespace_count() || importers.empty())
        return nullptr;
    const auto it = importers.find(view.namespace_name(host_ns));
    return it == importers.end() ? nullptr : &it->second;
}

bool SidecarScanBase::hides_all(const ConfigView& view, NsId ns, NsId host_ns) const {
    if (!slots.contains(ns))
        return false; // no slot for some class, an import from "*", or no Sidecar outcomes
    const auto* from = importers_of(view, host_ns);
    return !from || std::find(from->begin(), from->end(), ns) == from->end();
}

HostNamespaceScan SidecarScanBase::scan(const ConfigView& view, NsId host_ns) const {
    HostNamespaceScan out;
    out.hidden = all_hidden;
    out.rest = always_rest;
    const auto* from = importers_of(view, host_ns);
    if (!from)
        return out;
    for (NsId ns : *from) {
        for (std::uint32_t slot : slots.at(ns))
            out.hidden[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
        out.rest.push_back(ns);
    }
    std::sort(out.rest.begin(), out.rest.end());
    out.rest.erase(std::unique(out.rest.begin(), out.rest.end()), out.rest.end());
    return out;
}

namespace {

// The scans of every host namespace of one view, each made once from the view's SidecarScanBase.
class ScanCache {
  public:
    explicit ScanCache(const ConfigView& view)
        : view_(view), base_(std::make_shared<const SidecarScanBase>(view)) {}

    const std::shared_ptr<const SidecarScanBase>& base() const noexcept { return base_; }
    bool hides_all(NsId ns, NsId host_ns) const { return base_->hides_all(view_, ns, host_ns); }
    // The slots of the Sidecar namespace `ns` when hides_all can hold for it, else null.
    const std::vector<std::uint32_t>* slots_of(NsId ns) const {
        const auto it = base_->slots.find(ns);
        return it == base_->slots.end() ? nullptr : &it->second;
    }

    HostClients resolve(const std::string& host, NsId host_ns) {
        auto [it, inserted] = scans_.try_emplace(host_ns);
        if (inserted)
            it->second = base_->scan(view_, host_ns);
        return resolve_host_clients(view_, host, host_ns, it->second);
    }

  private:
    const ConfigView& view_;
    std::shared_ptr<const SidecarScanBase> base_;
    std::unordered_map<NsId, HostNamespaceScan> scans_;
};

} // namespace

std::shared_ptr<const ClientIndex> build_client_index(const model::Snapshot& snapshot) {
    auto index = std::make_shared<ClientIndex>();
    const ConfigView view(snapshot);
    ScanCache scans(view);
    index->sidecars = view.sidecar_outcomes();
    index->scan_base = scans.base();
    index->services.reserve(snapshot.services().size());
    for (const auto& service : snapshot.services())
        index->services.push_back(scans.resolve(service.host, service.ns));
    for (const auto& host : snapshot.external_hosts())
        index->external_hosts.push_back(scans.resolve(host.host, host.ns));
    return index;
}

namespace {

bool names_any(const model::DrIndex& index, const std::vector<std::string_view>& names) {
    for (const auto* map : {&index.specific, &index.wildcard})
        for (const auto& [key, rules] : *map)
            for (const auto& rule : rules)
                for (const auto& name : rule.export_to)
                    if (std::find(names.begin(), names.end(), name) != names.end())
                        return true;
    return false;
}

} // namespace

IndexReach::IndexReach(const ConfigView& now, const model::Snapshot& previous,
                       std::vector<NsId> changed)
    : changed_(std::move(changed)), clients_before_(previous.mesh_client_namespaces().size()),
      clients_now_(now.mesh_client_namespaces().size()) {
    std::sort(changed_.begin(), changed_.end());
    // The root namespace's rules are every host's fallback; a namespace with Sidecars has its
    // own answer for every host (ambient.md §14): when one had or has them, every entry may
    // differ.
    for (NsId ns : changed_) {
        const bool root = ns == now.root_namespace_id();
        const bool sidecars =
            !now.config(ns).sidecars.empty() || !previous.config(ns).sidecars.empty();
        root_changed_ = root_changed_ || root;
        if (sidecars && !root)
            sidecar_changes_.push_back(ns);
    }
    // The changed namespaces' own rules may add them to step 1 for the hosts their keys match.
    std::vector<std::string_view> moved;
    for (NsId ns : changed_) {
        const auto& local = now.config(ns).local;
        for (const auto* map : {&local.specific, &local.wildcard})
            for (const auto& entry : *map)
                keys_.push_back(&entry.first);
        const auto& before = previous.mesh_client_namespaces();
        if (now.is_mesh_client(ns) != std::binary_search(before.begin(), before.end(), ns))
            moved.push_back(now.namespace_name(ns));
    }
    // A namespace that becomes a sidecar client or stops being one (a relabel, ambient.md §17)
    // is resolved where an exportTo names it (few namespaces: exportTo is mostly "*" or ".").
    if (moved.empty())
        return;
    naming_.assign(now.namespace_count(), false);
    for (NsId ns = 0; ns < naming_.size(); ++ns)
        naming_[ns] = names_any(now.config(ns).exported, moved);
}

bool IndexReach::reaches(const std::string& host, NsId host_ns, NsId root,
                         const HostClients& old) const {
    return everything() || reaches_besides_sidecars(host, host_ns, root, old);
}

bool IndexReach::reaches_besides_sidecars(const std::string& host, NsId host_ns, NsId root,
                                          const HostClients& old) const {
    if (root_changed_)
        return true;
    auto changed = [&](NsId ns) {
        return std::binary_search(changed_.begin(), changed_.end(), ns);
    };
    // An entry refers to the rules and variants of the host's namespace, the root, and the
    // namespaces in `resolved` (step 1, or named by an exportTo).
    // (The namespaces of old.sidecars hold Sidecars: when one of them changed, everything(), and
    // update_client_index moves the entry to the new Sidecar outcomes or resolves it again.)
    if (changed(host_ns) || std::any_of(old.resolved.begin(), old.resolved.end(), changed))
        return true;
    for (const std::string* key : keys_) {
        // Over-approximates candidate_keys(): any key the host could match, and then some.
        if (*key == host || *key == "*" ||
            (!key->empty() && (*key)[0] == '*' && host.ends_with(std::string_view(*key).substr(1))))
            return true;
    }
    if (naming_.empty())
        return false;
    if (naming_[host_ns] || (root < naming_.size() && naming_[root]))
        return true;
    // Whether some mesh client is left without an answer of its own (the generic outcome).
    const std::size_t own = old.own_answers();
    return (own < clients_before_) != (own < clients_now_);
}

namespace {

// Moves index entries to a new view's Sidecar outcomes when the only change that reaches them is
// in Sidecar namespaces whose classes the entry's host is hidden from, before and after: a new
// workload shape in such a namespace changes the members of its Sidecars' outcomes, which every
// entry refers to, and nothing else of the entries of hosts its Sidecars do not import. At
// Kubernetes' limit this saves resolving 10,000 hosts again for one pod event.
class SidecarRebase {
  public:
    SidecarRebase(const ConfigView& now, const ScanCache& now_scans, const ScanCache& old_scans,
                  std::vector<NsId> changed)
        : outcomes_(now.sidecar_outcomes()), now_scans_(now_scans), old_scans_(old_scans),
          changed_(std::move(changed)) {
        for (NsId ns : changed_)
            if (const auto* slots = now_scans.slots_of(ns))
                changed_slots_.insert(changed_slots_.end(), slots->begin(), slots->end());
        // A Sidecar's slot is listed once per class that uses it.
        std::sort(changed_slots_.begin(), changed_slots_.end());
        changed_slots_.erase(std::unique(changed_slots_.begin(), changed_slots_.end()),
                             changed_slots_.end());
    }

    // `old` for a host of `host_ns` on the new outcomes, or nothing when it must be resolved.
    std::optional<HostClients> apply(const HostClients& old, NsId host_ns) {
        if (!outcomes_ || !old.sidecars)
            return std::nullopt;
        for (NsId ns : changed_)
            if (!old_scans_.hides_all(ns, host_ns) || !now_scans_.hides_all(ns, host_ns))
                return std::nullopt;
        const Remap& remap = remap_from(*old.sidecars);
        if (!remap.valid)
            return std::nullopt;
        HostClients out;
        out.outcomes = old.outcomes;
        out.resolved = old.resolved;
        out.generic = old.generic;
        out.sidecars = outcomes_;
        if (remap.identity) {
            out.hidden = old.hidden;
        } else {
            out.hidden.assign((outcomes_->outcomes.size() + 63) / 64, 0);
            for (std::size_t word = 0; word < old.hidden.size(); ++word)
                for (std::uint64_t bits = old.hidden[word]; bits != 0; bits &= bits - 1) {
                    const auto to =
                        remap.to[word * 64 + static_cast<std::size_t>(__builtin_ctzll(bits))];
                    if (to != dropped)
                        out.hidden[to / 64] |= std::uint64_t{1} << (to % 64);
                }
        }
        // The changed namespaces hide the host from every class they have now.
        out.hidden.resize((outcomes_->outcomes.size() + 63) / 64, 0);
        for (std::uint32_t slot : changed_slots_)
            out.hidden[slot / 64] |= std::uint64_t{1} << (slot % 64);
        clear_if_none_hidden(out); // as resolve_host_clients leaves it
        return out;
    }

  private:
    static constexpr std::uint32_t dropped = 0xffffffffu;
    // Where each outcome of an older SidecarOutcomes is in the new one: the same Sidecar, with the
    // same members (the namespace did not change); the changed namespaces' are dropped.
    struct Remap {
        bool valid = true;
        bool identity = false; // every outcome where it was, the changed ones' slots the same
        std::vector<std::uint32_t> to;
    };

    const Remap& remap_from(const SidecarOutcomes& from) {
        auto [it, inserted] = remaps_.try_emplace(&from);
        if (!inserted)
            return it->second;
        Remap& remap = it->second;
        remap.to.assign(from.outcomes.size(), dropped);
        std::vector<std::uint32_t> dropped_slots;
        for (std::uint32_t i = 0; i < from.outcomes.size() && remap.valid; ++i) {
            const ClientOutcome& outcome = from.outcomes[i];
            remap.valid = !outcome.members.empty() && outcome.hidden_by;
            if (!remap.valid)
                break;
            if (std::binary_search(changed_.begin(), changed_.end(), outcome.members[0].ns)) {
                dropped_slots.push_back(i);
                continue;
            }
            const auto slot = outcomes_->slot_of(outcome.hidden_by);
            remap.valid = slot && std::equal(outcome.members.begin(), outcome.members.end(),
                                             outcomes_->outcomes[*slot].members.begin(),
                                             outcomes_->outcomes[*slot].members.end());
            if (remap.valid)
                remap.to[i] = *slot;
        }
        bool identity = remap.valid && from.outcomes.size() == outcomes_->outcomes.size() &&
                        dropped_slots == changed_slots_;
        for (std::uint32_t i = 0; identity && i < remap.to.size(); ++i)
            identity = remap.to[i] == i || remap.to[i] == dropped;
        remap.identity = identity;
        return remap;
    }

    std::shared_ptr<const SidecarOutcomes> outcomes_; // the new view's
    const ScanCache& now_scans_;
    const ScanCache& old_scans_;
    std::vector<NsId> changed_;                // sorted
    std::vector<std::uint32_t> changed_slots_; // theirs in outcomes_, sorted
    std::unordered_map<const SidecarOutcomes*, Remap> remaps_;
};

} // namespace

std::shared_ptr<const ClientIndex>
update_client_index(const model::Snapshot& snapshot, const model::Snapshot& previous,
                    const std::vector<bool>& changed,
                    const std::vector<std::uint32_t>& previous_service,
                    const std::vector<std::uint32_t>& previous_host) {
    const ConfigView view(snapshot);
    std::vector<NsId> namespaces;
    for (NsId ns = 0; ns < changed.size(); ++ns)
        if (changed[ns])
            namespaces.push_back(ns);
    const IndexReach reach(view, previous, std::move(namespaces));
    // Sidecar namespaces changed: the entries their Sidecars hide the host from are moved to the
    // new Sidecar outcomes, the others resolved again. Not when the set of Sidecar namespaces
    // changed (every entry counts them) or the root namespace did (every host's fallback).
    // The previous view only then: most events change no Sidecar namespace.
    std::optional<ConfigView> previous_view;
    if (reach.everything()) {
        if (reach.root_changed())
            return build_client_index(snapshot);
        previous_view.emplace(previous);
        if (view.sidecar_namespaces() != previous_view->sidecar_namespaces())
            return build_client_index(snapshot);
    }
    constexpr std::uint32_t none = 0xffffffffu;
    const NsId root = view.root_namespace_id();
    auto index = std::make_shared<ClientIndex>();
    ScanCache scans(view);
    std::optional<ScanCache> previous_scans;
    std::optional<SidecarRebase> rebase;
    if (previous_view) {
        previous_scans.emplace(*previous_view);
        rebase.emplace(view, scans, *previous_scans, reach.sidecar_changes());
    }
    // The entry of `old` kept, moved to the new Sidecar outcomes, or resolved again.
    auto entry = [&](const std::string& host, NsId host_ns, std::uint32_t old,
                     const std::vector<HostClients>& entries) {
        if (old == none || reach.reaches_besides_sidecars(host, host_ns, root, entries[old]))
            return scans.resolve(host, host_ns);
        if (!rebase)
            return entries[old];
        if (auto moved = rebase->apply(entries[old], host_ns))
            return std::move(*moved);
        return scans.resolve(host, host_ns);
    };
    index->sidecars = view.sidecar_outcomes();
    index->scan_base = scans.base();
    const auto& before = previous.client_index();
    index->services.reserve(snapshot.services().size());
    for (std::size_t i = 0; i < snapshot.services().size(); ++i) {
        const auto& service = snapshot.services()[i];
        index->services.push_back(
            entry(service.host, service.ns, previous_service[i], before.services));
    }
    index->external_hosts.reserve(snapshot.external_hosts().size());
    for (std::size_t i = 0; i < snapshot.external_hosts().size(); ++i) {
        const auto& host = snapshot.external_hosts()[i];
        index->external_hosts.push_back(
            entry(host.host, host.ns, previous_host[i], before.external_hosts));
    }
    return index;
}

std::shared_ptr<const ClientIndex> index_clients(const model::Snapshot& snapshot,
                                                 const model::SnapshotReuse* reuse) {
    if (!reuse)
        return build_client_index(snapshot);
    return update_client_index(snapshot, reuse->previous, reuse->rebuilt, reuse->previous_service,
                               reuse->previous_host);
}

bool ConfigView::shares_sidecar_scans() const noexcept {
    // A view replaces one namespace's configuration at most; init_sidecar_outcomes keeps the
    // snapshot's outcomes only when that namespace holds no Sidecar and is not the root. Left
    // out: a relabel (its clients may change) and a view restricted to one namespace's clients.
    return !relabel_ && !restricted_ && snapshot_->has_client_index() &&
           snapshot_->client_index().scan_base &&
           sidecar_outcomes_ == snapshot_->client_index().sidecars;
}

namespace {

// A host's clients resolved in `view`, the scan of its namespace from the snapshot's one pass when
// the view shares it: a changed DestinationRule's namespace holds a few hosts, and scanning 1,000
// Sidecar namespaces for each was half of such a decision at Kubernetes' limit.
HostClients resolve_in(const ConfigView& view, const std::string& host, NsId host_ns) {
    if (view.shares_sidecar_scans())
        return resolve_host_clients(view, host, host_ns,
                                    view.snapshot().client_index().scan_base->scan(view, host_ns));
    return resolve_host_clients(view, host, host_ns);
}

} // namespace

const HostClients& ConfigView::service_clients(model::ServiceId service,
                                               HostClients& scratch) const {
    const auto& record = snapshot_->services()[service];
    const auto& entry = snapshot_->client_index().services[service];
    if (!rules_changed_ && !restricted_ &&
        !(reach_ && reach_->reaches(record.host, record.ns, root_ns_, entry)))
        return entry;
    scratch = resolve_in(*this, record.host, record.ns);
    return scratch;
}

const HostClients& ConfigView::external_clients(std::size_t index, HostClients& scratch) const {
    const auto& host = snapshot_->external_hosts()[index];
    const auto& entry = snapshot_->client_index().external_hosts[index];
    if (!rules_changed_ && !restricted_ &&
        !(reach_ && reach_->reaches(host.host, host.ns, root_ns_, entry)))
        return entry;
    scratch = resolve_in(*this, host.host, host.ns);
    return scratch;
}

std::vector<ClientClass> expand_members(const ConfigView& view, const ClientOutcome& outcome,
                                        const HostClients& clients) {
    std::vector<ClientClass> members(outcome.members.begin(), outcome.members.end());
    if (outcome.generic) {
        for (NsId ns : view.mesh_client_namespaces()) {
            if (clients.answers_for(ns))
                continue;
            const auto variants = view.config(ns).variants.size();
            for (std::size_t v = 0; v < variants; ++v)
                members.push_back(ClientClass{ns, static_cast<std::uint16_t>(v)});
        }
    }
    std::sort(members.begin(), members.end());
    return members;
}

std::vector<NsId> outcome_namespaces(const ConfigView& view, const ClientOutcome& outcome,
                                     const HostClients& clients) {
    std::vector<NsId> own;
    own.reserve(outcome.members.size());
    for (const ClientClass& c : outcome.members)
        own.push_back(c.ns);
    std::sort(own.begin(), own.end());
    own.erase(std::unique(own.begin(), own.end()), own.end());
    if (!outcome.generic)
        return own;
    // Every mesh client namespace without an answer of its own (each has at least one variant),
    // merged with the outcome's listed ones: all sorted, so one pass.
    const auto& mesh = view.mesh_client_namespaces();
    std::vector<NsId> out;
    out.reserve(mesh.size() + own.size());
    auto next_own = own.begin();
    struct Skip {
        std::vector<NsId>::const_iterator at, end;
        bool has(NsId ns) {
            while (at != end && *at < ns)
                ++at;
            return at != end && *at == ns;
        }
    };
    static const std::vector<NsId> none;
    const auto& with_sidecars = clients.sidecars ? clients.sidecars->namespaces : none;
    Skip resolved{clients.resolved.begin(), clients.resolved.end()};
    Skip sidecar_namespaces{with_sidecars.begin(), with_sidecars.end()};
    for (NsId ns : mesh) {
        if (resolved.has(ns) || sidecar_namespaces.has(ns))
            continue;
        while (next_own != own.end() && *next_own < ns)
            out.push_back(*next_own++);
        if (next_own != own.end() && *next_own == ns)
            ++next_own;
        out.push_back(ns);
    }
    out.insert(out.end(), next_own, own.end());
    return out;
}

ClusterTls cluster_tls(const model::ConsolidatedRule* rule, std::uint16_t service_port,
                       const model::Subset* subset) noexcept {
    ClusterTls out;
    const model::TrafficPolicy* policy = rule ? rule->traffic_policy() : nullptr;
    if (policy) {
        out.passthrough = policy->passthrough_load_balancer;
        // A matching port entry replaces the top-level policy wholesale, tls included.
        const auto* entry = port_entry(*policy, service_port);
        out.cluster = entry ? entry->tls : policy->tls;
        out.credentials = entry ? &entry->credentials : &policy->credentials;
    }
    out.endpoint_marking = marking_for_port(policy, service_port);
    if (subset && subset->traffic_policy) {
        const auto& sp = *subset->traffic_policy;
        if (const auto* entry = port_entry(sp, service_port)) {
            out.cluster = entry->tls;
            out.credentials = &entry->credentials;
        } else if (sp.tls) {
            out.cluster = sp.tls;
            out.credentials = &sp.credentials;
        }
        if (auto marking = marking_for_port(&sp, service_port))
            out.endpoint_marking = marking;
        if (sp.passthrough_load_balancer)
            out.passthrough = true;
    }
    return out;
}

std::string_view to_string(TlsDrop drop) noexcept {
    switch (drop) {
    case TlsDrop::None:
        return "";
    case TlsDrop::MutualWithoutCertificates:
        return "mutual-without-certificates";
    case TlsDrop::CredentialNameOnSidecar:
        return "credential-name-on-sidecar";
    }
    return "";
}

TlsDrop dropped_tls(const ClusterTls& tls, const model::ConsolidatedRule* rule,
                    model::IstioVersion version) noexcept {
    if (!tls.cluster || !tls.credentials ||
        (*tls.cluster != model::TlsMode::Simple && *tls.cluster != model::TlsMode::Mutual))
        return TlsDrop::None;
    const auto& credentials = *tls.credentials;
    // istiod's cluster builder (cluster_tls.go, buildUpstreamClusterTLSContext): a credentialName
    // is for gateways; a sidecar gets no TLS context unless the rule selects its pods. From 1.26
    // a configmap:// credential (a CA bundle anyone may read) is exempt.
    const bool modern = version.modern();
    if (!credentials.credential_name.empty()) {
        const bool config_map = credentials.credential_name.rfind("configmap://", 0) == 0;
        if (modern && !config_map && !(rule && rule->selector))
            return TlsDrop::CredentialNameOnSidecar;
        return TlsDrop::None;
    }
    // constructUpstreamTLS: "client certificate and private key must not be empty" (all versions).
    if (*tls.cluster == model::TlsMode::Mutual &&
        (!credentials.client_certificate || !credentials.private_key))
        return TlsDrop::MutualWithoutCertificates;
    return TlsDrop::None;
}

} // namespace mtlsguard::resolution
