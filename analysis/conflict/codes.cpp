// The finding codes of the public catalogue, their severities and names.
#include "analysis/conflict/codes.hpp"

namespace mtlsguard::conflict {

std::string_view to_string(Code code) noexcept {
    switch (code) {
    case Code::MTG101:
        return "MTG101";
    case Code::MTG102:
        return "MTG102";
    case Code::MTG103:
        return "MTG103";
    case Code::MTG104:
        return "MTG104";
    case Code::MTG105:
        return "MTG105";
    case Code::MTG106:
        return "MTG106";
    case Code::MTG107:
        return "MTG107";
    case Code::MTG108:
        return "MTG108";
    case Code::MTG201:
        return "MTG201";
    case Code::MTG202:
        return "MTG202";
    case Code::MTG203:
        return "MTG203";
    case Code::MTG204:
        return "MTG204";
    case Code::MTG205:
        return "MTG205";
    case Code::MTG206:
        return "MTG206";
    case Code::MTG207:
        return "MTG207";
    case Code::MTG208:
        return "MTG208";
    case Code::MTG209:
        return "MTG209";
    case Code::MTG210:
        return "MTG210";
    case Code::MTG211:
        return "MTG211";
    case Code::MTG212:
        return "MTG212";
    case Code::MTG213:
        return "MTG213";
    }
    return "MTG000";
}

std::string_view to_string(Severity severity) noexcept {
    switch (severity) {
    case Severity::Error:
        return "error";
    case Severity::Warning:
        return "warning";
    case Severity::Info:
        return "info";
    }
    return "info";
}

Severity severity_of(Code code) noexcept {
    switch (code) {
    case Code::MTG101:
    case Code::MTG102:
    case Code::MTG103:
    case Code::MTG104:
    case Code::MTG105:
    case Code::MTG106:
    case Code::MTG107:
    case Code::MTG108:
        return Severity::Error;
    case Code::MTG201:
    case Code::MTG202:
    case Code::MTG203:
    case Code::MTG204:
    case Code::MTG205:
    case Code::MTG209:
    case Code::MTG210:
    case Code::MTG211:
    case Code::MTG212:
        return Severity::Warning;
    case Code::MTG206:
    case Code::MTG207:
    case Code::MTG208:
    case Code::MTG213:
        return Severity::Info;
    }
    return Severity::Info;
}

std::vector<Code> all_codes() {
    std::vector<Code> out;
    for (auto c = static_cast<unsigned>(Code::MTG101); c <= static_cast<unsigned>(Code::MTG213);
         ++c)
        out.push_back(static_cast<Code>(c));
    return out;
}

std::string_view summary_of(Code code) noexcept {
    switch (code) {
    case Code::MTG101:
        return "Sidecar clients send plaintext to a STRICT port";
    case Code::MTG102:
        return "Clients send ISTIO_MUTUAL to a workload port that accepts only plaintext (DISABLE)";
    case Code::MTG103:
        return "Clients send ISTIO_MUTUAL to workloads without a sidecar";
    case Code::MTG104:
        return "Clients originate one-way TLS (SIMPLE) to a STRICT port";
    case Code::MTG105:
        return "Ambient clients (ztunnel) or a waypoint send plaintext to a STRICT sidecar port "
               "that cannot receive HBONE";
    case Code::MTG106:
        return "Sidecar clients send Istio mTLS or plaintext that an ambient port rejects";
    case Code::MTG107:
        return "A VirtualService routes to a subset that the DestinationRule its clients use does "
               "not define (503)";
    case Code::MTG108:
        return "The Kubernetes API server calls a webhook, aggregated API or conversion webhook "
               "whose port is STRICT";
    case Code::MTG201:
        return "Clients use MUTUAL with their own certificates towards a STRICT port";
    case Code::MTG202:
        return "Clients originate TLS (SIMPLE/MUTUAL) to a port that passes it to the application";
    case Code::MTG203:
        return "A STRICT port while namespaces run workloads without a sidecar (non-mesh clients)";
    case Code::MTG204:
        return "A portLevelMtls key (or legacy named port) matches no target port of the selected "
               "workloads";
    case Code::MTG205:
        return "A policy or DestinationRule is ignored because an older one holds the same scope "
               "or host";
    case Code::MTG206:
        return "A policy selects no workload, or a DestinationRule host matches no service";
    case Code::MTG207:
        return "Mesh-wide DISABLE with auto mTLS off and no mesh-wide DestinationRule DISABLE";
    case Code::MTG208:
        return "A v1alpha1 Policy or MeshPolicy is in use (removed in Istio 1.6)";
    case Code::MTG209:
        return "portLevelMtls on a mesh-wide or namespace-wide PeerAuthentication is ignored";
    case Code::MTG210:
        return "A STRICT policy does not protect a port that skips interception";
    case Code::MTG211:
        return "A Sidecar resource hides STRICT services from its clients: if they call them, "
               "plaintext leaves through the passthrough cluster (or is dropped with "
               "REGISTRY_ONLY)";
    case Code::MTG212:
        return "A namespace or workload is labelled both for sidecar injection and for ambient "
               "(injection wins)";
    case Code::MTG213:
        return "PeerAuthentication DISABLE on ambient workloads is ignored (they accept HBONE and "
               "plaintext)";
    }
    return "";
}

std::string_view fix_of(Code code) noexcept {
    switch (code) {
    case Code::MTG101:
        return "Let the clients send mTLS (ISTIO_MUTUAL, or no tls block with auto mTLS), or make "
               "the port PERMISSIVE.";
    case Code::MTG102:
        return "Drop ISTIO_MUTUAL for that host, or make the port PERMISSIVE or STRICT.";
    case Code::MTG103:
        return "Inject a sidecar into the workload, or stop forcing ISTIO_MUTUAL for that host.";
    case Code::MTG104:
        return "Use ISTIO_MUTUAL for in-mesh hosts.";
    case Code::MTG105:
        return "Re-inject the sidecars with the ambient profile so they take HBONE, move the "
               "workload to ambient, or make the port PERMISSIVE.";
    case Code::MTG106:
        return "Drop tls from the DestinationRule (auto mTLS sends HBONE), upgrade to Istio "
               "1.25.1+, or give the service a cluster IP.";
    case Code::MTG107:
        return "Define the subset in the DestinationRule the clients use, or route to a subset it "
               "defines.";
    case Code::MTG108:
        return "Make the called port PERMISSIVE with a workload policy's portLevelMtls, or keep "
               "the pods out of the mesh.";
    case Code::MTG201:
        return "Use ISTIO_MUTUAL unless the certificates come from the mesh CA.";
    case Code::MTG202:
        return "Drop the tls block for in-mesh hosts unless the application terminates TLS.";
    case Code::MTG203:
        return "Inject sidecars into the client namespaces, or make the port PERMISSIVE, unless "
               "the lock-down is deliberate.";
    case Code::MTG204:
        return "Use the container (target) port number as the portLevelMtls key.";
    case Code::MTG205:
        return "Merge the duplicates into the oldest object, or delete the newer one.";
    case Code::MTG206:
        return "Fix the selector or host, or delete the object.";
    case Code::MTG207:
        return "Turn auto mTLS on, or add a mesh-wide DestinationRule with tls DISABLE.";
    case Code::MTG208:
        return "Migrate to PeerAuthentication before upgrading past Istio 1.5.";
    case Code::MTG209:
        return "Move portLevelMtls to a PeerAuthentication with a workload selector.";
    case Code::MTG210:
        return "Remove the interception exclusion, or say PERMISSIVE for that port.";
    case Code::MTG211:
        return "Add the hidden services' namespaces to the Sidecar's egress hosts if its clients "
               "call them, or make those ports PERMISSIVE.";
    case Code::MTG212:
        return "Remove one of the labels: istio-injection/istio.io/rev or "
               "istio.io/dataplane-mode=ambient.";
    case Code::MTG213:
        return "Use PERMISSIVE (or no policy) for ambient workloads; DISABLE does not exist there.";
    }
    return "";
}

} // namespace mtlsguard::conflict
