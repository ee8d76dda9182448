// VirtualService routes to subsets that the clients' DestinationRule does not define (MTG107).
#include "analysis/conflict/routes.hpp"

#include "analysis/conflict/flows.hpp"
#include "analysis/resolution/virtual_service.hpp"

#include <algorithm>
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

// Whether a route applies to clients in every namespace: no sourceNamespaces, and exported to all
// (resolution::route_applies_to, without asking it once per client namespace).
bool applies_everywhere(const resolution::HostRoute& route) {
    const auto& export_to = route.virtual_service->export_to;
    return route.destination->source_namespaces.empty() &&
           (export_to.empty() ||
            std::find(export_to.begin(), export_to.end(), "*") != export_to.end());
}

// The names of namespaces `ids` (sorted and unique), sorted. The snapshot numbers its namespaces
// in name order, so only a namespace a view adds (or the API server as a client) can be out of
// place: a mesh-wide route's 5,000 names are not sorted again.
std::vector<std::string> sorted_names(const resolution::ConfigView& view,
                                      const std::vector<NsId>& ids) {
    std::vector<std::string> names;
    names.reserve(ids.size());
    for (NsId ns : ids)
        names.push_back(view.namespace_name(ns));
    if (!std::is_sorted(names.begin(), names.end()))
        std::sort(names.begin(), names.end());
    return names;
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
                if (namespaces.empty() || defines(outcome.rule, route.destination->subset))
                    continue;
                const std::pair key{route.destination, named_rule(outcome.rule)};
                if (applies_everywhere(route)) {
                    auto& list = failing[key];
                    list.insert(list.end(), namespaces.begin(), namespaces.end());
                    continue;
                }
                for (NsId ns : namespaces)
                    if (resolution::route_applies_to(view, route, view.namespace_name(ns)))
                        failing[key].push_back(ns);
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
                flow.client_namespaces = sorted_names(view, namespaces);
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
