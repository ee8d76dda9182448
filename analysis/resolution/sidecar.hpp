// Client side: which Sidecar resource a sidecar client uses, and which hosts it sees (ambient.md
// §14).
#pragma once

#include "analysis/resolution/config_view.hpp"

#include <string_view>

namespace mtlsguard::resolution {

// Whether a Sidecar's egress hosts import `host`, a host of namespace `host_ns`, for a client in
// namespace `client_ns` (pilot's selectServices): an entry's namespace part is the host's
// namespace, "*" (any) or "." (the client's own; so a root-namespace default means each client's
// namespace); "~" imports nothing. Its host part is the FQDN or a wildcard ("*", "*.example.com").
bool sidecar_imports(const model::Sidecar& sidecar, std::string_view client_ns,
                     std::string_view host, std::string_view host_ns) noexcept;

// Whether a Sidecar's egress hosts could import any host of namespace `host_ns` for a client in
// `client_ns`: when not, sidecar_imports is false for every host of that namespace.
bool sidecar_may_import_from(const model::Sidecar& sidecar, std::string_view client_ns,
                             std::string_view host_ns) noexcept;

// The root namespace's default Sidecar: the mesh's default for namespaces without their own.
const model::Sidecar* mesh_default_sidecar(const ConfigView& view) noexcept;

// The Sidecar the clients of a variant of namespace `ns` use: their namespace's (by
// workloadSelector, else its default), else the mesh's default, else none.
const model::Sidecar* sidecar_of(const ConfigView& view, NsId ns, std::size_t variant) noexcept;

// What a client of `sidecar` does with a host it hides: the Sidecar's outboundTrafficPolicy, else
// the mesh config's (ALLOW_ANY by default).
model::OutboundPolicy outbound_policy(const ConfigView& view,
                                      const model::Sidecar& sidecar) noexcept;

} // namespace mtlsguard::resolution
