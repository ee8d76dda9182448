// Tests of the AdmissionReview body readers: the fast simdjson reader answers every body exactly as
// the nlohmann::json reference reader does, and gives way to it on every body it cannot read alike.
#include "server/admission/review_body.hpp"
#include "server/admission/review_endpoint.hpp"
#include "server/snapshot/snapshot_files.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using mtlsguard::admission::AdmissionSettings;
using mtlsguard::admission::Enforcement;
using mtlsguard::model::Snapshot;
using mtlsguard::server::answer_review;
using mtlsguard::server::handle_review;
using mtlsguard::server::read_review;
using mtlsguard::server::read_review_direct;
using mtlsguard::server::read_review_fast;
using mtlsguard::server::read_review_reference;
using mtlsguard::server::ReviewBody;
using mtlsguard::server::ReviewReply;
using nlohmann::json;

namespace {

const std::filesystem::path source_dir = MTLS_GUARD_SOURCE_DIR;

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

const Snapshot& demo_snapshot() {
    static const auto snapshot = [] {
        mtlsguard::input::SnapshotSource source;
        source.paths = {(source_dir / "deploy/demo/mesh.yaml").string()};
        return mtlsguard::input::load_snapshot(source).snapshot;
    }();
    REQUIRE(snapshot);
    return *snapshot;
}

// The benchmark's review (a kubectl-apply UPDATE with managedFields) and the fuzz seeds.
std::vector<std::string> corpus() {
    std::vector<std::string> bodies = {
        read_file(source_dir / "tests/bench/data/admission-review-update.json")};
    for (const auto& entry :
         std::filesystem::directory_iterator(source_dir / "tests/fuzz/corpus/admission"))
        bodies.push_back(read_file(entry.path()));
    REQUIRE(bodies.size() > 4);
    return bodies;
}

// Under the sanitizers (CI's ASan step) each body costs about twenty times as much: the exhaustive
// scenarios below take a fixed share of their cases there, and all of them in the plain builds.
#ifdef MTLS_GUARD_SANITIZED
constexpr std::size_t sanitized_share = 3;
#else
constexpr std::size_t sanitized_share = 1;
#endif

std::vector<AdmissionSettings> all_settings() {
    AdmissionSettings warn;
    warn.default_mode = Enforcement::Warn;
    AdmissionSettings stale;
    stale.extra_warnings = {"[mtls-guard] the snapshot is 10 minutes old"};
    return {AdmissionSettings{}, warn, stale};
}

// Everything a caller sees of a reply: the HTTP answer and what is logged and counted.
void check_same(const ReviewReply& fast, const ReviewReply& reference) {
    CHECK(fast.status == reference.status);
    CHECK(fast.body == reference.body);
    const auto& a = fast.decision;
    const auto& b = reference.decision;
    CHECK(a.http_status == b.http_status);
    CHECK(a.uid == b.uid);
    CHECK(a.kind == b.kind);
    CHECK(a.namespace_name == b.namespace_name);
    CHECK(a.name == b.name);
    CHECK(a.operation == b.operation);
    CHECK(a.dry_run == b.dry_run);
    CHECK(a.allowed == b.allowed);
    CHECK(a.enforcement == b.enforcement);
    CHECK(a.codes == b.codes);
    CHECK(a.allow_conflict_reason == b.allow_conflict_reason);
    CHECK(a.error == b.error);
}

// handle_review (fast reader, else reference) against the reference reader alone.
void check_answers_alike(const std::string& body) {
    for (const auto& settings : all_settings()) {
        const auto fast = handle_review(demo_snapshot(), body, settings);
        const auto reference =
            answer_review(demo_snapshot(), read_review_reference(body), settings);
        check_same(fast, reference);
    }
}

std::string printable(const std::string& body) {
    std::string out;
    for (const char c : body.substr(0, 200)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4U];
            out += hex[u & 0xfU];
        } else {
            out += c;
        }
    }
    return out;
}

} // namespace

SCENARIO("The fast reader reads every review of the corpus, and the answers are the reference's") {
    for (const auto& body : corpus()) {
        INFO(printable(body));
        CHECK(read_review_fast(body).has_value());
        check_answers_alike(body);
    }
}

SCENARIO("The fast reader keeps only what the engine reads, and drops managedFields") {
    const auto body = read_file(source_dir / "tests/bench/data/admission-review-update.json");
    const auto fast = read_review_fast(body);
    REQUIRE(fast);
    const ReviewBody reference = read_review_reference(body);
    REQUIRE(reference.status == ReviewBody::Status::Parsed);
    CHECK(fast->size() == 3);
    CHECK((*fast)["request"].size() == 8);
    CHECK_FALSE((*fast)["request"].contains("userInfo"));
    CHECK_FALSE((*fast)["request"]["object"]["metadata"].contains("managedFields"));
    // What it keeps is exactly what the reference reader built.
    for (const char* member : {"apiVersion", "kind"})
        CHECK((*fast)[member] == reference.review[member]);
    for (const auto& [key, value] : (*fast)["request"].items())
        CHECK(value == reference.review["request"][key]);
}

SCENARIO("Bodies the fast reader refuses go to the reference reader, which answers as before") {
    const auto [body, status] = GENERATE(table<std::string, ReviewBody::Status>({
        {"", ReviewBody::Status::NotJson},
        {"not json", ReviewBody::Status::NotJson},
        {"{} {}", ReviewBody::Status::NotJson},
        {"[1,]", ReviewBody::Status::NotJson},
        {"{\"a\": \"\xff\xfe\"}", ReviewBody::Status::NotJson}, // invalid UTF-8
        {"{\"a\": \"\\udc00\"}", ReviewBody::Status::NotJson},  // lone low surrogate
        {"{\"a\": \"\\ud800\"}", ReviewBody::Status::NotJson},  // lone high surrogate
        {"{\"a\": \"x\x01y\"}", ReviewBody::Status::NotJson},   // raw control character
        {"{\"a\": \"x\ny\"}", ReviewBody::Status::NotJson},     // raw newline
        {"{\"a\": 1e400}", ReviewBody::Status::NotJson},        // overflows a double
        {"{\"a\": tru}", ReviewBody::Status::NotJson},
        {"{\"a\": 01}", ReviewBody::Status::NotJson},
        // nlohmann accepts these, simdjson does not: the reference reader reads them.
        {"\xEF\xBB\xBF{\"a\": 1}", ReviewBody::Status::Parsed},        // byte-order mark
        {std::string("{\"a\": 1}\0", 9), ReviewBody::Status::Parsed},  // a trailing NUL
        {"{\"a\": 18446744073709551616}", ReviewBody::Status::Parsed}, // 2^64: a double
        {"{\"a\": -9223372036854775809}", ReviewBody::Status::Parsed}, // below int64: a double
        {"{\"a\": 123456789012345678901234567890}", ReviewBody::Status::Parsed},
    }));
    INFO(printable(body));
    CHECK_FALSE(read_review_fast(body).has_value());
    CHECK(read_review(body).status == status);
    check_answers_alike(body);
}

SCENARIO("Nesting near the depth limit is answered alike by both readers") {
    // Containers nested n deep around a scalar, inside the object of an otherwise good review.
    const auto base = read_file(source_dir / "tests/bench/data/admission-review-update.json");
    const std::string marker = "\"host\":";
    const auto at = base.find(marker);
    REQUIRE(at != std::string::npos);
    for (const int n : {1, 100, 120, 124, 125, 126, 127, 128, 129, 130, 200, 2000}) {
        for (const auto& [open, close] :
             std::vector<std::pair<std::string, std::string>>{{"[", "]"}, {"{\"a\":", "}"}}) {
            std::string deep;
            for (int i = 0; i < n; ++i)
                deep += open;
            deep += "0";
            for (int i = 0; i < n; ++i)
                deep += close;
            INFO("nested " << n << " deep with " << open);
            std::string body = base;
            body.insert(at, "\"x-deep\":" + deep + ",");
            check_answers_alike(body);
            check_answers_alike(deep);
            // Deeper than the reference reader's limit is refused, whichever reader sees it.
            if (n > 130)
                CHECK(read_review(body).status == ReviewBody::Status::TooDeep);
            if (n < 120)
                CHECK(read_review_fast(body).has_value());
        }
    }
}

SCENARIO("Duplicate keys, odd numbers and managedFields anywhere read alike") {
    const json base =
        json::parse(read_file(source_dir / "tests/fuzz/corpus/admission/seed-2-update-v1.json"));
    const std::string good = base.dump();
    const std::string request = base["request"].dump();
    const std::string object = base["request"]["object"].dump();
    const std::vector<std::string> bodies = {
        // The last of duplicate keys wins, at every level (nlohmann's rule).
        R"({"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":)" +
            request + R"(,"apiVersion":"admission.k8s.io/v1"})",
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a"},"request":)" +
            request + "}",
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":)" + request +
            R"(,"request":{"uid":"b","operation":"CREATE"}})",
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","uid":"v","operation":"DELETE","kind":{"kind":"DestinationRule"},"namespace":"default","name":"my-service-dr","oldObject":)" +
            object + "}}",
        // managedFields is dropped wherever it is, as a label key too.
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","managedFields":1,"request":{"uid":"u","operation":"CREATE","managedFields":[],"kind":{"kind":"DestinationRule"},"namespace":"default","object":{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"x","namespace":"default","labels":{"managedFields":"1","app":"x"},"managedFields":[{"a":1}]},"spec":{"host":"my-service","managedFields":{"tls":1},"trafficPolicy":{"tls":{"mode":"DISABLE"}}}}}})",
        // Numbers where the engine reads them (port numbers, label values).
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"kind":"DestinationRule"},"namespace":"default","object":{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"x","namespace":"default","labels":{"a":-0,"b":0,"c":1.0,"d":-1,"e":1e2,"f":18446744073709551615,"g":-0.0,"h":5e-324}},"spec":{"host":"my-service","trafficPolicy":{"portLevelSettings":[{"port":{"number":8080.0},"tls":{"mode":"DISABLE"}},{"port":{"number":-0},"tls":{"mode":"DISABLE"}},{"port":{"number":0},"tls":{"mode":"DISABLE"}},{"port":{"number":1e3},"tls":{"mode":"DISABLE"}},{"port":{"number":-8080},"tls":{"mode":"DISABLE"}},{"port":{"number":9223372036854775808},"tls":{"mode":"DISABLE"}}]}}}}})",
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"kind":"DestinationRule"},"namespace":"default","object":{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"x","namespace":"default"},"spec":{"host":"my-service","trafficPolicy":{"portLevelSettings":[{"port":{"number":-0},"tls":{"mode":"DISABLE"}}]}}}}})",
        // Escapes, non-ASCII and NUL inside strings.
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"\u00e9\ud83d\ude00\u0000x","operation":"CREATE","kind":{"kind":"DestinationRule"},"namespace":"default","name":"\"\\\/\b\f\n\r\t","object":{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"é名\u0001","namespace":"default"},"spec":{"host":"my-service","trafficPolicy":{"tls":{"mode":"DISABLE"}}}}}})",
        // The annotation that turns a denial into warnings, duplicated, and an odd one.
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"kind":"DestinationRule"},"namespace":"default","object":{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"x","namespace":"default","annotations":{"mtls-guard.io/allow-conflict":"first","mtls-guard.io/allow-conflict":"migration, ticket 42"}},"spec":{"host":"my-service","trafficPolicy":{"tls":{"mode":"DISABLE"}}}}}})",
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"kind":"DestinationRule"},"namespace":"default","object":{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"x","namespace":"default","annotations":{"mtls-guard.io/allow-conflict":{"a":1}}},"spec":{"host":"my-service","trafficPolicy":{"tls":{"mode":"DISABLE"}}}}}})",
        // Not a review, or not quite.
        "[]", "\"review\"", "null", "0", "-0", "[" + good + "]", R"({"request":"yes"})",
        R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null})",
        " \t\r\n" + good + " \t\r\n"};
    for (const auto& body : bodies) {
        INFO(printable(body));
        CHECK(read_review_fast(body).has_value());
        check_answers_alike(body);
    }
}

SCENARIO("Random damage to a real review is answered alike by both readers") {
    const auto corpus_bodies = corpus();
    std::mt19937 random(20261202);
    // Bytes that matter to a JSON reader, and a few that are never valid.
    const std::string specials =
        "{}[]:,\"\\/ \t\n\r0123456789-+.eEtrufalsn\x01\x7f\x80\xc3\xa9\xed\xff";
    int fast_reads = 0;
    const int rounds = 3000 / static_cast<int>(sanitized_share);
    for (int round = 0; round < rounds; ++round) {
        std::string body = corpus_bodies[static_cast<std::size_t>(round) % corpus_bodies.size()];
        const int edits = 1 + static_cast<int>(random() % 3);
        for (int e = 0; e < edits && !body.empty(); ++e) {
            const std::size_t at = random() % body.size();
            const char c = specials[random() % specials.size()];
            switch (random() % 4) {
            case 0:
                body[at] = c;
                break;
            case 1:
                body.insert(at, 1, c);
                break;
            case 2:
                body.erase(at, 1 + random() % 8);
                break;
            default:
                body.resize(at);
                break;
            }
        }
        INFO("round " << round << ": " << printable(body));
        fast_reads += read_review_fast(body).has_value() ? 1 : 0;
        const auto fast = handle_review(demo_snapshot(), body, AdmissionSettings{});
        const auto reference =
            answer_review(demo_snapshot(), read_review_reference(body), AdmissionSettings{});
        check_same(fast, reference);
    }
    // Many damaged bodies are still JSON (a changed letter in a string): both paths are exercised.
    CHECK(fast_reads > rounds / 10);
    CHECK(fast_reads < rounds * 9 / 10);
}

namespace {

using mtlsguard::model::DecodeOutcome;
namespace model = mtlsguard::model;

// Field by field, as decode_object fills them (the model types have no operator==).
bool same(const model::TrafficPolicy& a, const model::TrafficPolicy& b) {
    if (a.tls != b.tls || a.passthrough_load_balancer != b.passthrough_load_balancer ||
        a.port_level.size() != b.port_level.size())
        return false;
    for (std::size_t i = 0; i < a.port_level.size(); ++i)
        if (a.port_level[i].port != b.port_level[i].port ||
            a.port_level[i].tls != b.port_level[i].tls)
            return false;
    return true;
}

bool same(const std::optional<model::TrafficPolicy>& a,
          const std::optional<model::TrafficPolicy>& b) {
    return a.has_value() == b.has_value() && (!a || same(*a, *b));
}

bool same_age(const model::Age& a, const model::Age& b) {
    return a.creation_timestamp == b.creation_timestamp && a.name == b.name &&
           a.namespace_name == b.namespace_name;
}

bool same(const model::DecodedObject& a, const model::DecodedObject& b) {
    if (a.index() != b.index())
        return false;
    if (const auto* pa = std::get_if<model::PeerAuthentication>(&a)) {
        const auto& pb = std::get<model::PeerAuthentication>(b);
        return pa->ref == pb.ref && same_age(pa->age, pb.age) && pa->selector == pb.selector &&
               pa->mode == pb.mode && pa->port_level == pb.port_level;
    }
    if (const auto* da = std::get_if<model::DestinationRule>(&a)) {
        const auto& db = std::get<model::DestinationRule>(b);
        if (!(da->ref == db.ref) || !same_age(da->age, db.age) || da->host != db.host ||
            da->export_to != db.export_to || da->workload_selector != db.workload_selector ||
            !same(da->traffic_policy, db.traffic_policy) || da->subsets.size() != db.subsets.size())
            return false;
        for (std::size_t i = 0; i < da->subsets.size(); ++i)
            if (da->subsets[i].name != db.subsets[i].name ||
                da->subsets[i].labels != db.subsets[i].labels ||
                !same(da->subsets[i].traffic_policy, db.subsets[i].traffic_policy))
                return false;
        return true;
    }
    if (const auto* aa = std::get_if<model::AlphaPolicy>(&a)) {
        const auto& ab = std::get<model::AlphaPolicy>(b);
        if (!(aa->ref == ab.ref) || !same_age(aa->age, ab.age) ||
            aa->mesh_policy != ab.mesh_policy || aa->mode != ab.mode ||
            aa->targets.size() != ab.targets.size())
            return false;
        for (std::size_t i = 0; i < aa->targets.size(); ++i) {
            const auto& ta = aa->targets[i];
            const auto& tb = ab.targets[i];
            if (ta.name != tb.name || ta.ports.size() != tb.ports.size())
                return false;
            for (std::size_t j = 0; j < ta.ports.size(); ++j)
                if (ta.ports[j].number != tb.ports[j].number ||
                    ta.ports[j].name != tb.ports[j].name)
                    return false;
        }
        return true;
    }
    if (const auto* va = std::get_if<model::VirtualService>(&a)) {
        const auto& vb = std::get<model::VirtualService>(b);
        if (!(va->ref == vb.ref) || !same_age(va->age, vb.age) || va->hosts != vb.hosts ||
            va->gateways != vb.gateways || va->export_to != vb.export_to ||
            va->destinations.size() != vb.destinations.size())
            return false;
        for (std::size_t i = 0; i < va->destinations.size(); ++i) {
            const auto& da = va->destinations[i];
            const auto& db = vb.destinations[i];
            if (da.host != db.host || da.subset != db.subset || da.port != db.port ||
                da.path != db.path || da.source_namespaces != db.source_namespaces)
                return false;
        }
        return true;
    }
    if (const auto* na = std::get_if<model::Namespace>(&a)) {
        const auto& nb = std::get<model::Namespace>(b);
        return na->name == nb.name && na->labels == nb.labels;
    }
    return false; // the direct reader decodes no other kind
}

void check_same_decoding(const DecodeOutcome& direct, const DecodeOutcome& reference) {
    CHECK(static_cast<int>(direct.status) == static_cast<int>(reference.status));
    CHECK(direct.error == reference.error);
    REQUIRE(direct.object.has_value() == reference.object.has_value());
    if (direct.object)
        CHECK(same(*direct.object, *reference.object));
}

// When the direct reader reads a body, each version of the object is decoded as decode_object
// decodes the reference reader's JSON of it; and the answers are the reference's either way.
// Returns whether the direct reader read it.
bool check_direct_alike(const std::string& body) {
    check_answers_alike(body);
    const auto direct = read_review_direct(body);
    if (!direct)
        return false;
    const ReviewBody reference = read_review_reference(body);
    REQUIRE(reference.status == ReviewBody::Status::Parsed);
    const json& request = reference.review["request"];
    const std::string ns = request.value("namespace", json("")).is_string() &&
                                   !request.value("namespace", std::string()).empty()
                               ? request.value("namespace", std::string())
                               : std::string("default");
    for (const auto& [member, version] :
         {std::pair{"object", &direct->object}, std::pair{"oldObject", &direct->old_object}}) {
        const bool present = request.contains(member) && !request[member].is_null();
        REQUIRE(version->has_value() == present);
        if (present && mtlsguard::admission::decides_on_kind(direct->kind))
            check_same_decoding((*version)->decoded,
                                mtlsguard::model::decode_object(request[member], ns));
    }
    return true;
}

// Every value of `document`, by JSON pointer.
void pointers(const json& document, const json::json_pointer& at,
              std::vector<json::json_pointer>& out) {
    out.push_back(at);
    if (document.is_object())
        for (const auto& [key, value] : document.items())
            pointers(value, at / key, out);
    else if (document.is_array())
        for (std::size_t i = 0; i < document.size(); ++i)
            pointers(document[i], at / i, out);
}

// Reviews of each kind the engine decides on, with every field decode reads.
std::vector<json> rich_reviews() {
    auto review = [](const std::string& operation, const json& object) {
        json request = {{"uid", "u-1"},
                        {"operation", operation},
                        {"kind", {{"kind", object["kind"]}}},
                        {"namespace", "default"},
                        {"name", object["metadata"]["name"]},
                        {"dryRun", false},
                        {"object", object}};
        if (operation == "UPDATE")
            request["oldObject"] = object;
        return json{{"apiVersion", "admission.k8s.io/v1"},
                    {"kind", "AdmissionReview"},
                    {"request", request}};
    };
    const json metadata = {
        {"name", "x"},
        {"namespace", "default"},
        {"creationTimestamp", "2024-03-11T09:14:22Z"},
        {"labels", {{"app", "x"}, {"version", "v1"}}},
        {"annotations", {{"mtls-guard.io/allow-conflict", "ticket 7"}, {"other", "y"}}}};
    const json dr = {{"apiVersion", "networking.istio.io/v1beta1"},
                     {"kind", "DestinationRule"},
                     {"metadata", metadata},
                     {"spec",
                      {{"host", "my-service"},
                       {"exportTo", {".", "*"}},
                       {"workloadSelector", {{"matchLabels", {{"app", "client"}}}}},
                       {"trafficPolicy",
                        {{"tls", {{"mode", "ISTIO_MUTUAL"}}},
                         {"loadBalancer", {{"simple", "PASSTHROUGH"}}},
                         {"portLevelSettings",
                          {{{"port", {{"number", 8080}}}, {"tls", {{"mode", "DISABLE"}}}}}}}},
                       {"subsets",
                        {{{"name", "v1"},
                          {"labels", {{"version", "v1"}}},
                          {"trafficPolicy", {{"tls", {{"mode", "SIMPLE"}}}}}}}}}}};
    const json pa = {{"apiVersion", "security.istio.io/v1beta1"},
                     {"kind", "PeerAuthentication"},
                     {"metadata", metadata},
                     {"spec",
                      {{"selector", {{"matchLabels", {{"app", "my-service"}}}}},
                       {"mtls", {{"mode", "STRICT"}}},
                       {"portLevelMtls", {{"8080", {{"mode", "DISABLE"}}}, {"9090", nullptr}}}}}};
    const json policy = {
        {"apiVersion", "authentication.istio.io/v1alpha1"},
        {"kind", "Policy"},
        {"metadata", metadata},
        {"spec",
         {{"targets",
           {{{"name", "my-service"}, {"ports", {{{"number", 80}}, {{"name", "http"}}}}}}},
          {"peers", {{{"jwt", json::object()}}, {{"mtls", {{"mode", "PERMISSIVE"}}}}}}}}};
    const json destination = {{"host", "my-service"}, {"subset", "v1"}, {"port", {{"number", 80}}}};
    const json vs = {{"apiVersion", "networking.istio.io/v1"},
                     {"kind", "VirtualService"},
                     {"metadata", metadata},
                     {"spec",
                      {{"hosts", {"my-service"}},
                       {"gateways", {"mesh", "istio-system/public"}},
                       {"exportTo", {"."}},
                       {"http",
                        {{{"match", {{{"sourceNamespace", "front"}}, {{"uri", {{"prefix", "/"}}}}}},
                          {"route", {{{"destination", destination}, {"weight", 90}}}},
                          {"mirror", destination},
                          {"mirrors", {{{"destination", destination}}}}}}},
                       {"tcp",
                        {{{"match", {{{"sourceNamespace", "front"}}}},
                          {"route", {{{"destination", destination}}}}}}},
                       {"tls", {{{"route", {{{"destination", destination}}}}}}}}}};
    json mesh_policy = policy;
    mesh_policy["kind"] = "MeshPolicy";
    mesh_policy["metadata"]["name"] = "default";
    mesh_policy["metadata"].erase("namespace");
    // ambient.md §17: a Namespace, cluster-scoped.
    json space = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", metadata}};
    space["metadata"].erase("namespace");
    space["metadata"]["labels"]["istio.io/dataplane-mode"] = "ambient";
    return {review("CREATE", dr),   review("UPDATE", dr),     review("CREATE", pa),
            review("UPDATE", pa),   review("CREATE", policy), review("CREATE", mesh_policy),
            review("DELETE", pa),   review("CREATE", vs),     review("UPDATE", vs),
            review("UPDATE", space)};
}

} // namespace

SCENARIO("The direct reader reads the benchmark's review and the well-formed seeds") {
    const auto body = read_file(source_dir / "tests/bench/data/admission-review-update.json");
    REQUIRE(read_review_direct(body).has_value());
    CHECK(read_review(body).request.has_value());
    CHECK(check_direct_alike(body));
    for (const auto& seed : corpus()) {
        INFO(printable(seed));
        CHECK(check_direct_alike(seed));
    }
    // The reviews of the other readers' tests, whichever reader takes them.
    for (const auto& review : rich_reviews())
        CHECK(check_direct_alike(review.dump()));
}

SCENARIO("Every field of every kind, given any other type or value, reads alike directly") {
    // Values that stand for every JSON type and the edge cases decode distinguishes.
    const std::vector<json> replacements = {nullptr,
                                            true,
                                            0,
                                            -1,
                                            8080,
                                            70000,
                                            1.5,
                                            80.0,
                                            "",
                                            "x",
                                            "80",
                                            "STRICT",
                                            "ISTIO_MUTUAL",
                                            json::object(),
                                            json::array(),
                                            json::array({json::object()}),
                                            {{"mode", "DISABLE"}},
                                            {{"b", 1}, {"a", "2"}}};
    int direct_reads = 0;
    int bodies = 0;
    for (const json& review : rich_reviews()) {
        std::vector<json::json_pointer> all;
        pointers(review, json::json_pointer(), all);
        for (std::size_t p = 0; p < all.size(); ++p) {
            const auto& pointer = all[p];
            if (pointer.empty())
                continue;
            for (std::size_t r = 0; r < replacements.size(); ++r) {
                // Under the sanitizers each pointer gets every third value, a different third
                // for the next pointer, so every value still reaches every kind of field.
                if ((p + r) % sanitized_share != 0)
                    continue;
                const json& value = replacements[r];
                json changed = review;
                changed[pointer] = value;
                const std::string body = changed.dump();
                INFO(pointer.to_string() << " = " << value.dump());
                direct_reads += check_direct_alike(body) ? 1 : 0;
                ++bodies;
            }
        }
        // Keys out of order and duplicated, as the API server never sends them but a client may.
        std::string body = review.dump();
        const auto at = body.find("\"labels\":{");
        REQUIRE(at != std::string::npos);
        body.insert(at + 10, R"("zz":"1","app":"dup","managedFields":"m",)");
        INFO(body);
        direct_reads += check_direct_alike(body) ? 1 : 0;
        ++bodies;
    }
    // Most changes leave a review the direct reader takes; the others go to decide(json).
    CHECK(direct_reads > bodies / 2);
    CHECK(direct_reads < bodies);
}
