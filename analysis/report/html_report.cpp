// `mtls-guard report`: the self-contained HTML page (inline CSS and script, nothing fetched).
#include "analysis/report/html_report.hpp"

#include "analysis/report/explain.hpp"
#include "analysis/version.hpp"

#include <algorithm>
#include <array>
#include <set>

namespace mtlsguard::report {
namespace {

constexpr std::array<std::string_view, 4> verdicts{"MTLS", "PLAINTEXT", "DEPENDS", "FAIL"};

// No network at all: a content security policy that allows only the page's own inline parts.
constexpr std::string_view head_html = R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mtls-guard report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
h1 { margin-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
ul.summary { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.6em; }
ul.summary li { border: 1px solid #ccc; border-radius: 4px; padding: 0.4em 0.8em; }
ul.summary b { font-size: 1.3em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
#grid th.service { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
#grid td { min-width: 5.5em; text-align: center; }
#grid td.cell { cursor: pointer; font-weight: 600; }
#grid td.cell:focus, #grid td.selected { outline: 3px solid #1565c0; outline-offset: -3px; }
.v-MTLS { background: #43a047; color: #fff; }
.v-PLAINTEXT { background: #9e9e9e; color: #fff; }
.v-DEPENDS { background: #ffb300; color: #1b1b1b; }
.v-FAIL { background: #e53935; color: #fff; }
.kind { display: inline-block; font-size: 0.75em; font-weight: normal; border: 1px solid #888;
        border-radius: 3px; padding: 0 0.3em; margin-left: 0.3em; }
.legend span.swatch { display: inline-block; width: 1em; height: 1em; vertical-align: middle;
                      margin: 0 0.3em 0 1em; border: 1px solid #666; }
.note { background: #fff8e1; border-left: 4px solid #ffb300; padding: 0.4em 0.8em; }
#explanation { margin-top: 1em; border: 1px solid #1565c0; padding: 0.5em 1em; }
#explanation pre { white-space: pre-wrap; }
.sev-error { color: #c62828; font-weight: 600; }
.sev-warning { color: #a66b00; font-weight: 600; }
</style>
</head>
)";

// Counts the cells by verdict and checks that each cell's colour is its legend swatch's, for
// people and for the browser test (--dump-dom shows the body's data- attributes); a cell opens
// its explanation on click or Enter, and #cell=ID opens one on load.
constexpr std::string_view script_html = R"(<script>
(function () {
  var body = document.body;
  var panel = document.getElementById('explanation');
  function open(cell) {
    var id = cell.getAttribute('data-explain');
    var source = id ? document.getElementById(id) : null;
    var from = cell.getAttribute('data-from'), host = cell.getAttribute('data-host');
    document.getElementById('explanation-title').textContent = from + ' \u2192 ' + host;
    document.getElementById('explanation-command').textContent =
      'mtls-guard explain -f ... --from ' + from + ' --to ' + host;
    document.getElementById('explanation-text').textContent = source ? source.textContent :
      'No explanation is embedded for this cell (see the note above the grid): run the command above.';
    panel.hidden = false;
    if (panel.scrollIntoView) panel.scrollIntoView({block: 'nearest'});
    var previous = document.querySelector('#grid td.selected');
    if (previous) previous.classList.remove('selected');
    cell.classList.add('selected');
    body.setAttribute('data-open', cell.id);
  }
  var swatches = {};
  document.querySelectorAll('.legend span.swatch').forEach(function (s) {
    swatches[s.getAttribute('data-verdict')] = getComputedStyle(s).backgroundColor;
  });
  var counts = {MTLS: 0, PLAINTEXT: 0, DEPENDS: 0, FAIL: 0};
  var consistent = true;
  var cells = document.querySelectorAll('#grid td.cell');
  cells.forEach(function (cell) {
    var verdict = cell.getAttribute('data-verdict');
    counts[verdict] = (counts[verdict] || 0) + 1;
    var colour = getComputedStyle(cell).backgroundColor;
    if (colour !== swatches[verdict]) consistent = false;
    if (!body.hasAttribute('data-colour-' + verdict.toLowerCase()))
      body.setAttribute('data-colour-' + verdict.toLowerCase(), colour);
    cell.addEventListener('click', function () { open(cell); });
    cell.addEventListener('keydown', function (e) { if (e.key === 'Enter') open(cell); });
  });
  body.setAttribute('data-cells', cells.length);
  Object.keys(counts).forEach(function (v) { body.setAttribute('data-' + v.toLowerCase(), counts[v]); });
  body.setAttribute('data-explained', document.querySelectorAll('#explanations pre').length);
  body.setAttribute('data-colours', consistent ? 'consistent' : 'inconsistent');
  var hash = decodeURIComponent(location.hash);
  if (hash.indexOf('#cell=') === 0) {
    var target = document.getElementById(hash.slice(6));
    if (target && target.classList.contains('cell')) target.click();
  }
  body.setAttribute('data-ready', 'true');
})();
</script>
)";

std::string count_item(std::string_view id, std::size_t n, std::string_view label) {
    return "<li id=\"" + std::string(id) + "\"><b>" + std::to_string(n) + "</b> " +
           std::string(label) + "</li>\n";
}

std::string summary_html(const HtmlReportData& data) {
    std::size_t errors = 0, warnings = 0, infos = 0;
    for (const auto& f : data.findings)
        ++(f.severity == conflict::Severity::Error     ? errors
           : f.severity == conflict::Severity::Warning ? warnings
                                                       : infos);
    std::string out = "<section id=\"summary\">\n<h2>Summary</h2>\n<ul class=\"summary\">\n";
    out += count_item("errors", errors, "errors");
    out += count_item("warnings", warnings, "warnings");
    out += count_item("infos", infos, "infos");
    out += count_item("namespaces", data.namespaces, "namespaces");
    out += count_item("services", data.services, "services");
    out += count_item("flows", data.rows.size(), "flows");
    return out + "</ul>\n</section>\n";
}

// "web.shop" for web.shop.svc.cluster.local: the grid's columns are narrow.
std::string short_host(const std::string& host) {
    const auto svc = host.find(".svc.");
    return svc == std::string::npos ? host : host.substr(0, svc);
}

// The flows of one cell, one line each, for its tooltip.
std::string flow_line(const MatrixRow& row) {
    std::string line = row.client_dataplane;
    if (!row.bypass.empty())
        line += " skipping its sidecar (" + row.bypass + ")";
    line += " :" + std::to_string(row.port);
    if (!row.workload_name.empty())
        line += " -> " + row.workload_namespace + "/" + row.workload_name + ":" +
                std::to_string(row.target_port);
    if (!row.via_name.empty())
        line += " via " + row.via_namespace + "/" + row.via_name;
    if (!row.hidden_by_name.empty())
        line += " hidden by Sidecar " + row.hidden_by_namespace + "/" + row.hidden_by_name;
    return line + ": " + row.client + " to " + row.server + " = " + row.verdict;
}

std::string legend_html() {
    std::string out = "<p class=\"legend\">Legend:";
    constexpr std::array<std::string_view, 4> meanings{
        "mutual TLS", "plaintext, accepted",
        "depends on the application, e.g. whether it terminates TLS", "connections fail"};
    for (std::size_t i = 0; i < verdicts.size(); ++i)
        out += "<span class=\"swatch v-" + std::string(verdicts[i]) + "\" data-verdict=\"" +
               std::string(verdicts[i]) + "\"></span>" + std::string(verdicts[i]) + " (" +
               std::string(meanings[i]) + ")";
    return out +
           ". A cell holding several flows (ports, workloads, kinds of client) shows the worst. "
           "Click a cell for its explanation.</p>\n";
}

struct Axes {
    std::vector<std::string> namespaces;                       // rows
    std::vector<std::string> hosts;                            // columns
    std::map<std::string, std::set<std::string>> kinds;        // client kinds per namespace
    std::map<ReportCell, std::vector<const MatrixRow*>> flows; // per cell
};

Axes axes_of(const std::vector<MatrixRow>& rows) {
    Axes axes;
    std::set<std::string> namespaces, hosts;
    for (const auto& row : rows) {
        namespaces.insert(row.client_namespace);
        hosts.insert(row.host);
        axes.kinds[row.client_namespace].insert(row.client_dataplane);
        axes.flows[{row.client_namespace, row.host}].push_back(&row);
    }
    axes.namespaces.assign(namespaces.begin(), namespaces.end());
    axes.hosts.assign(hosts.begin(), hosts.end());
    return axes;
}

std::string cell_html(const HtmlReportData& data, const Axes& axes, std::size_t r, std::size_t c) {
    const ReportCell key{axes.namespaces[r], axes.hosts[c]};
    const auto it = axes.flows.find(key);
    if (it == axes.flows.end())
        return "<td></td>";
    std::string verdict = "MTLS", tooltip;
    for (const auto* row : it->second) {
        if (verdict_rank(row->verdict) > verdict_rank(verdict))
            verdict = row->verdict;
        tooltip += (tooltip.empty() ? "" : "\n") + flow_line(*row);
    }
    const std::string suffix = std::to_string(r) + "-" + std::to_string(c);
    std::string out = "<td class=\"cell v-" + html_escape(verdict) + "\" id=\"c-" + suffix +
                      "\" tabindex=\"0\" data-verdict=\"" + html_escape(verdict) +
                      "\" data-from=\"" + html_escape(key.client_namespace) + "\" data-host=\"" +
                      html_escape(key.host) + "\"";
    if (data.explanations.count(key))
        out += " data-explain=\"x-" + suffix + "\"";
    out += " title=\"" + html_escape(tooltip) + "\">" + html_escape(verdict);
    if (it->second.size() > 1)
        out += " <small>(" + std::to_string(it->second.size()) + ")</small>";
    return out + "</td>";
}

std::string grid_html(const HtmlReportData& data, const Axes& axes) {
    std::string out = "<section id=\"grid-section\">\n<h2>Client namespace &#215; service</h2>\n";
    if (!data.namespace_filter.empty())
        out += "<p>Only flows whose client or service is in namespace <code>" +
               html_escape(data.namespace_filter) + "</code>.</p>\n";
    out += legend_html();
    if (!data.explanations_note.empty())
        out += "<p class=\"note\" id=\"explanations-note\">" + html_escape(data.explanations_note) +
               "</p>\n";
    if (axes.namespaces.empty())
        return out + "<p>No flows: the input has no client and service pair.</p>\n</section>\n";
    out += "<table id=\"grid\">\n<thead><tr><th>client namespace \\ service</th>";
    for (const auto& host : axes.hosts)
        out += "<th class=\"service\" title=\"" + html_escape(host) + "\">" +
               html_escape(short_host(host)) + "</th>";
    out += "</tr></thead>\n<tbody>\n";
    for (std::size_t r = 0; r < axes.namespaces.size(); ++r) {
        out += "<tr><th scope=\"row\">" + html_escape(axes.namespaces[r]);
        for (const auto& kind : axes.kinds.at(axes.namespaces[r]))
            out += "<span class=\"kind\">" + html_escape(kind) + "</span>";
        out += "</th>";
        for (std::size_t c = 0; c < axes.hosts.size(); ++c)
            out += cell_html(data, axes, r, c);
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n<div id=\"explanation\" hidden>\n<h3 "
           "id=\"explanation-title\"></h3>\n<p><code id=\"explanation-command\"></code></p>\n<pre "
           "id=\"explanation-text\"></pre>\n</div>\n</section>\n";
    return out;
}

std::string findings_html(const std::vector<conflict::Finding>& findings) {
    std::string out = "<section id=\"findings\">\n<h2>Findings</h2>\n";
    if (findings.empty())
        return out + "<p>No mTLS conflicts found.</p>\n</section>\n";
    out += "<table>\n<thead><tr><th>Severity</th><th>Code</th><th>Object</th><th>Message</th>"
           "<th>Fix</th></tr></thead>\n<tbody>\n";
    for (const auto& f : findings) {
        const std::string severity(conflict::to_string(f.severity));
        out += "<tr class=\"finding\"><td class=\"sev-" + severity + "\">" + severity +
               "</td><td>" + std::string(conflict::to_string(f.code)) + "</td><td>" +
               html_escape(f.resource.kind + " " + model::display_name(f.resource)) + "</td><td>" +
               html_escape(f.message) + "</td><td>" + html_escape(conflict::fix_of(f.code)) +
               "</td></tr>\n";
    }
    return out + "</tbody>\n</table>\n</section>\n";
}

std::size_t index_of(const std::vector<std::string>& sorted, const std::string& value) {
    return static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), value) -
                                    sorted.begin());
}

// The explanations, hidden, where the script finds them by the cell's data-explain id.
std::string explanations_html(const HtmlReportData& data, const Axes& axes) {
    std::string out = "<div id=\"explanations\" hidden>\n";
    for (const auto& [cell, text] : data.explanations) {
        if (!axes.flows.count(cell))
            continue;
        out += "<pre id=\"x-" + std::to_string(index_of(axes.namespaces, cell.client_namespace)) +
               "-" + std::to_string(index_of(axes.hosts, cell.host)) + "\">" + html_escape(text) +
               "</pre>\n";
    }
    return out + "</div>\n";
}

std::string page(const HtmlReportData& data) {
    const Axes axes = axes_of(data.rows);
    std::string out(head_html);
    out += "<body>\n<h1>mtls-guard report</h1>\n<p class=\"meta\">mtls-guard " +
           html_escape(version()) + " &#183; input:";
    for (const auto& source : data.sources)
        out += " <code>" + html_escape(source) + "</code>";
    out += "</p>\n" + summary_html(data) + grid_html(data, axes) + findings_html(data.findings) +
           explanations_html(data, axes);
    out += script_html;
    return out + "</body>\n</html>\n";
}

} // namespace

int verdict_rank(std::string_view verdict) noexcept {
    for (std::size_t i = 0; i < verdicts.size(); ++i)
        if (verdicts[i] == verdict)
            return static_cast<int>(i);
    return static_cast<int>(verdicts.size()); // an unknown verdict is not hidden behind a known one
}

std::map<ReportCell, std::string> cell_verdicts(const std::vector<MatrixRow>& rows) {
    std::map<ReportCell, std::string> out;
    for (const auto& row : rows) {
        auto [it, added] = out.try_emplace({row.client_namespace, row.host}, row.verdict);
        if (!added && verdict_rank(row.verdict) > verdict_rank(it->second))
            it->second = row.verdict;
    }
    return out;
}

void add_explanations(HtmlReportData& data, const model::Snapshot& snapshot,
                      std::size_t limit) noexcept {
    try {
        const auto cells = cell_verdicts(data.rows);
        const bool all = cells.size() <= limit;
        std::size_t wanted = 0;
        for (const auto& [cell, verdict] : cells) {
            if (!all && verdict != "FAIL" && verdict != "DEPENDS")
                continue;
            if (++wanted > limit)
                continue;
            const auto result = explain(snapshot, ExplainRequest{cell.client_namespace, cell.host,
                                                                 std::nullopt, std::string()});
            data.explanations[cell] = !result.internal_error.empty() ? result.internal_error
                                      : !result.error.empty()        ? result.error
                                                                     : explain_text(result);
        }
        if (!all)
            data.explanations_note =
                "The grid has " + std::to_string(cells.size()) + " cells, more than " +
                std::to_string(limit) + ": explanations are embedded for FAIL and DEPENDS cells " +
                "only (" + std::to_string(std::min(wanted, limit)) + " of " +
                std::to_string(wanted) + "). For any other cell, run the explain command shown.";
    } catch (...) {
        data.explanations_note = "The explanations could not be computed.";
    }
}

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

std::string html_report(const HtmlReportData& data) noexcept {
    try {
        return page(data);
    } catch (...) {
        return {};
    }
}

} // namespace mtlsguard::report
