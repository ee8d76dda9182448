// Tests conflict/finding: the order findings are reported in.
#include "analysis/conflict/finding.hpp"

#include <algorithm>
#include <catch2/catch.hpp>

using namespace mtlsguard;
using conflict::Finding;

namespace {

// One route of VirtualService front/web to subset v2 that no rule of `rule`'s clients defines:
// findings alike in code, resource, host, port and subset.
Finding undefined_subset(std::vector<std::string> client_namespaces, const std::string& rule) {
    Finding f;
    f.code = conflict::Code::MTG107;
    f.severity = conflict::severity_of(f.code);
    f.resource = model::ObjectRef{"networking.istio.io/v1", "VirtualService", "front", "web"};
    f.related.push_back(model::ObjectRef{"networking.istio.io/v1", "DestinationRule", rule, "web"});
    conflict::FlowSummary flow;
    flow.client_namespaces = std::move(client_namespaces);
    flow.host = "web.shop.svc.cluster.local";
    flow.subset = "v2";
    f.flow = std::move(flow);
    f.detail.text = "spec.http[0].route[0].destination";
    return f;
}

std::vector<std::string> namespaces_in_order(std::vector<Finding> findings) {
    std::sort(findings.begin(), findings.end(), conflict::finding_less);
    std::vector<std::string> out;
    for (const auto& f : findings)
        out.push_back(f.flow->client_namespaces.front());
    return out;
}

} // namespace

TEST_CASE("Findings alike but for their clients and rules come in one order, whatever order they "
          "were found in",
          "[finding]") {
    const Finding opa = undefined_subset({"opa"}, "opa");
    const Finding pay = undefined_subset({"pay", "shop"}, "shop");
    const Finding edge = undefined_subset({"edge"}, "shop");
    const std::vector<std::string> expected{"opa", "edge", "pay"};
    CHECK(namespaces_in_order({opa, pay, edge}) == expected);
    CHECK(namespaces_in_order({pay, edge, opa}) == expected);
    CHECK(namespaces_in_order({edge, opa, pay}) == expected);
    CHECK_FALSE(conflict::finding_less(opa, opa));
}
