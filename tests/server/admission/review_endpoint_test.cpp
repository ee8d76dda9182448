// Tests of handle_review: every body, however broken, gets a status and a JSON body, never a throw.
#include "analysis/model/snapshot.hpp"
#include "server/admission/review_endpoint.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

using mtlsguard::admission::AdmissionSettings;
using mtlsguard::admission::Enforcement;
using mtlsguard::model::Snapshot;
using mtlsguard::model::SnapshotBuilder;
using mtlsguard::server::handle_review;
using mtlsguard::server::ReviewReply;
using nlohmann::json;

namespace {

// default: an injected namespace with my-service (8080) behind a STRICT PeerAuthentication.
std::shared_ptr<const Snapshot> strict_mesh() {
    SnapshotBuilder builder;
    const json objects = json::parse(R"([
      {"apiVersion": "v1", "kind": "Namespace",
       "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}},
      {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-service", "namespace": "default"},
       "spec": {"selector": {"app": "my-service"}, "ports": [{"name": "http", "port": 8080}]}},
      {"apiVersion": "apps/v1", "kind": "Deployment",
       "metadata": {"name": "my-service", "namespace": "default"},
       "spec": {"selector": {"matchLabels": {"app": "my-service"}},
                "template": {"metadata": {"labels": {"app": "my-service"}},
                             "spec": {"containers": [{"name": "app", "image": "app",
                                                      "ports": [{"containerPort": 8080}]}]}}}},
      {"apiVersion": "apps/v1", "kind": "Deployment",
       "metadata": {"name": "sleep", "namespace": "default"},
       "spec": {"selector": {"matchLabels": {"app": "sleep"}},
                "template": {"metadata": {"labels": {"app": "sleep"}},
                             "spec": {"containers": [{"name": "sleep", "image": "curl"}]}}}},
      {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication",
       "metadata": {"name": "my-service-auth", "namespace": "default"},
       "spec": {"selector": {"matchLabels": {"app": "my-service"}}, "mtls": {"mode": "STRICT"}}}
    ])");
    for (const auto& object : objects) {
        const auto error = builder.add(object);
        REQUIRE_FALSE(error);
    }
    return builder.build();
}

json destination_rule(const std::string& tls_mode) {
    return {{"apiVersion", "networking.istio.io/v1beta1"},
            {"kind", "DestinationRule"},
            {"metadata", {{"name", "my-service-dr"}, {"namespace", "default"}}},
            {"spec", {{"host", "my-service"}, {"trafficPolicy", {{"tls", {{"mode", tls_mode}}}}}}}};
}

json review_of(const json& object, const std::string& api_version = "admission.k8s.io/v1") {
    return {
        {"apiVersion", api_version},
        {"kind", "AdmissionReview"},
        {"request",
         {{"uid", "705ab4f5-6393-11e8-b7cc-42010a800002"},
          {"kind",
           {{"group", "networking.istio.io"}, {"version", "v1beta1"}, {"kind", "DestinationRule"}}},
          {"namespace", "default"},
          {"name", object["metadata"]["name"]},
          {"operation", "CREATE"},
          {"object", object}}}};
}

ReviewReply review(const Snapshot& snapshot, const std::string& body) {
    return handle_review(snapshot, body, AdmissionSettings{});
}

json parsed_body(const ReviewReply& reply) {
    const json body = json::parse(reply.body, nullptr, false);
    REQUIRE_FALSE(body.is_discarded());
    return body;
}

void check_bad_request(const ReviewReply& reply, const std::string& reason) {
    CHECK(reply.status == 400);
    CHECK(reply.decision.http_status == 400);
    CHECK_FALSE(reply.decision.allowed);
    CHECK(reply.decision.error == reason);
    CHECK(parsed_body(reply) == json{{"error", reason}});
}

} // namespace

SCENARIO("A DestinationRule that agrees with the STRICT policy is allowed") {
    const auto snapshot = strict_mesh();
    const auto reply = review(*snapshot, review_of(destination_rule("ISTIO_MUTUAL")).dump());
    CHECK(reply.status == 200);
    CHECK(reply.decision.allowed);
    const json body = parsed_body(reply);
    CHECK(body["apiVersion"] == "admission.k8s.io/v1");
    CHECK(body["kind"] == "AdmissionReview");
    CHECK(body["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002");
    CHECK(body["response"]["allowed"] == true);
    CHECK_FALSE(body["response"].contains("status"));
}

SCENARIO("A DestinationRule sending plaintext to a STRICT port is denied with a 403 status") {
    const auto snapshot = strict_mesh();
    const auto reply = review(*snapshot, review_of(destination_rule("DISABLE")).dump());
    CHECK(reply.status == 200);
    CHECK_FALSE(reply.decision.allowed);
    CHECK(reply.decision.codes == std::vector<std::string>{"MTG101"});
    const json body = parsed_body(reply);
    CHECK(body["response"]["allowed"] == false);
    CHECK(body["response"]["status"]["code"] == 403);
    const std::string message = body["response"]["status"]["message"];
    CHECK_THAT(message, Catch::Contains("[MTG101]"));
    CHECK(message.find('\n') == std::string::npos);
}

SCENARIO("The same denial in warn mode is allowed with the finding as a warning") {
    const auto snapshot = strict_mesh();
    AdmissionSettings settings;
    settings.default_mode = Enforcement::Warn;
    const auto reply =
        handle_review(*snapshot, review_of(destination_rule("DISABLE")).dump(), settings);
    CHECK(reply.status == 200);
    CHECK(reply.decision.allowed);
    const json body = parsed_body(reply);
    REQUIRE(body["response"]["warnings"].is_array());
    REQUIRE_FALSE(body["response"]["warnings"].empty());
    CHECK_THAT(body["response"]["warnings"][0].get<std::string>(), Catch::Contains("MTG101"));
}

SCENARIO("A v1beta1 AdmissionReview is answered in kind") {
    const auto snapshot = strict_mesh();
    const auto reply = review(
        *snapshot, review_of(destination_rule("ISTIO_MUTUAL"), "admission.k8s.io/v1beta1").dump());
    CHECK(reply.status == 200);
    CHECK(parsed_body(reply)["apiVersion"] == "admission.k8s.io/v1beta1");
}

SCENARIO("A body that is not JSON is a 400") {
    const auto snapshot = strict_mesh();
    for (const std::string& body : std::vector<std::string>{
             "not json", "{\"apiVersion\": ", "{} {}", "<xml/>", "[1,]", "{\"a\": \"\xff\xfe\"}"}) {
        INFO("body " << body);
        check_bad_request(review(*snapshot, body), "the body is not valid JSON");
    }
}

SCENARIO("An empty body is a 400") {
    const auto snapshot = strict_mesh();
    check_bad_request(review(*snapshot, ""), "the body is not valid JSON");
    check_bad_request(review(*snapshot, "   \r\n"), "the body is not valid JSON");
}

SCENARIO("A body nested 10000 deep is a 400 without overflowing the stack") {
    const auto snapshot = strict_mesh();
    for (const auto& [open, close] :
         std::vector<std::pair<std::string, std::string>>{{"[", "]"}, {"{\"a\":", "}"}}) {
        std::string body;
        for (int i = 0; i < 10000; ++i)
            body += open;
        body += "0";
        for (int i = 0; i < 10000; ++i)
            body += close;
        check_bad_request(review(*snapshot, body), "the body is nested too deeply");
    }
}

SCENARIO("Deep nesting inside an otherwise valid review is a 400 as well") {
    const auto snapshot = strict_mesh();
    json review_json = review_of(destination_rule("ISTIO_MUTUAL"));
    std::string deep;
    for (int i = 0; i < 10000; ++i)
        deep += "[";
    for (int i = 0; i < 10000; ++i)
        deep += "]";
    std::string body = review_json.dump();
    const std::string marker = "\"host\":\"my-service\"";
    const auto at = body.find(marker);
    REQUIRE(at != std::string::npos);
    body.insert(at, "\"junk\":" + deep + ",");
    check_bad_request(review(*snapshot, body), "the body is nested too deeply");
}

SCENARIO("Nesting up to the limit is accepted") {
    const auto snapshot = strict_mesh();
    json object = destination_rule("ISTIO_MUTUAL");
    json deep = json::array();
    for (int i = 0; i < 100; ++i)
        deep = json::array({deep});
    object["metadata"]["annotations"] = json::object();
    object["spec"]["x-extra"] = deep;
    const auto reply = review(*snapshot, review_of(object).dump());
    CHECK(reply.status == 200);
    CHECK(reply.decision.allowed);
}

SCENARIO("A review without a uid or a request or the right kind is a 400 with the reason") {
    const auto snapshot = strict_mesh();
    const json good = review_of(destination_rule("ISTIO_MUTUAL"));

    json no_uid = good;
    no_uid["request"].erase("uid");
    check_bad_request(review(*snapshot, no_uid.dump()), "request.uid is missing");

    json empty_uid = good;
    empty_uid["request"]["uid"] = "";
    check_bad_request(review(*snapshot, empty_uid.dump()), "request.uid is missing");

    json no_request = good;
    no_request.erase("request");
    check_bad_request(review(*snapshot, no_request.dump()), "request is missing");

    json request_not_object = good;
    request_not_object["request"] = "yes";
    check_bad_request(review(*snapshot, request_not_object.dump()), "request is missing");

    json no_operation = good;
    no_operation["request"].erase("operation");
    check_bad_request(review(*snapshot, no_operation.dump()), "request.operation is missing");

    json wrong_kind = good;
    wrong_kind["kind"] = "Pod";
    check_bad_request(review(*snapshot, wrong_kind.dump()), "kind must be AdmissionReview");

    json wrong_version = good;
    wrong_version["apiVersion"] = "admission.k8s.io/v2";
    check_bad_request(review(*snapshot, wrong_version.dump()),
                      "apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1");

    check_bad_request(review(*snapshot, "[]"), "the body is not a JSON object");
    check_bad_request(review(*snapshot, "\"review\""), "the body is not a JSON object");
    check_bad_request(review(*snapshot, "null"), "the body is not a JSON object");
}

SCENARIO("A malformed object inside a valid review is denied naming the field") {
    const auto snapshot = strict_mesh();
    json object = destination_rule("ISTIO_MUTUAL");
    object["spec"]["trafficPolicy"]["tls"]["mode"] = "ISTIO_MUTUL";
    const auto reply = review(*snapshot, review_of(object).dump());
    CHECK(reply.status == 200);
    CHECK_FALSE(reply.decision.allowed);
    const json body = parsed_body(reply);
    CHECK(body["response"]["status"]["code"] == 400);
    CHECK_THAT(body["response"]["status"]["message"].get<std::string>(),
               Catch::Contains("spec.trafficPolicy.tls.mode") && Catch::Contains("ISTIO_MUTUL"));
}

SCENARIO("Wrong types anywhere in the review never throw and always give a JSON body") {
    const auto snapshot = strict_mesh();
    const json good = review_of(destination_rule("ISTIO_MUTUAL"));
    const std::vector<json> odd_values = {
        nullptr, 0, -1, 1e308, true, "", "x", json::array(), json::object(), json::array({1, 2})};
    int replies = 0;
    // Replace each field of the request and of the object, one at a time, with each odd value.
    for (const auto& path :
         {"/request/uid", "/request/kind", "/request/operation", "/request/namespace",
          "/request/object", "/request/object/metadata", "/request/object/metadata/name",
          "/request/object/spec", "/request/object/spec/host", "/request/object/spec/trafficPolicy",
          "/request/object/spec/trafficPolicy/tls", "/request/dryRun", "/request/oldObject"}) {
        for (const auto& value : odd_values) {
            json mutated = good;
            mutated[json::json_pointer(path)] = value;
            const auto reply = review(*snapshot, mutated.dump());
            INFO(path << " = " << value.dump() << " -> " << reply.status << " " << reply.body);
            CHECK((reply.status == 200 || reply.status == 400));
            CHECK_FALSE(json::parse(reply.body, nullptr, false).is_discarded());
            ++replies;
        }
    }
    CHECK(replies == 130);
}

SCENARIO("Random bytes as a body are a 400 and never a throw") {
    const auto snapshot = strict_mesh();
    std::mt19937 random(7);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int round = 0; round < 300; ++round) {
        std::string body(static_cast<std::size_t>(round * 13 % 4096), '\0');
        for (auto& c : body)
            c = static_cast<char>(byte(random));
        // A random body could start with whitespace and a digit: valid JSON, but not an object.
        const auto reply = review(*snapshot, body);
        INFO("round " << round);
        CHECK(reply.status == 400);
        CHECK_FALSE(reply.decision.allowed);
        CHECK_FALSE(json::parse(reply.body, nullptr, false).is_discarded());
    }
}

SCENARIO("Random bytes inside a string of a valid review never break the JSON answer") {
    const auto snapshot = strict_mesh();
    std::mt19937 random(11);
    std::uniform_int_distribution<int> byte(0x20, 0x7e);
    for (int round = 0; round < 50; ++round) {
        json object = destination_rule("DISABLE");
        std::string name(64, ' ');
        for (auto& c : name)
            c = static_cast<char>(byte(random));
        object["metadata"]["name"] = name;
        const auto reply = review(*snapshot, review_of(object).dump());
        INFO("name " << name);
        CHECK(reply.status == 200);
        const json body = parsed_body(reply);
        CHECK(body["response"]["allowed"] == false);
        for (const auto& w : body["response"].value("warnings", json::array())) {
            CHECK(w.get<std::string>().size() <= 256);
            CHECK(w.get<std::string>().find('\n') == std::string::npos);
        }
    }
}
