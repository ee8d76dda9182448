// Tests of server/kube/endpoint_slice: what an EndpointSlice is reduced to, and malformed ones.
#include "server/kube/endpoint_slice.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace mtlsguard;
using namespace mtlsguard::kube;
using nlohmann::json;

namespace {

json slice_with(json ports, json endpoints) {
    return {{"apiVersion", "discovery.k8s.io/v1"},
            {"kind", "EndpointSlice"},
            {"metadata",
             {{"name", "web-abcde"},
              {"namespace", "shop"},
              {"labels", {{"kubernetes.io/service-name", "web"}}}}},
            {"addressType", "IPv4"},
            {"ports", std::move(ports)},
            {"endpoints", std::move(endpoints)}};
}

json pod_endpoint(const std::string& name, const std::string& ns = "shop") {
    return {{"addresses", {"10.0.0.1"}},
            {"conditions", {{"ready", true}}},
            {"targetRef", {{"kind", "Pod"}, {"name", name}, {"namespace", ns}, {"uid", "u"}}}};
}

} // namespace

SCENARIO("An EndpointSlice keeps only its Service, its port numbers and its pods") {
    GIVEN("a slice as the endpoint controller writes it") {
        json object =
            slice_with({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}},
                        {{"name", "grpc"}, {"port", 9090}, {"protocol", "TCP"}}},
                       {pod_endpoint("web-2"), pod_endpoint("web-1"), pod_endpoint("web-1")});
        WHEN("it is decoded") {
            std::string error;
            auto slice = decode_endpoint_slice(object, error);
            THEN("the ports are named as the Service's, the pods sorted and each once") {
                REQUIRE(slice);
                CHECK(error.empty());
                CHECK(slice->namespace_name == "shop");
                CHECK(slice->service == "web");
                REQUIRE(slice->ports.size() == 2);
                CHECK(slice->ports[0].name == "http");
                CHECK(slice->ports[0].number == 8080);
                CHECK(slice->ports[1].name == "grpc");
                CHECK(slice->pods == std::vector<std::string>{"web-1", "web-2"});
            }
        }
    }
    GIVEN("what may be absent: port names, ports, endpoints, the service label") {
        std::string error;
        THEN("an unnamed port has the empty name, as the Service's single unnamed port") {
            auto slice =
                decode_endpoint_slice(slice_with({{{"port", 8080}}}, json::array()), error);
            REQUIRE(slice);
            REQUIRE(slice->ports.size() == 1);
            CHECK(slice->ports[0].name.empty());
            CHECK(slice->pods.empty());
        }
        THEN("null ports and endpoints (Go's empty lists) are empty") {
            auto slice = decode_endpoint_slice(slice_with(nullptr, nullptr), error);
            REQUIRE(slice);
            CHECK(slice->ports.empty());
        }
        THEN("a port without a number resolves nothing and is left out") {
            auto slice =
                decode_endpoint_slice(slice_with({{{"name", "http"}}}, json::array()), error);
            REQUIRE(slice);
            CHECK(slice->ports.empty());
        }
        THEN("a slice without the service label belongs to no Service") {
            // json::array: clang copies a braced single json where GCC makes a list of it.
            json object = slice_with({{{"port", 80}}}, json::array({pod_endpoint("web-1")}));
            object["metadata"].erase("labels");
            auto slice = decode_endpoint_slice(object, error);
            REQUIRE(slice);
            CHECK(slice->service.empty());
        }
    }
    GIVEN("endpoints that are not pods of the slice's namespace") {
        json node = pod_endpoint("node-1");
        node["targetRef"]["kind"] = "Node";
        json elsewhere = pod_endpoint("web-9", "other");
        json no_ref = {{"addresses", {"192.0.2.1"}}};
        json nameless = pod_endpoint("");
        json odd_ref = pod_endpoint("web-7");
        odd_ref["targetRef"]["name"] = 7;
        std::string error;
        auto slice =
            decode_endpoint_slice(slice_with({{{"port", 80}}}, {node, elsewhere, no_ref, nameless,
                                                                odd_ref, pod_endpoint("web-1")}),
                                  error);
        THEN("they are left out, and the slice still decodes") {
            REQUIRE(slice);
            CHECK(error.empty());
            CHECK(slice->pods == std::vector<std::string>{"web-1"});
        }
    }
}

SCENARIO("A malformed EndpointSlice is an error naming the field, never a crash") {
    auto error_of = [](const json& object) {
        std::string error;
        auto slice = decode_endpoint_slice(object, error);
        CHECK_FALSE(slice);
        return error;
    };
    GIVEN("fields of the wrong type or out of range") {
        THEN("each names where it is") {
            CHECK(error_of(slice_with("http", json::array())) == "ports: not a list");
            CHECK(error_of(slice_with(json::array({7}), json::array())) ==
                  "ports[0]: not an object");
            CHECK(error_of(slice_with({{{"port", 0}}}, json::array())) ==
                  "ports[0].port: not a port number");
            CHECK(error_of(slice_with({{{"port", 80}}, {{"port", 70000}}}, json::array())) ==
                  "ports[1].port: not a port number");
            CHECK(error_of(slice_with({{{"port", "80"}}}, json::array())) ==
                  "ports[0].port: not a port number");
            CHECK(error_of(slice_with({{{"name", 1}, {"port", 80}}}, json::array())) ==
                  "ports[0].name: not a string");
            CHECK(error_of(slice_with({{{"port", 80}}}, {"web-1"})) ==
                  "endpoints[0]: not an object");
            CHECK(error_of(slice_with({{{"port", 80}}}, 5)) == "endpoints: not a list");
        }
        THEN("a document that is no object at all is refused too") {
            CHECK(error_of(json::array()) == "not an object");
            CHECK(error_of(json{{"kind", "EndpointSlice"}}) == "metadata: missing");
            json label = slice_with(nullptr, nullptr);
            label["metadata"]["labels"]["kubernetes.io/service-name"] = 3;
            CHECK_THAT(error_of(label), Catch::Contains("service-name: not a string"));
        }
    }
}
