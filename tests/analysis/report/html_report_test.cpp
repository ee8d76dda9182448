// Tests report/html_report: escaping, the legend, cell colours, the worst-verdict rule, the capped
// explanations, and that the page references nothing on the network.
#include "analysis/report/html_report.hpp"
#include "tests/analysis/support/builders.hpp"

#include <regex>

using namespace mtlsguard;
using namespace mtlsguard::test;
using report::HtmlReportData;

namespace {

MatrixRow row(const std::string& client_ns, const std::string& host, const std::string& verdict,
              std::uint16_t port = 80, const std::string& dataplane = "sidecar") {
    MatrixRow r;
    r.client_namespace = client_ns;
    r.client_dataplane = dataplane;
    r.client_sidecar = dataplane == "sidecar";
    r.host = host;
    r.port = port;
    r.target_port = port;
    r.workload_namespace = "shop";
    r.workload_name = "web";
    r.client = "ISTIO_MUTUAL";
    r.server = "STRICT";
    r.verdict = verdict;
    return r;
}

conflict::Finding finding(const std::string& name, const std::string& message) {
    conflict::Finding f;
    f.code = conflict::Code::MTG101;
    f.severity = conflict::Severity::Error;
    f.resource = {"security.istio.io/v1", "PeerAuthentication", "shop", name};
    f.message = message;
    return f;
}

// The <td> of the cell from `client_ns` to `host`, as the page renders it.
std::string cell_of(const std::string& html, const std::string& client_ns,
                    const std::string& host) {
    const std::string marker = "data-from=\"" + client_ns + "\" data-host=\"" + host + "\"";
    const auto at = html.find(marker);
    if (at == std::string::npos)
        return {};
    const auto start = html.rfind("<td", at);
    return html.substr(start, html.find("</td>", at) + 5 - start);
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

} // namespace

SCENARIO("Names and messages from manifests are escaped, a <script> among them") {
    HtmlReportData data;
    const std::string evil = "<script>alert(1)</script>";
    data.rows = {row(evil, "web.shop.svc.cluster.local", "FAIL")};
    data.findings = {finding(evil, "breaks \"" + evil + "\" & more")};
    data.sources = {"dir/<img src=x onerror=alert(2)>.yaml"};
    data.explanations[{evil, "web.shop.svc.cluster.local"}] = "explained " + evil;
    const std::string html = report::html_report(data);
    REQUIRE_FALSE(html.empty());
    CHECK(html.find(evil) == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK_THAT(html, Catch::Contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    CHECK_THAT(html, Catch::Contains("breaks &quot;&lt;script&gt;"));
    CHECK_THAT(html, Catch::Contains("&amp; more"));
    CHECK_THAT(html, Catch::Contains("explained &lt;script&gt;"));
    // Only the page's own script element.
    CHECK(count_of(html, "<script") == 1);
    CHECK(report::html_escape("a'b\"c<d>e&f") == "a&#39;b&quot;c&lt;d&gt;e&amp;f");
}

SCENARIO("The legend shows each verdict with its colour class") {
    const std::string html = report::html_report(HtmlReportData{});
    for (const std::string verdict : {"MTLS", "PLAINTEXT", "DEPENDS", "FAIL"}) {
        INFO(verdict);
        CHECK_THAT(html, Catch::Contains("<span class=\"swatch v-" + verdict +
                                         "\" data-verdict=\"" + verdict + "\">"));
    }
    CHECK_THAT(html, Catch::Contains(".v-MTLS { background: #43a047"));
    CHECK_THAT(html, Catch::Contains(".v-PLAINTEXT { background: #9e9e9e"));
    CHECK_THAT(html, Catch::Contains(".v-DEPENDS { background: #ffb300"));
    CHECK_THAT(html, Catch::Contains(".v-FAIL { background: #e53935"));
    CHECK_THAT(html, Catch::Contains("No mTLS conflicts found."));
}

SCENARIO("Each cell is coloured by its verdict, and a cell of several flows by the worst") {
    using Case = std::tuple<std::vector<std::string>, std::string>;
    const auto [flows, worst] = GENERATE(values<Case>({
        {{"MTLS"}, "MTLS"},
        {{"PLAINTEXT"}, "PLAINTEXT"},
        {{"MTLS", "PLAINTEXT"}, "PLAINTEXT"},
        {{"PLAINTEXT", "DEPENDS", "MTLS"}, "DEPENDS"},
        {{"MTLS", "FAIL", "DEPENDS"}, "FAIL"},
        {{"FAIL", "MTLS"}, "FAIL"},
    }));
    HtmlReportData data;
    std::uint16_t port = 80;
    for (const auto& verdict : flows)
        data.rows.push_back(row("front", "web.shop.svc.cluster.local", verdict, port++));
    data.rows.push_back(row("other", "db.shop.svc.cluster.local", "MTLS"));
    const std::string html = report::html_report(data);
    const std::string cell = cell_of(html, "front", "web.shop.svc.cluster.local");
    INFO(cell);
    CHECK_THAT(cell, Catch::StartsWith("<td class=\"cell v-" + worst + "\""));
    CHECK_THAT(cell, Catch::Contains("data-verdict=\"" + worst + "\""));
    if (flows.size() > 1)
        CHECK_THAT(cell, Catch::Contains("(" + std::to_string(flows.size()) + ")"));
    CHECK(report::cell_verdicts(data.rows).at({"front", "web.shop.svc.cluster.local"}) == worst);
    // 2 namespaces x 2 services: 2 cells with flows, 2 empty ones.
    CHECK(count_of(html, "<td class=\"cell ") == 2);
    CHECK(count_of(html, "<td></td>") == 2);
}

SCENARIO("The row header names the kinds of client of the namespace") {
    HtmlReportData data;
    data.rows = {row("mixed", "web.shop.svc.cluster.local", "MTLS", 80, "sidecar"),
                 row("mixed", "web.shop.svc.cluster.local", "PLAINTEXT", 80, "none"),
                 row("amb", "web.shop.svc.cluster.local", "MTLS", 80, "ambient")};
    const std::string html = report::html_report(data);
    CHECK_THAT(html, Catch::Contains("<th scope=\"row\">mixed<span class=\"kind\">none</span><span "
                                     "class=\"kind\">sidecar</span></th>"));
    CHECK_THAT(html,
               Catch::Contains("<th scope=\"row\">amb<span class=\"kind\">ambient</span></th>"));
    CHECK_THAT(html, Catch::Contains("title=\"web.shop.svc.cluster.local\">web.shop</th>"));
}

SCENARIO("A cell's tooltip lists its flows: kind of client, port, workload, send and accept") {
    HtmlReportData data;
    data.rows = {row("front", "web.shop.svc.cluster.local", "MTLS", 80),
                 row("front", "web.shop.svc.cluster.local", "FAIL", 9090)};
    data.rows[1].bypass = "traffic.sidecar.istio.io/excludeOutboundPorts";
    data.rows[1].client = "PLAINTEXT";
    const std::string html = report::html_report(data);
    CHECK_THAT(html,
               Catch::Contains("title=\"sidecar :80 -&gt; shop/web:80: ISTIO_MUTUAL to STRICT "
                               "= MTLS\nsidecar skipping its sidecar "
                               "(traffic.sidecar.istio.io/excludeOutboundPorts) :9090 -&gt; "
                               "shop/web:9090: PLAINTEXT to STRICT = FAIL\">FAIL"));
}

SCENARIO("The summary counts findings by severity, namespaces, services and flows") {
    HtmlReportData data;
    data.namespaces = 7;
    data.services = 5;
    data.rows = {row("a", "web.shop.svc.cluster.local", "MTLS"),
                 row("b", "web.shop.svc.cluster.local", "FAIL")};
    data.findings = {finding("one", "m1"), finding("two", "m2")};
    data.findings[1].severity = conflict::Severity::Warning;
    const std::string html = report::html_report(data);
    CHECK_THAT(html, Catch::Contains("<li id=\"errors\"><b>1</b> errors</li>"));
    CHECK_THAT(html, Catch::Contains("<li id=\"warnings\"><b>1</b> warnings</li>"));
    CHECK_THAT(html, Catch::Contains("<li id=\"infos\"><b>0</b> infos</li>"));
    CHECK_THAT(html, Catch::Contains("<li id=\"namespaces\"><b>7</b> namespaces</li>"));
    CHECK_THAT(html, Catch::Contains("<li id=\"services\"><b>5</b> services</li>"));
    CHECK_THAT(html, Catch::Contains("<li id=\"flows\"><b>2</b> flows</li>"));
    CHECK_THAT(html,
               Catch::Contains("<td>PeerAuthentication one.shop</td><td>m1</td><td>" +
                               report::html_escape(conflict::fix_of(conflict::Code::MTG101))));
}

SCENARIO("The page references nothing on the network") {
    HtmlReportData data;
    data.rows = {row("a", "web.shop.svc.cluster.local", "FAIL")};
    data.findings = {finding("x", "see https://istio.io/")}; // text, never a reference
    const std::string html = report::html_report(data);
    const std::regex reference(R"((src|href)\s*=\s*["']?\s*(https?:)?//)", std::regex::icase);
    CHECK_FALSE(std::regex_search(html, reference));
    CHECK(html.find("<link") == std::string::npos);
    CHECK(html.find("<script src") == std::string::npos);
    CHECK(html.find("@import") == std::string::npos);
    CHECK(html.find("url(") == std::string::npos);
    CHECK_THAT(html, Catch::Contains("Content-Security-Policy\" content=\"default-src 'none'"));
}

SCENARIO("A cell opens the explain text of its client namespace and service") {
    const auto snapshot = snapshot_of({
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
        peer_authentication("shop", "default").strict(),
        destination_rule("front", "web-plain", "web.shop.svc.cluster.local").tls("DISABLE"),
    });
    HtmlReportData data;
    data.rows = matrix(*snapshot).rows;
    REQUIRE_FALSE(data.rows.empty());
    report::add_explanations(data, *snapshot, 100);
    CHECK(data.explanations_note.empty());
    const auto it = data.explanations.find({"front", "web.shop.svc.cluster.local"});
    REQUIRE(it != data.explanations.end());
    CHECK_THAT(it->second, Catch::Contains("Verdict: FAIL"));
    const std::string html = report::html_report(data);
    const std::string cell = cell_of(html, "front", "web.shop.svc.cluster.local");
    const auto id_at = cell.find("data-explain=\"");
    REQUIRE(id_at != std::string::npos);
    const std::string id = cell.substr(id_at + 14, cell.find('"', id_at + 14) - id_at - 14);
    CHECK_THAT(html, Catch::Contains("<pre id=\"" + id + "\">" + report::html_escape(it->second)));
}

SCENARIO("ambient.md §16: the kube-apiserver row's cells open the explain of the API server's "
         "calls") {
    const auto snapshot =
        snapshot_of(webhook_cluster({peer_authentication("opa", "default").strict()}));
    HtmlReportData data;
    data.rows = matrix(*snapshot).rows;
    report::add_explanations(data, *snapshot, 100);
    const auto it = data.explanations.find({"kube-apiserver", "webhook.opa.svc.cluster.local"});
    REQUIRE(it != data.explanations.end());
    CHECK_THAT(it->second, Catch::Contains("Flow 1: kube-apiserver (none)") &&
                               Catch::Contains("ValidatingWebhookConfiguration opa-validating") &&
                               Catch::Contains("Verdict: FAIL [MTG108]"));
    const std::string cell =
        cell_of(report::html_report(data), "kube-apiserver", "webhook.opa.svc.cluster.local");
    CHECK_THAT(cell, Catch::Contains("data-explain=\"x-"));
}

SCENARIO("Beyond the limit only FAIL and DEPENDS cells are explained, and the page says so") {
    const auto snapshot = snapshot_of({
        deployment("a", "client").with_sidecar(),
        deployment("b", "client").with_sidecar(),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
        peer_authentication("shop", "default").strict(),
        destination_rule("a", "web-plain", "web.shop.svc.cluster.local").tls("DISABLE"),
    });
    HtmlReportData data;
    data.rows = matrix(*snapshot).rows;
    const auto cells = report::cell_verdicts(data.rows);
    REQUIRE(cells.at({"a", "web.shop.svc.cluster.local"}) == "FAIL");
    REQUIRE(cells.at({"b", "web.shop.svc.cluster.local"}) == "MTLS");
    report::add_explanations(data, *snapshot, 1);
    CHECK(data.explanations.count({"a", "web.shop.svc.cluster.local"}) == 1);
    CHECK(data.explanations.count({"b", "web.shop.svc.cluster.local"}) == 0);
    CHECK_THAT(data.explanations_note,
               Catch::Contains("explanations are embedded for FAIL and DEPENDS cells only"));
    const std::string html = report::html_report(data);
    CHECK_THAT(html, Catch::Contains("<p class=\"note\" id=\"explanations-note\">"));
}
