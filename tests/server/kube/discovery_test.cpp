// Tests of server/kube/discovery: discovery documents, version choice, targets, a live run.
#include "server/kube/discovery.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <nlohmann/json.hpp>

using namespace mtlsguard::kube;
using namespace mtlsguard::kube::testing;
using nlohmann::json;
namespace net = boost::asio;

namespace {

const std::vector<std::string> all_verbs = {"create", "delete", "get",  "list",
                                            "patch",  "update", "watch"};

GroupResources served(std::initializer_list<std::pair<std::string, std::vector<std::string>>> v) {
    GroupResources out;
    for (const auto& [version, names] : v)
        for (const auto& name : names)
            out[version].push_back(ApiResource{name, true, "", all_verbs});
    return out;
}

std::pair<std::optional<DiscoveryResult>, std::string> discover(IoThread& thread,
                                                                const ClusterConfig& config) {
    auto strand = net::make_strand(thread.io);
    auto client = std::make_shared<ApiClient>(strand, config);
    std::promise<std::pair<std::optional<DiscoveryResult>, std::string>> promise;
    auto future = promise.get_future();
    auto discovery = std::make_shared<Discovery>(client, std::chrono::seconds(5));
    net::post(strand, [&] {
        discovery->run([&promise](std::optional<DiscoveryResult> r, std::string error) {
            promise.set_value({std::move(r), std::move(error)});
        });
    });
    REQUIRE(future.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    return future.get();
}

} // namespace

TEST_CASE("APIGroupList and APIResourceList are read as the API server writes them") {
    const json groups = json::parse(R"json({"kind":"APIGroupList","apiVersion":"v1","groups":[
        {"name":"networking.istio.io","versions":[{"groupVersion":"networking.istio.io/v1","version":"v1"},
          {"groupVersion":"networking.istio.io/v1beta1","version":"v1beta1"}],
         "preferredVersion":{"groupVersion":"networking.istio.io/v1","version":"v1"}},
        {"name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}]}]})json");
    auto parsed = parse_api_group_list(groups);
    CHECK(parsed["networking.istio.io"] == std::vector<std::string>{"v1", "v1beta1"});
    CHECK(parsed["apps"] == std::vector<std::string>{"v1"});

    const json resources =
        json::parse(R"json({"kind":"APIResourceList","groupVersion":"v1","resources":[
        {"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list","watch"]},
        {"name":"pods/status","singularName":"","namespaced":true,"kind":"Pod","verbs":["get","patch"]},
        {"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["get","list","watch"]}]})json");
    auto list = parse_api_resource_list(resources);
    REQUIRE(list.size() == 3);
    CHECK(list[0].name == "pods");
    CHECK(list[0].namespaced);
    CHECK(list[0].can_list_and_watch());
    CHECK_FALSE(list[1].can_list_and_watch());
    CHECK_FALSE(list[2].namespaced);

    CHECK(parse_api_resource_list(json::parse(R"json({"resources":null})json")).empty());
    CHECK_THROWS(parse_api_resource_list(json::parse(R"json({"resources":[{"verbs":[]}]})json")));
    CHECK_THROWS(parse_api_group_list(json::parse(R"json({"groups":{}})json")));
    CHECK_THROWS(parse_api_group_list(json::array()));
}

TEST_CASE("The newest version serving a kind with list and watch is chosen") {
    const KindSpec& pa = spec_of(ResourceKind::PeerAuthentications);
    const KindSpec& dr = spec_of(ResourceKind::DestinationRules);
    CHECK(choose_version(pa, served({{"v1", {"peerauthentications"}},
                                     {"v1beta1", {"peerauthentications"}}})) == "v1");
    CHECK(choose_version(pa, served({{"v1beta1", {"peerauthentications"}}})) == "v1beta1");
    CHECK(choose_version(dr, served({{"v1alpha3", {"destinationrules"}}})) == "v1alpha3");
    // Istio 1.22 serves DestinationRule in v1; an older CRD may serve other kinds in v1 only.
    CHECK(choose_version(dr, served({{"v1", {"sidecars"}}, {"v1beta1", {"destinationrules"}}})) ==
          "v1beta1");
    CHECK_FALSE(choose_version(pa, served({{"v1alpha1", {"peerauthentications"}}})).has_value());
    CHECK_FALSE(choose_version(pa, {}).has_value());

    GroupResources no_watch;
    no_watch["v1"].push_back(ApiResource{"peerauthentications", true, "", {"get", "list"}});
    no_watch["v1beta1"].push_back(ApiResource{"peerauthentications", true, "", all_verbs});
    CHECK(choose_version(pa, no_watch) == "v1beta1");
    GroupResources subresource_only;
    subresource_only["v1"].push_back(
        ApiResource{"peerauthentications/status", true, "", all_verbs});
    CHECK_FALSE(choose_version(pa, subresource_only).has_value());
}

TEST_CASE("CRD names map to the kinds they serve") {
    CHECK(kind_of_crd("peerauthentications.security.istio.io") ==
          ResourceKind::PeerAuthentications);
    CHECK(kind_of_crd("destinationrules.networking.istio.io") == ResourceKind::DestinationRules);
    CHECK(kind_of_crd("serviceentries.networking.istio.io") == ResourceKind::ServiceEntries);
    CHECK(kind_of_crd("policies.authentication.istio.io") == ResourceKind::Policies);
    CHECK(kind_of_crd("meshpolicies.authentication.istio.io") == ResourceKind::MeshPolicies);
    CHECK(kind_of_crd("virtualservices.networking.istio.io") == ResourceKind::VirtualServices);
    CHECK(kind_of_crd("sidecars.networking.istio.io") == ResourceKind::Sidecars);
    CHECK_FALSE(kind_of_crd("gateways.networking.istio.io").has_value());
    CHECK_FALSE(kind_of_crd("peerauthentications.security.istio.io.evil").has_value());
    CHECK_FALSE(kind_of_crd("pods").has_value());
}

TEST_CASE("Reflector targets: paths, metadata-only pods, the istio ConfigMap by field selector") {
    ResourceTarget pods = make_target(ResourceKind::Pods, "v1", "istio-system");
    CHECK(pods.path == "/api/v1/pods");
    CHECK(pods.metadata_only);
    CHECK(pods.api_version == "v1");
    CHECK(pods.kind == "Pod");

    ResourceTarget mesh = make_target(ResourceKind::IstioConfigMap, "v1", "istio-system");
    CHECK(mesh.path == "/api/v1/namespaces/istio-system/configmaps");
    CHECK(mesh.field_selector == "metadata.name=istio");

    ResourceTarget pa = make_target(ResourceKind::PeerAuthentications, "v1beta1", "istio-system");
    CHECK(pa.path == "/apis/security.istio.io/v1beta1/peerauthentications");
    CHECK(pa.api_version == "security.istio.io/v1beta1");
    CHECK_FALSE(pa.metadata_only);

    CHECK(make_target(ResourceKind::MeshPolicies, "v1alpha1", "x").path ==
          "/apis/authentication.istio.io/v1alpha1/meshpolicies");
    CHECK(make_target(ResourceKind::Namespaces, "v1", "x").path == "/api/v1/namespaces");
    // Whole objects: a slice's ports and endpoints are not metadata.
    ResourceTarget slices = make_target(ResourceKind::EndpointSlices, "v1", "x");
    CHECK(slices.path == "/apis/discovery.k8s.io/v1/endpointslices");
    CHECK(slices.api_version == "discovery.k8s.io/v1");
    CHECK(slices.kind == "EndpointSlice");
    CHECK_FALSE(slices.metadata_only);
    CHECK_THROWS_AS(make_target(ResourceKind::IstioConfigMap, "v1", "../secrets"),
                    std::invalid_argument);
    // Whole CRDs: their conversion webhooks are in the spec (§16).
    CHECK_FALSE(crd_target().metadata_only);
    CHECK(crd_target().path == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions");

    ResourceTarget cni = make_target(ResourceKind::CniConfigMap, "v1", "istio-system");
    CHECK(cni.path == "/api/v1/namespaces/istio-system/configmaps");
    CHECK(cni.field_selector == "metadata.name=istio-cni-config");
    CHECK(cni.name != mesh.name); // logs and the stale warning tell them apart
    CHECK_THROWS_AS(make_target(ResourceKind::CniConfigMap, "v1", "a/b"), std::invalid_argument);

    ResourceTarget vs = make_target(ResourceKind::VirtualServices, "v1alpha3", "istio-system");
    CHECK(vs.path == "/apis/networking.istio.io/v1alpha3/virtualservices");
    CHECK(vs.kind == "VirtualService");
    CHECK(make_target(ResourceKind::Sidecars, "v1", "x").path ==
          "/apis/networking.istio.io/v1/sidecars");
    CHECK(spec_of(ResourceKind::Sidecars).custom);
    CHECK(spec_of(ResourceKind::VirtualServices).custom);
}

TEST_CASE("Discovery against an API server with Istio picks v1 for every Istio kind") {
    IoThread thread;
    FakeCluster cluster;
    for (const auto& resource : istio_resources())
        cluster.server.add_resource(resource);
    auto [result, error] = discover(thread, cluster.config());
    REQUIRE(result);
    CHECK(error.empty());
    CHECK(result->crd_api);
    CHECK(result->versions.at(ResourceKind::PeerAuthentications) == "v1");
    CHECK(result->versions.at(ResourceKind::DestinationRules) == "v1");
    CHECK(result->versions.at(ResourceKind::ServiceEntries) == "v1");
    CHECK(result->versions.at(ResourceKind::VirtualServices) == "v1");
    CHECK(result->versions.at(ResourceKind::Sidecars) == "v1");
    CHECK(result->versions.at(ResourceKind::Pods) == "v1");
    CHECK(result->versions.at(ResourceKind::CniConfigMap) == "v1");
    // CRDs have no reflector of their own: the CRD watch reads their conversion webhooks.
    CHECK_FALSE(result->versions.count(ResourceKind::CrdConversionWebhooks));
    for (const auto& r : cluster.server.requests())
        CHECK(r.path != "/apis/apiextensions.k8s.io/v1");
    CHECK_FALSE(result->versions.count(ResourceKind::Policies));
    CHECK_FALSE(result->versions.count(ResourceKind::MeshPolicies));
}

TEST_CASE("Discovery against an older Istio picks what it serves; without Istio, none") {
    IoThread thread;
    FakeCluster cluster;
    cluster.server.add_resource(
        {"security.istio.io", {"v1beta1"}, "peerauthentications", "PeerAuthentication", true});
    cluster.server.add_resource(
        {"networking.istio.io", {"v1alpha3"}, "destinationrules", "DestinationRule", true});
    cluster.server.add_resource(
        {"authentication.istio.io", {"v1alpha1"}, "meshpolicies", "MeshPolicy", false});
    auto [result, error] = discover(thread, cluster.config());
    REQUIRE(result);
    CHECK(result->versions.at(ResourceKind::PeerAuthentications) == "v1beta1");
    CHECK(result->versions.at(ResourceKind::DestinationRules) == "v1alpha3");
    CHECK(result->versions.at(ResourceKind::MeshPolicies) == "v1alpha1");
    CHECK_FALSE(result->versions.count(ResourceKind::ServiceEntries));
    CHECK_FALSE(result->versions.count(ResourceKind::VirtualServices));

    FakeCluster bare;
    auto [plain, plain_error] = discover(thread, bare.config());
    REQUIRE(plain);
    // namespaces, services, pods, the two configmaps, endpointslices
    CHECK(plain->versions.size() == 6);
    CHECK(plain->versions.at(ResourceKind::EndpointSlices) == "v1");
}

SCENARIO("EndpointSlices are read when served, and their absence fails nothing") {
    IoThread thread;
    GIVEN("an API server that serves no discovery.k8s.io group") {
        FakeCluster cluster;
        cluster.server.remove_resource("discovery.k8s.io", "endpointslices");
        WHEN("discovery runs") {
            auto [result, error] = discover(thread, cluster.config());
            THEN("it succeeds without them: named ports of live pods stay unknown, as before") {
                REQUIRE(result);
                CHECK(error.empty());
                CHECK_FALSE(result->versions.count(ResourceKind::EndpointSlices));
                CHECK(result->versions.at(ResourceKind::Pods) == "v1");
            }
        }
    }
}

TEST_CASE("Discovery fails with the reason when the API server refuses") {
    IoThread thread;
    FakeCluster cluster;
    ClusterConfig config = cluster.config();
    config.token = "wrong";
    auto [result, error] = discover(thread, config);
    CHECK_FALSE(result);
    CHECK_THAT(error, Catch::Contains("discovery /api/v1: HTTP 401"));

    cluster.server.fail_next("/apis", 503, 1);
    auto [again, again_error] = discover(thread, cluster.config());
    CHECK_FALSE(again);
    CHECK_THAT(again_error, Catch::Contains("HTTP 503"));
}

TEST_CASE("§16: webhook configurations and APIServices are read when served, in v1 before v1beta1, "
          "as cluster-scoped collections") {
    IoThread thread;
    FakeCluster cluster;
    cluster.server.add_resource({"admissionregistration.k8s.io",
                                 {"v1", "v1beta1"},
                                 "validatingwebhookconfigurations",
                                 "ValidatingWebhookConfiguration",
                                 false});
    cluster.server.add_resource({"admissionregistration.k8s.io",
                                 {"v1beta1"},
                                 "mutatingwebhookconfigurations",
                                 "MutatingWebhookConfiguration",
                                 false});
    cluster.server.add_resource(
        {"apiregistration.k8s.io", {"v1"}, "apiservices", "APIService", false});
    auto [result, error] = discover(thread, cluster.config());
    REQUIRE(result);
    CHECK(result->versions.at(ResourceKind::ValidatingWebhookConfigurations) == "v1");
    CHECK(result->versions.at(ResourceKind::MutatingWebhookConfigurations) == "v1beta1");
    CHECK(result->versions.at(ResourceKind::ApiServices) == "v1");
    const auto target = make_target(ResourceKind::ApiServices, "v1", "istio-system");
    CHECK(target.path == "/apis/apiregistration.k8s.io/v1/apiservices");
    CHECK(target.api_version == "apiregistration.k8s.io/v1");
    CHECK(target.kind == "APIService");
    CHECK_FALSE(spec_of(ResourceKind::ValidatingWebhookConfigurations).namespaced);
    CHECK_FALSE(spec_of(ResourceKind::ValidatingWebhookConfigurations).custom);
}
