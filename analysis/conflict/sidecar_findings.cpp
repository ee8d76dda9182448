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
    if (flow.hidden_by != last_sidecar_ || entries_.empty()) {
        auto [it, inserted] = index_.try_emplace(flow.hidden_by, entries_.size());
        if (inserted)
            entries_.push_back(Entry{flow.hidden_by, flow.dropped, {}});
        last_sidecar_ = flow.hidden_by;
        last_ = it->second;
    }
    auto& services = entries_[last_].services;
    // Every port and endpoint of a Service repeats it: keep it once in a row.
    if (services.empty() || services.back() != flow.service)
        services.push_back(flow.service);
}

std::map<HiddenServiceCollector::SidecarKey, std::vector<std::size_t>>
HiddenServiceCollector::by_key() const {
    std::map<SidecarKey, std::vector<std::size_t>> out;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const auto& ref = entries_[i].sidecar->ref;
        out[SidecarKey{ref.namespace_name, ref.name}].push_back(i);
    }
    return out;
}

HiddenServiceCollector::Hidden
HiddenServiceCollector::hidden_of(const std::vector<std::size_t>& entries) const {
    // The first flow seen names the Sidecar and its policy.
    const Entry& first = entries_[entries.front()];
    Hidden out{first.sidecar->ref, first.dropped, {}};
    for (std::size_t i : entries)
        for (const auto* service : entries_[i].services)
            out.services.emplace(service->service.ref.namespace_name, service->service.ref.name);
    return out;
}

std::optional<HiddenServiceCollector::Hidden>
HiddenServiceCollector::hidden(const SidecarKey& key) const {
    std::vector<std::size_t> entries;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const auto& ref = entries_[i].sidecar->ref;
        if (ref.namespace_name == key.first && ref.name == key.second)
            entries.push_back(i);
    }
    if (entries.empty())
        return std::nullopt;
    return hidden_of(entries);
}

std::vector<Finding> HiddenServiceCollector::findings() const {
    std::vector<Finding> out;
    const auto keys = by_key();
    out.reserve(keys.size());
    for (const auto& [key, entries] : keys) {
        const Hidden hidden = hidden_of(entries);
        out.push_back(hidden_services_finding(hidden.sidecar, hidden.services, hidden.dropped));
    }
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
