// `mtls-guard report`: one self-contained HTML page with the summary, the findings and the client
// namespace x service grid, each cell opening its `explain` text.
#pragma once

#include "analysis/analyze.hpp"
#include "analysis/model/snapshot.hpp"

#include <compare>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mtlsguard::report {

// One cell of the grid: the flows from one client namespace to one service host.
struct ReportCell {
    std::string client_namespace;
    std::string host;
    friend auto operator<=>(const ReportCell&, const ReportCell&) = default;
};

// Everything the page shows; html_report only renders it.
struct HtmlReportData {
    std::vector<std::string> sources; // the -f paths, shown as given
    std::size_t namespaces = 0;       // in the input
    std::size_t services = 0;         // Services and ServiceEntry hosts in the input
    std::string namespace_filter;     // --namespace: the grid is limited to it
    std::vector<conflict::Finding> findings;
    std::vector<MatrixRow> rows;
    std::map<ReportCell, std::string> explanations; // explain text per cell
    // Why some cells carry no explanation (a large mesh); empty when every cell has one.
    std::string explanations_note;
};

// MTLS < PLAINTEXT < DEPENDS < FAIL: a cell holding several flows shows the worst.
int verdict_rank(std::string_view verdict) noexcept;

// The grid's cells with their worst verdict, in row then column order.
std::map<ReportCell, std::string> cell_verdicts(const std::vector<MatrixRow>& rows);

// Fills data.explanations from the explain engine: every cell when there are at most `limit`,
// else only FAIL and DEPENDS cells (at most `limit`), with data.explanations_note saying so.
void add_explanations(HtmlReportData& data, const model::Snapshot& snapshot,
                      std::size_t limit) noexcept;

// Text as HTML element content or a quoted attribute value.
std::string html_escape(std::string_view text);

// The whole page. Never throws: on failure (out of memory) returns an empty string.
std::string html_report(const HtmlReportData& data) noexcept;

} // namespace mtlsguard::report
