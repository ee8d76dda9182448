// Client side: which Sidecar resource a sidecar client uses, and which hosts it sees (ambient.md
// §14).
#include "analysis/resolution/sidecar.hpp"

namespace mtlsguard::resolution {
namespace {

// host.Name.SubsetOf for a concrete host: equal, or under a wildcard ("*" matches everything).
bool host_part_matches(std::string_view pattern, std::string_view host) noexcept {
    if (pattern == "*")
        return true;
    if (pattern.starts_with('*'))
        return host.size() > pattern.size() - 1 && host.ends_with(pattern.substr(1));
    return pattern == host;
}

} // namespace

bool sidecar_imports(const model::Sidecar& sidecar, std::string_view client_ns,
                     std::string_view host, std::string_view host_ns) noexcept {
    for (const auto& entry : sidecar.egress_hosts) {
        const std::string_view ns = entry.namespace_part == "." ? client_ns : entry.namespace_part;
        if ((ns == "*" || (!ns.empty() && ns == host_ns)) && host_part_matches(entry.host, host))
            return true;
    }
    return false;
}

bool sidecar_may_import_from(const model::Sidecar& sidecar, std::string_view client_ns,
                             std::string_view host_ns) noexcept {
    for (const auto& entry : sidecar.egress_hosts) {
        const std::string_view ns = entry.namespace_part == "." ? client_ns : entry.namespace_part;
        if (ns == "*" || (!ns.empty() && ns == host_ns))
            return true;
    }
    return false;
}

const model::Sidecar* mesh_default_sidecar(const ConfigView& view) noexcept {
    const NsId root = view.root_namespace_id();
    return root < view.namespace_count() ? view.config(root).default_sidecar : nullptr;
}

const model::Sidecar* sidecar_of(const ConfigView& view, NsId ns, std::size_t variant) noexcept {
    const auto& variants = view.config(ns).variants;
    if (variant < variants.size() && variants[variant].sidecar)
        return variants[variant].sidecar;
    return mesh_default_sidecar(view);
}

model::OutboundPolicy outbound_policy(const ConfigView& view,
                                      const model::Sidecar& sidecar) noexcept {
    return sidecar.outbound_policy.value_or(view.mesh().outbound_policy);
}

} // namespace mtlsguard::resolution
