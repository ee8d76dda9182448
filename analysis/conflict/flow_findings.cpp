// Turns flows that carry a code into findings, aggregated over the client namespaces that send
// them.
#include "analysis/conflict/flow_findings.hpp"

namespace mtlsguard::conflict {

namespace {

// The DestinationRule its sidecar clients use for the host, when it sets TLS for other ports only
// and so leaves this one to auto mTLS (or plaintext): Istio 1.5's analyzer named it in a conflict
// too, since adding the port there is the fix (issue 16).
const model::DestinationRule* rule_leaving_port_without_tls(const Flow& flow) {
    if (flow.verdict != Verdict::Fail || flow.client != ClientKind::Sidecar || !flow.rule ||
        flow.subset || flow.decision.by_rule)
        return nullptr;
    const model::TrafficPolicy* policy = flow.rule->traffic_policy();
    if (!policy || policy->tls)
        return nullptr;
    bool other_port_tls = false;
    for (const auto& entry : policy->port_level) {
        if (entry.port == flow.port)
            return nullptr;
        other_port_tls = other_port_tls || entry.tls.has_value();
    }
    return other_port_tls ? flow.rule->policy_source : nullptr;
}

// The webhooks, APIServices and conversion webhooks behind an API server flow, for its message:
// "ValidatingWebhookConfiguration opa (webhook validate.opa.io)".
std::string api_server_callers(const std::vector<model::ApiServerCallRef>& calls) {
    std::string out;
    for (const auto& call : calls) {
        std::string one = call.callee->ref.kind + " " + call.callee->ref.name;
        std::string inside;
        if (!call.call->webhook.empty())
            inside = "webhook " + call.call->webhook;
        else if (call.callee->ref.kind == "CustomResourceDefinition")
            inside = "conversion webhook";
        if (!inside.empty())
            one += " (" + inside + ")";
        if (out.find(one) == std::string::npos)
            out += (out.empty() ? "" : ", ") + one;
    }
    return out;
}

// What a flow's finding is attributed to, by pointer: the DestinationRule behind what the clients
// send (never for the API server, whose TLS is its own), the policy behind what the server
// accepts, and the Service (or, but for the API server, ServiceEntry) when neither is known.
// attribute() copies them; attribution_count() only counts them.
struct Sources {
    const model::ObjectRef* rule = nullptr;
    const model::ObjectRef* server = nullptr;
    const model::ObjectRef* target = nullptr;
};

Sources sources_of(const Flow& flow) {
    Sources out;
    if (flow.server_mode.peer_authentication)
        out.server = &flow.server_mode.peer_authentication->ref;
    else if (flow.server_mode.alpha_policy)
        out.server = &flow.server_mode.alpha_policy->ref;
    const bool api_server = flow.client == ClientKind::ApiServer;
    if (flow.service)
        out.target = &flow.service->service.ref;
    else if (flow.external && !api_server)
        out.target = &flow.external->ref;
    if (api_server)
        return out;
    if (const auto* dr = deciding_rule(flow))
        out.rule = &dr->ref;
    else if (const auto* partial = rule_leaving_port_without_tls(flow))
        out.rule = &partial->ref;
    return out;
}

} // namespace

std::vector<Attribution> attribute(const Flow& flow) {
    const Sources sources = sources_of(flow);
    if (flow.client == ClientKind::ApiServer) {
        // On the policy that makes the port STRICT, naming who the API server calls (§16).
        const model::ObjectRef* on = sources.server ? sources.server : sources.target;
        if (!on)
            return {};
        std::vector<model::ObjectRef> callers;
        if (flow.api_server_calls)
            for (const auto& call : *flow.api_server_calls)
                if (std::find(callers.begin(), callers.end(), call.callee->ref) == callers.end())
                    callers.push_back(call.callee->ref);
        return {Attribution{*on, std::move(callers)}};
    }
    const model::ObjectRef* rule = sources.rule;
    const model::ObjectRef* server = sources.server;
    if (rule && server)
        return {Attribution{*rule, {*server}}, Attribution{*server, {*rule}}};
    const model::ObjectRef* cause = nullptr;
    if (flow.decision.auto_cause)
        cause = &flow.decision.auto_cause->ref;
    else if (flow.decision.auto_alpha_cause)
        cause = &flow.decision.auto_alpha_cause->ref;
    if (cause && server && *cause == *server)
        cause = nullptr;
    std::vector<model::ObjectRef> related;
    if (cause)
        related.push_back(*cause);
    const model::ObjectRef* on = rule ? rule : server ? server : sources.target;
    if (!on)
        return {};
    return {Attribution{*on, std::move(related)}};
}

std::size_t attribution_count(const Flow& flow) {
    const Sources sources = sources_of(flow);
    if (sources.rule && sources.server)
        return 2;
    return sources.rule || sources.server || sources.target ? 1 : 0;
}

Severity severity_of(const Flow& flow) noexcept {
    const Severity severity = severity_of(*flow.code);
    // A bypassing client is not known to call the service at all (the annotation names ports or
    // ranges, not services): like clients without a sidecar, a warning, never a denial.
    const bool uncertain = flow.predicted || flow.client == ClientKind::SidecarBypass;
    return uncertain && severity == Severity::Error ? Severity::Warning : severity;
}

std::string_view workload_dataplane(const model::Workload& workload) noexcept {
    switch (workload.dataplane) {
    case model::Dataplane::Sidecar:
        return "sidecar";
    case model::Dataplane::Ambient:
        return workload.ambient_predicted ? "ambient-predicted" : "ambient";
    case model::Dataplane::None:
        return "none";
    }
    return "none";
}

std::vector<NsId> client_namespaces(const resolution::ConfigView& view, const FlowClients& who) {
    if (who.kind == ClientKind::ApiServer)
        return {model::api_server_client};
    if (who.kind == ClientKind::Ambient)
        return view.captured_client_namespaces();
    if (who.kind == ClientKind::AmbientPredicted)
        return view.predicted_ambient_client_namespaces();
    if (who.kind == ClientKind::SidecarBypass)
        return who.routed ? *who.routed : std::vector<NsId>{};
    if (!who.outcome)
        return view.non_mesh_client_namespaces();
    auto out = resolution::outcome_namespaces(view, *who.outcome, *who.host_clients);
    if (who.routed)
        std::erase_if(out, [&](NsId ns) {
            return !std::binary_search(who.routed->begin(), who.routed->end(), ns);
        });
    return out;
}

const std::pair<std::vector<NsId>, std::uint64_t>&
FlowFindingCollector::members(const FlowClients& who) {
    if (cached_target_ != who.target) {
        cache_.clear();
        cached_target_ = who.target;
    }
    const auto key = std::make_tuple(who.outcome, who.kind, who.routed);
    auto it = cache_.find(key);
    if (it == cache_.end())
        it = cache_.emplace(key, std::make_pair(client_namespaces(view_, who), next_list_id_++))
                 .first;
    return it->second;
}

void FlowFindingCollector::add(const Flow& flow, const FlowClients& who) {
    record(flow,
           [&]() -> const std::pair<std::vector<NsId>, std::uint64_t>& { return members(who); });
}

void FlowFindingCollector::add_for(const Flow& flow, const std::vector<NsId>& namespaces) {
    const std::pair<std::vector<NsId>, std::uint64_t> list{namespaces, 0};
    record(flow, [&]() -> const std::pair<std::vector<NsId>, std::uint64_t>& { return list; });
}

void FlowFindingCollector::omit(const Flow& flow, Severity level, std::size_t count) {
    codes_.insert(*flow.code);
    error_ = error_ || level == Severity::Error;
    omitted_ += count;
}

template <typename Namespaces>
void FlowFindingCollector::record(const Flow& flow, const Namespaces& get_namespaces) {
    if (!flow.code)
        return;
    const Severity level = severity_of(flow);
    const auto severity = static_cast<std::size_t>(level);
    if (kept_[severity] >= max_per_severity_ && !hosts_.contains(flow.host)) {
        // No finding can have this flow's key: every attribution is omitted, as below.
        if (const std::size_t count = attribution_count(flow); count > 0)
            omit(flow, level, count);
        return;
    }
    std::optional<WorkloadRef> workload;
    if (flow.workload)
        workload = WorkloadRef{view_.namespace_name(flow.workload->ns), flow.workload->name};
    std::optional<WorkloadRef> via;
    if (flow.via)
        via = WorkloadRef{flow.via->namespace_name, flow.via->name};
    const std::string subset = flow.subset ? flow.subset->name : std::string();
    const std::string client(resolution::to_string(flow.send));
    const std::string server(resolution::to_string(flow.server));
    const std::pair<std::vector<NsId>, std::uint64_t>* list = nullptr;
    for (auto& attribution : attribute(flow)) {
        // The attribution moves into the key: most flows only find it, and a new finding copies
        // it back from the map's key.
        Key key{*flow.code,
                std::move(attribution.resource),
                std::move(attribution.related),
                std::string(flow.host),
                flow.port,
                flow.target_port,
                workload,
                subset,
                flow.client,
                flow.via,
                client,
                server};
        auto it = findings_.find(key);
        if (it == findings_.end()) {
            if (kept_[severity] >= max_per_severity_) {
                omit(flow, level, 1);
                continue;
            }
            if (!list)
                list = &get_namespaces();
            if (list->first.empty())
                return; // nobody sends this traffic
            ++kept_[severity];
            hosts_.emplace(flow.host);
            it = findings_.emplace(std::move(key), std::pair<Finding, Senders>()).first;
            auto& finding = it->second.first;
            finding.code = *flow.code;
            finding.severity = level;
            finding.resource = std::get<1>(it->first);
            finding.related = std::get<2>(it->first);
            FlowSummary summary;
            summary.client_sidecar =
                flow.client == ClientKind::Sidecar || flow.client == ClientKind::SidecarBypass;
            summary.client_bypass = std::string(flow.bypass);
            summary.client_dataplane = std::string(to_string(flow.client));
            summary.predicted_client = flow.client == ClientKind::AmbientPredicted;
            summary.via = via;
            if (flow.workload)
                summary.workload_dataplane = std::string(workload_dataplane(*flow.workload));
            summary.host = std::string(flow.host);
            summary.port = flow.port;
            summary.target_port = flow.target_port;
            summary.workload = workload;
            summary.subset = subset;
            summary.client = client;
            summary.server = server;
            finding.flow = std::move(summary);
            finding.detail.text = flow.api_server_calls
                                      ? api_server_callers(*flow.api_server_calls)
                                      : std::string(resolution::to_string(flow.decision.dropped));
        }
        if (!list)
            list = &get_namespaces();
        if (list->first.empty())
            return;
        const std::vector<NsId>* namespaces = &list->first;
        codes_.insert(*flow.code);
        error_ = error_ || level == Severity::Error;
        Senders& senders = it->second.second;
        if (list->second != 0 && senders.last_merged == list->second)
            continue;
        senders.last_merged = list->second;
        if (senders.namespaces.empty()) {
            senders.namespaces = *namespaces;
        } else {
            std::vector<NsId> merged;
            merged.reserve(senders.namespaces.size() + namespaces->size());
            std::set_union(senders.namespaces.begin(), senders.namespaces.end(),
                           namespaces->begin(), namespaces->end(), std::back_inserter(merged));
            senders.namespaces = std::move(merged);
        }
    }
}

std::vector<Finding> FlowFindingCollector::take() {
    std::vector<Finding> out;
    out.reserve(findings_.size());
    // Namespace ids follow name order but for those numbered after the snapshot's (a namespace
    // the change itself introduces, the API server), which sort last by id.
    const std::size_t known = view_.snapshot().namespaces().size();
    for (auto& [key, entry] : findings_) {
        auto& [finding, clients] = entry;
        const auto& ids = clients.namespaces;
        auto& names = finding.flow->client_namespaces;
        const std::size_t first = std::min(names_kept_, ids.size());
        names.reserve(first);
        for (std::size_t i = 0; i < ids.size(); ++i)
            if (i < first || ids[i] >= known)
                names.push_back(view_.namespace_name(ids[i]));
        if (!std::is_sorted(names.begin(), names.end()))
            std::sort(names.begin(), names.end());
        if (names.size() > first)
            names.resize(first);
        finding.flow->client_namespaces_omitted = ids.size() - names.size();
        out.push_back(std::move(finding));
    }
    findings_.clear();
    hosts_.clear();
    return out;
}

} // namespace mtlsguard::conflict
