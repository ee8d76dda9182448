// Tests report/sarif: the SARIF 2.1.0 log of findings (rules, levels, locations, fingerprints).
#include "analysis/report/sarif.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using nlohmann::json;

namespace {

conflict::Finding finding(conflict::Code code, conflict::Severity severity, model::ObjectRef ref,
                          std::vector<model::ObjectRef> related = {}) {
    conflict::Finding f;
    f.code = code;
    f.severity = severity;
    f.resource = std::move(ref);
    f.related = std::move(related);
    f.message = "what breaks, and the fix";
    return f;
}

const model::ObjectRef on_rule_ref{"networking.istio.io/v1", "DestinationRule", "shop",
                                   "web-plaintext"};
const model::ObjectRef on_policy_ref{"security.istio.io/v1", "PeerAuthentication", "shop",
                                     "default"};
const model::ObjectRef on_mesh_ref{"authentication.istio.io/v1alpha1", "MeshPolicy", "", "default"};

} // namespace

TEST_CASE("The SARIF log has a rule per catalogue code, with its meaning, fix and level",
          "[sarif]") {
    const json log = report::sarif_document({}, nullptr, "9.9.9");
    CHECK(log["version"] == "2.1.0");
    CHECK(log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json");
    const json& driver = log["runs"][0]["tool"]["driver"];
    CHECK(driver["version"] == "9.9.9");
    const auto codes = conflict::all_codes();
    REQUIRE(driver["rules"].size() == codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i) {
        const json& r = driver["rules"][i];
        INFO(r.dump());
        CHECK(r["id"] == conflict::to_string(codes[i]));
        CHECK_FALSE(r["shortDescription"]["text"].get<std::string>().empty());
        CHECK_THAT(r["help"]["text"].get<std::string>(), Catch::Contains("Fix: "));
        const std::string level = r["defaultConfiguration"]["level"];
        CHECK(level == (conflict::severity_of(codes[i]) == conflict::Severity::Error     ? "error"
                        : conflict::severity_of(codes[i]) == conflict::Severity::Warning ? "warning"
                                                                                         : "note"));
    }
    CHECK(log["runs"][0]["results"].empty());
}

TEST_CASE("A SARIF result points at its rule and at the object's file and line when known",
          "[sarif]") {
    const auto locate = [](const model::ObjectRef& ref) -> std::optional<report::SourceLocation> {
        if (ref.kind == "DestinationRule")
            return report::SourceLocation{"shop/policies.yaml", 8};
        if (ref.kind == "PeerAuthentication")
            return report::SourceLocation{"shop/policies.yaml", 0}; // line unknown (JSON)
        return std::nullopt;
    };
    const json log = report::sarif_document(
        {finding(conflict::Code::MTG101, conflict::Severity::Error, on_rule_ref, {on_policy_ref}),
         finding(conflict::Code::MTG101, conflict::Severity::Warning, on_policy_ref),
         finding(conflict::Code::MTG208, conflict::Severity::Info, on_mesh_ref)},
        locate, "0.1.0");
    const json& rules = log["runs"][0]["tool"]["driver"]["rules"];
    const json& results = log["runs"][0]["results"];
    REQUIRE(results.size() == 3);
    for (const auto& r : results)
        CHECK(rules.at(r["ruleIndex"].get<std::size_t>())["id"] == r["ruleId"]);

    const json& on_rule = results[0];
    CHECK(on_rule["level"] == "error");
    CHECK(on_rule["message"]["text"] == "what breaks, and the fix");
    const json& location = on_rule["locations"][0];
    CHECK(location["physicalLocation"]["artifactLocation"]["uri"] == "shop/policies.yaml");
    CHECK(location["physicalLocation"]["region"]["startLine"] == 8);
    CHECK(location["logicalLocations"][0]["fullyQualifiedName"] ==
          "DestinationRule shop/web-plaintext");
    REQUIRE(on_rule["relatedLocations"].size() == 1);
    CHECK(on_rule["relatedLocations"][0]["id"] == 1);
    CHECK(on_rule["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"] ==
          "shop/policies.yaml");

    // A severity lowered from the code's default (a warning of MTG101) is the result's level.
    CHECK(results[1]["level"] == "warning");
    CHECK_FALSE(results[1]["locations"][0]["physicalLocation"].contains("region"));
    // An object read from nowhere (stdin) keeps its logical location only.
    CHECK(results[2]["level"] == "note");
    CHECK_FALSE(results[2]["locations"][0].contains("physicalLocation"));
    CHECK(results[2]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] ==
          "MeshPolicy default");
}

TEST_CASE("SARIF fingerprints are stable across runs and tell findings apart", "[sarif]") {
    const auto one = finding(conflict::Code::MTG101, conflict::Severity::Error, on_rule_ref);
    const auto other = finding(conflict::Code::MTG101, conflict::Severity::Error, on_policy_ref);
    const auto print = [](const conflict::Finding& f) {
        return report::sarif_document(
                   {f}, nullptr,
                   "0.1.0")["runs"][0]["results"][0]["partialFingerprints"]["mtlsGuardFinding/v1"]
            .get<std::string>();
    };
    CHECK(print(one) == print(one));
    CHECK(print(one).size() == 16);
    CHECK(print(one) != print(other));
}
