// One-line messages for findings: what breaks, for whom, and how to fix it.
#pragma once

#include "analysis/conflict/finding.hpp"

namespace mtlsguard::report {

// The message for a finding, from its code, flow and detail. Never contains a newline.
std::string describe(const conflict::Finding& finding);

// "a, b, c and 4 more": a short list for one-line messages.
std::string short_list(const std::vector<std::string>& names, std::size_t shown = 3);

// Fills Finding::message for every finding that has none.
void describe_all(std::vector<conflict::Finding>& findings);

} // namespace mtlsguard::report
