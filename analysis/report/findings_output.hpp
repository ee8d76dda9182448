// Findings as the JSON document and the istioctl-style text of `mtls-guard analyze`.
#pragma once

#include "analysis/conflict/finding.hpp"

#include <nlohmann/json.hpp>

namespace mtlsguard::report {

nlohmann::json to_json(const model::ObjectRef& ref);
nlohmann::json to_json(const conflict::Finding& finding);
// {"findings": [...], "summary": {"errors": n, "warnings": n, "infos": n}}
nlohmann::json findings_document(const std::vector<conflict::Finding>& findings);
// `Error [MTG102] (DestinationRule httpbin-full-mtls.full) message`, one line per finding.
std::string findings_text(const std::vector<conflict::Finding>& findings);
std::string finding_line(const conflict::Finding& finding);

} // namespace mtlsguard::report
