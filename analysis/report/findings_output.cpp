// Findings as the JSON document and the istioctl-style text of `mtls-guard analyze`.
#include "analysis/report/findings_output.hpp"

namespace mtlsguard::report {

nlohmann::json to_json(const model::ObjectRef& ref) {
    nlohmann::json out = {{"apiVersion", ref.api_version}, {"kind", ref.kind}, {"name", ref.name}};
    if (!ref.namespace_name.empty())
        out["namespace"] = ref.namespace_name;
    return out;
}

nlohmann::json to_json(const conflict::Finding& f) {
    nlohmann::json out = {{"code", conflict::to_string(f.code)},
                          {"severity", conflict::to_string(f.severity)},
                          {"message", f.message},
                          {"resource", to_json(f.resource)}};
    nlohmann::json related = nlohmann::json::array();
    for (const auto& r : f.related)
        related.push_back(to_json(r));
    out["related"] = std::move(related);
    if (f.flow) {
        const auto& flow = *f.flow;
        nlohmann::json j = {{"clientNamespaces", flow.client_namespaces},
                            {"clientSidecar", flow.client_sidecar},
                            {"clientDataplane", flow.client_dataplane},
                            {"host", flow.host},
                            {"port", flow.port},
                            {"targetPort", flow.target_port},
                            {"client", flow.client},
                            {"server", flow.server}};
        if (flow.workload)
            j["workload"] = {{"namespace", flow.workload->namespace_name},
                             {"name", flow.workload->name},
                             {"dataplane", flow.workload_dataplane}};
        if (flow.via)
            j["via"] = {{"namespace", flow.via->namespace_name}, {"name", flow.via->name}};
        if (!flow.subset.empty())
            j["subset"] = flow.subset;
        if (!flow.client_bypass.empty())
            j["clientBypass"] = flow.client_bypass;
        out["flow"] = std::move(j);
    }
    return out;
}

nlohmann::json findings_document(const std::vector<conflict::Finding>& findings) {
    nlohmann::json list = nlohmann::json::array();
    int errors = 0, warnings = 0, infos = 0;
    for (const auto& f : findings) {
        list.push_back(to_json(f));
        (f.severity == conflict::Severity::Error     ? errors
         : f.severity == conflict::Severity::Warning ? warnings
                                                     : infos)++;
    }
    return {{"findings", std::move(list)},
            {"summary", {{"errors", errors}, {"warnings", warnings}, {"infos", infos}}}};
}

std::string finding_line(const conflict::Finding& f) {
    std::string severity(conflict::to_string(f.severity));
    severity[0] = static_cast<char>(severity[0] - 'a' + 'A');
    return severity + " [" + std::string(conflict::to_string(f.code)) + "] (" + f.resource.kind +
           " " + model::display_name(f.resource) + ") " + f.message;
}

std::string findings_text(const std::vector<conflict::Finding>& findings) {
    std::string out;
    for (const auto& f : findings)
        out += finding_line(f) + "\n";
    return out;
}

} // namespace mtlsguard::report
