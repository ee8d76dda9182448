// Decoded cluster objects per kind, and the immutable snapshots built and published from them.
#pragma once

#include "analysis/model/snapshot.hpp"
#include "server/kube/discovery.hpp"
#include "server/kube/endpoint_slice.hpp"

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mtlsguard::kube {

// One decoded object with what identifies it in the cluster.
struct StoredObject {
    std::string key; // "namespace/name", or "name" for cluster-scoped objects
    std::string uid; // metadata.uid: a delete of an older incarnation must not remove a newer one
    model::DecodedObject object;
    // EndpointSlices only, whose `object` is unused. A pointer: a list of 50,000 pods waits in
    // StoredObjects, and should not carry an empty slice each.
    std::unique_ptr<EndpointSlice> slice{};
};

// "namespace/name" (or "name") and metadata.uid of an API object; nullopt without a name.
std::optional<std::pair<std::string, std::string>> object_identity(const nlohmann::json& object);
// The same on any model::decoding::Node.
template <class Node>
std::optional<std::pair<std::string, std::string>> object_identity_of(const Node& object) {
    if (!object.is_object())
        return std::nullopt;
    const auto metadata = object.find("metadata");
    if (!metadata || !metadata->is_object())
        return std::nullopt;
    auto text = [&](std::string_view key) {
        const auto value = metadata->find(key);
        return value && value->is_string() ? std::string(value->string()) : std::string();
    };
    const std::string name = text("name");
    if (name.empty())
        return std::nullopt;
    const std::string ns = text("namespace");
    return std::make_pair(ns.empty() ? name : ns + "/" + name, text("uid"));
}

// Everything a snapshot is built from, sharing the stored objects instead of copying them. Pods
// come as distinct shapes: to the engine, the pods of one controller are usually identical. Each
// kind comes namespace by namespace (in name order, as the engine numbers namespaces), so that a
// build from all of them and an update of a few namespaces number workloads and services alike.
struct SnapshotInputs {
    // Every object of every kind but pods, and every pod shape: only when `all_changed`.
    std::vector<std::shared_ptr<const model::DecodedObject>> objects;
    std::vector<std::pair<std::shared_ptr<const model::PodLike>, std::uint32_t>> pod_shapes;
    std::size_t pods = 0;
    // What changed since the inputs of the previous build (ObjectStore::collect()): everything,
    // or only the objects of these namespaces.
    bool all_changed = true;
    std::vector<std::string> changed_namespaces;
    // Then the objects and pod shapes of just those namespaces, in the same order. The others
    // are not copied: at 150,000 pods, listing every object for each pod event took ~5 ms.
    std::vector<std::shared_ptr<const model::DecodedObject>> changed_objects;
    std::vector<std::pair<std::shared_ptr<const model::PodLike>, std::uint32_t>> changed_pod_shapes;
};

// Builds the engine's snapshot from decoded objects; nothing is decoded again. With
// `version_from_objects`, v1alpha1 Policies or MeshPolicies switch it to the Istio 1.5 rules, as
// manifests do when no version is given.
std::shared_ptr<const model::Snapshot> build_snapshot(const SnapshotInputs& inputs,
                                                      const model::Settings& settings,
                                                      bool version_from_objects = false);

// The snapshot that follows `previous`, built from `inputs`: when they name the namespaces that
// changed since `previous` was built, only those are built again (model::SnapshotBuilder::
// build_update()); when they hold everything, everything is. Null when they hold only the changes
// and those reach beyond their namespaces (model::SnapshotBuilder::build_update()), or there is no
// `previous` to follow: the caller collects everything and builds again. Sets `*incremental` to
// whether only the changed namespaces were built.
std::shared_ptr<const model::Snapshot> update_snapshot(const model::Snapshot* previous,
                                                       const SnapshotInputs& inputs,
                                                       const model::Settings& settings,
                                                       bool version_from_objects = false,
                                                       bool* incremental = nullptr);

// The pods of a list as they arrive, each distinct pod (by the engine's fingerprint) held once and
// shared: a list of 150,000 pods held as StoredObjects took 198 MB before the store saw them.
class PodList {
  public:
    void add(std::string key, std::string uid, model::PodLike pod);
    std::size_t size() const noexcept { return items_.size(); }

  private:
    friend class ObjectStore;
    using Shapes = std::unordered_map<std::string, std::shared_ptr<const model::PodLike>>;
    struct Item {
        std::string key;
        std::string uid;
        const Shapes::value_type* shape; // node pointers survive rehashing
    };
    Shapes shapes_; // by fingerprint
    std::vector<Item> items_;
};

// What a change did to the inputs of the next snapshot.
enum class StoreChange : std::uint8_t {
    None,       // nothing stored changed
    PodCount,   // only how many pods have an existing shape: no verdict can change
    Structural, // anything else
};

// The objects of every watched kind. Not thread-safe: it lives on the watcher's strand.
// EndpointSlices are no engine objects: each pod they list gets the numbers its Services' named
// targetPorts resolved to as container ports (unless it has a port of that name), as if it had
// carried them; metadata-only pods carry none.
class ObjectStore {
  public:
    // A complete list: these objects (and, for pods, `listed`) are now all there is of `kind`.
    void replace(ResourceKind kind, std::vector<StoredObject> objects, PodList listed = {});
    // ADDED or MODIFIED.
    StoreChange upsert(ResourceKind kind, StoredObject object);
    // DELETED. Ignored when the stored object has another uid (it is a newer incarnation).
    StoreChange erase(ResourceKind kind, const std::string& key, const std::string& uid);
    // The kind is no longer served (its CRD was deleted).
    void clear(ResourceKind kind);

    std::size_t size(ResourceKind kind) const noexcept;
    std::size_t pod_shapes() const noexcept { return shapes_.size(); }
    // The stored object, or null. Pods are looked up as their shape.
    const model::DecodedObject* find(ResourceKind kind, const std::string& key) const;
    const model::PodLike* find_pod(const std::string& key) const;

    // Everything (`all_changed`).
    SnapshotInputs inputs() const;
    // What changed since the last collect(): everything (inputs()) the first time, after
    // replace() or clear() or a change of cluster-wide objects, and when `everything` is asked
    // for; otherwise the changed namespaces with their objects and pod shapes only.
    SnapshotInputs collect(bool everything = false);

  private:
    struct Entry {
        std::string uid;
        std::shared_ptr<const model::DecodedObject> object;
    };
    struct PodShape {
        std::shared_ptr<const model::PodLike> pod;
        std::uint32_t pods = 0;
    };
    // Keys ("namespace/name") in namespace order, then by name: inputs() come namespace by
    // namespace. A plain string order would not do: "a-b/x" sorts before "a/y".
    struct NamespaceMajor {
        bool operator()(const std::string& a, const std::string& b) const noexcept;
    };
    // A fingerprint starts with the namespace and a NUL: string order is namespace order.
    using ShapeMap = std::map<std::string, PodShape>;
    struct PodEntry {
        std::string uid;
        ShapeMap::value_type* shape = nullptr; // node pointers survive rehashing
        // How many of the shape's container ports, at its end, came from EndpointSlices.
        std::uint16_t resolved_ports = 0;
    };
    struct SliceEntry {
        std::string uid;
        EndpointSlice slice;
    };
    using SliceMap = std::map<std::string, SliceEntry>;
    using SliceRefs = std::vector<const SliceMap::value_type*>;

    StoreChange upsert_pod(const std::string& key, std::string uid, model::PodLike pod);
    // Stores a pod as `shape` (its fingerprint `print`) when no EndpointSlice adds ports to it;
    // else as upsert_pod() does.
    StoreChange upsert_pod_shape(const std::string& key, std::string uid, const std::string& print,
                                 const std::shared_ptr<const model::PodLike>& shape);
    // The pod `key` as the shape `print` (created from `make_pod()` when new).
    template <class MakePod>
    StoreChange place_pod(const std::string& key, std::string uid, std::string print,
                          std::uint16_t resolved, MakePod&& make_pod);
    StoreChange upsert_slice(const std::string& key, std::string uid, EndpointSlice slice);
    StoreChange erase_slice(const std::string& key, const std::string& uid);
    // Indexes a stored slice by its Service and its pods, or takes it out; adds its pods' keys.
    void link_slice(const SliceMap::value_type* slice, std::vector<std::string>& pods);
    void unlink_slice(const SliceMap::value_type* slice, std::vector<std::string>& pods);
    // The ports the slices listing this pod resolve its Services' named targetPorts to.
    std::vector<model::NamedPort> resolved_ports(const std::string& pod_key) const;
    // Shapes these pods again, after their slices or their Services changed.
    StoreChange reshape_pods(std::vector<std::string> pods);
    StoreChange reshape_pods_of_service(const std::string& service_key);
    // Returns whether the shape went away with its last pod.
    bool release_shape(ShapeMap::value_type* shape);

    // Notes what the next collect() reports.
    void changed(ResourceKind kind, const model::DecodedObject& object);
    void changed(std::string_view ns);

    std::array<std::map<std::string, Entry, NamespaceMajor>, all_resource_kinds.size()> objects_;
    std::unordered_map<std::string, PodEntry> pods_;
    ShapeMap shapes_;
    SliceMap slices_;                                           // "namespace/name"
    std::unordered_map<std::string, SliceRefs> service_slices_; // "namespace/service"
    std::unordered_map<std::string, SliceRefs> pod_slices_;     // "namespace/pod"
    bool all_changed_ = true;
    std::set<std::string, std::less<>> changed_namespaces_;
};

// Rebuilds and publishes snapshots off the I/O threads. changed() and publish_now() run on the
// watcher's strand; the build runs on a thread of its own, so that a rebuild of a large cluster
// never holds up an io_context thread (the admission path may share it).
class SnapshotPublisher : public std::enable_shared_from_this<SnapshotPublisher> {
  public:
    // Called on the strand; `everything`: the last build could not follow from the changes.
    using Collect = std::function<SnapshotInputs(bool everything)>;
    using Publish = std::function<void(std::shared_ptr<const model::Snapshot>)>;

    // `coalesce`: the least time between the starts of two builds, so that a stream of changes
    // makes at most one snapshot per window. `count_refresh`: how long a change of pod counts
    // alone may wait for its snapshot. `settle`: how long a change that follows a quiet window
    // waits for its snapshot (changes arriving meanwhile join it).
    SnapshotPublisher(boost::asio::any_io_executor strand, model::Settings settings,
                      std::chrono::milliseconds coalesce, std::chrono::milliseconds count_refresh,
                      Collect collect, Publish publish, bool version_from_objects = false,
                      std::chrono::milliseconds settle = std::chrono::milliseconds(5));
    ~SnapshotPublisher();
    SnapshotPublisher(const SnapshotPublisher&) = delete;
    SnapshotPublisher& operator=(const SnapshotPublisher&) = delete;

    // Starts the build thread.
    void start();
    // On the strand: the objects changed. A snapshot follows `settle` later, or `coalesce` after
    // the last build started if that is later; changes arriving meanwhile, or during a build,
    // fold into the same (or the next single) rebuild.
    void changed();
    // On the strand: only pod counts changed (pods came or went under shapes that remain). The
    // snapshot's verdicts are the same; its counts follow within `count_refresh`, or with the
    // next other change.
    void counts_changed();
    // On the strand: build at once (the initial sync should not wait for the coalescing delay).
    void publish_now();
    // Any thread: no publish() starts after this returns, and one in progress has finished
    // (called from inside publish(), it returns at once and that publish() is the last).
    void stop();

    struct Stats {
        std::size_t builds = 0;
        std::size_t incremental_builds = 0; // of `builds`: only the changed namespaces built
        std::size_t failed_builds = 0;
        std::chrono::microseconds last_build{0}; // copying the inputs into the engine and build()
    };
    Stats stats() const noexcept;

  private:
    void schedule(std::chrono::milliseconds delay);
    // When a structural change may be built: `settle` from now, or `coalesce` after the last
    // build started.
    std::chrono::milliseconds structural_delay() const;
    void hand_over();
    void build_loop();
    // On the strand. `outcome`: what the build thread made of the last inputs.
    enum class BuildOutcome : std::uint8_t { Published, NeedsEverything, Failed };
    void build_finished(BuildOutcome outcome);

    boost::asio::any_io_executor strand_;
    model::Settings settings_;
    bool version_from_objects_ = false;
    std::chrono::milliseconds coalesce_;
    std::chrono::milliseconds settle_;
    std::optional<std::chrono::steady_clock::time_point> last_start_; // of a build, on the strand
    std::chrono::milliseconds count_refresh_;
    Collect collect_;
    Publish publish_;
    boost::asio::steady_timer timer_;
    // Strand state.
    bool timer_armed_ = false;
    std::chrono::steady_clock::time_point timer_due_{};
    std::uint64_t timer_generation_ = 0; // a re-armed timer's old wait is ignored
    bool in_flight_ = false;
    bool dirty_ = false;             // anything changed since the inputs of the last build
    bool structural_dirty_ = false;  // more than pod counts changed
    bool collect_everything_ = true; // the next build cannot follow the last one's snapshot
    // Shared with the build thread.
    std::mutex job_mutex_;
    std::condition_variable job_ready_;
    std::optional<SnapshotInputs> job_;
    bool quit_ = false;
    std::mutex publish_mutex_;
    bool stopped_ = false;
    std::thread thread_;
    std::shared_ptr<const model::Snapshot> previous_; // build thread: what the next one follows
    std::atomic<std::size_t> builds_{0};
    std::atomic<std::size_t> incremental_builds_{0};
    std::atomic<std::size_t> failed_builds_{0};
    std::atomic<std::int64_t> last_build_us_{0};
};

} // namespace mtlsguard::kube
