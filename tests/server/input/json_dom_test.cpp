// Tests of server/input/json_dom: list items decoded from simdjson's parse as from nlohmann::json.
#include "analysis/model/decode.hpp"
#include "analysis/model/decode_fields.hpp"
#include "server/input/json_dom.hpp"
#include "server/kube/endpoint_slice.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace mtlsguard;
using nlohmann::json;

namespace {

std::string render(const model::Labels& labels) {
    std::string out = "{";
    for (const auto& [k, v] : labels.entries())
        out += k + "=" + v + ",";
    return out + "}";
}

// Everything decode keeps of a pod, a Service or a Namespace, as text to compare.
std::string render(const model::DecodeOutcome& outcome) {
    std::ostringstream out;
    out << static_cast<int>(outcome.status) << " error=" << outcome.error;
    if (!outcome.object)
        return out.str();
    if (const auto* pod = std::get_if<model::PodLike>(&*outcome.object)) {
        out << " pod " << pod->namespace_name << " " << pod->workload_kind << "/"
            << pod->workload_name << " " << render(pod->labels)
            << " template=" << pod->from_template
            << " sidecar=" << (pod->sidecar ? (*pod->sidecar ? "yes" : "no") : "unset");
        for (const auto& port : pod->container_ports)
            out << " port " << port.name << ":" << port.number;
        const auto& i = pod->interception;
        auto annotation = [](const std::optional<std::string>& v) {
            return v ? "'" + *v + "'" : std::string("absent");
        };
        out << " status=" << pod->sidecar_status
            << " redirection=" << static_cast<int>(pod->redirection)
            << " bypass=" << pod->bypass_inbound_capture << " hostNetwork=" << pod->host_network
            << " tunnel=" << pod->tunnel_http << " ownInjection="
            << (pod->own_injection ? (*pod->own_injection ? "yes" : "no") : "unset")
            << " excludeIn=" << annotation(i.exclude_inbound_ports)
            << " includeIn=" << annotation(i.include_inbound_ports)
            << " excludeOut=" << annotation(i.exclude_outbound_ports)
            << " excludeOutIPs=" << annotation(i.exclude_outbound_ip_ranges)
            << " includeOutIPs=" << annotation(i.include_outbound_ip_ranges);
    } else if (const auto* svc = std::get_if<model::Service>(&*outcome.object)) {
        out << " service " << svc->ref.api_version << " " << svc->ref.kind << " "
            << svc->ref.namespace_name << "/" << svc->ref.name << " " << render(svc->labels)
            << " selector=" << (svc->selector ? render(*svc->selector) : "none")
            << " headless=" << svc->headless << " external=" << svc->external_name;
        for (const auto& port : svc->ports)
            out << " port " << port.name << ":" << port.port << "->"
                << (port.target_port_number ? std::to_string(*port.target_port_number)
                                            : port.target_port_name)
                << " tcp=" << port.tcp;
    } else if (const auto* ns = std::get_if<model::Namespace>(&*outcome.object)) {
        out << " namespace " << ns->name << " " << render(ns->labels);
    } else {
        out << " another kind";
    }
    return out.str();
}

std::string render(const std::optional<kube::EndpointSlice>& slice, const std::string& error) {
    if (!slice)
        return "error " + error;
    std::string out = slice->namespace_name + " service=" + slice->service;
    for (const auto& port : slice->ports)
        out += " port " + port.name + ":" + std::to_string(port.number);
    for (const auto& pod : slice->pods)
        out += " pod " + pod;
    return out;
}

struct Parsed {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    explicit Parsed(const std::string& text) {
        REQUIRE(parser.parse(text).get(root) == simdjson::SUCCESS);
    }
    input::DomNode node() const { return input::DomNode(root); }
};

// As the reflector reads a list item: straight from the parse with the list's apiVersion and
// kind, or as JSON stamped with them for decode_object.
void decodes_alike(const std::string& text, const std::string& kind) {
    INFO(text);
    Parsed parsed(text);
    const auto direct = model::decoding::decode_listed_kind(parsed.node(), "v1", kind);
    REQUIRE(direct);
    json object = json::parse(text);
    object["apiVersion"] = "v1";
    object["kind"] = kind;
    const auto reference = model::decode_object(object);
    CHECK(render(*direct) == render(reference));
}

void slices_decode_alike(const std::string& text) {
    INFO(text);
    Parsed parsed(text);
    std::string direct_error;
    const auto direct = kube::decode_parsed_endpoint_slice(parsed.node(), direct_error);
    std::string reference_error;
    const auto reference = kube::decode_endpoint_slice(json::parse(text), reference_error);
    CHECK(render(direct, direct_error) == render(reference, reference_error));
}

} // namespace

SCENARIO("Listed pods decode alike from simdjson's parse and from nlohmann::json") {
    const std::vector<std::string> pods = {
        // As a metadata-only list sends them: a Deployment's pod, a StatefulSet's, a bare pod.
        R"({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"web-7d9f-abcde","namespace":"shop","uid":"1","labels":{"app":"web","pod-template-hash":"7d9f","security.istio.io/tlsMode":"istio"},"annotations":{"sidecar.istio.io/status":"{}"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f","controller":true}],"managedFields":[{"manager":"kube-controller-manager"}]}})",
        R"({"metadata":{"name":"db-0","namespace":"data","ownerReferences":[{"kind":"Other","name":"x"},{"kind":"StatefulSet","name":"db","controller":true}],"labels":{"app":"db","controller-revision-hash":"db-5"}}})",
        R"({"metadata":{"name":"lonely"}})",
        // A CronJob's Job, keys out of order and a duplicate key (the last one wins).
        R"({"metadata":{"namespace":"batch","name":"report-28000000-xyz","labels":{"b":"2","a":"1","a":"3"},"ownerReferences":[{"kind":"Job","name":"report-28000000"}]}})",
        // Whole pods: container ports and the proxy container.
        R"({"metadata":{"name":"p","namespace":"n"},"spec":{"containers":[{"name":"app","ports":[{"name":"http","containerPort":8080},{"containerPort":9090}]},{"name":"istio-proxy"}],"initContainers":[{"name":"init","ports":[{"containerPort":15001}]}]}})",
        // Ambient and interception facts (ambient.md §10, §13).
        R"({"metadata":{"name":"a","namespace":"amb","labels":{"istio.io/dataplane-mode":"ambient","networking.istio.io/tunnel":"tcp, http"},"annotations":{"ambient.istio.io/redirection":"enabled","ambient.istio.io/bypass-inbound-capture":"true"}}})",
        R"({"metadata":{"name":"b","namespace":"amb","annotations":{"ambient.istio.io/redirection":"pending","traffic.sidecar.istio.io/excludeInboundPorts":"8080,9090","traffic.sidecar.istio.io/includeInboundPorts":"","traffic.sidecar.istio.io/excludeOutboundPorts":"5432","traffic.sidecar.istio.io/excludeOutboundIPRanges":"10.0.0.0/8","traffic.sidecar.istio.io/includeOutboundIPRanges":"*"}}})",
        R"({"metadata":{"name":"c","annotations":{"ambient.istio.io/redirection":"odd"}},"spec":{"hostNetwork":true,"containers":[]}})",
        R"({"metadata":{"name":"d"},"spec":{"hostNetwork":"true"}})",
        R"({"metadata":{"name":"d"},"spec":{"hostNetwork":false}})",
        // Malformed: each names the field.
        R"({"metadata":{"name":"p"},"spec":{"hostNetwork":1}})",
        R"({"metadata":{"namespace":"n"}})",
        R"({"metadata":{"name":"p","labels":{"a":{}}}})",
        R"({"metadata":{"name":"p","labels":{"inject":true,"n":5}}})",
        R"({"metadata":{"name":"p","ownerReferences":{}}})",
        R"({"metadata":{"name":"p"},"spec":{"containers":[{"ports":[{"containerPort":70000}]}]}})",
        R"({"metadata":{"name":"p"},"spec":{"containers":[{"ports":[{"containerPort":-1}]}]}})",
        R"({"metadata":{"name":"p"},"spec":{"containers":[{"ports":[{"containerPort":80.5}]}]}})",
        R"({"metadata":{"name":"p"},"spec":{"containers":[{"ports":[{"name":"x"}]}]}})",
        R"({"metadata":{"name":"p"},"spec":{"containers":"none"}})",
        R"({"metadata":"p"})",
    };
    for (const auto& text : pods)
        decodes_alike(text, "Pod");
}

SCENARIO(
    "Listed Services and Namespaces decode alike from simdjson's parse and from nlohmann::json") {
    const std::vector<std::string> services = {
        R"({"metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},"spec":{"selector":{"app":"web"},"clusterIP":"10.0.0.1","ports":[{"name":"http","port":80,"targetPort":"http"},{"name":"grpc","port":9090,"targetPort":9091,"protocol":"TCP"},{"port":53,"protocol":"UDP"}]}})",
        R"({"metadata":{"name":"db","namespace":"data"},"spec":{"clusterIP":"None","selector":{},"ports":[{"port":5432}]}})",
        R"({"metadata":{"name":"ext","namespace":"shop"},"spec":{"type":"ExternalName","externalName":"example.com"}})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"spec":{"ports":[{"port":80,"protocol":"HTTP"}]}})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"spec":{"ports":[{"name":"x"}]}})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"spec":{"ports":[{"port":80,"targetPort":0}]}})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"spec":{"ports":"80"}})",
    };
    for (const auto& text : services)
        decodes_alike(text, "Service");
    decodes_alike(R"({"metadata":{"name":"shop","labels":{"istio-injection":"enabled"}}})",
                  "Namespace");
    decodes_alike(R"({"metadata":{"labels":{}}})", "Namespace");
}

SCENARIO("Listed EndpointSlices decode alike from simdjson's parse and from nlohmann::json") {
    const std::vector<std::string> slices = {
        R"({"metadata":{"name":"web-1","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"ports":[{"name":"http","port":8080},{"name":"","port":9090},{"name":"none"}],"endpoints":[{"targetRef":{"kind":"Pod","name":"b","namespace":"shop"}},{"targetRef":{"kind":"Pod","name":"a"}},{"targetRef":{"kind":"Node","name":"n"}},{"targetRef":{"kind":"Pod","name":"c","namespace":"other"}},{"addresses":["10.0.0.9"]}]})",
        R"({"metadata":{"name":"web-2","namespace":"shop"},"ports":null,"endpoints":null})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"ports":[{"port":70000}]})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"ports":[{"port":-80}]})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"ports":[{"port":80.0}]})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"ports":[{"name":5,"port":80}]})",
        R"({"metadata":{"name":"bad","namespace":"shop"},"endpoints":[5]})",
        R"({"metadata":{"name":"bad","namespace":7}})",
        R"({"metadata":{"name":"bad","namespace":"shop","labels":{"kubernetes.io/service-name":1}}})",
        R"({"ports":[]})",
    };
    for (const auto& text : slices)
        slices_decode_alike(text);
}

SCENARIO("A list page with simdjson's padding as spare capacity is read in place, as a copy would "
         "be read") {
    std::string page = R"({"items":[)";
    for (int i = 0; i < 300; ++i)
        page += std::string(i ? "," : "") + R"({"metadata":{"name":"pod-)" + std::to_string(i) +
                R"(","labels":{"app":"web"}}})";
    page += "]}";
    const std::string copy = page;
    input::with_parse_padding(page);
    CHECK(page.capacity() - page.size() >= simdjson::SIMDJSON_PADDING);
    CHECK(page == copy);

    simdjson::dom::parser reused;
    const auto in_place = input::parse_dom_in_place(reused, page, 64);
    REQUIRE(in_place.root);
    const std::string read_in_place = simdjson::to_string(*in_place.root);
    simdjson::dom::parser other;
    const auto copied = input::parse_dom(other, copy, 64);
    REQUIRE(copied.root);
    CHECK(read_in_place == simdjson::to_string(*copied.root));
    CHECK(json::parse(read_in_place) == json::parse(copy));

    // Without spare capacity the text is copied first; a longer page reuses the same parser.
    std::string tight = copy + std::string(100, ' ');
    tight.shrink_to_fit();
    const auto longer = input::parse_dom_in_place(reused, tight, 64);
    REQUIRE(longer.root);
    CHECK(json::parse(simdjson::to_string(*longer.root)) == json::parse(copy));
    CHECK_FALSE(input::parse_dom_in_place(reused, std::string("{\"items\":["), 64).root);
}
