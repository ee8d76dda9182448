// MTG211: the STRICT services a Sidecar resource hides from its clients (ambient.md §14).
#include "analysis/conflict/sidecar_findings.hpp"

namespace mtlsguard::conflict {

namespace {

// How many hidden Services a finding names in `related`; its message says how many more.
constexpr std::size_t services_named = 3;

} // namespace

void HiddenServiceCollector::add(const Flow& flow) {
    if (!flow.hidden_by || !flow.service ||
        (flow.server != ServerAccept::Strict && flow.server != ServerAccept::AmbientStrict))
        return;
    const auto& ref = flow.hidden_by->ref;
    auto [it, inserted] = hidden_.try_emplace(SidecarKey{ref.namespace_name, ref.name});
    if (inserted) {
        it->second.sidecar = ref;
        it->second.dropped = flow.dropped;
    }
    const auto& service = flow.service->service.ref;
    it->second.services.emplace(service.namespace_name, service.name);
}

std::vector<Finding> HiddenServiceCollector::findings() const {
    std::vector<Finding> out;
    out.reserve(hidden_.size());
    for (const auto& [key, entry] : hidden_)
        out.push_back(hidden_services_finding(entry.sidecar, entry.services, entry.dropped));
    return out;
}

Finding hidden_services_finding(const model::ObjectRef& sidecar,
                                const std::set<HiddenServiceCollector::SidecarKey>& services,
                                bool dropped) {
    Finding f;
    f.code = Code::MTG211;
    f.severity = severity_of(Code::MTG211);
    f.resource = sidecar;
    for (const auto& [ns, name] : services) {
        if (f.related.size() == services_named)
            break;
        f.related.push_back(model::ObjectRef{"v1", "Service", ns, name});
    }
    f.detail.text = dropped ? "REGISTRY_ONLY" : "ALLOW_ANY";
    f.detail.number = static_cast<long>(services.size());
    return f;
}

} // namespace mtlsguard::conflict
