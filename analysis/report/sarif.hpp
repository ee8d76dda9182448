// Findings as a SARIF 2.1.0 log, for code scanning on pull requests (GitHub, GitLab).
#pragma once

#include "analysis/conflict/finding.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

namespace mtlsguard::report {

// Where an object was read from: a relative path (forward slashes) and its 1-based first line
// (0: unknown line).
struct SourceLocation {
    std::string uri;
    std::size_t line = 0;
};
using LocateObject = std::function<std::optional<SourceLocation>(const model::ObjectRef&)>;

// One run of the tool `mtls-guard` at `tool_version`: a rule per catalogue code (its meaning and
// fix), and a result per finding located at the document of the object it is reported on (when
// `locate` knows it; always with the object as a logical location), its related objects as
// related locations, and a fingerprint stable across runs.
nlohmann::json sarif_document(const std::vector<conflict::Finding>& findings,
                              const LocateObject& locate, std::string_view tool_version);

} // namespace mtlsguard::report
