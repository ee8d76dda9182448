// Tests model/types: the Istio version (`--istio-version`) and the dataplane names.
#include "analysis/model/types.hpp"

#include <catch2/catch.hpp>

using namespace mtlsguard;
using model::IstioVersion;

TEST_CASE("--istio-version takes 1.N (4 to 29), 1.N.P or current, and says it back",
          "[types][version]") {
    auto [text, minor, patch, shown] = GENERATE(table<std::string, int, int, std::string>({
        {"1.4", 4, 255, "1.4"},
        {"1.5", 5, 255, "1.5"},
        {"1.6", 6, 255, "1.6"},
        {"1.24", 24, 255, "1.24"},
        {"1.25.1", 25, 1, "1.25.1"},
        {"1.22.0", 22, 0, "1.22.0"},
        {"1.28", 28, 255, "1.28"},
        {"1.29.6", 29, 6, "1.29.6"},
        {"current", 29, 255, "current"},
        {"1.29", 29, 255, "current"}, // the newest patch of the newest minor is current
    }));
    INFO(text);
    const auto version = model::parse_istio_version(text);
    REQUIRE(version.has_value());
    CHECK(version->minor == minor);
    CHECK(version->patch == patch);
    CHECK(model::to_string(*version) == shown);
    CHECK(model::parse_istio_version(model::to_string(*version)) == version);
}

TEST_CASE("--istio-version refuses anything that is not a modelled release", "[types][version]") {
    const auto text = GENERATE(as<std::string>{}, "", "1", "1.", "1.3", "1.30", "2.0", "foo",
                               "1.24.", "1.024", "1.24.01", "1.25.255", "1.25.1.2", "v1.24",
                               " 1.24", "1.24 ", "1.-1", "1.2x", "Current");
    INFO("'" << text << "'");
    CHECK_FALSE(model::parse_istio_version(text).has_value());
}

TEST_CASE("A Service\'s clusterIP is read as an IPv4 address when it is one", "[types][ipv4]") {
    CHECK(model::parse_ipv4("10.96.0.1") == std::optional<std::uint32_t>(0x0a600001u));
    CHECK(model::parse_ipv4("0.0.0.0") == std::optional<std::uint32_t>(0u));
    CHECK(model::parse_ipv4("255.255.255.255") == std::optional<std::uint32_t>(0xffffffffu));
    const auto text = GENERATE(as<std::string>{}, "", "None", "10.96.0", "10.96.0.1.2", "256.0.0.1",
                               "10.96.0.01", "10..0.1", "fd00::1", "10.96.0.1 ", "1234.0.0.1");
    INFO("'" << text << "'");
    CHECK_FALSE(model::parse_ipv4(text).has_value());
}

TEST_CASE("The version's rule sets: legacy alpha (1.4, 1.5), modern pilot (1.6+), ordering",
          "[types][version]") {
    CHECK(IstioVersion{4}.legacy_alpha());
    CHECK(IstioVersion{5}.legacy_alpha());
    CHECK_FALSE(IstioVersion{6}.legacy_alpha());
    CHECK(IstioVersion{6}.modern());
    CHECK(IstioVersion::current().modern());
    CHECK(IstioVersion::current() == IstioVersion{29, 255});
    // 1.N means its newest patch: later than any named patch of 1.N.
    CHECK(IstioVersion{25, 0} < IstioVersion{25, 1});
    CHECK(IstioVersion{25, 1} < IstioVersion{25});
    CHECK(IstioVersion{25} < IstioVersion{26, 0});
    CHECK(IstioVersion{25, 1}.at_least(25, 1));
    CHECK_FALSE(IstioVersion{25, 0}.at_least(25, 1));
    CHECK(IstioVersion{25}.at_least(25, 1));
    CHECK(IstioVersion{26, 0}.at_least(25, 1));
    CHECK_FALSE(IstioVersion{24}.at_least(25));
}

TEST_CASE("Dataplanes are named as the matrix names them", "[types]") {
    CHECK(model::to_string(model::Dataplane::None) == "none");
    CHECK(model::to_string(model::Dataplane::Sidecar) == "sidecar");
    CHECK(model::to_string(model::Dataplane::Ambient) == "ambient");
}

TEST_CASE("A label set is sorted by key and matches as a subset", "[types]") {
    const model::Labels pod({{"version", "v1"}, {"app", "web"}});
    CHECK(pod.entries() == model::Labels::Entries{{"app", "web"}, {"version", "v1"}});
    CHECK(model::Labels(model::Labels::Entries{{"app", "web"}}).subset_of(pod));
    CHECK_FALSE(model::Labels(model::Labels::Entries{{"app", "api"}}).subset_of(pod));
    CHECK(model::Labels().subset_of(pod));
    CHECK(model::Labels().empty());
    CHECK(pod.find("version") != nullptr);
    CHECK(pod.find("track") == nullptr);
}

TEST_CASE("Erasing a label from a copy leaves the set it was copied from as it was", "[types]") {
    const model::Labels original({{"app", "web"}, {"pod-template-hash", "5d8f"}});
    model::Labels copy = original; // shares the entries
    copy.erase("pod-template-hash");
    CHECK(copy.entries() == model::Labels::Entries{{"app", "web"}});
    CHECK(original.entries() ==
          model::Labels::Entries{{"app", "web"}, {"pod-template-hash", "5d8f"}});
    CHECK(copy != original);
    copy.erase("app");
    CHECK(copy.empty());
    CHECK(copy == model::Labels());
    CHECK(model::Labels(model::Labels::Entries{{"app", "web"}}) ==
          model::Labels(model::Labels::Entries{{"app", "web"}}));
    CHECK(model::Labels(model::Labels::Entries{{"app", "a"}}) <
          model::Labels(model::Labels::Entries{{"app", "b"}}));
}
