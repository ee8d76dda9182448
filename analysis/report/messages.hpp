// One-line messages for findings: what breaks, for whom, and how to fix it.
#pragma once

#include "analysis/conflict/finding.hpp"

namespace mtlsguard::report {

// The message for a finding, from its code, flow and detail. Never contains a newline.
std::string describe(const conflict::Finding& finding);

// How many names a one-line message shows of a list.
inline constexpr std::size_t names_shown = 3;

// "a, b, c and 4 more": a short list for one-line messages; `omitted` names beyond `names` count
// in the "more".
std::string short_list(const std::vector<std::string>& names, std::size_t shown = names_shown,
                       std::size_t omitted = 0);

// Fills Finding::message for every finding that has none.
void describe_all(std::vector<conflict::Finding>& findings);

} // namespace mtlsguard::report
