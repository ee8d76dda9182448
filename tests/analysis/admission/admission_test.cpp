// Tests admission/admission: AdmissionReview decisions, modes, annotation, limits (spec §9).
#include "analysis/admission/admission.hpp"
#include "tests/analysis/support/builders.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using admission::AdmissionSettings;
using admission::Enforcement;

namespace {

// front/ui is a sidecar client, legacy/batch a client without a sidecar, shop/web a sidecar
// server behind Service web (80 -> 8080).
std::vector<json> cluster(const std::vector<json>& more = {}) {
    std::vector<json> objects{
        kube_namespace("front"),
        kube_namespace("shop"),
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        deployment("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

const std::string web = "web.shop.svc.cluster.local";

// An AdmissionReview for one object, as the API server sends it.
struct Review {
    std::string operation = "CREATE";
    json object;
    json old_object;
    std::string api_version = "admission.k8s.io/v1";
    std::string uid = "e911857d-c318-11e8-bbad-025000000001";
    bool dry_run = false;

    json build() const {
        const json& source = object.is_null() ? old_object : object;
        const std::string api = source.value("apiVersion", "");
        const auto slash = api.find('/');
        json request = {
            {"uid", uid},
            {"kind",
             {{"group", slash == std::string::npos ? "" : api.substr(0, slash)},
              {"version", slash == std::string::npos ? api : api.substr(slash + 1)},
              {"kind", source.value("kind", "")}}},
            {"name", source["metadata"].value("name", "")},
            {"operation", operation},
            {"userInfo", {{"username", "alice"}}},
            {"object", object},
            {"oldObject", old_object},
            {"dryRun", dry_run},
        };
        if (source["metadata"].contains("namespace"))
            request["namespace"] = source["metadata"]["namespace"];
        return {{"apiVersion", api_version}, {"kind", "AdmissionReview"}, {"request", request}};
    }
};

Review create(const json& object) {
    return Review{"CREATE", object, nullptr};
}
Review update(const json& object, const json& old_object = nullptr) {
    return Review{"UPDATE", object, old_object};
}
Review remove(const json& old_object) {
    return Review{"DELETE", nullptr, old_object};
}

AdmissionSettings mode(Enforcement enforcement) {
    AdmissionSettings settings;
    settings.default_mode = enforcement;
    return settings;
}

admission::AdmissionDecision decide(const std::vector<json>& snapshot_objects, const Review& review,
                                    const AdmissionSettings& settings = {},
                                    model::Settings snapshot_settings = {}) {
    const auto snapshot = snapshot_of(snapshot_objects, std::move(snapshot_settings));
    return admission::decide(*snapshot, review.build(), settings);
}

std::vector<std::string> warnings_of(const admission::AdmissionDecision& d) {
    std::vector<std::string> out;
    const auto& response = d.body.at("response");
    if (response.contains("warnings"))
        for (const auto& w : response.at("warnings"))
            out.push_back(w.get<std::string>());
    return out;
}

bool any_contains(const std::vector<std::string>& lines, const std::string& part) {
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

bool allowed(const admission::AdmissionDecision& d) {
    return d.body.at("response").at("allowed").get<bool>();
}

// Every warning fits the API server's limits (interfaces.md).
void check_warning_limits(const std::vector<std::string>& warnings) {
    std::size_t total = 0;
    for (const auto& w : warnings) {
        INFO(w);
        CHECK(w.size() <= admission::max_warning_length);
        CHECK(std::none_of(w.begin(), w.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return u < 0x20 || u == 0x7f;
        }));
        total += w.size();
    }
    CHECK(total <= admission::max_warnings_total);
}

bool valid_utf8(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80           ? 1
                        : (c >> 5) == 0x6  ? 2
                        : (c >> 4) == 0xe  ? 3
                        : (c >> 3) == 0x1e ? 4
                                           : 0;
        if (n == 0 || i + n > s.size())
            return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

const json strict_shop = peer_authentication("shop", "default").strict().created(day(1));
const json front_plaintext =
    destination_rule("front", "no-tls", web).tls("DISABLE").created(day(2));

} // namespace

TEST_CASE("A change that breaks nothing is allowed without warnings", "[admission]") {
    const auto d = decide(cluster(), create(peer_authentication("shop", "default").permissive()));
    CHECK(d.http_status == 200);
    CHECK(allowed(d));
    CHECK(d.allowed);
    CHECK(d.codes.empty());
    CHECK(warnings_of(d).empty());
    CHECK_FALSE(d.body.at("response").contains("status"));
    CHECK(d.body.at("apiVersion") == "admission.k8s.io/v1");
    CHECK(d.body.at("kind") == "AdmissionReview");
    CHECK(d.kind == "PeerAuthentication");
    CHECK(d.namespace_name == "shop");
    CHECK(d.name == "default");
    CHECK(d.operation == "CREATE");
}

TEST_CASE("The response copies the request uid", "[admission]") {
    Review review = create(peer_authentication("shop", "default").permissive());
    review.uid = "0df28fbd-5f5f-4a3b-8f4e-1f2d3c4b5a69";
    const auto d = decide(cluster(), review);
    CHECK(d.body.at("response").at("uid") == "0df28fbd-5f5f-4a3b-8f4e-1f2d3c4b5a69");
    CHECK(d.uid == "0df28fbd-5f5f-4a3b-8f4e-1f2d3c4b5a69");
}

TEST_CASE("A v1beta1 AdmissionReview is answered in kind", "[admission]") {
    Review review = create(front_plaintext);
    review.api_version = "admission.k8s.io/v1beta1";
    const auto d = decide(cluster({strict_shop}), review);
    CHECK(d.http_status == 200);
    CHECK(d.body.at("apiVersion") == "admission.k8s.io/v1beta1");
    CHECK(d.body.at("kind") == "AdmissionReview");
    CHECK(d.body.at("response").at("uid") == review.uid);
    CHECK_FALSE(allowed(d)); // the same verdict as v1
}

TEST_CASE("Enforce mode denies a change that introduces a failing flow", "[admission][enforce]") {
    const auto d = decide(cluster({strict_shop}), create(front_plaintext));
    CHECK(d.http_status == 200);
    CHECK_FALSE(allowed(d));
    CHECK_FALSE(d.allowed);
    CHECK(d.enforcement == Enforcement::Enforce);
    const auto& status = d.body.at("response").at("status");
    CHECK(status.at("code") == 403);
    const std::string message = status.at("message");
    CHECK_THAT(message, Catch::Contains("[MTG101]"));
    CHECK_THAT(message, Catch::Contains(std::string(admission::allow_conflict_annotation)));
    CHECK(message.find('\n') == std::string::npos);
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
    CHECK(any_contains(warnings_of(d), "[MTG101] DestinationRule no-tls.front"));
}

TEST_CASE("Warn mode allows the same change with warnings", "[admission][warn]") {
    const auto d = decide(cluster({strict_shop}), create(front_plaintext), mode(Enforcement::Warn));
    CHECK(allowed(d));
    CHECK(d.enforcement == Enforcement::Warn);
    CHECK_FALSE(d.body.at("response").contains("status"));
    CHECK(any_contains(warnings_of(d), "[MTG101]"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
}

TEST_CASE("New warnings never deny: a STRICT policy with non-mesh clients is allowed",
          "[admission][enforce]") {
    const auto d = decide(cluster(), create(strict_shop));
    CHECK(allowed(d));
    CHECK(d.codes == std::vector<std::string>{"MTG203"});
    CHECK(any_contains(warnings_of(d), "[MTG203] PeerAuthentication default.shop"));
    CHECK(any_contains(warnings_of(d), "legacy"));
}

TEST_CASE("§13: a STRICT policy is allowed although clients skip their sidecar for its port: they "
          "are warned about, as clients without a sidecar are",
          "[admission][interception]") {
    const auto d = decide(
        cluster({deployment("front", "reports")
                     .labels({{"app", "reports"}})
                     .with_sidecar()
                     .pod_annotation("traffic.sidecar.istio.io/excludeOutboundPorts", "80")}),
        create(strict_shop));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "[MTG101] PeerAuthentication default.shop"));
    CHECK(any_contains(warnings_of(d), "skip their sidecar"));
}

TEST_CASE("The namespace label mtls-guard.io/mode overrides the default mode",
          "[admission][mode-label]") {
    auto [label, default_mode, expect_allowed, expect_warnings, enforcement] =
        GENERATE(table<std::string, Enforcement, bool, bool, Enforcement>({
            {"warn", Enforcement::Enforce, true, true, Enforcement::Warn},
            {"off", Enforcement::Enforce, true, false, Enforcement::Off},
            {"enforce", Enforcement::Warn, false, true, Enforcement::Enforce},
            {"", Enforcement::Warn, true, true, Enforcement::Warn},
            {"", Enforcement::Off, true, false, Enforcement::Off},
        }));
    auto objects = cluster({strict_shop});
    auto front = kube_namespace("front");
    if (!label.empty())
        front.label(std::string(admission::mode_label), label);
    objects.push_back(front);
    INFO("label " << label << ", default " << admission::to_string(default_mode));
    const auto d = decide(objects, create(front_plaintext), mode(default_mode));
    CHECK(allowed(d) == expect_allowed);
    CHECK(d.enforcement == enforcement);
    CHECK(any_contains(warnings_of(d), "[MTG101]") == expect_warnings);
    if (enforcement == Enforcement::Off)
        CHECK(d.codes.empty());
}

TEST_CASE("A strictest mode of warn lowers enforce, from the default or a label, and keeps off",
          "[admission][mode-label]") {
    auto [label, strictest, expect_allowed, expect_warnings, enforcement] =
        GENERATE(table<std::string, Enforcement, bool, bool, Enforcement>({
            {"", Enforcement::Warn, true, true, Enforcement::Warn},
            {"enforce", Enforcement::Warn, true, true, Enforcement::Warn},
            {"off", Enforcement::Warn, true, false, Enforcement::Off},
            {"", Enforcement::Enforce, false, true, Enforcement::Enforce},
            {"warn", Enforcement::Enforce, true, true, Enforcement::Warn},
        }));
    auto objects = cluster({strict_shop});
    if (!label.empty())
        objects.push_back(kube_namespace("front").label(std::string(admission::mode_label), label));
    INFO("label " << label << ", strictest " << admission::to_string(strictest));
    AdmissionSettings settings = mode(Enforcement::Enforce);
    settings.strictest_mode = strictest;
    const auto d = decide(objects, create(front_plaintext), settings);
    CHECK(allowed(d) == expect_allowed);
    CHECK(d.enforcement == enforcement);
    CHECK(any_contains(warnings_of(d), "[MTG101]") == expect_warnings);
}

TEST_CASE("at_most orders the modes enforce > warn > off", "[admission]") {
    using admission::at_most;
    CHECK(at_most(Enforcement::Enforce, Enforcement::Warn) == Enforcement::Warn);
    CHECK(at_most(Enforcement::Warn, Enforcement::Enforce) == Enforcement::Warn);
    CHECK(at_most(Enforcement::Off, Enforcement::Warn) == Enforcement::Off);
    CHECK(at_most(Enforcement::Enforce, Enforcement::Off) == Enforcement::Off);
    CHECK(at_most(Enforcement::Enforce, Enforcement::Enforce) == Enforcement::Enforce);
}

TEST_CASE("Only the label on the object's own namespace counts", "[admission][mode-label]") {
    // The DestinationRule lives in front; a label on shop (the service's namespace) changes
    // nothing.
    const auto d =
        decide(cluster({strict_shop,
                        kube_namespace("shop").label(std::string(admission::mode_label), "off")}),
               create(front_plaintext));
    CHECK_FALSE(allowed(d));
}

TEST_CASE("An unknown mode label value keeps the default and says so", "[admission][mode-label]") {
    const auto d = decide(cluster({strict_shop, kube_namespace("front").label(
                                                    std::string(admission::mode_label), "audit")}),
                          create(front_plaintext));
    CHECK_FALSE(allowed(d));
    CHECK(any_contains(warnings_of(d), "audit"));
}

TEST_CASE("The allow-conflict annotation turns a denial into warnings and records the reason",
          "[admission][allow-conflict]") {
    json rule = front_plaintext;
    rule["metadata"]["annotations"][std::string(admission::allow_conflict_annotation)] =
        "migration window, ticket OPS-42";
    const auto d = decide(cluster({strict_shop}), create(rule));
    CHECK(allowed(d));
    CHECK(d.allow_conflict_reason == "migration window, ticket OPS-42");
    const auto warnings = warnings_of(d);
    REQUIRE_FALSE(warnings.empty());
    CHECK_THAT(warnings.front(), Catch::Contains("migration window, ticket OPS-42"));
    CHECK(any_contains(warnings, "[MTG101]"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
}

TEST_CASE("Flows that were already failing are warnings, never a denial", "[admission][existing]") {
    // The snapshot already has the failure; the change touches the same flows without fixing it.
    json relabelled = strict_shop;
    relabelled["metadata"]["labels"]["team"] = "shop";
    const auto d = decide(cluster({strict_shop, front_plaintext}), update(relabelled, strict_shop));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "already failing"));
    CHECK(any_contains(warnings_of(d), "[MTG101]"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
}

TEST_CASE("A change that only removes failures is allowed", "[admission][existing]") {
    SECTION("deleting the DestinationRule that sends plaintext") {
        const auto d = decide(cluster({strict_shop, front_plaintext}), remove(front_plaintext));
        CHECK(allowed(d));
        CHECK_FALSE(any_contains(warnings_of(d), "MTG101"));
        // What remains is the deliberate lock-down of legacy's plaintext, already there before.
        CHECK(d.codes == std::vector<std::string>{"MTG203"});
        CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG203]"));
    }
    SECTION("fixing its tls mode") {
        json fixed = front_plaintext;
        fixed["spec"]["trafficPolicy"]["tls"]["mode"] = "ISTIO_MUTUAL";
        const auto d =
            decide(cluster({strict_shop, front_plaintext}), update(fixed, front_plaintext));
        CHECK(allowed(d));
        CHECK(d.codes == std::vector<std::string>{"MTG203"});
    }
    SECTION("relaxing the server") {
        json permissive = strict_shop;
        permissive["spec"]["mtls"]["mode"] = "PERMISSIVE";
        const auto d =
            decide(cluster({strict_shop, front_plaintext}), update(permissive, strict_shop));
        CHECK(allowed(d));
        CHECK_FALSE(any_contains(warnings_of(d), "MTG101"));
    }
}

TEST_CASE("Fixing one failure is not blocked by another that remains", "[admission][existing]") {
    const json billing_plaintext =
        destination_rule("billing", "billing-no-tls", web).tls("DISABLE").created(day(2));
    json fixed = front_plaintext;
    fixed["spec"]["trafficPolicy"]["tls"]["mode"] = "ISTIO_MUTUAL";
    const auto d =
        decide(cluster({deployment("billing", "pay").labels({{"app", "pay"}}).with_sidecar(),
                        strict_shop, front_plaintext, billing_plaintext}),
               update(fixed, front_plaintext));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "already failing"));
    CHECK(any_contains(warnings_of(d), "billing"));
}

TEST_CASE("A flow that only had a warning before and fails after is introduced by the change",
          "[admission][introduced]") {
    // front originates SIMPLE TLS: towards PERMISSIVE that DEPENDS (MTG202, a warning); towards
    // STRICT it FAILS (MTG104, an error). §9: a FAIL flow that exists after but not before.
    const json simple_tls = destination_rule("front", "simple", web).tls("SIMPLE").created(day(2));
    const auto d = decide(cluster({simple_tls}), create(strict_shop));
    CHECK_FALSE(allowed(d));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG104") != d.codes.end());
    CHECK_FALSE(any_contains(warnings_of(d), "already failing before this change: [MTG104]"));
}

TEST_CASE("UPDATE is compared with the object it replaces", "[admission][update]") {
    const json permissive = peer_authentication("shop", "default").permissive().created(day(1));
    SECTION("with oldObject") {
        const auto d =
            decide(cluster({permissive, front_plaintext}), update(strict_shop, permissive));
        CHECK_FALSE(allowed(d));
        CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
    }
    SECTION("without oldObject, against the snapshot's copy, which it replaces") {
        const auto d = decide(cluster({permissive, front_plaintext}), update(strict_shop));
        CHECK_FALSE(allowed(d));
    }
    SECTION("a DestinationRule replaced under the same name") {
        const json mtls =
            destination_rule("front", "no-tls", web).tls("ISTIO_MUTUAL").created(day(2));
        const auto d = decide(cluster({strict_shop, mtls}), update(front_plaintext));
        CHECK_FALSE(allowed(d));
    }
}

TEST_CASE("DELETE can introduce a failure and is then denied", "[admission][delete]") {
    // The mesh is STRICT; shop's PERMISSIVE exception keeps front's plaintext working.
    const json mesh_strict =
        peer_authentication("istio-system", "default").strict().created(day(1));
    json exception = peer_authentication("shop", "default").permissive().created(day(1));
    const auto objects = cluster({mesh_strict, exception, front_plaintext});
    SECTION("denied in enforce mode") {
        const auto d = decide(objects, remove(exception));
        CHECK_FALSE(allowed(d));
        CHECK(d.operation == "DELETE");
        CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
    }
    SECTION("the annotation on the deleted object allows it") {
        exception["metadata"]["annotations"][std::string(admission::allow_conflict_annotation)] =
            "decommissioning";
        auto with_annotation = cluster({mesh_strict, exception, front_plaintext});
        const auto d = decide(with_annotation, remove(exception));
        CHECK(allowed(d));
        CHECK(d.allow_conflict_reason == "decommissioning");
    }
}

TEST_CASE("A DestinationRule in a namespace without workloads makes it a client, whose flows count",
          "[admission][clients]") {
    const auto d = decide(cluster({strict_shop}),
                          create(destination_rule("ops", "no-tls", web).tls("DISABLE")));
    CHECK_FALSE(allowed(d));
    CHECK(any_contains(warnings_of(d), "ops"));
}

TEST_CASE("A MeshPolicy is judged across the mesh and ignores namespace labels",
          "[admission][legacy]") {
    auto objects =
        cluster({kube_namespace("front").label(std::string(admission::mode_label), "off")});
    const auto d = decide(objects, create(mesh_policy("default").strict()), {},
                          settings_for(model::IstioVersion{5}));
    CHECK_FALSE(allowed(d));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG101") != d.codes.end());
    CHECK(d.namespace_name.empty());
}

TEST_CASE("A dry run gets exactly the verdict of a real request", "[admission][dry-run]") {
    auto [description, objects, review] =
        GENERATE_COPY(table<std::string, std::vector<json>, Review>({
            {"a denial", cluster({strict_shop}), create(front_plaintext)},
            {"an allowed change with warnings", cluster(), create(strict_shop)},
            {"an allowed change", cluster(), create(peer_authentication("shop", "x").permissive())},
        }));
    INFO(description);
    Review dry = review;
    dry.dry_run = true;
    const auto real_decision = decide(objects, review);
    const auto dry_decision = decide(objects, dry);
    CHECK(dry_decision.dry_run);
    CHECK_FALSE(real_decision.dry_run);
    CHECK(dry_decision.body == real_decision.body);
    CHECK(dry_decision.allowed == real_decision.allowed);
    CHECK(dry_decision.codes == real_decision.codes);
}

TEST_CASE("Kinds mtls-guard does not judge are allowed untouched", "[admission]") {
    const auto d = decide(cluster({strict_shop}),
                          create(service("shop", "new").selecting({{"app", "new"}}).port(80, 80)));
    CHECK(allowed(d));
    CHECK(d.codes.empty());
    CHECK(warnings_of(d).empty());
}

TEST_CASE("An object mtls-guard cannot read is denied in enforce mode, with the field named",
          "[admission]") {
    json broken = peer_authentication("shop", "default");
    broken["spec"]["mtls"]["mode"] = "STRICTER";
    const auto enforce = decide(cluster(), create(broken));
    CHECK_FALSE(allowed(enforce));
    CHECK_THAT(enforce.body.at("response").at("status").at("message").get<std::string>(),
               Catch::Contains("spec.mtls.mode"));
    const auto warn = decide(cluster(), create(broken), mode(Enforcement::Warn));
    CHECK(allowed(warn));
    CHECK(any_contains(warnings_of(warn), "spec.mtls.mode"));
}

TEST_CASE("A malformed AdmissionReview is a 400 with a reason", "[admission][malformed]") {
    const json good = create(strict_shop).build();
    auto without = [&](const json::json_pointer& where) {
        json copy = good;
        copy.at(where.parent_pointer()).erase(where.back());
        return copy;
    };
    auto with = [&](const json::json_pointer& where, const json& value) {
        json copy = good;
        copy[where] = value;
        return copy;
    };
    using ptr = json::json_pointer;
    auto [review, reason] = GENERATE_COPY(table<json, std::string>({
        {json("not a review"), "not a JSON object"},
        {json::array({good}), "not a JSON object"},
        {without(ptr("/apiVersion")), "apiVersion"},
        {with(ptr("/apiVersion"), "admission.k8s.io/v2"), "apiVersion"},
        {with(ptr("/kind"), "AdmissionRequest"), "kind"},
        {without(ptr("/request")), "request"},
        {with(ptr("/request"), nullptr), "request"},
        {with(ptr("/request"), "CREATE"), "request"},
        {without(ptr("/request/uid")), "uid"},
        {with(ptr("/request/uid"), ""), "uid"},
        {without(ptr("/request/operation")), "operation"},
    }));
    INFO(review.dump());
    const auto snapshot = snapshot_of(cluster());
    const auto d = admission::decide(*snapshot, review, {});
    CHECK(d.http_status == 400);
    CHECK_FALSE(d.allowed);
    CHECK_THAT(d.error, Catch::Contains(reason));
    CHECK(d.body.at("error") == d.error);
}

TEST_CASE("Warnings fit the API server's limits even for a change that breaks many flows",
          "[admission][warnings]") {
    // 40 services behind one wildcard DestinationRule DISABLE; a STRICT namespace policy breaks
    // all of them at once.
    std::vector<json> objects{
        deployment("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        deployment("legacy", "batch").labels({{"app", "batch"}}),
        destination_rule("front", "no-tls", "*.shop.svc.cluster.local").tls("DISABLE"),
    };
    for (int i = 0; i < 40; ++i) {
        const std::string name =
            "service-with-a-rather-long-name-to-fill-the-warning-" + std::to_string(i);
        objects.push_back(
            deployment("shop", name).labels({{"app", name}}).with_sidecar().container_port(8080));
        objects.push_back(service("shop", name).selecting({{"app", name}}).port(80, 8080));
    }
    AdmissionSettings settings;
    settings.extra_warnings = {"[mtls-guard] the snapshot may be stale"};
    const auto d = decide(objects, create(strict_shop), settings);
    CHECK_FALSE(allowed(d));
    const auto warnings = warnings_of(d);
    check_warning_limits(warnings);
    REQUIRE(warnings.size() >= 2);
    CHECK(any_contains(warnings, "more warnings omitted"));
    const std::string message = d.body.at("response").at("status").at("message");
    CHECK(message.find('\n') == std::string::npos);
    CHECK_THAT(message, Catch::Contains("more"));
}

TEST_CASE("Extra warnings are held to the same limits on every path", "[admission][warnings]") {
    AdmissionSettings settings;
    settings.extra_warnings = {std::string(300, 'w'), "line one\nline two"};
    auto [description, review] = GENERATE_COPY(table<std::string, Review>({
        {"an analysed change", create(peer_authentication("shop", "x").permissive())},
        {"a kind mtls-guard does not judge", create(service("shop", "s").port(80, 80))},
    }));
    INFO(description);
    const auto d = decide(cluster(), review, settings);
    CHECK(allowed(d));
    const auto warnings = warnings_of(d);
    CHECK(warnings.size() == 2);
    check_warning_limits(warnings);
}

TEST_CASE("clamp_warning makes one printable line of at most 256 characters",
          "[admission][warnings]") {
    CHECK(admission::clamp_warning("short") == "short");
    CHECK(admission::clamp_warning("a\nb\tc\rd\x7f"
                                   "e") == "a b c d e");
    const auto long_one = admission::clamp_warning(std::string(300, 'x'));
    CHECK(long_one.size() == admission::max_warning_length);
    CHECK_THAT(long_one, Catch::EndsWith("..."));
    CHECK(admission::clamp_warning(std::string(256, 'y')) == std::string(256, 'y'));
    // A multi-byte character at the cut is dropped whole.
    auto shift = GENERATE(250, 251, 252, 253, 254);
    std::string text(static_cast<std::size_t>(shift), 'z');
    for (int i = 0; i < 20; ++i)
        text += "\xc3\xa9"; // é
    const auto cut = admission::clamp_warning(text);
    INFO(shift);
    CHECK(cut.size() <= admission::max_warning_length);
    CHECK(valid_utf8(cut));
    CHECK_THAT(cut, Catch::EndsWith("..."));
}

TEST_CASE("Enforcement modes parse and print", "[admission]") {
    CHECK(admission::parse_enforcement("enforce") == Enforcement::Enforce);
    CHECK(admission::parse_enforcement("warn") == Enforcement::Warn);
    CHECK(admission::parse_enforcement("off") == Enforcement::Off);
    CHECK_FALSE(admission::parse_enforcement("Enforce").has_value());
    CHECK(admission::to_string(Enforcement::Warn) == "warn");
}

namespace {

// shop/plain runs without a sidecar; its DestinationRule has a service-level PERMISSIVE-safe
// cluster (no TLS) and two subsets: ISTIO_MUTUAL (fails there) and DISABLE (fine).
std::vector<json> subset_cluster(const std::vector<json>& more = {}) {
    auto objects = cluster({
        deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
        service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080, "http"),
        destination_rule("shop", "plain", "plain")
            .subset("mtls", {{"app", "plain"}}, "ISTIO_MUTUAL")
            .subset("open", {{"app", "plain"}}, "DISABLE")
            .created(day(1)),
    });
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

const json strict_opa = peer_authentication("opa", "default").strict().created(day(1));

} // namespace

TEST_CASE("§16: a STRICT PeerAuthentication over a webhook's namespace is denied (the cluster-wide "
          "admission outage)",
          "[admission][apiserver]") {
    auto [policy, why] = GENERATE_COPY(table<json, std::string>({
        {strict_opa, "namespace-wide"},
        {peer_authentication("istio-system", "default").strict().created(day(1)), "mesh-wide"},
        {peer_authentication("opa", "webhook").selecting({{"app", "webhook"}}).strict(),
         "workload"},
    }));
    INFO(why);
    const auto d = decide(webhook_cluster(), create(policy));
    CHECK_FALSE(allowed(d));
    const std::string message = d.body.at("response").at("status").at("message");
    CHECK_THAT(message, Catch::Contains("[MTG108]") &&
                            Catch::Contains("ValidatingWebhookConfiguration opa-validating") &&
                            Catch::Contains("webhook.opa.svc.cluster.local:443"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG108") != d.codes.end());
    check_warning_limits(warnings_of(d));

    const auto warned = decide(webhook_cluster(), create(policy), mode(Enforcement::Warn));
    CHECK(allowed(warned));
    CHECK(any_contains(warnings_of(warned), "[MTG108]"));
}

TEST_CASE(
    "§16: fixing a STRICT webhook port is allowed; an unrelated edit of the policy only warns",
    "[admission][apiserver][existing]") {
    SECTION("a workload policy that makes the webhook's target port PERMISSIVE") {
        const json exception = peer_authentication("opa", "webhook-port")
                                   .selecting({{"app", "webhook"}})
                                   .port(8443, "PERMISSIVE")
                                   .created(day(2));
        const auto d = decide(webhook_cluster({strict_opa}), create(exception));
        CHECK(allowed(d));
        CHECK_FALSE(any_contains(warnings_of(d), "MTG108"));
    }
    SECTION("the namespace policy relaxed to PERMISSIVE") {
        json permissive = strict_opa;
        permissive["spec"]["mtls"]["mode"] = "PERMISSIVE";
        const auto d = decide(webhook_cluster({strict_opa}), update(permissive, strict_opa));
        CHECK(allowed(d));
        CHECK_FALSE(any_contains(warnings_of(d), "MTG108"));
    }
    SECTION("a relabelled STRICT policy: already failing, so a warning") {
        json relabelled = strict_opa;
        relabelled["metadata"]["labels"]["team"] = "opa";
        const auto d = decide(webhook_cluster({strict_opa}), update(relabelled, strict_opa));
        CHECK(allowed(d));
        CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG108]"));
    }
}

namespace {

VirtualServiceBuilder route_plain_to(const std::string& subset) {
    return virtual_service("shop", "plain", {"plain"}).route("plain", subset).created(day(3));
}

} // namespace

TEST_CASE("§17: a VirtualService routing clients to an ISTIO_MUTUAL subset of pods without a "
          "sidecar is denied",
          "[admission][virtualservice]") {
    // The DestinationRule alone is allowed (its subset carries no traffic, §15)...
    const json rule = subset_cluster().back();
    CHECK(allowed(decide(
        cluster({deployment("shop", "plain").labels({{"app", "plain"}}).container_port(8080),
                 service("shop", "plain").selecting({{"app", "plain"}}).port(80, 8080, "http")}),
        create(rule))));
    // ...the route that sends traffic there is not.
    const auto d = decide(subset_cluster(), create(route_plain_to("mtls")));
    CHECK(d.kind == "VirtualService");
    CHECK_FALSE(allowed(d));
    const std::string message = d.body.at("response").at("status").at("message");
    CHECK_THAT(message, Catch::Contains("[MTG103]") && Catch::Contains("subset mtls"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG103") != d.codes.end());
    SECTION("UPDATE from the PERMISSIVE-safe subset to the failing one is denied too") {
        const auto u = decide(subset_cluster({route_plain_to("open")}),
                              update(route_plain_to("mtls"), route_plain_to("open")));
        CHECK_FALSE(allowed(u));
    }
    SECTION("the route already there: an unrelated update only warns") {
        json relabelled = route_plain_to("mtls").body();
        relabelled["metadata"]["labels"]["team"] = "shop";
        const auto u = decide(subset_cluster({route_plain_to("mtls")}),
                              update(relabelled, route_plain_to("mtls")));
        CHECK(allowed(u));
        CHECK(any_contains(warnings_of(u), "already failing"));
    }
    SECTION("deleting the route removes the failure") {
        const auto u =
            decide(subset_cluster({route_plain_to("mtls")}), remove(route_plain_to("mtls")));
        CHECK(allowed(u));
        CHECK(warnings_of(u).empty());
    }
    SECTION("a VirtualService bound to a gateway only changes nothing for sidecars") {
        const auto u = decide(subset_cluster(),
                              create(route_plain_to("mtls").gateways({"istio-system/public"})));
        CHECK(allowed(u));
        CHECK(u.codes.empty());
    }
}

TEST_CASE("§17: a VirtualService routing to a subset whose TLS works is allowed",
          "[admission][virtualservice]") {
    const auto d = decide(subset_cluster(), create(route_plain_to("open")));
    CHECK(allowed(d));
    CHECK(d.codes.empty());
    CHECK(warnings_of(d).empty());
}

TEST_CASE("§17 MTG107: a VirtualService naming a subset the DestinationRule does not define is "
          "denied",
          "[admission][virtualservice][MTG107]") {
    const auto d = decide(subset_cluster(), create(route_plain_to("v9")));
    CHECK_FALSE(allowed(d));
    const std::string message = d.body.at("response").at("status").at("message");
    CHECK_THAT(message, Catch::Contains("[MTG107]") && Catch::Contains("subset v9") &&
                            Catch::Contains("503"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG107") != d.codes.end());
    CHECK(any_contains(warnings_of(d), "[MTG107] VirtualService plain.shop"));
    SECTION("in warn mode it is a warning") {
        const auto w =
            decide(subset_cluster(), create(route_plain_to("v9")), mode(Enforcement::Warn));
        CHECK(allowed(w));
        CHECK(any_contains(warnings_of(w), "[MTG107]"));
    }
    SECTION("removing the subset from the DestinationRule the route uses is denied as well") {
        const json rule = subset_cluster()[subset_cluster().size() - 1];
        const json without = destination_rule("shop", "plain", "plain")
                                 .subset("mtls", {{"app", "plain"}}, "ISTIO_MUTUAL")
                                 .created(day(1));
        const auto u = decide(subset_cluster({route_plain_to("open")}), update(without, rule));
        CHECK_FALSE(allowed(u));
        CHECK(std::find(u.codes.begin(), u.codes.end(), "MTG107") != u.codes.end());
    }
}

TEST_CASE("§17 MTG107: a route that fails for more namespaces after the change is denied for "
          "those only, listed in name order",
          "[admission][virtualservice][MTG107]") {
    // Before: the route to v9 is visible in shop alone (exportTo "."); shop already fails.
    const json shop_only = route_plain_to("v9").export_to({"."}).body();
    const auto d = decide(subset_cluster({shop_only}),
                          update(route_plain_to("v9").export_to({"*"}), shop_only));
    CHECK_FALSE(allowed(d));
    const std::string denial = d.body.at("response").at("status").at("message");
    INFO(denial);
    CHECK_THAT(denial, Catch::Contains("[MTG107]") && Catch::Contains("front"));
    CHECK_THAT(denial, Catch::Contains("clients in front are routed"));
    SECTION("a route that fails for the same namespaces as before is not denied again") {
        json relabelled = shop_only;
        relabelled["metadata"]["labels"]["team"] = "shop";
        const auto u = decide(subset_cluster({shop_only}), update(relabelled, shop_only));
        CHECK(allowed(u));
        CHECK(any_contains(warnings_of(u), "[MTG107]"));
    }
}

TEST_CASE("§15, §9: a route to a failing subset that reaches more namespaces after the change is "
          "denied for those, although the same subset failed before",
          "[admission][virtualservice]") {
    // front and back are sidecar clients that choose the same DestinationRule. Before, only
    // front's clients are routed to the ISTIO_MUTUAL subset of pods without a sidecar; after,
    // back's are too. The flow and the clients' outcome are the same; who is routed is not.
    const std::vector<json> back{kube_namespace("back"),
                                 deployment("back", "api").labels({{"app", "api"}}).with_sidecar()};
    const json front_only = route_plain_to("mtls").export_to({"front"}).body();
    auto objects = subset_cluster(back);
    objects.push_back(front_only);
    const auto d = decide(objects, update(route_plain_to("mtls").export_to({"*"}), front_only));
    CHECK_FALSE(allowed(d));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG103") != d.codes.end());
    const std::string denial = d.body.at("response").at("status").at("message");
    INFO(denial);
    // front's clients failed before: the denial names only the newly routed namespaces.
    CHECK_THAT(denial, Catch::Contains("[MTG103] Sidecar clients in back, shop send"));
    SECTION("the same clients routed there as before: a warning, not a denial") {
        json relabelled = front_only;
        relabelled["metadata"]["labels"]["team"] = "shop";
        const auto u = decide(objects, update(relabelled, front_only));
        CHECK(allowed(u));
        CHECK(any_contains(warnings_of(u), "already failing"));
    }
}

namespace {

SidecarBuilder front_sidecar(const std::vector<std::string>& hosts) {
    return sidecar("front", "default").egress(hosts).created(day(3));
}

bool has_code(const admission::AdmissionDecision& d, const std::string& code) {
    return std::find(d.codes.begin(), d.codes.end(), code) != d.codes.end();
}

// ambient.md §17: web runs sidecar clients; bank runs a live pod `ledger` without a proxy (or
// captured, when `captured`), under a namespace-wide STRICT policy, behind Service ledger (headless
// when asked); tools runs a pod the CNI has captured (ztunnel is at work in this cluster).
std::vector<json> bank_cluster(const LabelMap& bank_labels, bool headless,
                               const std::vector<json>& more = {}, bool captured = false) {
    auto bank = kube_namespace("bank");
    for (const auto& [k, v] : bank_labels)
        bank.label(k, v);
    auto ledger = pod("bank", "ledger").labels({{"app", "ledger"}}).container_port(8080);
    if (captured)
        ledger.pod_annotation("ambient.istio.io/redirection", "enabled");
    auto ledger_service = service("bank", "ledger").selecting({{"app", "ledger"}}).port(8080, 8080);
    if (headless)
        ledger_service.headless();
    std::vector<json> objects{
        kube_namespace("web").injected(),
        pod("web", "frontend").labels({{"app", "frontend"}}).with_sidecar(),
        bank,
        ledger,
        ledger_service,
        peer_authentication("bank", "default").strict().created(day(1)),
        kube_namespace("tools"),
        pod("tools", "probe")
            .labels({{"app", "probe"}})
            .pod_annotation("ambient.istio.io/redirection", "enabled"),
    };
    objects.insert(objects.end(), more.begin(), more.end());
    return objects;
}

Review relabel_bank(const LabelMap& before, const LabelMap& after) {
    auto old_ns = kube_namespace("bank");
    for (const auto& [k, v] : before)
        old_ns.label(k, v);
    auto new_ns = kube_namespace("bank");
    for (const auto& [k, v] : after)
        new_ns.label(k, v);
    return update(new_ns, old_ns);
}

const LabelMap ambient_label{{"istio.io/dataplane-mode", "ambient"}};
const json bank_istio_mutual =
    destination_rule("web", "bank-mtls", "ledger.bank.svc.cluster.local").tls("ISTIO_MUTUAL");

std::string denial_of(const admission::AdmissionDecision& d) {
    return d.body.at("response").at("status").at("message");
}

} // namespace

SCENARIO("ambient.md §14, §17: a Sidecar change warns about the STRICT services it newly hides, "
         "and hiding a host never denies",
         "[admission][sidecar][MTG211]") {
    auto [context, objects, review,
          warned] = GENERATE_COPY(table<std::string, std::vector<json>, Review, bool>({
        {"a new Sidecar hiding STRICT web", {strict_shop}, create(front_sidecar({"./*"})), true},
        {"a new Sidecar that imports web", {strict_shop}, create(front_sidecar({"shop/*"})), false},
        {"a new Sidecar hiding web, which is not STRICT",
         {},
         create(front_sidecar({"./*"})),
         false},
        {"an update narrowing the egress so that it hides web",
         {strict_shop, front_sidecar({"*/*"})},
         update(front_sidecar({"./*"}), front_sidecar({"*/*"})),
         true},
        {"an update of a Sidecar that hid web already",
         {strict_shop, front_sidecar({"./*"})},
         update(front_sidecar({"./*", "istio-system/*"}), front_sidecar({"./*"})),
         false},
        {"a REGISTRY_ONLY Sidecar hiding web",
         {strict_shop},
         create(front_sidecar({"./*"}).outbound("REGISTRY_ONLY")),
         true},
        // Removing the Sidecar shows web again, with the DISABLE rule that breaks it: its
        // plaintext through the passthrough cluster failed against STRICT already.
        {"deleting a Sidecar that hid a failing rule",
         {strict_shop, front_plaintext, front_sidecar({"./*"})},
         remove(front_sidecar({"./*"})),
         false},
    }));
    GIVEN(context) {
        const auto d = decide(cluster(objects), review);
        THEN("it is allowed" << (warned ? ", with MTG211" : ", without MTG211")) {
            CHECK(d.kind == "Sidecar");
            CHECK(allowed(d));
            CHECK(has_code(d, "MTG211") == warned);
            CHECK(any_contains(warnings_of(d), "[MTG211] Sidecar default.front") == warned);
            check_warning_limits(warnings_of(d));
        }
    }
}

TEST_CASE("ambient.md §17: deleting a Sidecar that hid a failing rule warns about the failure, "
          "which was there before (plaintext through the passthrough cluster to STRICT)",
          "[admission][sidecar]") {
    const auto d = decide(cluster({strict_shop, front_plaintext, front_sidecar({"./*"})}),
                          remove(front_sidecar({"./*"})));
    CHECK(allowed(d));
    CHECK(has_code(d, "MTG101"));
    CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG101]"));
}

namespace {

// shop/db runs without a sidecar behind Service db; front's sidecar clients have a rule that
// sends Istio mTLS there, which the plaintext app cannot take (MTG103).
const std::string db = "db.shop.svc.cluster.local";
const json plain_db = deployment("shop", "db").labels({{"app", "db"}}).container_port(5432);
const json db_service = service("shop", "db").selecting({{"app", "db"}}).port(5432, 5432, "tcp");
const json front_mtls_to_db =
    destination_rule("front", "db-mtls", db).tls("ISTIO_MUTUAL").created(day(2));

std::vector<json> db_cluster(std::vector<json> more) {
    more.insert(more.begin(), {plain_db, db_service, front_mtls_to_db});
    return cluster(more);
}

} // namespace

SCENARIO("ambient.md §14, §17: a Sidecar change that shows a host denies a failure it brings "
         "to its clients, as any change does",
         "[admission][sidecar]") {
    GIVEN("front's Sidecar hides db, whose rule from front would send Istio mTLS to a plain app") {
        WHEN("the Sidecar is deleted") {
            const auto d =
                decide(db_cluster({front_sidecar({"./*"})}), remove(front_sidecar({"./*"})));
            THEN("the newly introduced MTG103 denies it") {
                CHECK_FALSE(allowed(d));
                CHECK(has_code(d, "MTG103"));
                CHECK_THAT(denial_of(d), Catch::Contains("[MTG103]"));
            }
        }
        WHEN("an update imports every namespace") {
            const auto d = decide(db_cluster({front_sidecar({"./*"})}),
                                  update(front_sidecar({"*/*"}), front_sidecar({"./*"})));
            THEN("it is denied too") {
                CHECK_FALSE(allowed(d));
                CHECK(has_code(d, "MTG103"));
            }
        }
        WHEN("the update still hides db") {
            const auto d =
                decide(db_cluster({front_sidecar({"./*"})}),
                       update(front_sidecar({"./*", "istio-system/*"}), front_sidecar({"./*"})));
            THEN("it is allowed without warnings") {
                CHECK(allowed(d));
                CHECK(warnings_of(d).empty());
            }
        }
        WHEN("a Sidecar for the ui pods only imports db") {
            const auto ui_sees_db = sidecar("front", "ui")
                                        .for_workloads({{"app", "ui"}})
                                        .egress({"shop/*"})
                                        .created(day(4));
            const auto d = decide(db_cluster({front_sidecar({"./*"})}), create(ui_sees_db));
            THEN("the failure it brings to ui is denied") {
                CHECK_FALSE(allowed(d));
                CHECK(has_code(d, "MTG103"));
            }
        }
    }
    GIVEN("front's Sidecar drops what it hides (REGISTRY_ONLY)") {
        const auto registry_only = front_sidecar({"./*"}).outbound("REGISTRY_ONLY");
        WHEN("it is deleted") {
            const auto d = decide(db_cluster({registry_only}), remove(registry_only));
            THEN("it is allowed: the calls to db failed before too, and the warning says so") {
                CHECK(allowed(d));
                CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG103]"));
            }
        }
    }
    GIVEN("the root namespace's default Sidecar, the mesh's, hides db from every namespace") {
        const auto mesh_default =
            sidecar("istio-system", "default").egress({"./*"}).created(day(3));
        WHEN("it is deleted") {
            const auto d = decide(db_cluster({mesh_default}), remove(mesh_default));
            THEN("front's failure towards db denies it") {
                CHECK_FALSE(allowed(d));
                CHECK(has_code(d, "MTG103"));
            }
        }
        WHEN("front gets a default Sidecar of its own that imports db") {
            const auto d =
                decide(db_cluster({mesh_default}), create(front_sidecar({"./*", "shop/*"})));
            THEN("it is denied") {
                CHECK_FALSE(allowed(d));
                CHECK(has_code(d, "MTG103"));
            }
        }
    }
    GIVEN("no Sidecar yet, web STRICT") {
        WHEN("a mesh default Sidecar hides web from every other namespace") {
            const auto d = decide(cluster({strict_shop}),
                                  create(sidecar("istio-system", "default").egress({"./*"})));
            THEN("it is allowed, naming web in MTG211") {
                CHECK(allowed(d));
                CHECK(any_contains(warnings_of(d), "[MTG211] Sidecar default.istio-system"));
            }
        }
    }
}

TEST_CASE("ambient.md §14: a Sidecar change reports only the flows of the clients it reaches",
          "[admission][sidecar]") {
    // legacy/batch has no sidecar: its plaintext to STRICT web fails whatever front's Sidecar
    // says, so showing web to front must not list it.
    const auto d =
        decide(cluster({strict_shop, front_sidecar({"./*"})}), remove(front_sidecar({"./*"})));
    CHECK(allowed(d));
    CHECK_FALSE(any_contains(warnings_of(d), "MTG203"));
    CHECK(warnings_of(d).empty());
}

TEST_CASE("ambient.md §14: a Sidecar mtls-guard cannot read is denied, with the field named",
          "[admission][sidecar]") {
    json broken = front_sidecar({"./*"}).body();
    broken["spec"]["egress"] = "./*";
    const auto d = decide(cluster(), create(broken));
    CHECK_FALSE(allowed(d));
    CHECK_THAT(d.body.at("response").at("status").at("message").get<std::string>(),
               Catch::Contains("spec.egress"));
}

TEST_CASE("ambient.md §17: enrolling a namespace in ambient is judged at once: a headless "
          "Service its sidecar clients reach in plaintext becomes AMBIENT_STRICT (MTG106), denied",
          "[admission][namespace]") {
    const auto d = decide(bank_cluster({}, true), relabel_bank({}, ambient_label));
    CHECK(d.kind == "Namespace");
    CHECK(d.namespace_name == "bank");
    CHECK_FALSE(allowed(d));
    CHECK_THAT(denial_of(d), Catch::Contains("[MTG106]") &&
                                 Catch::Contains("ledger.bank.svc.cluster.local") &&
                                 Catch::Contains("annotate the Namespace"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG106") != d.codes.end());
    check_warning_limits(warnings_of(d));

    const auto warned =
        decide(bank_cluster({}, true), relabel_bank({}, ambient_label), mode(Enforcement::Warn));
    CHECK(allowed(warned));
    CHECK(any_contains(warnings_of(warned), "[MTG106]"));
    SECTION("the namespace's own mode label (before the change) counts") {
        const LabelMap warn{{"mtls-guard.io/mode", "warn"}};
        LabelMap warn_and_ambient = warn;
        warn_and_ambient.insert(ambient_label.begin(), ambient_label.end());
        const auto labelled =
            decide(bank_cluster(warn, true), relabel_bank(warn, warn_and_ambient));
        CHECK(allowed(labelled));
        CHECK(any_contains(warnings_of(labelled), "[MTG106]"));
        // Lowering the mode in the very update that enrols does not lower it for that update.
        const auto same_update = decide(bank_cluster({}, true), relabel_bank({}, warn_and_ambient));
        CHECK_FALSE(allowed(same_update));
    }
    SECTION("the allow-conflict annotation on the Namespace turns the denial into warnings") {
        Review review = relabel_bank({}, ambient_label);
        review.object["metadata"]["annotations"]["mtls-guard.io/allow-conflict"] = "migration";
        const auto annotated = decide(bank_cluster({}, true), review);
        CHECK(allowed(annotated));
        CHECK(annotated.allow_conflict_reason == "migration");
        CHECK(any_contains(warnings_of(annotated), "[MTG106]"));
    }
    SECTION("without oldObject, the snapshot's labels are the state before") {
        Review review = relabel_bank({}, ambient_label);
        review.old_object = nullptr;
        CHECK_FALSE(allowed(decide(bank_cluster({}, true), review)));
    }
}

TEST_CASE("ambient.md §17: with no pod captured anywhere, enrolment only predicts capture: a "
          "warning",
          "[admission][namespace]") {
    auto objects = bank_cluster({}, true);
    objects.pop_back(); // tools/probe, the only sign of ztunnel
    const auto d = decide(objects, relabel_bank({}, ambient_label));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "[MTG106]"));
}

TEST_CASE("ambient.md §17: enrolling a namespace whose flows stay fine is allowed silently",
          "[admission][namespace]") {
    // Sidecar clients with auto mTLS send HBONE to the captured pods: fine under STRICT.
    const auto d = decide(bank_cluster({}, false), relabel_bank({}, ambient_label));
    CHECK(allowed(d));
    CHECK(d.codes.empty());
    CHECK(warnings_of(d).empty());
}

TEST_CASE("ambient.md §17: a flow that failed before enrolment (DR ISTIO_MUTUAL, 1.24) and fails "
          "after is already failing: allowed with a warning",
          "[admission][namespace][existing]") {
    // Before: ISTIO_MUTUAL to a pod without a sidecar (MTG103); after: legacy mTLS to a captured
    // pod on 1.24 (MTG106). The same pods' traffic failed before: semantics §9 does not deny.
    const auto d =
        decide(bank_cluster({}, false, {bank_istio_mutual}), relabel_bank({}, ambient_label), {},
               settings_for(model::IstioVersion{24}));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG106]"));
}

TEST_CASE("ambient.md §17, semantics §9: a warning the relabel leaves as it was (DR SIMPLE to a "
          "pod without a sidecar, MTG202) is reported as there before, not as new",
          "[admission][namespace][existing]") {
    // Adding istio-injection changes nothing at once: web's SIMPLE TLS reaches the plain ledger
    // pod before and after (MTG202). Once the pods restart, ledger's sidecar is STRICT (MTG104).
    const json simple =
        destination_rule("web", "bank-simple", "ledger.bank.svc.cluster.local").tls("SIMPLE");
    const auto d = decide(bank_cluster({}, false, {simple}),
                          relabel_bank({}, {{"istio-injection", "enabled"}}));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG202]"));
    for (const auto& warning : warnings_of(d))
        if (warning.find("[MTG202]") != std::string::npos)
            CHECK_THAT(warning, Catch::Contains("already failing before this change"));
}

TEST_CASE("ambient.md §17: clients whose plaintext already failed against a STRICT sidecar fail "
          "as ztunnel traffic after enrolment: already failing, allowed",
          "[admission][namespace][existing]") {
    // bank's ledger calls shop/web, a STRICT sidecar without the tunnel label: plaintext from a
    // pod without a proxy before (MTG203), ztunnel's plaintext after (MTG105). The same pods'
    // traffic failed before; enrolment adds no failure.
    const std::vector<json> shop{
        kube_namespace("shop"),
        pod("shop", "web").labels({{"app", "web"}}).with_sidecar().container_port(8080),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080),
        peer_authentication("shop", "default").strict(),
    };
    const auto d = decide(bank_cluster({}, false, shop), relabel_bank({}, ambient_label));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "already failing before this change: [MTG105]"));
}

TEST_CASE("ambient.md §17: leaving ambient releases the pods at once: DR ISTIO_MUTUAL towards "
          "them (HBONE on 1.26) now reaches pods without a sidecar (MTG103), denied",
          "[admission][namespace]") {
    const auto objects = bank_cluster(ambient_label, false, {bank_istio_mutual}, true);
    for (const auto& labels : {LabelMap{}, LabelMap{{"istio.io/dataplane-mode", "none"}}}) {
        const auto d = decide(objects, relabel_bank(ambient_label, labels));
        CHECK_FALSE(allowed(d));
        CHECK_THAT(denial_of(d), Catch::Contains("[MTG103]"));
    }
    // Without that DestinationRule the sidecar clients fall back to plaintext: fine.
    const auto fine =
        decide(bank_cluster(ambient_label, false, {}, true), relabel_bank(ambient_label, {}));
    CHECK(allowed(fine));
    CHECK_FALSE(any_contains(warnings_of(fine), "MTG103"));
}

TEST_CASE("ambient.md §17: adding istio-injection that breaks flows when the pods restart only "
          "warns, and says so",
          "[admission][namespace][injection]") {
    // At restart ledger gets a STRICT sidecar without the tunnel label: the ambient clients in
    // tools send it plaintext (MTG105). Nothing changes for the running pods.
    const auto d =
        decide(bank_cluster({}, false), relabel_bank({}, {{"istio-injection", "enabled"}}));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "when its pods restart: [MTG105]"));
    CHECK(std::find(d.codes.begin(), d.codes.end(), "MTG105") != d.codes.end());
    check_warning_limits(warnings_of(d));
    // istio.io/rev injects too.
    const auto rev =
        decide(bank_cluster({}, false), relabel_bank({}, {{"istio.io/rev", "stable"}}));
    CHECK(allowed(rev));
    CHECK(any_contains(warnings_of(rev), "when its pods restart: [MTG105]"));
}

TEST_CASE("ambient.md §17: removing istio-injection keeps running sidecars; what breaks at "
          "restart only warns",
          "[admission][namespace][injection]") {
    // front's sidecar clients use DR ISTIO_MUTUAL towards web's sidecar server; once web's pods
    // restart without sidecars, that Istio mTLS reaches pods without one (MTG103).
    const std::vector<json> objects{
        kube_namespace("front").injected(),
        pod("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        kube_namespace("web").injected(),
        pod("web", "frontend").labels({{"app", "frontend"}}).with_sidecar().container_port(8080),
        service("web", "frontend").selecting({{"app", "frontend"}}).port(80, 8080),
        destination_rule("front", "frontend-mtls", "frontend.web.svc.cluster.local")
            .tls("ISTIO_MUTUAL"),
    };
    const auto d = decide(objects, update(kube_namespace("web"), kube_namespace("web").injected()));
    CHECK(allowed(d));
    CHECK(any_contains(warnings_of(d), "when its pods restart: [MTG103]"));
}

TEST_CASE("ambient.md §17: kube-system and the other system namespaces are never judged",
          "[admission][namespace]") {
    // kube-system's webhook already fails (STRICT sidecar port, MTG108): a judged relabel would
    // at least warn that it is already failing.
    const std::vector<json> objects{
        kube_namespace("kube-system"),
        pod("kube-system", "hook").labels({{"app", "hook"}}).with_sidecar().container_port(8443),
        service("kube-system", "hook").selecting({{"app", "hook"}}).port(443, 8443),
        peer_authentication("kube-system", "default").strict(),
        webhook_configuration("system-hook", "kube-system", "hook", 443),
    };
    const auto judged = decide(
        objects,
        create(peer_authentication("kube-system", "default").strict().label("team", "platform")));
    REQUIRE(any_contains(warnings_of(judged), "[MTG108]"));
    const auto d = decide(objects, update(kube_namespace("kube-system")
                                              .label("istio.io/dataplane-mode", "ambient")
                                              .label("istio-injection", "enabled"),
                                          kube_namespace("kube-system")));
    CHECK(allowed(d));
    CHECK(d.codes.empty());
    CHECK(warnings_of(d).empty());
}

TEST_CASE("ambient.md §17: a Namespace change that touches none of the four labels is allowed "
          "without analysis",
          "[admission][namespace]") {
    const auto objects = bank_cluster({}, false, {bank_istio_mutual});
    // A mesh label change reports the failing DR flow as already failing...
    const auto judged = decide(objects, relabel_bank({}, {{"istio.io/use-waypoint", "shared"}}));
    CHECK(any_contains(warnings_of(judged), "already failing"));
    // ...any other label change is not analysed at all.
    const auto d = decide(objects, relabel_bank({}, {{"team", "payments"}}));
    CHECK(allowed(d));
    CHECK(d.codes.empty());
    CHECK(warnings_of(d).empty());
}

TEST_CASE("ambient.md §17: creating or deleting a namespace is allowed (nothing runs there yet, "
          "or any more)",
          "[admission][namespace]") {
    const auto objects = bank_cluster({}, true);
    const json enrolled = kube_namespace("bank").label("istio.io/dataplane-mode", "ambient");
    for (const auto& review : {create(enrolled), remove(enrolled)}) {
        const auto d = decide(objects, review);
        CHECK(allowed(d));
        CHECK(d.codes.empty());
    }
}

// A small mesh with every kind of server and client a PeerAuthentication can touch (spec §3,
// ambient.md §10–§13, §16): sidecar clients (one skipping its sidecar for port 80, one routed to
// a subset by a VirtualService, some sending SIMPLE or MUTUAL, one behind a Sidecar that hides
// most hosts), clients without a proxy, captured ambient clients; sidecar
// servers with an excluded inbound port, a tunnel label, a headless service, an ambient server,
// a server without a proxy, a webhook the API server calls, and a namespace with its own policy.
// `ambient_clients`: whether tools runs a captured ambient client.
std::vector<json> peer_authentication_mesh(bool ambient_clients) {
    const std::string shop_web = "web.shop.svc.cluster.local";
    auto probe = pod("tools", "probe").labels({{"app", "probe"}});
    if (ambient_clients)
        probe.pod_annotation("ambient.istio.io/redirection", "enabled");
    return {
        kube_namespace("istio-system"),
        kube_namespace("front").injected(),
        pod("front", "ui").labels({{"app", "ui"}}).with_sidecar(),
        pod("front", "cron")
            .labels({{"app", "cron"}})
            .with_sidecar()
            .pod_annotation("traffic.sidecar.istio.io/excludeOutboundPorts", "80"),
        kube_namespace("legacy"),
        pod("legacy", "batch").labels({{"app", "batch"}}),
        kube_namespace("tools"),
        probe,
        kube_namespace("edge").injected(),
        pod("edge", "proxy").labels({{"app", "proxy"}}).with_sidecar(),
        sidecar("edge", "default").egress({"./*", "istio-system/*", "bank/*"}),
        kube_namespace("shop").injected(),
        pod("shop", "web-1")
            .labels({{"app", "web"}, {"version", "v1"}})
            .with_sidecar()
            .container_port(8080)
            .container_port(9090)
            .pod_annotation("traffic.sidecar.istio.io/excludeInboundPorts", "9090"),
        pod("shop", "web-2")
            .labels({{"app", "web"}, {"version", "v2"}, {"networking.istio.io/tunnel", "http"}})
            .with_sidecar()
            .container_port(8080)
            .container_port(9090),
        service("shop", "web").selecting({{"app", "web"}}).port(80, 8080, "http").port(90, 9090),
        pod("shop", "db-0").labels({{"app", "db"}}).with_sidecar().container_port(5432),
        pod("shop", "db-1").labels({{"app", "db"}}).container_port(5432),
        service("shop", "db").selecting({{"app", "db"}}).port(5432, 5432).headless(),
        destination_rule("front", "web", shop_web)
            .subset("v2", {{"version", "v2"}}, "ISTIO_MUTUAL"),
        virtual_service("front", "web", {shop_web}).route(shop_web, "v2"),
        destination_rule("legacy", "db", "db.shop.svc.cluster.local").tls("ISTIO_MUTUAL"),
        kube_namespace("bank"),
        pod("bank", "ledger")
            .labels({{"app", "ledger"}})
            .container_port(8080)
            .pod_annotation("ambient.istio.io/redirection", "enabled"),
        service("bank", "ledger").selecting({{"app", "ledger"}}).port(8080, 8080),
        destination_rule("front", "ledger", "ledger.bank.svc.cluster.local").tls("ISTIO_MUTUAL"),
        // TLS of the application's own: DEPENDS (a warning) or FAIL, as the server port says.
        destination_rule("edge", "ledger", "ledger.bank.svc.cluster.local").tls("MUTUAL"),
        destination_rule("front", "teller", "teller.bank.svc.cluster.local").tls("SIMPLE"),
        destination_rule("opa", "web", shop_web).tls("SIMPLE"),
        pod("bank", "teller").labels({{"app", "teller"}}).container_port(8080),
        service("bank", "teller").selecting({{"app", "teller"}}).port(8080, 8080),
        kube_namespace("opa").injected(),
        pod("opa", "webhook").labels({{"app", "webhook"}}).with_sidecar().container_port(8443),
        service("opa", "webhook").selecting({{"app", "webhook"}}).port(443, 8443, "https"),
        webhook_configuration("opa-validating", "opa", "webhook"),
        kube_namespace("pay").injected(),
        pod("pay", "api").labels({{"app", "api"}}).with_sidecar().container_port(8080),
        service("pay", "api").selecting({{"app", "api"}}).port(80, 8080),
        peer_authentication("pay", "default").strict().created(day(1)),
    };
}

namespace {

// The decision with the default settings, checked to be the very one `other` settings give.
admission::AdmissionDecision decides_alike(const model::Snapshot& snapshot, const json& body,
                                           const AdmissionSettings& other) {
    auto decision = admission::decide(snapshot, body, AdmissionSettings{});
    const auto again = admission::decide(snapshot, body, other);
    CHECK(decision.body == again.body);
    CHECK(decision.codes == again.codes);
    CHECK(decision.allowed == again.allowed);
    return decision;
}

// Counts the denials and the decisions with warnings, so that a table can show it compared some.
void count(const admission::AdmissionDecision& d, std::size_t& denied, std::size_t& warned) {
    denied += d.allowed ? 0u : 1u;
    warned += warnings_of(d).empty() ? 0u : 1u;
}

} // namespace

TEST_CASE("§9, §3, ambient.md §10–§14: a PeerAuthentication change evaluated in one pass, without "
          "flows to hidden hosts, decides exactly as two full evaluations, before and after",
          "[admission][peer-authentication]") {
    using PA = PeerAuthenticationBuilder;
    const PA mesh = peer_authentication("istio-system", "default").created(day(1));
    const PA shop = peer_authentication("shop", "default").created(day(1));
    const PA web_policy =
        peer_authentication("shop", "web").created(day(2)).selecting({{"app", "web"}});
    const PA ledger =
        peer_authentication("bank", "ledger").created(day(2)).selecting({{"app", "ledger"}});
    const std::vector<std::string> modes{"STRICT", "PERMISSIVE", "DISABLE", "UNSET"};
    // Existing policies, and the changes tried over each.
    const std::vector<std::vector<json>> existing{
        {},
        {PA(mesh).strict()},
        {PA(mesh).disable(), PA(shop).permissive()},
        {PA(web_policy).strict().port(9090, "PERMISSIVE"), PA(ledger).permissive()},
    };
    std::vector<Review> reviews;
    for (const auto& m : modes) {
        reviews.push_back(create(PA(mesh).mode(m)));
        reviews.push_back(update(PA(mesh).mode(m)));
        reviews.push_back(update(PA(mesh).mode(m), PA(mesh).strict()));
        reviews.push_back(update(PA(shop).mode(m)));
        reviews.push_back(update(PA(web_policy).mode(m).port(8080, "DISABLE")));
        reviews.push_back(update(PA(web_policy).unset().port(9090, m)));
        reviews.push_back(update(PA(ledger).mode(m).port(8080, "STRICT")));
        reviews.push_back(create(PA(peer_authentication("tools", "default")).mode(m)));
        reviews.push_back(create(PA(peer_authentication("opa", "default")).mode(m)));
    }
    reviews.push_back(remove(PA(mesh).strict()));
    reviews.push_back(remove(PA(shop).disable()));
    reviews.push_back(remove(PA(web_policy).strict()));

    AdmissionSettings two_pass;
    two_pass.shortcuts = false;
    std::size_t denied = 0, warned = 0;
    for (const model::IstioVersion version :
         {model::IstioVersion{}, model::IstioVersion{24}, model::IstioVersion{5}}) {
        // Without ambient clients nothing resets the hidden state bypass flows read.
        const std::vector<std::pair<std::vector<json>, bool>> meshes{{existing[0], true},
                                                                     {existing[1], true},
                                                                     {existing[2], false},
                                                                     {existing[3], true},
                                                                     {existing[3], false}};
        for (const auto& [policies, ambient_clients] : meshes) {
            auto objects = peer_authentication_mesh(ambient_clients);
            objects.insert(objects.end(), policies.begin(), policies.end());
            const auto snapshot = snapshot_of(objects, settings_for(version));
            for (const auto& review : reviews) {
                const json body = review.build();
                INFO("version 1." << static_cast<int>(version.minor) << ", " << policies.size()
                                  << " policies, review " << body.dump());
                count(decides_alike(*snapshot, body, two_pass), denied, warned);
            }
        }
    }
    // The table must hold denials and warnings, or it would compare nothing.
    CHECK(denied > 20);
    CHECK(warned > 100);
}

TEST_CASE(
    "§9: the configuration before an UPDATE whose oldObject is the snapshot's copy, or before "
    "a CREATE of an object the snapshot lacks, is the snapshot's own: decided exactly as "
    "with that configuration built again",
    "[admission]") {
    const std::string shop_web = "web.shop.svc.cluster.local";
    const std::string ledger = "ledger.bank.svc.cluster.local";
    using DR = DestinationRuleBuilder;
    using VS = VirtualServiceBuilder;
    using SC = SidecarBuilder;
    using AP = AlphaPolicyBuilder;
    // Objects the mesh below holds, each with the versions an UPDATE or CREATE may bring.
    const DR front_ledger =
        destination_rule("front", "ledger", ledger).tls("ISTIO_MUTUAL").created(day(2));
    // pay/api is STRICT: DISABLE to it fails, so a stale oldObject decides otherwise.
    const DR front_pay = destination_rule("front", "pay", "api.pay.svc.cluster.local")
                             .tls("ISTIO_MUTUAL")
                             .created(day(2));
    const DR front_web = destination_rule("front", "web", shop_web)
                             .subset("v2", {{"version", "v2"}}, "ISTIO_MUTUAL")
                             .created(day(2));
    const VS route_v2 = virtual_service("front", "web", {shop_web}).route(shop_web, "v2");
    const SC edge_default =
        sidecar("edge", "default").egress({"./*", "istio-system/*", "bank/*"}).created(day(2));
    const AP shop_policy = policy("shop", "default").strict().created(day(2));
    const AP mesh_wide = mesh_policy("default").permissive().created(day(1));
    const auto held = std::vector<json>{front_ledger, front_pay,   front_web, json(route_v2),
                                        edge_default, shop_policy, mesh_wide};

    std::vector<Review> reviews;
    // UPDATEs whose oldObject is the snapshot's copy, and the same with a stale oldObject.
    for (const std::string mode : {"DISABLE", "SIMPLE", "ISTIO_MUTUAL"}) {
        reviews.push_back(update(DR(front_ledger).tls(mode), front_ledger));
        reviews.push_back(update(DR(front_ledger).tls(mode), DR(front_ledger).tls("DISABLE")));
        reviews.push_back(update(DR(front_pay).tls(mode), front_pay));
        reviews.push_back(update(DR(front_pay).tls(mode), DR(front_pay).tls("DISABLE")));
        reviews.push_back(update(DR(front_web).subset("v1", {{"version", "v1"}}, mode), front_web));
        reviews.push_back(create(destination_rule("shop", "web", shop_web).tls(mode)));
        reviews.push_back(create(DR(front_ledger).tls(mode)));
        reviews.push_back(create(DR(front_pay).tls(mode)));
    }
    reviews.push_back(update(VS(route_v2).route(shop_web), route_v2));
    reviews.push_back(
        update(virtual_service("front", "web", {shop_web}).route(shop_web), route_v2));
    reviews.push_back(create(virtual_service("legacy", "db", {"db.shop.svc.cluster.local"})
                                 .route("db.shop.svc.cluster.local", "")));
    reviews.push_back(update(sidecar("edge", "default").egress({"./*"}), edge_default));
    reviews.push_back(update(SC(edge_default).outbound("REGISTRY_ONLY"), edge_default));
    reviews.push_back(create(sidecar("front", "default").egress({"./*", "istio-system/*"})));
    reviews.push_back(update(policy("shop", "default").permissive().created(day(2)), shop_policy));
    reviews.push_back(update(policy("shop", "default").plaintext_only(), shop_policy));
    reviews.push_back(create(policy("bank", "default").strict()));
    reviews.push_back(update(mesh_policy("default").strict().created(day(1)), mesh_wide));
    reviews.push_back(update(mesh_policy("default").plaintext_only(), mesh_wide));
    reviews.push_back(create(mesh_policy("extra").strict()));
    reviews.push_back(update(peer_authentication("pay", "default").disable().created(day(1)),
                             peer_authentication("pay", "default").strict().created(day(1))));
    for (const auto& object : held)
        reviews.push_back(remove(object));

    AdmissionSettings rebuilt;
    rebuilt.shortcuts = false;
    std::size_t denied = 0, warned = 0;
    for (const bool ambient_clients : {true, false}) {
        auto objects = peer_authentication_mesh(ambient_clients);
        // The mesh holds its own versions of front/ledger, front/web and front's route: drop them.
        std::erase_if(objects, [](const json& o) {
            const std::string kind = o.value("kind", "");
            return (kind == "DestinationRule" || kind == "VirtualService") &&
                   o["metadata"].value("namespace", "") == "front";
        });
        objects.insert(objects.end(), held.begin(), held.end());
        const auto snapshot = snapshot_of(objects);
        for (const auto& review : reviews) {
            const json body = review.build();
            INFO("ambient clients " << ambient_clients << ", review " << body.dump());
            count(decides_alike(*snapshot, body, rebuilt), denied, warned);
        }
    }
    // The table must hold denials and warnings, or it would compare nothing.
    CHECK(denied >= 10);
    CHECK(warned >= 40);
}
