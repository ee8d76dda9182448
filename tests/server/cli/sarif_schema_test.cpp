// analyze -o sarif checked against the SARIF 2.1.0 JSON schema by an independent validator.
#include "tests/support/files.hpp"
#include "tests/support/run_command.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using mtlsguard::testing::command_line;
using mtlsguard::testing::run;
using mtlsguard::testing::Run;
using mtlsguard::testing::run_shell;
using mtlsguard::testing::TempDir;

const std::string kSourceDir = MTLS_GUARD_SOURCE_DIR;
const std::string kSchema = MTLS_GUARD_SARIF_SCHEMA;
const std::string kPython = MTLS_GUARD_PYTHON3;
const std::string kValidator = kSourceDir + "/tests/support/validate_json_schema.py";

// The tools are installed by setup.sh; without them the test fails and says how to get them.
void require_validator() {
    INFO("the SARIF schema is missing at " << kSchema
                                           << ": run ./setup.sh (npm install --prefix .cache/npm "
                                              "@microsoft/jest-sarif) or configure with "
                                              "-DMTLS_GUARD_SARIF_SCHEMA=/path/to/schema.json");
    REQUIRE(fs::exists(kSchema));
    INFO("no python3 at " << kPython
                          << ": apt-get install python3-jsonschema, or configure with "
                             "-DMTLS_GUARD_PYTHON3=/path/to/python3");
    REQUIRE(::access(kPython.c_str(), X_OK) == 0);
}

// `mtls-guard analyze -o sarif` on the inputs: the SARIF log, parsed.
json analyze_sarif(const std::vector<std::string>& inputs) {
    std::vector<std::string> args{"analyze", "-o", "sarif", "--fail-on", "never"};
    for (const auto& input : inputs) {
        args.push_back("-f");
        args.push_back(kSourceDir + "/" + input);
    }
    const Run r = run(args);
    INFO(command_line(MTLS_GUARD_BINARY, args) << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const json log = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(log.is_discarded());
    return log;
}

// The validator's verdict on one document: exit 0 (valid), 1 (invalid, one line per error on
// stderr) or 2 (it could not run).
Run validate(const json& document, const TempDir& dir) {
    require_validator();
    const std::string file = dir.write("log.sarif", document.dump(2));
    return run_shell(command_line(kPython, {kValidator, kSchema, file}));
}

std::set<std::string> levels(const json& log) {
    std::set<std::string> out;
    for (const auto& result : log.at("runs").at(0).at("results"))
        out.insert(result.value("level", "warning")); // SARIF's default level
    return out;
}

// OASIS's errata 01 requires a region to say where it starts, which the npm package's pre-errata
// schema does not check: checked here.
void check_regions_start(const json& log) {
    for (const auto& result : log.at("runs").at(0).at("results")) {
        for (const auto& location : result.value("locations", json::array())) {
            const json region =
                location.value("physicalLocation", json::object()).value("region", json::object());
            if (region.empty())
                continue;
            INFO("region " << region.dump());
            CHECK((region.contains("startLine") || region.contains("charOffset") ||
                   region.contains("byteOffset")));
        }
    }
}

} // namespace

SCENARIO("the SARIF of the demo mesh is valid against the SARIF 2.1.0 schema") {
    TempDir dir;
    const json log = analyze_sarif({"deploy/demo/mesh.yaml"});
    REQUIRE_FALSE(log.at("runs").at(0).at("results").empty());
    const Run v = validate(log, dir);
    INFO("validator: " << v.err);
    CHECK(v.exit_code == 0);
    check_regions_start(log);
}

SCENARIO("the SARIF of a scenario with errors and warnings is valid against the schema") {
    TempDir dir;
    const std::string fixture = "tests/fixtures/ambient-mixed-migration/";
    const json log = analyze_sarif({fixture + "workloads.yaml",
                                    fixture + "peerauthentication-mesh-permissive.yaml",
                                    fixture + "peerauthentication-payments-strict.yaml",
                                    fixture + "peerauthentication-orders-strict.yaml",
                                    fixture + "peerauthentication-catalog-strict.yaml",
                                    fixture + "destinationrule-frontend-catalog-mtls.yaml"});
    // Both levels, so that the schema sees every kind of result we write.
    CHECK(levels(log).count("error") == 1);
    CHECK(levels(log).count("warning") == 1);
    const Run v = validate(log, dir);
    INFO("validator: " << v.err);
    CHECK(v.exit_code == 0);
    check_regions_start(log);
}

SCENARIO("the validator refuses a broken SARIF log and says why") {
    // Without this a validator that accepted anything (a wrong schema, a missing module) would
    // pass the scenarios above.
    TempDir dir;
    json log = analyze_sarif({"deploy/demo/mesh.yaml"});
    REQUIRE_FALSE(log.at("runs").at(0).at("results").empty());

    WHEN("a result has a level SARIF does not define") {
        log["runs"][0]["results"][0]["level"] = "fatal";
        const Run v = validate(log, dir);
        INFO("validator: " << v.err);
        CHECK(v.exit_code == 1);
        CHECK(v.err.find("runs/0/results/0/level: 'fatal' is not one of") != std::string::npos);
    }
    WHEN("the log has no version") {
        log.erase("version");
        const Run v = validate(log, dir);
        INFO("validator: " << v.err);
        CHECK(v.exit_code == 1);
        CHECK(v.err.find("'version' is a required property") != std::string::npos);
    }
    WHEN("a result's message is a bare string") {
        log["runs"][0]["results"][0]["message"] = "no text object";
        const Run v = validate(log, dir);
        INFO("validator: " << v.err);
        CHECK(v.exit_code == 1);
        CHECK(v.err.find("runs/0/results/0/message") != std::string::npos);
    }
}
