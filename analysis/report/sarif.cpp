// Findings as a SARIF 2.1.0 log, for code scanning on pull requests (GitHub, GitLab).
#include "analysis/report/sarif.hpp"

#include "analysis/report/findings_output.hpp"

#include <algorithm>
#include <cstdio>

namespace mtlsguard::report {
namespace {

using nlohmann::json;

std::string_view level_of(conflict::Severity severity) noexcept {
    switch (severity) {
    case conflict::Severity::Error:
        return "error";
    case conflict::Severity::Warning:
        return "warning";
    case conflict::Severity::Info:
        return "note";
    }
    return "note";
}

// "DestinationRule frontend/payments-api-debug", or "MeshPolicy default" when cluster-scoped.
std::string qualified_name(const model::ObjectRef& ref) {
    return ref.kind + " " +
           (ref.namespace_name.empty() ? ref.name : ref.namespace_name + "/" + ref.name);
}

json rule_of(conflict::Code code) {
    const std::string id(conflict::to_string(code));
    const std::string summary(conflict::summary_of(code));
    const std::string fix(conflict::fix_of(code));
    return {{"id", id},
            {"name", id},
            {"shortDescription", {{"text", summary}}},
            {"fullDescription", {{"text", summary + ". " + fix}}},
            {"help",
             {{"text", summary + ".\nFix: " + fix},
              {"markdown", "**" + summary + ".**\n\nFix: " + fix +
                               "\n\nSee the finding codes in the mtls-guard README."}}},
            {"defaultConfiguration", {{"level", level_of(conflict::severity_of(code))}}}};
}

json location_of(const model::ObjectRef& ref, const LocateObject& locate) {
    json location = {{"logicalLocations", json::array({{{"fullyQualifiedName", qualified_name(ref)},
                                                        {"name", ref.name},
                                                        {"kind", "object"}}})}};
    if (const auto source = locate ? locate(ref) : std::nullopt) {
        json physical = {{"artifactLocation", {{"uri", source->uri}}}};
        if (source->line > 0)
            physical["region"] = {{"startLine", source->line}};
        location["physicalLocation"] = std::move(physical);
    }
    return location;
}

// FNV-1a over what identifies a finding across runs: the code, the object, and the flow.
std::string fingerprint(const conflict::Finding& f) {
    std::string text = std::string(conflict::to_string(f.code)) + '|' + qualified_name(f.resource);
    if (f.flow) {
        text += '|' + f.flow->host + ':' + std::to_string(f.flow->port) + '|' +
                f.flow->client_dataplane + '|' + f.flow->subset;
        if (f.flow->workload)
            text += '|' + f.flow->workload->namespace_name + '/' + f.flow->workload->name;
    }
    std::uint64_t hash = 14695981039346656037ull;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ull;
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(hash));
    return out;
}

} // namespace

json sarif_document(const std::vector<conflict::Finding>& findings, const LocateObject& locate,
                    std::string_view tool_version) {
    json rules = json::array();
    std::vector<conflict::Code> codes = conflict::all_codes();
    for (conflict::Code code : codes)
        rules.push_back(rule_of(code));
    json results = json::array();
    for (const auto& f : findings) {
        const auto index =
            static_cast<std::size_t>(std::find(codes.begin(), codes.end(), f.code) - codes.begin());
        json result = {{"ruleId", conflict::to_string(f.code)},
                       {"ruleIndex", index},
                       {"level", level_of(f.severity)},
                       {"message", {{"text", f.message}}},
                       {"locations", json::array({location_of(f.resource, locate)})},
                       {"partialFingerprints", {{"mtlsGuardFinding/v1", fingerprint(f)}}}};
        if (!f.related.empty()) {
            json related = json::array();
            for (std::size_t i = 0; i < f.related.size(); ++i) {
                json location = location_of(f.related[i], locate);
                location["id"] = i + 1;
                location["message"] = {{"text", qualified_name(f.related[i])}};
                related.push_back(std::move(location));
            }
            result["relatedLocations"] = std::move(related);
        }
        if (f.flow)
            result["properties"] = {{"flow", to_json(f)["flow"]}};
        results.push_back(std::move(result));
    }
    json driver = {{"name", "mtls-guard"},
                   {"version", tool_version},
                   {"semanticVersion", tool_version},
                   {"rules", std::move(rules)}};
    return {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
            {"version", "2.1.0"},
            {"runs", json::array({{{"tool", {{"driver", std::move(driver)}}},
                                   {"columnKind", "unicodeCodePoints"},
                                   {"results", std::move(results)}}})}};
}

} // namespace mtlsguard::report
