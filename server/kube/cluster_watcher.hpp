// The live cluster snapshot for `serve`: discovery, one reflector per resource, CRD tracking.
#pragma once

#include "analysis/model/snapshot.hpp"
#include "server/kube/config.hpp"
#include "server/kube/reflector.hpp"

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
} // namespace spdlog

namespace mtlsguard::kube {

struct WatcherOptions {
    std::string istio_namespace = "istio-system"; // where `istio`, `istio-cni-config` are read
    // At most one snapshot per window: events arriving within it fold into the next one. An event
    // after a quiet window is built `settle` later, not a whole window later.
    std::chrono::milliseconds coalesce{200};
    std::chrono::milliseconds settle{5};
    // Pods coming and going under workloads that stay (rollouts, restarts, scaling) change no
    // verdict, only pod counts: their snapshot may wait this long, or for the next other change.
    std::chrono::milliseconds count_refresh{std::chrono::seconds(30)};
    std::chrono::seconds stale_after{60}; // a watch broken longer makes stale_warning()
    model::Settings settings;             // istio_namespace above overrides its own
    // settings.version holds unless v1alpha1 Policies or MeshPolicies exist, which mean Istio 1.4
    // or 1.5: then the 1.5 rules apply, as for manifests (serve without --istio-version).
    bool version_from_objects = false;
    // Tuning; the defaults are what a cluster needs, tests shorten them.
    ReflectorOptions reflector;
    std::chrono::milliseconds discovery_timeout{std::chrono::seconds(30)};
    // After a CRD event, time for the API server to start serving the new resource.
    std::chrono::milliseconds crd_settle{std::chrono::milliseconds(500)};
    std::shared_ptr<spdlog::logger> logger; // null: the "kube" logger if registered, else default
};

// Thread safety: the watcher's work runs on a strand of `io` (any number of threads may run it);
// snapshots are built on a thread of the watcher's own and publish() is called there. synced(),
// broken_for(), stale_warning() and stats() may be called from any thread.
class ClusterWatcher {
  public:
    using Publish = std::function<void(std::shared_ptr<const model::Snapshot>)>;

    // Throws ConfigError when the configuration cannot be used (server URL, CA, client key) or
    // the Istio namespace is not a valid name.
    ClusterWatcher(boost::asio::io_context& io, ClusterConfig config, WatcherOptions options,
                   Publish publish);
    // Stops. Destroy the watcher before its io_context.
    ~ClusterWatcher();
    ClusterWatcher(const ClusterWatcher&) = delete;
    ClusterWatcher& operator=(const ClusterWatcher&) = delete;

    void start();
    // Cancels every request and timer; no publish() runs after it returns. Call it from any
    // thread but not from inside publish(). Requests finish cancelling on the io_context.
    void stop();

    // Every initial list completed and the first snapshot was published (for /readyz). Stays true
    // afterwards: a CRD installed later joins the snapshot when its own list completes.
    bool synced() const noexcept;
    // How long the longest-failing list, watch or discovery has been failing; nullopt when none is.
    std::optional<std::chrono::seconds> broken_for() const noexcept;
    // A one-line warning for admission responses when broken_for() reaches stale_after.
    std::optional<std::string> stale_warning() const;

    struct Stats {
        std::map<std::string, std::size_t> objects; // by resource: "pods", "services", ...
        std::size_t watch_restarts = 0; // watches re-opened after an error or a broken stream
        std::size_t relists = 0;        // lists after the first (410 Gone, expired continue)
        std::chrono::steady_clock::time_point last_event{}; // the last event or list; epoch: none
        std::size_t decode_errors = 0; // objects the engine could not read (logged)
        std::size_t snapshots_published = 0;
        std::chrono::microseconds last_rebuild{0}; // time to build the last snapshot
        std::size_t failed_rebuilds = 0; // builds that threw (out of memory): the last one stays
        std::map<std::string, std::string> versions; // resource -> group/version being watched
    };
    Stats stats() const;

    class Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

} // namespace mtlsguard::kube
