// Admission of Sidecar resources (ambient.md §14, §17): which hosts a change shows or hides.
#include "analysis/admission/sidecar_change.hpp"

#include "analysis/conflict/flows.hpp"
#include "analysis/conflict/sidecar_findings.hpp"
#include "analysis/report/messages.hpp"
#include "analysis/resolution/client_send.hpp"
#include "analysis/resolution/server_index.hpp"
#include "analysis/resolution/server_mode.hpp"
#include "analysis/resolution/sidecar.hpp"

#include <algorithm>
#include <optional>
#include <set>

namespace mtlsguard::admission {
namespace {

using model::NsId;
using resolution::ConfigView;

// What a client class sees in one view: nothing (it is no mesh client there), every host (no
// Sidecar applies), or what its Sidecar imports.
struct Sight {
    bool client = false;
    const model::Sidecar* sidecar = nullptr;
    friend bool operator==(const Sight&, const Sight&) = default;
};

// A pair of sights, before and after, and the namespaces of the classes that have it.
struct SightChange {
    Sight before, after;
    std::vector<NsId> namespaces;
};

// The Sidecar under review, by namespace and name.
struct Reviewed {
    const std::string& ns;
    const std::string& name;
    bool is(const model::Sidecar* sidecar) const noexcept {
        return sidecar && sidecar->ref.namespace_name == ns && sidecar->ref.name == name;
    }
};

Sight sight_of(const ConfigView& view, std::optional<NsId> ns, std::size_t variant) {
    if (!ns || !view.is_mesh_client(*ns) || variant >= view.config(*ns).variants.size())
        return {};
    return {true, resolution::sidecar_of(view, *ns, variant)};
}

// Whether two sights see the same hosts: the same Sidecar of the snapshot, or two copies of one
// the change leaves alone (the views copy the changed namespace's configuration).
bool same_sight(const Sight& a, const Sight& b, const Reviewed& reviewed) {
    if (a.client != b.client)
        return false;
    if (!a.client || a.sidecar == b.sidecar)
        return true;
    return a.sidecar && b.sidecar &&
           a.sidecar->ref.namespace_name == b.sidecar->ref.namespace_name &&
           a.sidecar->ref.name == b.sidecar->ref.name && !reviewed.is(a.sidecar);
}

void add_change(std::vector<SightChange>& out, const Sight& before, const Sight& after, NsId ns,
                const Reviewed& reviewed) {
    if (same_sight(before, after, reviewed))
        return;
    auto it = std::find_if(out.begin(), out.end(), [&](const SightChange& c) {
        return c.before == before && c.after == after;
    });
    if (it == out.end())
        it = out.insert(out.end(), SightChange{before, after, {}});
    it->namespaces.push_back(ns);
}

// Each sidecar pod of namespace `ns` (by its position there): its variant in `view`, or none.
constexpr std::uint32_t no_variant = 0xffffffffu;
std::vector<std::uint32_t> variant_by_position(const ConfigView& view, std::optional<NsId> ns) {
    std::vector<std::uint32_t> out;
    if (!ns || *ns >= view.snapshot().namespaces().size())
        return out;
    out.assign(view.snapshot().namespaces()[*ns].workloads.size(), no_variant);
    const auto& variants = view.config(*ns).variants;
    for (std::uint32_t v = 0; v < variants.size(); ++v)
        for (std::uint32_t position : variants[v].workloads)
            out[position] = v;
    return out;
}

// The classes of the Sidecar's own namespace, pod by pod: the two views split its pods into
// variants differently when a workloadSelector changes.
void own_classes(const ConfigView& before, const ConfigView& after, NsId ns,
                 const Reviewed& reviewed, std::vector<SightChange>& out) {
    const auto before_ns = before.namespace_id(reviewed.ns);
    // Variant 0 is also the class of an assumed client namespace, which has no pods.
    add_change(out, sight_of(before, before_ns, 0), sight_of(after, ns, 0), ns, reviewed);
    const auto was = variant_by_position(before, before_ns);
    const auto now = variant_by_position(after, ns);
    for (std::size_t p = 0; p < now.size(); ++p) {
        const Sight b =
            p < was.size() && was[p] != no_variant ? sight_of(before, before_ns, was[p]) : Sight{};
        const Sight a = now[p] != no_variant ? sight_of(after, ns, now[p]) : Sight{};
        if (b.client || a.client)
            add_change(out, b, a, ns, reviewed);
    }
}

// Every class whose sight the change can alter: the namespace's own, and, for the root
// namespace, every other client namespace's (the root's default Sidecar is the mesh's).
std::vector<SightChange> sight_changes(const ConfigView& before, const ConfigView& after, NsId ns,
                                       const Reviewed& reviewed, bool root) {
    std::vector<SightChange> out;
    own_classes(before, after, ns, reviewed, out);
    if (root)
        for (NsId other = 0; other < after.namespace_count(); ++other) {
            if (other == ns || !(before.is_mesh_client(other) || after.is_mesh_client(other)))
                continue;
            for (std::size_t v = 0; v < after.config(other).variants.size(); ++v)
                add_change(out, sight_of(before, other, v), sight_of(after, other, v), other,
                           reviewed);
        }
    for (auto& change : out) {
        std::sort(change.namespaces.begin(), change.namespaces.end());
        change.namespaces.erase(std::unique(change.namespaces.begin(), change.namespaces.end()),
                                change.namespaces.end());
    }
    return out;
}

bool sees(const Sight& sight, std::string_view client_ns, std::string_view host,
          std::string_view host_ns) {
    return sight.client && (!sight.sidecar ||
                            resolution::sidecar_imports(*sight.sidecar, client_ns, host, host_ns));
}

// How the change treats one host across all classes.
struct HostChange {
    bool shown = false;         // some class sees it after and did not before
    bool hidden_after = false;  // the reviewed Sidecar hides it from some class after
    bool hidden_before = false; // and before
};

HostChange host_change(const std::vector<SightChange>& changes, const Reviewed& reviewed,
                       std::string_view host, NsId host_id, std::string_view host_ns) {
    HostChange out;
    for (const auto& change : changes) {
        // A client in the host's own namespace reads "./" entries as that namespace; any other
        // reads them as its own, which the host is not in ("" matches no namespace).
        const bool own =
            std::binary_search(change.namespaces.begin(), change.namespaces.end(), host_id);
        const bool foreign = change.namespaces.size() > (own ? 1u : 0u);
        for (const bool in_own : {true, false}) {
            if (!(in_own ? own : foreign))
                continue;
            const std::string_view client_ns = in_own ? host_ns : std::string_view();
            const bool was = sees(change.before, client_ns, host, host_ns);
            const bool is = sees(change.after, client_ns, host, host_ns);
            out.shown = out.shown || (is && !was);
            out.hidden_after = out.hidden_after || (!is && reviewed.is(change.after.sidecar));
            out.hidden_before = out.hidden_before || (!was && reviewed.is(change.before.sidecar));
        }
    }
    return out;
}

// Whether a Service's flows reach a STRICT port (sidecar or ambient) on some endpoint: what
// MTG211 counts (conflict::HiddenServiceCollector, for the whole mesh).
bool behind_strict_port(const ConfigView& view, const model::ServiceRecord& service) {
    if (!service.service.selector || !service.analysed_as_server)
        return false;
    std::vector<conflict::Endpoint> endpoints;
    for (const auto& port : service.service.ports) {
        if (!port.tcp)
            continue;
        resolution::list_endpoints(view, nullptr, service, port, endpoints);
        for (const auto& endpoint : endpoints)
            if (endpoint.mode.accept == resolution::ServerAccept::Strict ||
                endpoint.mode.accept == resolution::ServerAccept::AmbientStrict)
                return true;
    }
    return false;
}

const model::Sidecar* reviewed_in(const ConfigView& view, NsId ns, const Reviewed& reviewed) {
    for (const auto& sidecar : view.config(ns).sidecars)
        if (sidecar.ref.name == reviewed.name)
            return &sidecar;
    return nullptr;
}

} // namespace

SidecarReach sidecar_reach(const ConfigView& before, const ConfigView& after, const std::string& ns,
                           const std::string& name) {
    SidecarReach out;
    const Reviewed reviewed{ns, name};
    const auto id = after.namespace_id(ns);
    if (!id)
        return out;
    out.own_clients_only = ns != after.mesh().root_namespace;
    const auto changes = sight_changes(before, after, *id, reviewed, !out.own_clients_only);
    if (changes.empty())
        return out;

    std::set<conflict::HiddenServiceCollector::SidecarKey> hidden;
    const auto& services = after.snapshot().services();
    for (model::ServiceId s = 0; s < services.size(); ++s) {
        const auto& service = services[s];
        const auto change = host_change(changes, reviewed, service.host, service.ns,
                                        after.namespace_name(service.ns));
        if (change.shown)
            out.shown_services.push_back(s);
        if (change.hidden_after && !change.hidden_before && behind_strict_port(after, service))
            hidden.emplace(service.service.ref.namespace_name, service.service.ref.name);
    }
    const auto& hosts = after.snapshot().external_hosts();
    for (std::size_t i = 0; i < hosts.size(); ++i)
        if (host_change(changes, reviewed, hosts[i].host, hosts[i].ns,
                        after.namespace_name(hosts[i].ns))
                .shown)
            out.shown_external_hosts.push_back(i);

    const model::Sidecar* sidecar = reviewed_in(after, *id, reviewed);
    if (sidecar && !hidden.empty()) {
        const bool dropped =
            resolution::outbound_policy(after, *sidecar) == model::OutboundPolicy::RegistryOnly;
        out.newly_hidden.push_back(
            conflict::hidden_services_finding(sidecar->ref, hidden, dropped));
        report::describe_all(out.newly_hidden);
    }
    return out;
}

} // namespace mtlsguard::admission
