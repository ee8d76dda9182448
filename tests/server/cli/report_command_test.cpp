// End-to-end tests of `mtls-guard report` through the binary: the file written, exit codes, stdout.
#include "tests/support/files.hpp"
#include "tests/support/run_command.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

using mtlsguard::testing::run;
using mtlsguard::testing::Run;
using mtlsguard::testing::slurp;
using mtlsguard::testing::TempDir;

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

std::string escaped(const std::string& text) {
    std::string out;
    for (char c : text)
        out += c == '&'    ? "&amp;"
               : c == '<'  ? "&lt;"
               : c == '>'  ? "&gt;"
               : c == '"'  ? "&quot;"
               : c == '\'' ? "&#39;"
                           : std::string(1, c);
    return out;
}

const std::string demo_mesh = std::string(MTLS_GUARD_SOURCE_DIR) + "/deploy/demo/mesh.yaml";

} // namespace

SCENARIO("report writes one HTML file of the demo mesh and exits 0 despite its errors") {
    TempDir dir;
    const auto file = (dir.path() / "report.html").string();
    const Run r = run({"report", "-f", demo_mesh, "-o", file});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    const std::string html = slurp(file);
    REQUIRE_THAT(html, Catch::StartsWith("<!DOCTYPE html>"));
    CHECK_THAT(html, Catch::EndsWith("</html>\n"));

    // One cell per client namespace and service with flows, coloured by its worst verdict.
    const Run m = run({"matrix", "-f", demo_mesh, "-o", "json"});
    REQUIRE(m.exit_code == 0);
    const auto rows = nlohmann::json::parse(m.out)["rows"];
    const std::map<std::string, int> rank{
        {"MTLS", 0}, {"PLAINTEXT", 1}, {"DEPENDS", 2}, {"FAIL", 3}};
    std::map<std::pair<std::string, std::string>, std::string> cells;
    for (const auto& row : rows) {
        auto& worst = cells[{row["clientNamespace"], row["host"]}];
        const std::string verdict = row["verdict"];
        if (worst.empty() || rank.at(verdict) > rank.at(worst))
            worst = verdict;
    }
    std::map<std::string, std::size_t> expected;
    for (const auto& [cell, verdict] : cells)
        ++expected[verdict];
    CHECK(count_of(html, "<td class=\"cell ") == cells.size());
    for (const std::string verdict : {"MTLS", "PLAINTEXT", "DEPENDS", "FAIL"}) {
        INFO(verdict);
        CHECK(count_of(html, "<td class=\"cell v-" + verdict + "\"") == expected[verdict]);
    }
    CHECK(expected["FAIL"] > 0);

    // The findings are analyze's, message for message.
    const Run a = run({"analyze", "-f", demo_mesh, "-o", "json"});
    const auto findings = nlohmann::json::parse(a.out)["findings"];
    CHECK(count_of(html, "<tr class=\"finding\">") == findings.size());
    for (const auto& finding : findings)
        CHECK_THAT(html, Catch::Contains("<td>" + escaped(finding["message"]) + "</td>"));
    CHECK_THAT(html, Catch::Contains("<li id=\"flows\"><b>" + std::to_string(rows.size()) +
                                     "</b> flows</li>"));
    // Every cell's explanation is embedded (the demo is far below the limit).
    CHECK(count_of(html, "<pre id=\"x-") == cells.size());
}

SCENARIO("report -o - writes the page to stdout; --namespace limits the grid") {
    const Run all = run({"report", "-f", demo_mesh, "-o", "-"});
    CHECK(all.exit_code == 0);
    CHECK_THAT(all.out, Catch::StartsWith("<!DOCTYPE html>"));
    const Run one = run({"report", "-f", demo_mesh, "-o", "-", "--namespace", "payments"});
    CHECK(one.exit_code == 0);
    CHECK_THAT(one.out, Catch::Contains("Only flows whose client or service is in namespace "
                                        "<code>payments</code>"));
    CHECK(count_of(one.out, "<td class=\"cell ") < count_of(all.out, "<td class=\"cell "));
    CHECK(count_of(one.out, "<td class=\"cell ") > 0);
}

SCENARIO("With more cells than --max-explanations only FAIL and DEPENDS cells are explained") {
    const Run r = run({"report", "-f", demo_mesh, "-o", "-", "--max-explanations", "2"});
    CHECK(r.exit_code == 0);
    // The demo has 3 FAIL cells and no DEPENDS one among its 20.
    CHECK(count_of(r.out, "<pre id=\"x-") == 2);
    CHECK_THAT(r.out, Catch::Contains("The grid has 20 cells, more than 2: explanations are "
                                      "embedded for FAIL and DEPENDS cells only (2 of 3)"));
    // Only the explained cells point at an explanation; the others name the command to run.
    CHECK(count_of(r.out, "data-explain=\"x-") == 2);
    CHECK(count_of(r.out, "<td class=\"cell ") == 20);
}

SCENARIO("report exits 2 on bad input, a missing -o or an unwritable file, writing nothing") {
    TempDir dir;
    const auto bad = dir.write("bad.yaml", "apiVersion: security.istio.io/v1\nkind: "
                                           "PeerAuthentication\nmetadata: {name: x}\nspec:\n  "
                                           "mtls: {mode: STRCT}\n");
    const auto file = (dir.path() / "report.html").string();
    using Case = std::pair<std::vector<std::string>, std::string>;
    const auto [args, message] = GENERATE_REF(values<Case>({
        {{"report", "-f", bad, "-o", file}, "bad.yaml"},
        {{"report", "-f", demo_mesh}, "--output is required"},
        {{"report", "-f", demo_mesh, "-o", "/nonexistent-dir/report.html"}, "cannot write"},
        {{"report", "-o", file}, "--filename is required"},
    }));
    const Run r = run(args);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK(slurp(file).empty());
}
