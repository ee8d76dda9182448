// Turns flows that carry a code into findings, aggregated over the client namespaces that send
// them.
#pragma once

#include "analysis/conflict/finding.hpp"
#include "analysis/conflict/flows.hpp"

#include <array>
#include <map>
#include <set>

namespace mtlsguard::conflict {

// The objects a flow's finding is reported on, with the other side in `related` (spec: reported on
// both a server-side object and a DestinationRule when both are involved).
struct Attribution {
    model::ObjectRef resource;
    std::vector<model::ObjectRef> related;
};
std::vector<Attribution> attribute(const Flow& flow);
// attribute(flow).size(), without copying the objects' names.
std::size_t attribution_count(const Flow& flow);

// A finding's severity for a flow: its code's, but an error that rests on a predicted ambient
// capture is a warning (ambient.md §10).
Severity severity_of(const Flow& flow) noexcept;

// The dataplane of a flow's endpoint as findings and the matrix name it.
std::string_view workload_dataplane(const model::Workload& workload) noexcept;

// The client namespaces (names, sorted) that send a flow.
std::vector<NsId> client_namespaces(const resolution::ConfigView& view, const FlowClients& who);

class FlowFindingCollector {
  public:
    // Keeps at most `max_per_severity` findings of each severity; flows beyond that are counted
    // (see omitted()) without expanding who sends them, which keeps admission fast. A finding
    // names at most `names_kept` client namespaces, the first by name, and counts the others
    // (FlowSummary::client_namespaces_omitted): a message shows only a few, and a mesh-wide
    // client list is hundreds of names.
    explicit FlowFindingCollector(const resolution::ConfigView& view,
                                  std::size_t max_per_severity = static_cast<std::size_t>(-1),
                                  std::size_t names_kept = static_cast<std::size_t>(-1))
        : view_(view), max_per_severity_(max_per_severity), names_kept_(names_kept) {}
    // Records the flow if it carries a code.
    void add(const Flow& flow, const FlowClients& who);
    // Records the flow as sent by exactly these client namespaces.
    void add_for(const Flow& flow, const std::vector<NsId>& namespaces);
    std::vector<Finding> take();
    std::size_t omitted() const noexcept { return omitted_; }
    // Codes of every recorded flow, omitted ones included.
    const std::set<Code>& codes() const noexcept { return codes_; }
    // Whether any recorded flow, omitted ones included, is an error (a predicted ambient
    // endpoint turns an error code into a warning).
    bool has_error() const noexcept { return error_; }

  private:
    using Key = std::tuple<Code, model::ObjectRef, std::vector<model::ObjectRef>, std::string,
                           std::uint16_t, std::uint16_t, std::optional<WorkloadRef>, std::string,
                           ClientKind, std::optional<model::ObjectRef>, std::string, std::string>;
    const std::pair<std::vector<NsId>, std::uint64_t>& members(const FlowClients& who);
    template <typename Namespaces> void record(const Flow& flow, const Namespaces& namespaces);
    // Counts `count` findings of the flow as omitted; their code and severity still count.
    void omit(const Flow& flow, Severity level, std::size_t count);

    const resolution::ConfigView& view_;
    // Who sends each finding's flows: a sorted union, and the last list merged into it (flows of
    // one client outcome come in runs, so most merges are skipped).
    struct Senders {
        std::vector<NsId> namespaces;
        std::uint64_t last_merged = 0; // id of the member list merged last; 0: none
    };
    std::map<Key, std::pair<Finding, Senders>> findings_;
    // The hosts of findings_: once a severity has all its findings, a flow to any other host can
    // only be counted as omitted, which needs no key (most flows of a mesh-wide change).
    std::set<std::string, std::less<>> hosts_;
    std::optional<std::uint32_t> cached_target_;
    // Member lists of the current host's outcomes (narrowed to routed namespaces), each with an id
    // never reused (0 = no id).
    std::map<std::tuple<const resolution::ClientOutcome*, ClientKind, const std::vector<NsId>*>,
             std::pair<std::vector<NsId>, std::uint64_t>>
        cache_;
    std::uint64_t next_list_id_ = 1;
    std::size_t max_per_severity_;
    std::size_t names_kept_;
    std::array<std::size_t, 3> kept_{};
    std::size_t omitted_ = 0;
    std::set<Code> codes_;
    bool error_ = false;
};

} // namespace mtlsguard::conflict
