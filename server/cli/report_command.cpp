// `mtls-guard report`: the findings and the client x service grid as one self-contained HTML file.
#include "analysis/report/html_report.hpp"
#include "server/cli/commands.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>

namespace mtlsguard::cli {
namespace {

// Writes the page aside and renames it into place, so a failed run never leaves half a report.
bool write_report(const std::string& path, const std::string& html) {
    if (path == "-") {
        std::cout << html;
        std::cout.flush();
        return static_cast<bool>(std::cout);
    }
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << html;
        out.close();
        if (!out) {
            std::remove(temporary.c_str());
            return false;
        }
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        std::remove(temporary.c_str());
        return false;
    }
    return true;
}

} // namespace

int run_report(const ReportOptions& options) {
    const auto loaded = load(options.source);
    if (!loaded)
        return 2;
    const auto& snapshot = *loaded->snapshot;
    auto analysis = analyze(snapshot);
    auto grid = matrix(snapshot, options.namespace_filter);
    if (!analysis.internal_error.empty() || !grid.internal_error.empty()) {
        std::cerr << "mtls-guard: internal error: "
                  << (analysis.internal_error.empty() ? grid.internal_error
                                                      : analysis.internal_error)
                  << "\n";
        return 2;
    }
    report::HtmlReportData data;
    data.sources = options.source.paths;
    data.namespaces = snapshot.namespaces().size();
    data.services = snapshot.services().size() + snapshot.external_hosts().size();
    data.namespace_filter = options.namespace_filter;
    data.findings = std::move(analysis.findings);
    data.rows = std::move(grid.rows);
    report::add_explanations(data, snapshot, options.max_explanations);
    const std::string html = report::html_report(data);
    if (html.empty()) {
        std::cerr << "mtls-guard report: could not render the report\n";
        return 2;
    }
    if (!write_report(options.output_file, html)) {
        std::cerr << "mtls-guard report: cannot write " << options.output_file << "\n";
        return 2;
    }
    return 0;
}

} // namespace mtlsguard::cli
