// `explain`: every step of the decision for the flows from one client namespace (or workload) to
// one host, with the objects that decided each step and the ones that lost.
#pragma once

#include "analysis/model/snapshot.hpp"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::report {

struct ExplainRequest {
    std::string from_namespace;        // --from: the client namespace
    std::string host;                  // --to without the port: short names resolve in `from`
    std::optional<std::uint16_t> port; // nullopt: every TCP port of the host
    std::string workload;              // --workload NS/NAME; empty: every client of the namespace
};

// "HOST" or "HOST:PORT" (PORT 1..65535) as --to takes it; nullopt when malformed.
struct HostPort {
    std::string host;
    std::optional<std::uint16_t> port;
};
std::optional<HostPort> parse_host_port(std::string_view text);

// An object that decided a step, or lost it.
struct ExplainedObject {
    std::string kind;
    std::string namespace_name;
    std::string name;
};
struct LostObject {
    ExplainedObject object;
    std::string reason;
};

// One step of a decision. `kind`: client, destinationRule, send, server, verdict.
struct ExplainStep {
    std::string kind;
    std::string summary;              // one line: the outcome of the step
    std::vector<std::string> because; // why, in the order the engine decided
    std::vector<ExplainedObject> decided_by;
    std::vector<LostObject> lost;
    nlohmann::json facts = nlohmann::json::object(); // kind-specific fields (docs/explain.md)
};

// One flow: a class of clients of the namespace, one port of the host, one endpoint workload.
struct ExplainedFlow {
    std::string client_dataplane; // sidecar, sidecar-bypass, ambient, none
    std::string host;
    std::uint16_t port = 0;
    std::uint16_t target_port = 0;
    std::optional<ExplainedObject> workload; // the endpoint; none for ServiceEntry hosts
    std::vector<ExplainStep> steps;
    std::string verdict; // MTLS, PLAINTEXT, FAIL, DEPENDS
    std::string code;    // empty when the flow carries none
    std::string message;
    std::string fix;
};

struct ExplainResult {
    // Bad input (exit 2): what was not found, with close matches when there are some.
    std::string error;
    std::string internal_error; // the engine itself failed
    std::string from_namespace;
    std::string workload; // as requested, NS/NAME
    std::string host;     // the FQDN the request resolved to
    std::optional<std::uint16_t> port;
    std::vector<ExplainedFlow> flows;
    std::vector<std::string> notes; // e.g. why there is no flow at all
};

// Explains the flows of the request. Never throws.
ExplainResult explain(const model::Snapshot& snapshot, const ExplainRequest& request) noexcept;

nlohmann::json explain_json(const ExplainResult& result);
std::string explain_text(const ExplainResult& result);

} // namespace mtlsguard::report
