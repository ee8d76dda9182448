// VirtualService routes to subsets that the clients' DestinationRule does not define (MTG107).
#include "analysis/conflict/routes.hpp"

#include "analysis/conflict/flows.hpp"
#include "analysis/resolution/virtual_service.hpp"

#include <map>

namespace mtlsguard::conflict {

namespace {

// The DestinationRule to name for a rule (a host's rule may sit in two indexes of a namespace).
const model::DestinationRule* named_rule(const model::ConsolidatedRule* rule) {
    if (!rule)
        return nullptr;
    return rule->policy_source ? rule->policy_source : rule->members.front();
}

bool defines(const model::ConsolidatedRule* rule, const std::string& subset) {
    return rule && std::any_of(rule->subsets.begin(), rule->subsets.end(),
                               [&](const model::Subset* s) { return s->name == subset; });
}

} // namespace

std::vector<Finding> undefined_subset_routes(const resolution::ConfigView& view,
                                             const std::vector<model::ServiceId>& services) {
    std::vector<Finding> out;
    for (model::ServiceId id : services) {
        const model::ServiceRecord& service = view.snapshot().services()[id];
        const auto routes = resolution::subset_routes_to(view, service.host);
        if (routes.empty())
            continue;
        resolution::HostClients scratch;
        const auto& clients = view.service_clients(id, scratch);
        // Per route destination and rule: the namespaces it fails for.
        std::map<std::pair<const model::RouteDestination*, const model::DestinationRule*>,
                 std::vector<NsId>>
            failing;
        clients.for_each_outcome([&](const resolution::ClientOutcome& outcome) {
            const auto namespaces = resolution::outcome_namespaces(view, outcome, clients);
            for (const auto& route : routes) {
                if (defines(outcome.rule, route.destination->subset))
                    continue;
                for (NsId ns : namespaces)
                    if (resolution::route_applies_to(view, route, view.namespace_name(ns)))
                        failing[{route.destination, named_rule(outcome.rule)}].push_back(ns);
            }
        });
        for (const auto& route : routes) {
            for (auto& [key, namespaces] : failing) {
                if (key.first != route.destination)
                    continue;
                std::sort(namespaces.begin(), namespaces.end());
                namespaces.erase(std::unique(namespaces.begin(), namespaces.end()),
                                 namespaces.end());
                Finding f;
                f.code = Code::MTG107;
                f.severity = severity_of(Code::MTG107);
                f.resource = route.virtual_service->ref;
                if (key.second)
                    f.related.push_back(key.second->ref);
                FlowSummary flow;
                for (NsId ns : namespaces)
                    flow.client_namespaces.push_back(view.namespace_name(ns));
                std::sort(flow.client_namespaces.begin(), flow.client_namespaces.end());
                flow.host = service.host;
                flow.port = route.destination->port.value_or(0);
                flow.subset = route.destination->subset;
                f.flow = std::move(flow);
                f.detail.text = route.destination->path;
                out.push_back(std::move(f));
            }
        }
    }
    return out;
}

} // namespace mtlsguard::conflict
