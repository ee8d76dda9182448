// Every flow from client classes to service ports and endpoint workloads, with its verdict (spec
// §6).
#pragma once

#include "analysis/conflict/codes.hpp"
#include "analysis/resolution/client_send.hpp"
#include "analysis/resolution/destination_rule.hpp"
#include "analysis/resolution/server_index.hpp"

#include <functional>
#include <optional>
#include <vector>

namespace mtlsguard::conflict {

using model::NsId;
using resolution::ClientSend;
using resolution::ServerAccept;

enum class Verdict : std::uint8_t { Mtls, Plaintext, Fail, Depends };
std::string_view to_string(Verdict verdict) noexcept;

// Who sends a flow (ambient.md §10, §12, §16): sidecar clients, clients without any proxy,
// ambient clients (ztunnel, and the waypoint it sends through: in namespaces where the CNI has
// captured a workload, or only predicted to be, whose findings are warnings), or the Kubernetes
// API server calling a webhook, aggregated API or conversion webhook over its own TLS.
// SidecarBypass: sidecar clients whose pods let this destination skip the sidecar
// (traffic.sidecar.istio.io outbound annotations, ambient.md §13): they send the application's
// bytes, like clients without a sidecar.
enum class ClientKind : std::uint8_t {
    Sidecar,
    NonMesh,
    Ambient,
    AmbientPredicted,
    ApiServer,
    SidecarBypass
};
// "sidecar", "none", "ambient" ("none" for the API server): the matrix's clientDataplane.
std::string_view to_string(ClientKind kind) noexcept;
constexpr bool is_ambient(ClientKind kind) noexcept {
    return kind == ClientKind::Ambient || kind == ClientKind::AmbientPredicted;
}

// The verdict table (semantics §6, ambient-notes §5.1): what happens when a client sends `send`
// (with `inner` TLS inside HBONE) to a server port in mode `server`.
Verdict verdict_of(ClientSend send, ServerAccept server,
                   ClientSend inner = ClientSend::Plaintext) noexcept;

// The catalogue code for a flow, if it is worth a finding.
std::optional<Code> code_of(ClientKind client, ClientSend send, ServerAccept server,
                            bool mesh_external, ClientSend inner = ClientSend::Plaintext) noexcept;

struct Flow {
    const model::ServiceRecord* service = nullptr; // or
    const model::ExternalHost* external = nullptr;
    std::string_view host;
    std::uint16_t port = 0;
    std::uint16_t target_port = 0;
    const model::Workload* workload = nullptr; // null for external hosts
    // Set when a VirtualService route sends the clients to a subset with its own TLS.
    const model::Subset* subset = nullptr;
    ClientKind client = ClientKind::Sidecar;
    std::optional<model::ObjectRef> via; // the waypoint ambient clients go through
    // For ApiServer flows: the webhooks, APIServices and conversion webhooks that call this port.
    const std::vector<model::ApiServerCallRef>* api_server_calls = nullptr;
    // The endpoint, or the ambient clients, are ambient only by prediction (labels, not the CNI's
    // annotation): an error found here is reported as a warning (ambient.md §10).
    bool predicted = false;
    // SidecarBypass flows: the annotation by which the clients skip their sidecar.
    std::string_view bypass;
    // The Sidecar resource that hides the host from these sidecar clients (ambient.md §14): they
    // send plaintext through the passthrough cluster (ALLOW_ANY), or nothing at all (`dropped`,
    // REGISTRY_ONLY). Hiding hosts is what a Sidecar is for: such flows carry no code.
    const model::Sidecar* hidden_by = nullptr;
    bool dropped = false;

    ClientSend send = ClientSend::Plaintext;
    ServerAccept server = ServerAccept::Unknown;
    Verdict verdict = Verdict::Plaintext;
    std::optional<Code> code;

    const model::ConsolidatedRule* rule = nullptr; // the DR the clients use (may be null)
    resolution::SendDecision decision;
    resolution::ServerMode server_mode;

    // The same flow in the earlier view evaluate_service was given, if any.
    struct Earlier {
        bool known = false; // evaluated against an earlier view
        bool coded = false; // it carried a code there
        Verdict verdict = Verdict::Plaintext;
    } earlier;
};

// One endpoint of a service port: the workload, the port its pods listen on, and what it accepts.
using resolution::Endpoint;

// Who sends a flow: sidecar clients of an outcome, or (outcome null) every non-mesh or every
// ambient client namespace, or the API server, as `kind` says.
struct FlowClients {
    const resolution::HostClients* host_clients = nullptr;
    const resolution::ClientOutcome* outcome = nullptr;
    ClientKind kind = ClientKind::Sidecar;
    // The service (its ServiceId) or ServiceEntry host (external_target | index) flows go to:
    // what tells two evaluations apart when their HostClients live at the same address.
    std::uint32_t target = 0;
    // Subset flows: only the outcome's clients in these namespaces (sorted), those a
    // VirtualService route sends to the subset (ambient.md §15). SidecarBypass flows: the
    // namespaces whose clients skip their sidecar.
    const std::vector<NsId>* routed = nullptr;
};
inline constexpr std::uint32_t external_target = 0x80000000u;

// The sidecar client classes that send a flow: the outcome's, narrowed to `routed` if set.
std::vector<resolution::ClientClass> sending_classes(const resolution::ConfigView& view,
                                                     const FlowClients& who);

// Whether the client namespace `ns` is among those that send a flow of `who` (the same answer as
// looking for `ns` in conflict::client_namespaces, without listing them all).
bool sends_from(const resolution::ConfigView& view, const FlowClients& who, NsId ns);

using FlowSink = std::function<void(const Flow&, const FlowClients&)>;

// What evaluate_service does beyond the flows of one view (for admission).
struct EvaluateOptions {
    // A view that differs from the evaluated one only in PeerAuthentication objects: each flow
    // also says what it was there (Flow::earlier). PeerAuthentication changes only what servers
    // accept and what auto mTLS sends (semantics §3, §5), never which flows exist, so admission
    // evaluates a PeerAuthentication change in one pass instead of two.
    const resolution::ConfigView* earlier = nullptr;
    // Leave out the flows of sidecar clients whose Sidecar hides the host (ambient.md §14): they
    // never carry a code, and most services are hidden from most Sidecar namespaces, so a sink
    // that reads only coded flows is spared most of them.
    bool skip_hidden = false;
    // Only the client classes that may include this namespace (a Namespace relabel changes only
    // its own clients' flows towards other hosts, ambient.md §17): every flow with a code sent from
    // `sender` is still handed over, with its FlowClients as without `sender`, in the same order;
    // some flows of the same classes from other namespaces may come along.
    std::optional<NsId> sender;
    // With `sender` only: false leaves out the sidecar client classes.
    bool sidecar_senders = true;
    // The service's endpoints by port (the index in its ports), kept from an earlier evaluation of
    // the same service in another view and filled here when missing. Only for views that agree
    // on the service's server side (its namespace's workloads and configuration, the mesh's), as
    // the relabels of another namespace do, and without `earlier`.
    std::vector<std::optional<std::vector<Endpoint>>>* endpoints = nullptr;
};

// All flows towards one Service. Services not analysed as servers get only the API server's
// flows, to the ports its webhooks, APIServices and conversion webhooks call (ambient.md §16).
void evaluate_service(const resolution::ConfigView& view, model::ServiceId service,
                      const FlowSink& sink, const EvaluateOptions& options = {});

// All flows towards one ServiceEntry host (MESH_EXTERNAL only: nothing is known of internal ones);
// `sender` and `sidecar_senders` as for evaluate_service.
void evaluate_external_host(const resolution::ConfigView& view, std::size_t index,
                            const FlowSink& sink, std::optional<NsId> sender = std::nullopt,
                            bool sidecar_senders = true);

// Every flow of the mesh: every Service's, then every ServiceEntry host's, in that order.
void evaluate_mesh(const resolution::ConfigView& view, const FlowSink& sink);

// The DestinationRule object behind a flow's client-side decision (for reporting).
const model::DestinationRule* deciding_rule(const Flow& flow) noexcept;

} // namespace mtlsguard::conflict
