// The live cluster snapshot for `serve`: discovery, one reflector per resource, CRD tracking.
#include "server/kube/cluster_watcher.hpp"

#include "analysis/model/decode.hpp"
#include "analysis/model/decode_fields.hpp"
#include "analysis/model/json_node.hpp"
#include "server/input/manifest_loader.hpp"
#include "server/kube/endpoint_slice.hpp"
#include "server/kube/list_item.hpp"
#include "server/kube/store.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <mutex>
#include <set>
#include <spdlog/spdlog.h>

namespace mtlsguard::kube {

namespace net = boost::asio;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t to_ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point from_ns(std::int64_t ns) {
    return Clock::time_point(
        std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

// The mesh config in the istio ConfigMap, and the enablement selectors in istio-cni-config, are
// YAML text; the engine reads them as JSON (as server/input does for files).
void convert_config_map_yaml(json& object, const char* key) {
    auto data = object.find("data");
    if (data == object.end() || !data->is_object())
        return;
    auto text = data->find(key);
    if (text == data->end() || !text->is_string())
        return;
    auto documents = input::parse_yaml_documents(text->get<std::string>(), "ConfigMap");
    *text = documents.empty() ? json(nullptr) : std::move(documents.front());
}

// A CRD's conversion webhook, when it calls a Service; nullopt (with `error` empty) for the many
// CRDs without one: only these small records are kept, never the CRD with its schema.
template <class Node>
std::optional<StoredObject>
decode_conversion_webhook(const Node& object, std::string_view api_version, std::string& error) {
    auto identity = object_identity_of(object);
    if (!identity) {
        error = "metadata.name: missing";
        return std::nullopt;
    }
    auto callee = model::decoding::guarded<std::optional<model::DecodeOutcome>>(
        [&]() -> std::optional<model::DecodeOutcome> {
            const auto meta = model::decoding::decode_meta(object, "", false);
            auto decoded =
                model::decoding::decode_api_server_callee(object, meta, "CustomResourceDefinition");
            decoded.ref.api_version = std::string(api_version); // list items carry none
            return model::decoding::decoded(std::move(decoded));
        });
    if (!callee || callee->status == model::DecodeOutcome::Status::Error) {
        error = callee ? std::move(callee->error) : std::string("not decoded");
        return std::nullopt;
    }
    const auto* decoded =
        callee->object ? std::get_if<model::ApiServerCallee>(&*callee->object) : nullptr;
    if (!decoded || decoded->calls.empty())
        return std::nullopt;
    return StoredObject{std::move(identity->first), std::move(identity->second),
                        std::move(*callee->object)};
}

// Decodes one API object for the store. nullopt with `error` empty: a kind the engine skips.
std::optional<StoredObject> decode_for_store(ResourceKind kind, json& object, std::string& error) {
    auto identity = object_identity(object);
    if (!identity) {
        error = "metadata.name: missing";
        return std::nullopt;
    }
    if (kind == ResourceKind::EndpointSlices) {
        auto slice = decode_endpoint_slice(object, error);
        if (!slice)
            return std::nullopt;
        StoredObject stored{std::move(identity->first), std::move(identity->second), {}};
        stored.slice = std::make_unique<EndpointSlice>(std::move(*slice));
        return stored;
    }
    if (kind == ResourceKind::CrdConversionWebhooks)
        return decode_conversion_webhook(model::decoding::JsonNode{&object},
                                         object.value("apiVersion", ""), error);
    if (kind == ResourceKind::IstioConfigMap || kind == ResourceKind::CniConfigMap) {
        const char* key =
            kind == ResourceKind::IstioConfigMap ? "mesh" : "AMBIENT_ENABLEMENT_SELECTOR";
        try {
            convert_config_map_yaml(object, key);
        } catch (const input::LoadError& e) {
            error = std::string("data.") + key + ": " + e.reason;
            return std::nullopt;
        }
    }
    model::DecodeOutcome outcome = model::decode_object(object);
    if (outcome.status == model::DecodeOutcome::Status::Error) {
        error = std::move(outcome.error);
        return std::nullopt;
    }
    if (outcome.status == model::DecodeOutcome::Status::Skipped || !outcome.object)
        return std::nullopt;
    return StoredObject{std::move(identity->first), std::move(identity->second),
                        std::move(*outcome.object)};
}

// decode_for_store straight from a list page's parse, for the kinds that make up most of a large
// cluster: pods, their EndpointSlices, Services and Namespaces. nullopt for every other kind, and
// for an object it cannot store: decode_for_store then reads it as JSON and says what is wrong.
std::optional<StoredObject> decode_parsed(ResourceKind kind, const ListItem& item) {
    if (kind != ResourceKind::Pods && kind != ResourceKind::EndpointSlices &&
        kind != ResourceKind::Services && kind != ResourceKind::Namespaces)
        return std::nullopt;
    auto identity = object_identity_of(item.object);
    if (!identity)
        return std::nullopt;
    if (kind == ResourceKind::EndpointSlices) {
        std::string error;
        auto slice = decode_parsed_endpoint_slice(item.object, error);
        if (!slice)
            return std::nullopt;
        StoredObject stored{std::move(identity->first), std::move(identity->second), {}};
        stored.slice = std::make_unique<EndpointSlice>(std::move(*slice));
        return stored;
    }
    // Pods are listed as metadata only (discovery.cpp): no spec, so hostNetwork reads false and the
    // ambient facts come from labels and annotations alone (model::PodLike).
    auto outcome = model::decoding::decode_listed_kind(item.object, item.api_version, item.kind);
    if (!outcome || outcome->status != model::DecodeOutcome::Status::Decoded || !outcome->object)
        return std::nullopt;
    return StoredObject{std::move(identity->first), std::move(identity->second),
                        std::move(*outcome->object)};
}

// What the build thread may touch: never the watcher itself, whose lifetime it must not extend.
struct PublishState {
    std::atomic<bool> lists_synced{false};
    std::atomic<bool> synced{false};
    std::atomic<std::size_t> published{0};
};

} // namespace

class ClusterWatcher::Impl : public std::enable_shared_from_this<ClusterWatcher::Impl> {
  public:
    Impl(net::io_context& io, ClusterConfig config, WatcherOptions options, Publish publish)
        : strand_(net::make_strand(io)), config_(std::move(config)), options_(std::move(options)),
          logger_(options_.logger       ? options_.logger
                  : spdlog::get("kube") ? spdlog::get("kube")
                                        : spdlog::default_logger()),
          client_(std::make_shared<ApiClient>(strand_, config_)),
          counters_(std::make_shared<ReflectorCounters>()),
          publish_state_(std::make_shared<PublishState>()), user_publish_(std::move(publish)),
          discovery_backoff_(options_.reflector.backoff,
                             options_.reflector.seed.value_or(std::random_device{}()) + 1),
          discovery_timer_(strand_) {
        // The path of the ConfigMap list is built from it: refuse what is not a namespace name.
        try {
            make_target(ResourceKind::IstioConfigMap, "v1", options_.istio_namespace);
        } catch (const std::invalid_argument& e) {
            throw ConfigError(e.what());
        }
        options_.settings.istio_namespace = options_.istio_namespace;
        for (auto& count : object_counts_)
            count.store(0);
        // Made here, never replaced: stats() reads it from any thread. It collects from the
        // store on the strand, and never after stop(), which runs before this object goes.
        publisher_ = std::make_shared<SnapshotPublisher>(
            strand_, options_.settings, options_.coalesce, options_.count_refresh,
            [this](bool everything) { return store_.collect(everything); },
            [state = publish_state_,
             publish = user_publish_](std::shared_ptr<const model::Snapshot> snapshot) {
                publish(std::move(snapshot));
                state->published.fetch_add(1, std::memory_order_relaxed);
                state->synced.store(true, std::memory_order_release);
            },
            options_.version_from_objects, options_.settle);
    }

    void start() {
        publisher_->start();
        net::post(strand_, [self = shared_from_this()] { self->discover(); });
    }

    void stop() {
        const bool already = stopped_.exchange(true);
        publisher_->stop();
        if (already)
            return;
        net::post(strand_, [self = shared_from_this()] { self->shut_down(); });
    }

    bool synced() const noexcept { return publish_state_->synced.load(std::memory_order_acquire); }

    // The resource failing longest, and since when.
    std::optional<std::pair<std::string, Clock::time_point>> longest_broken() const {
        std::optional<std::pair<std::string, Clock::time_point>> worst;
        auto consider = [&](const std::string& name, std::optional<Clock::time_point> since) {
            if (since && (!worst || *since < worst->second))
                worst = std::make_pair(name, *since);
        };
        std::lock_guard lock(reflectors_mutex_);
        const auto discovery_ns = discovery_broken_ns_.load(std::memory_order_acquire);
        if (discovery_ns != 0)
            consider("API discovery", from_ns(discovery_ns));
        for (const auto& [kind, active] : reflectors_)
            consider(active.reflector->target().name, active.reflector->broken_since());
        if (crd_reflector_)
            consider(crd_reflector_->target().name, crd_reflector_->broken_since());
        return worst;
    }

    std::optional<std::chrono::seconds> broken_for() const {
        auto worst = longest_broken();
        if (!worst)
            return std::nullopt;
        return std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - worst->second);
    }

    std::optional<std::string> stale_warning() const {
        auto worst = longest_broken();
        if (!worst)
            return std::nullopt;
        const auto seconds =
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - worst->second);
        if (seconds < options_.stale_after)
            return std::nullopt;
        return "mtls-guard's cluster snapshot may be stale: reading " + worst->first +
               " from the API server has failed for " + std::to_string(seconds.count()) + "s";
    }

    ClusterWatcher::Stats stats() const {
        ClusterWatcher::Stats out;
        // Both ConfigMaps count as "configmaps": the label is the resource, as RBAC names it.
        for (ResourceKind kind : all_resource_kinds)
            out.objects[std::string(spec_of(kind).name)] +=
                object_counts_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
        out.watch_restarts = counters_->watch_restarts.load(std::memory_order_relaxed);
        out.relists = counters_->relists.load(std::memory_order_relaxed);
        const auto last = counters_->last_event_ns.load(std::memory_order_relaxed);
        if (last != 0)
            out.last_event = from_ns(last);
        out.decode_errors = decode_errors_.load(std::memory_order_relaxed);
        out.snapshots_published = publish_state_->published.load(std::memory_order_relaxed);
        const auto publisher = publisher_->stats();
        out.last_rebuild = publisher.last_build;
        out.failed_rebuilds = publisher.failed_builds;
        std::lock_guard lock(reflectors_mutex_);
        for (const auto& [kind, active] : reflectors_)
            out.versions[active.reflector->target().name] = active.reflector->target().api_version;
        return out;
    }

    // --- called by the sinks, on the strand ---

    void replace_kind(ResourceKind kind, std::vector<StoredObject> objects, PodList pods = {}) {
        store_.replace(kind, std::move(objects), std::move(pods));
        store_changed(kind, StoreChange::Structural);
        if (!publish_state_->lists_synced.load(std::memory_order_acquire))
            check_synced();
    }

    void apply_event(ResourceKind kind, WatchEventType type, json& object) {
        if (type == WatchEventType::Deleted) {
            auto identity = object_identity(object);
            if (identity)
                store_changed(kind, store_.erase(kind, identity->first, identity->second));
            return;
        }
        std::string error;
        auto stored = decode_for_store(kind, object, error);
        if (stored) {
            store_changed(kind, store_.upsert(kind, std::move(*stored)));
            return;
        }
        if (error.empty()) {
            // Nothing the engine reads any more (a CRD whose conversion webhook went): the stored
            // copy, if any, goes too.
            if (auto identity = object_identity(object))
                store_changed(kind, store_.erase(kind, identity->first, std::string()));
            return;
        }
        note_decode_error(kind, object, error);
        // The object changed into something the engine cannot read: it no longer counts.
        if (auto identity = object_identity(object))
            store_changed(kind, store_.erase(kind, identity->first, std::string()));
    }

    void note_decode_error(ResourceKind kind, const json& object, const std::string& error) {
        decode_errors_.fetch_add(1, std::memory_order_relaxed);
        auto identity = object_identity(object);
        logger_->warn("{} {}: ignored, the engine cannot read it: {}", spec_of(kind).object_kind,
                      identity ? identity->first : std::string("(no name)"), error);
    }

    void crds_listed(std::set<ResourceKind> kinds) {
        crd_kinds_ = std::move(kinds);
        crd_list_seen_ = true;
        if (!publish_state_->lists_synced.load(std::memory_order_acquire))
            check_synced();
        if (crd_kinds_differ())
            schedule_rediscovery(options_.crd_settle);
    }

    void crd_event(ResourceKind kind, bool exists) {
        if (exists)
            crd_kinds_.insert(kind);
        else
            crd_kinds_.erase(kind);
        // Served versions may change on MODIFIED too: always look again.
        rediscovery_attempts_ = 0;
        schedule_rediscovery(options_.crd_settle);
    }

    void resource_missing(ResourceKind kind) {
        logger_->info("the API server no longer serves {}; looking again", spec_of(kind).name);
        schedule_rediscovery(options_.crd_settle);
    }

  private:
    struct Active {
        std::string version;
        std::shared_ptr<Reflector> reflector;
    };

    void store_changed(ResourceKind kind, StoreChange change) {
        if (change == StoreChange::None)
            return;
        object_counts_[static_cast<std::size_t>(kind)].store(store_.size(kind),
                                                             std::memory_order_relaxed);
        if (!publish_state_->lists_synced.load(std::memory_order_acquire))
            return; // the first snapshot comes when every list is done
        if (change == StoreChange::Structural)
            publisher_->changed();
        else
            publisher_->counts_changed();
    }

    void discover() {
        if (stopped_)
            return;
        discovery_ = std::make_shared<Discovery>(client_, options_.discovery_timeout);
        // Weak: the watcher holds the discovery, which holds this callback.
        discovery_->run(
            [weak = weak_from_this()](std::optional<DiscoveryResult> result, std::string error) {
                auto self = weak.lock();
                if (!self)
                    return;
                self->discovery_.reset();
                if (self->stopped_)
                    return;
                if (!result)
                    return self->discovery_failed(error);
                self->discovery_broken_ns_.store(0, std::memory_order_release);
                self->reconcile(*result);
            });
    }

    void discovery_failed(const std::string& error) {
        const auto now = Clock::now();
        std::int64_t expected = 0;
        discovery_broken_ns_.compare_exchange_strong(expected, to_ns(now));
        const auto delay = discovery_backoff_.next(now);
        logger_->warn("{}; retrying in {} ms", error, delay.count());
        retry_discovery_after(delay);
    }

    void retry_discovery_after(std::chrono::milliseconds delay) {
        discovery_timer_.expires_after(delay);
        discovery_scheduled_ = true;
        discovery_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            self->discovery_scheduled_ = false;
            if (ec || self->stopped_)
                return;
            self->discover();
        });
    }

    void schedule_rediscovery(std::chrono::milliseconds delay) {
        if (stopped_ || !first_discovery_done_)
            return; // the first discovery is still running; it sees the current state
        if (discovery_) {
            rediscover_after_current_ = true;
            return;
        }
        if (discovery_scheduled_)
            return;
        retry_discovery_after(delay);
    }

    // Whether the CRDs that exist and the Istio kinds being watched disagree.
    bool crd_kinds_differ() const {
        if (!crd_list_seen_)
            return false;
        for (ResourceKind kind : all_resource_kinds) {
            if (!spec_of(kind).custom)
                continue;
            if (crd_kinds_.count(kind) != reflectors_.count(kind))
                return true;
        }
        return false;
    }

    void reconcile(const DiscoveryResult& result) {
        const bool first = !first_discovery_done_;
        first_discovery_done_ = true;
        for (ResourceKind kind : all_resource_kinds) {
            const KindSpec& spec = spec_of(kind);
            auto wanted = result.versions.find(kind);
            auto active = reflectors_.find(kind);
            if (wanted == result.versions.end()) {
                if (active != reflectors_.end()) {
                    logger_->info("{} are no longer served; dropping them", spec.name);
                    stop_reflector(kind);
                    store_.clear(kind);
                    store_changed(kind, StoreChange::Structural);
                }
                continue;
            }
            if (active != reflectors_.end() && active->second.version == wanted->second)
                continue;
            if (active != reflectors_.end()) {
                logger_->info("{}: switching to version {}", spec.name, wanted->second);
                stop_reflector(kind); // the new list replaces its objects when it completes
            } else if (!first) {
                logger_->info("{} are served now ({}); watching them", spec.name, wanted->second);
            }
            start_reflector(kind, wanted->second);
        }
        if (result.crd_api && !crd_reflector_)
            start_crd_reflector();
        if (first && !result.crd_api)
            logger_->warn("apiextensions.k8s.io/v1 is not served: Istio CRDs installed later "
                          "will not be noticed");
        if (first)
            check_synced();
        if (rediscover_after_current_) {
            rediscover_after_current_ = false;
            schedule_rediscovery(options_.crd_settle);
        } else if (crd_kinds_differ()) {
            // A CRD exists whose resource is not served yet (not Established): look again, a few
            // times, with backoff; the next CRD event starts over.
            if (++rediscovery_attempts_ <= 6)
                retry_discovery_after(discovery_backoff_.next(Clock::now()));
            else
                logger_->warn("Istio CRDs and served resources still disagree; waiting for the "
                              "next CRD change");
        } else {
            rediscovery_attempts_ = 0;
        }
    }

    class KindSink;
    class CrdSink;

    // `page_size`: at most this many objects per list page (CRDs are large).
    std::shared_ptr<Reflector> make_reflector(ResourceTarget target,
                                              std::shared_ptr<ReflectorSink> sink,
                                              std::optional<std::size_t> page_size = {}) {
        ReflectorOptions options = options_.reflector;
        if (page_size)
            options.page_size = std::min(options.page_size, *page_size);
        if (options.seed)
            options.seed = *options.seed + ++reflector_serial_;
        return std::make_shared<Reflector>(strand_, client_, std::move(target), std::move(sink),
                                           counters_, options, logger_);
    }

    void start_reflector(ResourceKind kind, const std::string& version);
    void start_crd_reflector();

    void stop_reflector(ResourceKind kind) {
        std::lock_guard lock(reflectors_mutex_);
        auto it = reflectors_.find(kind);
        if (it == reflectors_.end())
            return;
        it->second.reflector->stop();
        reflectors_.erase(it);
    }

    void check_synced() {
        if (publish_state_->lists_synced.load(std::memory_order_acquire) || !first_discovery_done_)
            return;
        for (const auto& [kind, active] : reflectors_)
            if (!active.reflector->synced())
                return;
        if (crd_reflector_ && !crd_reflector_->synced())
            return;
        publish_state_->lists_synced.store(true, std::memory_order_release);
        std::size_t total = 0;
        for (ResourceKind kind : all_resource_kinds)
            total += store_.size(kind);
        logger_->info("initial sync done: {} objects ({} pods in {} distinct shapes)", total,
                      store_.size(ResourceKind::Pods), store_.pod_shapes());
        publisher_->publish_now();
    }

    void shut_down() {
        discovery_timer_.cancel();
        if (discovery_)
            discovery_->cancel();
        discovery_.reset();
        std::lock_guard lock(reflectors_mutex_);
        for (auto& [kind, active] : reflectors_)
            active.reflector->stop();
        reflectors_.clear();
        if (crd_reflector_)
            crd_reflector_->stop();
        crd_reflector_.reset();
    }

    net::strand<net::io_context::executor_type> strand_;
    ClusterConfig config_;
    WatcherOptions options_;
    std::shared_ptr<spdlog::logger> logger_;
    std::shared_ptr<ApiClient> client_;
    std::shared_ptr<ReflectorCounters> counters_;
    std::shared_ptr<PublishState> publish_state_;
    Publish user_publish_;
    std::shared_ptr<SnapshotPublisher> publisher_;
    ObjectStore store_;
    std::atomic<bool> stopped_{false};

    std::shared_ptr<Discovery> discovery_;
    Backoff discovery_backoff_;
    net::steady_timer discovery_timer_;
    bool discovery_scheduled_ = false;
    bool first_discovery_done_ = false;
    bool rediscover_after_current_ = false;
    unsigned rediscovery_attempts_ = 0;
    std::atomic<std::int64_t> discovery_broken_ns_{0};

    mutable std::mutex reflectors_mutex_; // the maps below change on the strand, are read anywhere
    std::map<ResourceKind, Active> reflectors_;
    std::shared_ptr<Reflector> crd_reflector_;
    std::set<ResourceKind> crd_kinds_;
    bool crd_list_seen_ = false;
    std::uint64_t reflector_serial_ = 0;

    std::array<std::atomic<std::size_t>, all_resource_kinds.size()> object_counts_;
    std::atomic<std::size_t> decode_errors_{0};
};

// Decodes each object as it arrives and folds it into the store; a list's objects replace the
// kind's when the list completes.
class ClusterWatcher::Impl::KindSink final : public ReflectorSink {
  public:
    KindSink(std::weak_ptr<Impl> impl, ResourceKind kind) : impl_(std::move(impl)), kind_(kind) {}

    void list_item(json&& object) override {
        std::string error;
        if (auto stored = decode_for_store(kind_, object, error)) {
            keep(std::move(*stored));
        } else if (!error.empty()) {
            if (auto impl = impl_.lock())
                impl->note_decode_error(kind_, object, error);
        }
    }
    bool list_item_parsed(const ListItem& item) override {
        auto stored = decode_parsed(kind_, item);
        if (!stored)
            return false; // list_item decodes it again, and words any error
        keep(std::move(*stored));
        return true;
    }
    void list_done() override {
        auto objects = std::move(pending_);
        auto pods = std::move(pending_pods_);
        pending_.clear();
        pending_pods_ = {};
        if (auto impl = impl_.lock())
            impl->replace_kind(kind_, std::move(objects), std::move(pods));
    }
    void list_abandoned() override {
        pending_.clear();
        pending_.shrink_to_fit();
        pending_pods_ = {};
    }
    void watch_event(WatchEventType type, json&& object) override {
        if (auto impl = impl_.lock())
            impl->apply_event(kind_, type, object);
    }
    void resource_missing() override {
        if (auto impl = impl_.lock())
            impl->resource_missing(kind_);
    }

  private:
    // Pods wait as a PodList, each distinct pod once; anything else as it was decoded.
    void keep(StoredObject stored) {
        if (kind_ == ResourceKind::Pods && std::holds_alternative<model::PodLike>(stored.object))
            pending_pods_.add(std::move(stored.key), std::move(stored.uid),
                              std::get<model::PodLike>(std::move(stored.object)));
        else
            pending_.push_back(std::move(stored));
    }

    std::weak_ptr<Impl> impl_;
    ResourceKind kind_;
    std::vector<StoredObject> pending_;
    PodList pending_pods_;
};

// Tracks which of Istio's CRDs exist (any change makes the watcher look at discovery again), and
// keeps the conversion webhooks of every CRD that has one, as the store's CrdConversionWebhooks.
class ClusterWatcher::Impl::CrdSink final : public ReflectorSink {
  public:
    explicit CrdSink(std::weak_ptr<Impl> impl) : impl_(std::move(impl)) {}

    void list_item(json&& object) override {
        if (auto kind = kind_of(object_identity(object)))
            pending_kinds_.insert(*kind);
        std::string error;
        if (auto stored = decode_for_store(ResourceKind::CrdConversionWebhooks, object, error)) {
            pending_webhooks_.push_back(std::move(*stored));
        } else if (!error.empty()) {
            if (auto impl = impl_.lock())
                impl->note_decode_error(ResourceKind::CrdConversionWebhooks, object, error);
        }
    }
    // Straight from the page's parse: a CRD's schema is never copied into a nlohmann::json.
    bool list_item_parsed(const ListItem& item) override {
        std::string error;
        auto stored = decode_conversion_webhook(item.object, item.api_version, error);
        if (!error.empty())
            return false; // list_item decodes it again, and words the error
        if (auto kind = kind_of(object_identity_of(item.object)))
            pending_kinds_.insert(*kind);
        if (stored)
            pending_webhooks_.push_back(std::move(*stored));
        return true;
    }
    void list_done() override {
        auto kinds = std::move(pending_kinds_);
        auto webhooks = std::move(pending_webhooks_);
        pending_kinds_.clear();
        pending_webhooks_.clear();
        if (auto impl = impl_.lock()) {
            impl->replace_kind(ResourceKind::CrdConversionWebhooks, std::move(webhooks));
            impl->crds_listed(std::move(kinds));
        }
    }
    void list_abandoned() override {
        pending_kinds_.clear();
        pending_webhooks_.clear();
    }
    void watch_event(WatchEventType type, json&& object) override {
        auto impl = impl_.lock();
        if (!impl)
            return;
        const auto kind = kind_of(object_identity(object));
        impl->apply_event(ResourceKind::CrdConversionWebhooks, type, object);
        if (kind)
            impl->crd_event(*kind, type != WatchEventType::Deleted);
    }

  private:
    static std::optional<ResourceKind>
    kind_of(const std::optional<std::pair<std::string, std::string>>& identity) {
        return identity ? kind_of_crd(identity->first) : std::nullopt;
    }

    std::weak_ptr<Impl> impl_;
    std::set<ResourceKind> pending_kinds_;
    std::vector<StoredObject> pending_webhooks_;
};

void ClusterWatcher::Impl::start_reflector(ResourceKind kind, const std::string& version) {
    auto reflector = make_reflector(make_target(kind, version, options_.istio_namespace),
                                    std::make_shared<KindSink>(weak_from_this(), kind));
    {
        std::lock_guard lock(reflectors_mutex_);
        reflectors_[kind] = Active{version, reflector};
    }
    reflector->start();
}

void ClusterWatcher::Impl::start_crd_reflector() {
    auto reflector =
        make_reflector(crd_target(), std::make_shared<CrdSink>(weak_from_this()), crd_page_size);
    {
        std::lock_guard lock(reflectors_mutex_);
        crd_reflector_ = reflector;
    }
    reflector->start();
}

ClusterWatcher::ClusterWatcher(net::io_context& io, ClusterConfig config, WatcherOptions options,
                               Publish publish)
    : impl_(std::make_shared<Impl>(io, std::move(config), std::move(options), std::move(publish))) {
}

ClusterWatcher::~ClusterWatcher() {
    impl_->stop();
}

void ClusterWatcher::start() {
    impl_->start();
}

void ClusterWatcher::stop() {
    impl_->stop();
}

bool ClusterWatcher::synced() const noexcept {
    return impl_->synced();
}

std::optional<std::chrono::seconds> ClusterWatcher::broken_for() const noexcept {
    try {
        return impl_->broken_for();
    } catch (...) {
        return std::nullopt; // only a failing mutex could throw
    }
}

std::optional<std::string> ClusterWatcher::stale_warning() const {
    return impl_->stale_warning();
}

ClusterWatcher::Stats ClusterWatcher::stats() const {
    return impl_->stats();
}

} // namespace mtlsguard::kube
