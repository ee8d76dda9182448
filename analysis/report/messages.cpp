// One-line messages for findings: what breaks, for whom, and how to fix it.
#include "analysis/report/messages.hpp"

namespace mtlsguard::report {
namespace {

using conflict::Code;
using conflict::Finding;

std::string where(const conflict::FlowSummary& flow) {
    std::string out = flow.host + ":" + std::to_string(flow.port);
    if (flow.workload) {
        out += " (workload " + flow.workload->namespace_name + "/" + flow.workload->name;
        if (flow.target_port && flow.target_port != flow.port)
            out += ", target port " + std::to_string(flow.target_port);
        out += ")";
    }
    if (!flow.subset.empty())
        out += " via subset " + flow.subset;
    return out;
}

std::string who(const conflict::FlowSummary& flow) {
    const std::string list =
        short_list(flow.client_namespaces, names_shown, flow.client_namespaces_omitted);
    if (flow.client_dataplane == "ambient")
        return flow.via ? "Ambient clients in " + list + " (through the waypoint " +
                              flow.via->namespace_name + "/" + flow.via->name + ")"
                        : "Ambient clients (ztunnel) in " + list;
    if (!flow.client_bypass.empty())
        return "Sidecar clients in " + list +
               " whose pods skip their sidecar for this destination (" + flow.client_bypass + ")";
    return (flow.client_sidecar ? "Sidecar clients in " : "Clients without a sidecar in ") + list;
}

bool on(const Finding& f, std::string_view kind) {
    return f.resource.kind == kind;
}

// Why the client sends plaintext although a DestinationRule asks for TLS (semantics §4).
std::string dropped_tls_reason(const std::string& drop, bool on_rule) {
    const std::string rule = on_rule ? "this DestinationRule" : "the DestinationRule";
    if (drop == "mutual-without-certificates")
        return "Istio rejects " + rule +
               ": tls mode MUTUAL without clientCertificate and privateKey (or credentialName) is "
               "refused by its validating webhook, and istiod builds the cluster with no TLS "
               "(\"client certificate and private key must not be empty\"). Fix: use "
               "ISTIO_MUTUAL for in-mesh hosts, or give the certificate files";
    return "Sidecars ignore the TLS of " + rule +
           ": a credentialName is loaded only by gateways or by a DestinationRule with a "
           "workloadSelector, so istiod builds the sidecars' cluster with no TLS. Fix: use "
           "ISTIO_MUTUAL for in-mesh hosts, or add a workloadSelector";
}

std::string flow_message(const Finding& f) {
    const auto& flow = *f.flow;
    const std::string target = where(flow);
    // Whatever the server, a bypassing client's trouble and fix are its annotation (ambient.md
    // §13).
    if (!flow.client_bypass.empty() && flow.client == "PLAINTEXT")
        return who(flow) + " send plaintext to " + target + ", which accepts only " +
               (flow.server == "STRICT" ? "mTLS (STRICT)" : "HBONE (ambient STRICT)") +
               ": their connections are reset, if they call it. Fix: take the port or address "
               "out of the annotation so the sidecar captures it, or make the port PERMISSIVE";
    switch (f.code) {
    case Code::MTG101:
        if (!f.detail.text.empty())
            return who(flow) + " send plaintext to " + target +
                   ", which accepts only mTLS (STRICT): connections are reset. " +
                   dropped_tls_reason(f.detail.text, on(f, "DestinationRule"));
        return who(flow) + " send plaintext to " + target +
               ", which accepts only mTLS (STRICT): connections are reset. Fix: " +
               (on(f, "DestinationRule")
                    ? "set tls.mode ISTIO_MUTUAL in this DestinationRule (or remove its tls block "
                      "so auto mTLS applies)"
                    : "let clients send mTLS (enable auto mTLS or a DestinationRule with "
                      "ISTIO_MUTUAL), or make the port PERMISSIVE");
    case Code::MTG102:
        return who(flow) + " send Istio mTLS to " + target +
               ", which accepts only plaintext (DISABLE): requests fail with 503. Fix: " +
               (on(f, "DestinationRule")
                    ? "remove ISTIO_MUTUAL from this DestinationRule for that host"
                    : "set the port to PERMISSIVE or STRICT, or stop sending ISTIO_MUTUAL to it");
    case Code::MTG103:
        if (flow.workload_dataplane == "sidecar")
            return who(flow) + " send Istio mTLS to " + target +
                   ", a port its sidecar does not intercept (traffic.sidecar.istio.io/"
                   "excludeInboundPorts or includeInboundPorts): the application gets the TLS "
                   "handshake and requests fail. Fix: intercept the port, or send it plaintext "
                   "(a DestinationRule portLevelSettings entry with tls DISABLE)";
        return who(flow) + " send Istio mTLS to " + target +
               ", which has no sidecar to terminate it: requests fail (503). Fix: inject a sidecar "
               "into the workload, or do not use ISTIO_MUTUAL for that host";
    case Code::MTG104:
        return who(flow) + " originate one-way TLS (SIMPLE) to " + target +
               ", which is STRICT and requires a mesh client certificate: the handshake fails. "
               "Fix: use ISTIO_MUTUAL for in-mesh hosts";
    case Code::MTG201:
        return who(flow) + " send TLS with their own certificates (MUTUAL) to " + target +
               ", which is STRICT: it works only with certificates issued by the mesh CA. Fix: use "
               "ISTIO_MUTUAL";
    case Code::MTG202:
        if (flow.client == "HBONE")
            return who(flow) +
                   " send HBONE carrying their own TLS (DestinationRule SIMPLE or "
                   "MUTUAL) to " +
                   target +
                   ": it works only if the application terminates TLS itself. Fix: drop the tls "
                   "block for in-mesh hosts (HBONE already encrypts)";
        return who(flow) + " originate " + flow.client + " TLS to " + target + ", which is " +
               flow.server +
               " and passes TLS through to the application: it works only if the application "
               "terminates TLS itself";
    case Code::MTG105:
        return who(flow) + " send plaintext to " + target +
               ", a sidecar that accepts only mTLS (STRICT) and cannot take HBONE (no label "
               "networking.istio.io/tunnel=http): connections are reset. Fix: inject the sidecar "
               "with the ambient profile (ISTIO_META_ENABLE_HBONE) so it takes HBONE, move the "
               "workload to ambient, or make the port PERMISSIVE";
    case Code::MTG106:
        if (flow.client == "ISTIO_MUTUAL")
            return who(flow) + " send Istio mTLS (not HBONE) to " + target +
                   ", captured by ztunnel, which cannot terminate it: connections fail. With an "
                   "explicit ISTIO_MUTUAL, sidecars tunnel to captured pods only from Istio "
                   "1.25.1, and never to headless or PASSTHROUGH services. Fix: remove tls "
                   "ISTIO_MUTUAL from " +
                   (on(f, "DestinationRule") ? "this" : "the") +
                   " DestinationRule (auto mTLS sends HBONE), or upgrade Istio";
        return who(flow) + " send " + (flow.client == "PLAINTEXT" ? "plaintext" : flow.client) +
               " to " + target +
               ", captured by ztunnel and STRICT (HBONE only): connections are reset. Sidecars do "
               "not tunnel to headless or PASSTHROUGH services, nor before Istio 1.22. Fix: make "
               "the port PERMISSIVE, use a Service with a cluster IP, or move the clients to "
               "ambient";
    case Code::MTG107: {
        const std::string route =
            f.detail.text.empty() ? std::string() : " (" + f.detail.text + ")";
        const std::string port = flow.port ? " port " + std::to_string(flow.port) : std::string();
        return who(flow) + " are routed by this VirtualService" + route + " to subset " +
               flow.subset + " of " + flow.host + port + ", which " +
               (f.related.empty()
                    ? std::string("no DestinationRule they use defines")
                    : "the DestinationRule they use, " + model::display_name(f.related.front()) +
                          ", does not define") +
               ": there is no cluster for it and requests answer 503 (NC). Fix: define the "
               "subset in that DestinationRule, or route to a subset it defines";
    }
    case Code::MTG108: {
        const std::string port = std::to_string(flow.target_port ? flow.target_port : flow.port);
        return "The Kubernetes API server calls " +
               (f.detail.text.empty() ? std::string("a webhook") : f.detail.text) + " at " +
               target + " with its own TLS, not Istio mTLS, and the port is " +
               (flow.server == "AMBIENT_STRICT" ? "captured by ztunnel and STRICT"
                                                : std::string("STRICT")) +
               ": every call fails, so admission (or that API) breaks cluster-wide. Fix: make "
               "port " +
               port +
               " PERMISSIVE with a workload PeerAuthentication (portLevelMtls), or keep the "
               "pods it calls out of the mesh (" +
               (flow.server == "AMBIENT_STRICT" ? "istio.io/dataplane-mode: none"
                                                : "sidecar.istio.io/inject: \"false\"") +
               ")";
    }
    case Code::MTG203:
        if (flow.server == "AMBIENT_STRICT")
            return who(flow) + " send plaintext to " + target +
                   ", captured by ztunnel and STRICT: their connections are reset. If this is "
                   "not a deliberate lock-down, enrol them in the mesh (ambient or sidecar) or "
                   "make the port PERMISSIVE";
        return who(flow) + " send plaintext to " + target +
               ", which is STRICT: their connections are reset. If this is not a deliberate "
               "lock-down, inject sidecars there or make the port PERMISSIVE";
    default:
        break;
    }
    return {};
}

std::string object_message(const Finding& f) {
    const auto& d = f.detail;
    const std::string other =
        f.related.empty() ? std::string() : model::display_name(f.related.front());
    switch (f.code) {
    case Code::MTG204:
        if (f.resource.kind == "PeerAuthentication")
            return "portLevelMtls key " + std::to_string(d.number) +
                   " matches no target port of the selected workloads (they listen on " + d.text +
                   "), so that port setting never applies; keys are container ports, not Service "
                   "ports";
        return "port selector " + d.text + " matches no port of Service " + other +
               ", so this Policy never applies to it";
    case Code::MTG205:
        if (d.text == "meshpolicy-name")
            return "MeshPolicy is ignored: only the MeshPolicy named default applies";
        if (d.text.rfind("host:", 0) == 0)
            return "trafficPolicy is ignored: the older DestinationRule " + other + " for host " +
                   d.text.substr(5) +
                   " wins when rules are merged (only its subsets are added); move the settings "
                   "there";
        if (d.text == "workload")
            return "PeerAuthentication is ignored for " +
                   (d.number ? std::to_string(d.number) + " of its workloads"
                             : std::string("all its workloads")) +
                   ": the older " + other + " selects them too and wins; merge the two";
        if (d.text.rfind("target:", 0) == 0)
            return "Policy is ignored for Service " + d.text.substr(7) + ": the older Policy " +
                   other + " targets it too";
        return "this " + d.text + " policy is ignored: the older " + other +
               " holds the same scope and Istio uses only the oldest; delete one of them";
    case Code::MTG206:
        if (d.text == "root-selector")
            return "a PeerAuthentication with a selector in the root namespace applies to nothing; "
                   "move it to the workload's namespace";
        if (d.text == "no-workload")
            return "the selector matches no workload in this namespace, so the policy applies to "
                   "nothing";
        if (d.text.rfind("target:", 0) == 0)
            return "target " + d.text.substr(7) +
                   " names no Service in this namespace, so the Policy applies to nothing";
        return "host " + d.text.substr(5) +
               " matches no Service or ServiceEntry host, so the DestinationRule applies to "
               "nothing";
    case Code::MTG207:
        return "mesh-wide PeerAuthentication is DISABLE while auto mTLS is off and no mesh-wide "
               "DestinationRule sets tls DISABLE (TIS0503); add a DestinationRule for "
               "*.cluster.local with tls DISABLE in the root namespace, or make the mesh policy "
               "PERMISSIVE";
    case Code::MTG208:
        return "authentication.istio.io/v1alpha1 " + f.resource.kind +
               " is in use; it was removed in Istio 1.6 and is ignored from then on: migrate to "
               "PeerAuthentication";
    case Code::MTG210:
        if (d.text.rfind("bypass:", 0) == 0)
            return "STRICT is not enforced for the ambient workload" +
                   std::string(d.number > 1 ? "s " : " ") + d.text.substr(7) +
                   ": ambient.istio.io/bypass-inbound-capture lets plaintext reach the application "
                   "without ztunnel. Fix: remove the annotation, or make the policy PERMISSIVE to "
                   "say what really happens";
        return "STRICT is not enforced on every port of the sidecar workload" +
               std::string(d.number > 1 ? "s " : " ") + d.text.substr(9) +
               ": a port its sidecar does not intercept (traffic.sidecar.istio.io/"
               "excludeInboundPorts or includeInboundPorts) takes plaintext straight to the "
               "application. Fix: intercept the port, or set it PERMISSIVE in portLevelMtls to say "
               "what really happens";
    case Code::MTG212:
        if (f.resource.kind == "Namespace")
            return "namespace is labelled both for sidecar injection (" + d.text +
                   ") and for ambient (istio.io/dataplane-mode=ambient): injection wins, its pods "
                   "get sidecars and ztunnel does not capture them; remove one of the two labels";
        return f.resource.kind + " is labelled for ambient (" + d.text +
               ") but gets a sidecar: injection wins and ztunnel does not capture it; remove the "
               "ambient label, or opt it out of injection (sidecar.istio.io/inject=false)";
    case Code::MTG213:
        return "DISABLE is not supported for ambient workloads and is ignored for " + d.text +
               ": ztunnel accepts HBONE and plaintext, as with PERMISSIVE. Fix: use PERMISSIVE "
               "(or nothing) for ambient workloads";
    case Code::MTG211: {
        std::string names;
        for (const auto& service : f.related)
            names += (names.empty() ? "" : ", ") + model::display_name(service);
        const auto shown = static_cast<long>(f.related.size());
        if (d.number > shown)
            names += " and " + std::to_string(d.number - shown) + " more";
        const std::string them = d.number > 1 ? "them" : "it";
        const std::string fate =
            d.text == "REGISTRY_ONLY"
                ? " are dropped (outboundTrafficPolicy REGISTRY_ONLY)"
                : " go out as plaintext (passthrough cluster, no DestinationRule or auto mTLS) "
                  "and are reset";
        return "hides STRICT service" + std::string(d.number > 1 ? "s " : " ") + names +
               " from its clients: calls to " + them + fate + ". Fix: import " + them +
               " in egress[].hosts if the clients call " + them;
    }
    case Code::MTG209:
        return "portLevelMtls on a " + d.text +
               " PeerAuthentication is rejected by Istio (\"mesh/namespace peer authentication "
               "cannot have port level mTLS\") and has no effect; use a PeerAuthentication with a "
               "workload selector";
    default:
        break;
    }
    return {};
}

} // namespace

std::string short_list(const std::vector<std::string>& names, std::size_t shown,
                       std::size_t omitted) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < shown; ++i)
        out += (i ? ", " : "") + names[i];
    const std::size_t listed = std::min(shown, names.size());
    const std::size_t total = names.size() + omitted;
    if (total > listed)
        out += " and " + std::to_string(total - listed) + " more";
    return out;
}

std::string describe(const Finding& finding) {
    std::string out = finding.flow ? flow_message(finding) : object_message(finding);
    if (finding.flow && finding.flow->predicted_client)
        out += " (predicted: those clients are labelled for ambient but none is annotated "
               "ambient.istio.io/redirection=enabled yet, so this is a warning)";
    else if (finding.flow && finding.flow->workload_dataplane == "ambient-predicted")
        out += " (predicted: the workload is labelled for ambient but not yet annotated "
               "ambient.istio.io/redirection=enabled, so this is a warning)";
    for (char& c : out)
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
    return out;
}

void describe_all(std::vector<Finding>& findings) {
    for (auto& f : findings)
        if (f.message.empty())
            f.message = describe(f);
}

} // namespace mtlsguard::report
