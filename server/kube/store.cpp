// Decoded cluster objects per kind, and the immutable snapshots built and published from them.
#include "server/kube/store.hpp"

#include "analysis/model/json_node.hpp"
#include "server/memory/allocator.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

namespace mtlsguard::kube {
namespace {

std::size_t index_of(ResourceKind kind) {
    return static_cast<std::size_t>(kind);
}

// Equal fingerprints mean the engine cannot tell the two pods apart.
std::string fingerprint(const model::PodLike& pod) {
    std::string out;
    out.reserve(64 + pod.labels.entries().size() * 32);
    auto field = [&](std::string_view text) {
        out.append(text);
        out.push_back('\0');
    };
    field(pod.namespace_name);
    field(pod.workload_kind);
    field(pod.workload_name);
    out.push_back(pod.from_template ? 't' : 'p');
    out.push_back(!pod.sidecar ? 'u' : (*pod.sidecar ? 'y' : 'n'));
    for (const auto& [key, value] : pod.labels.entries()) {
        field(key);
        field(value);
    }
    out.push_back('\x01'); // labels end, ports follow
    for (const auto& port : pod.container_ports) {
        field(port.name);
        field(std::to_string(port.number));
    }
    out.push_back('\x02'); // ports end; the dataplane facts follow
    out.push_back(static_cast<char>('0' + static_cast<int>(pod.redirection)));
    out.push_back(pod.sidecar_status ? 's' : '-');
    out.push_back(pod.bypass_inbound_capture ? 'b' : '-');
    out.push_back(pod.host_network ? 'h' : '-');
    out.push_back(pod.tunnel_http ? 't' : '-');
    // Its own sidecar.istio.io/inject decision: what a Namespace relabel reads for a restart.
    out.push_back(!pod.own_injection ? 'u' : (*pod.own_injection ? 'y' : 'n'));
    const auto& interception = pod.interception;
    for (const auto* annotation :
         {&interception.exclude_inbound_ports, &interception.include_inbound_ports,
          &interception.exclude_outbound_ports, &interception.exclude_outbound_ip_ranges,
          &interception.include_outbound_ip_ranges}) {
        out.push_back(*annotation ? '+' : '-'); // absent differs from ""
        field(annotation->value_or(""));
    }
    return out;
}

// The larger of two changes: anything structural makes the whole structural.
StoreChange larger(StoreChange a, StoreChange b) {
    return static_cast<std::uint8_t>(a) < static_cast<std::uint8_t>(b) ? b : a;
}

// Whether an object's key ("namespace/name", or "name" for a cluster-scoped one) is found where
// collect() looks for the objects of its namespace.
bool keyed_by_namespace(std::string_view key, std::string_view ns) {
    const auto slash = key.find('/');
    return slash == std::string_view::npos ? key == ns : key.substr(0, slash) == ns;
}

} // namespace

std::optional<std::pair<std::string, std::string>> object_identity(const nlohmann::json& object) {
    return object_identity_of(model::decoding::JsonNode{&object});
}

std::shared_ptr<const model::Snapshot> build_snapshot(const SnapshotInputs& inputs,
                                                      const model::Settings& settings,
                                                      bool version_from_objects) {
    model::SnapshotBuilder builder(settings);
    for (const auto& object : inputs.objects)
        builder.add(model::DecodedObject(*object));
    for (const auto& [pod, count] : inputs.pod_shapes)
        builder.add_pods(pod, count);
    if (version_from_objects && builder.has_alpha_policies())
        builder.set_version(model::IstioVersion{5});
    return builder.build();
}

std::shared_ptr<const model::Snapshot>
update_snapshot(const model::Snapshot* previous, const SnapshotInputs& inputs,
                const model::Settings& settings, bool version_from_objects, bool* incremental) {
    if (incremental)
        *incremental = false;
    if (inputs.all_changed)
        return build_snapshot(inputs, settings, version_from_objects);
    if (!previous)
        return nullptr; // only changes, and nothing they follow
    // Policies and MeshPolicies count as cluster-wide changes (the store marks them so): the
    // version they may select stays the previous one's.
    model::Settings same = settings;
    same.version = previous->settings().version;
    model::SnapshotBuilder builder(std::move(same));
    for (const auto& object : inputs.changed_objects)
        builder.add(model::DecodedObject(*object));
    for (const auto& [pod, count] : inputs.changed_pod_shapes)
        builder.add_pods(pod, count);
    if (auto next = builder.build_update(*previous, inputs.changed_namespaces)) {
        if (incremental)
            *incremental = true;
        return next;
    }
    return nullptr; // the change reaches further: the caller collects everything
}

bool ObjectStore::NamespaceMajor::operator()(const std::string& a,
                                             const std::string& b) const noexcept {
    const auto split = [](const std::string& key) {
        const auto slash = key.find('/');
        const std::string_view whole(key);
        return slash == std::string::npos
                   ? std::make_pair(std::string_view(), whole)
                   : std::make_pair(whole.substr(0, slash), whole.substr(slash + 1));
    };
    return split(a) < split(b);
}

// Cluster-wide objects, and the legacy policies that may select the Istio version, reach every
// namespace; anything else only its own.
void ObjectStore::changed(ResourceKind kind, const model::DecodedObject& object) {
    const std::string_view ns = model::object_namespace(object);
    if (ns.empty() || kind == ResourceKind::IstioConfigMap || kind == ResourceKind::CniConfigMap ||
        kind == ResourceKind::Policies || kind == ResourceKind::MeshPolicies ||
        std::holds_alternative<model::AlphaPolicy>(object) ||
        std::holds_alternative<model::MeshConfig>(object))
        all_changed_ = true;
    else
        changed(ns);
}

void ObjectStore::changed(std::string_view ns) {
    if (!all_changed_)
        changed_namespaces_.emplace(ns);
}

void PodList::add(std::string key, std::string uid, model::PodLike pod) {
    std::string print = fingerprint(pod);
    auto it = shapes_.find(print);
    if (it == shapes_.end())
        it = shapes_
                 .emplace(std::move(print), std::make_shared<const model::PodLike>(std::move(pod)))
                 .first;
    items_.push_back(Item{std::move(key), std::move(uid), &*it});
}

void ObjectStore::replace(ResourceKind kind, std::vector<StoredObject> objects, PodList listed) {
    if (kind == ResourceKind::EndpointSlices) {
        // Linked all first, so that each pod is shaped again once.
        std::vector<std::string> pods;
        for (const auto& [key, refs] : pod_slices_)
            pods.push_back(key);
        all_changed_ = true;
        slices_.clear();
        service_slices_.clear();
        pod_slices_.clear();
        for (auto& object : objects) {
            auto [it, inserted] = slices_.try_emplace(std::move(object.key));
            if (!inserted)
                unlink_slice(&*it, pods);
            it->second = SliceEntry{std::move(object.uid),
                                    object.slice ? std::move(*object.slice) : EndpointSlice{}};
            link_slice(&*it, pods);
        }
        reshape_pods(std::move(pods));
        return;
    }
    clear(kind);
    for (auto& item : listed.items_)
        upsert_pod_shape(item.key, std::move(item.uid), item.shape->first, item.shape->second);
    listed = {};
    for (auto& object : objects)
        upsert(kind, std::move(object));
}

StoreChange ObjectStore::upsert(ResourceKind kind, StoredObject object) {
    if (kind == ResourceKind::Pods && std::holds_alternative<model::PodLike>(object.object))
        return upsert_pod(object.key, std::move(object.uid),
                          std::get<model::PodLike>(std::move(object.object)));
    if (kind == ResourceKind::EndpointSlices)
        return upsert_slice(object.key, std::move(object.uid),
                            object.slice ? std::move(*object.slice) : EndpointSlice{});
    const std::string service_key = kind == ResourceKind::Services ? object.key : std::string();
    auto& map = objects_[index_of(kind)];
    Entry entry{std::move(object.uid),
                std::make_shared<const model::DecodedObject>(std::move(object.object))};
    changed(kind, *entry.object);
    if (!keyed_by_namespace(object.key, model::object_namespace(*entry.object)))
        all_changed_ = true; // collect() would not find it among its namespace's objects
    auto [it, inserted] = map.try_emplace(std::move(object.key));
    if (!inserted)
        changed(kind, *it->second.object); // the old one's namespace, should it differ
    it->second = std::move(entry);
    if (!service_key.empty())
        reshape_pods_of_service(service_key); // its named targetPorts may have changed
    return StoreChange::Structural;
}

StoreChange ObjectStore::upsert_pod(const std::string& key, std::string uid, model::PodLike pod) {
    // Resolved ports go last, so that the pod's own can be told from them again.
    std::uint16_t resolved = 0;
    for (auto& port : resolved_ports(key)) {
        const bool named =
            std::any_of(pod.container_ports.begin(), pod.container_ports.end(),
                        [&](const model::NamedPort& p) { return p.name == port.name; });
        if (!named) {
            pod.container_ports.push_back(std::move(port));
            ++resolved;
        }
    }
    std::string print = fingerprint(pod);
    return place_pod(key, std::move(uid), std::move(print), resolved,
                     [&] { return std::make_shared<const model::PodLike>(std::move(pod)); });
}

StoreChange ObjectStore::upsert_pod_shape(const std::string& key, std::string uid,
                                          const std::string& print,
                                          const std::shared_ptr<const model::PodLike>& shape) {
    if (!resolved_ports(key).empty())
        return upsert_pod(key, std::move(uid), *shape);
    return place_pod(key, std::move(uid), print, 0, [&] { return shape; });
}

template <class MakePod>
StoreChange ObjectStore::place_pod(const std::string& key, std::string uid, std::string print,
                                   std::uint16_t resolved, MakePod&& make_pod) {
    auto [shape_it, created] = shapes_.try_emplace(std::move(print));
    if (created)
        shape_it->second.pod = make_pod();
    ++shape_it->second.pods; // before releasing the old shape: it may be the same one
    auto [entry, inserted] = pods_.try_emplace(key);
    const bool moved = !inserted && entry->second.shape != &*shape_it;
    const bool vanished = !inserted && release_shape(entry->second.shape);
    entry->second.uid = std::move(uid);
    entry->second.shape = &*shape_it;
    entry->second.resolved_ports = resolved;
    if (created || vanished || inserted || moved)
        changed(shape_it->second.pod->namespace_name);
    if (created || vanished)
        return StoreChange::Structural;
    return inserted || moved ? StoreChange::PodCount : StoreChange::None;
}

bool ObjectStore::release_shape(ShapeMap::value_type* shape) {
    if (!shape || --shape->second.pods != 0)
        return false;
    shapes_.erase(shape->first);
    return true;
}

StoreChange ObjectStore::erase(ResourceKind kind, const std::string& key, const std::string& uid) {
    if (kind == ResourceKind::EndpointSlices)
        return erase_slice(key, uid);
    if (kind == ResourceKind::Pods) {
        auto it = pods_.find(key);
        if (it != pods_.end() && (uid.empty() || it->second.uid.empty() || it->second.uid == uid)) {
            changed(it->second.shape->second.pod->namespace_name);
            const bool vanished = release_shape(it->second.shape);
            pods_.erase(it);
            return vanished ? StoreChange::Structural : StoreChange::PodCount;
        }
        // A pod that never decoded as one may sit in the general map.
    }
    auto& map = objects_[index_of(kind)];
    auto it = map.find(key);
    if (it == map.end())
        return StoreChange::None;
    if (!uid.empty() && !it->second.uid.empty() && it->second.uid != uid)
        return StoreChange::None;
    changed(kind, *it->second.object);
    if (!keyed_by_namespace(key, model::object_namespace(*it->second.object)))
        all_changed_ = true;
    map.erase(it);
    if (kind == ResourceKind::Services)
        reshape_pods_of_service(key);
    return StoreChange::Structural;
}

StoreChange ObjectStore::upsert_slice(const std::string& key, std::string uid,
                                      EndpointSlice slice) {
    std::vector<std::string> pods;
    auto [it, inserted] = slices_.try_emplace(key);
    if (!inserted)
        unlink_slice(&*it, pods);
    it->second = SliceEntry{std::move(uid), std::move(slice)};
    link_slice(&*it, pods);
    return reshape_pods(std::move(pods));
}

StoreChange ObjectStore::erase_slice(const std::string& key, const std::string& uid) {
    auto it = slices_.find(key);
    if (it == slices_.end())
        return StoreChange::None;
    if (!uid.empty() && !it->second.uid.empty() && it->second.uid != uid)
        return StoreChange::None;
    std::vector<std::string> pods;
    unlink_slice(&*it, pods);
    slices_.erase(it);
    return reshape_pods(std::move(pods));
}

void ObjectStore::link_slice(const SliceMap::value_type* slice, std::vector<std::string>& pods) {
    const EndpointSlice& s = slice->second.slice;
    if (s.service.empty())
        return; // no Service's: it resolves no targetPort
    service_slices_[s.namespace_name + "/" + s.service].push_back(slice);
    for (const auto& name : s.pods) {
        std::string key = s.namespace_name + "/" + name;
        pod_slices_[key].push_back(slice);
        pods.push_back(std::move(key));
    }
}

void ObjectStore::unlink_slice(const SliceMap::value_type* slice, std::vector<std::string>& pods) {
    const EndpointSlice& s = slice->second.slice;
    if (s.service.empty())
        return;
    auto drop = [slice](auto& index, const std::string& key) {
        auto it = index.find(key);
        if (it == index.end())
            return;
        auto& refs = it->second;
        refs.erase(std::remove(refs.begin(), refs.end(), slice), refs.end());
        if (refs.empty())
            index.erase(it);
    };
    drop(service_slices_, s.namespace_name + "/" + s.service);
    for (const auto& name : s.pods) {
        std::string key = s.namespace_name + "/" + name;
        drop(pod_slices_, key);
        pods.push_back(std::move(key));
    }
}

std::vector<model::NamedPort> ObjectStore::resolved_ports(const std::string& pod_key) const {
    std::vector<model::NamedPort> out;
    auto refs = pod_slices_.find(pod_key);
    if (refs == pod_slices_.end())
        return out;
    const auto& services = objects_[index_of(ResourceKind::Services)];
    for (const auto* slice : refs->second) {
        const EndpointSlice& s = slice->second.slice;
        auto found = services.find(s.namespace_name + "/" + s.service);
        if (found == services.end())
            continue;
        const auto* service = std::get_if<model::Service>(found->second.object.get());
        if (!service)
            continue;
        // The slice port named as the Service port holds the number its targetPort resolved to.
        for (const auto& port : service->ports) {
            if (port.target_port_name.empty())
                continue; // a number needs no slice
            for (const auto& resolved : s.ports)
                if (resolved.name == port.name) {
                    out.push_back(model::NamedPort{port.target_port_name, resolved.number});
                    break;
                }
        }
    }
    // One number per name, whatever order the slices came in.
    std::sort(out.begin(), out.end(), [](const model::NamedPort& a, const model::NamedPort& b) {
        return std::tie(a.name, a.number) < std::tie(b.name, b.number);
    });
    out.erase(std::unique(out.begin(), out.end(),
                          [](const model::NamedPort& a, const model::NamedPort& b) {
                              return a.name == b.name;
                          }),
              out.end());
    return out;
}

StoreChange ObjectStore::reshape_pods(std::vector<std::string> pods) {
    std::sort(pods.begin(), pods.end());
    pods.erase(std::unique(pods.begin(), pods.end()), pods.end());
    StoreChange change = StoreChange::None;
    for (const auto& key : pods) {
        auto it = pods_.find(key);
        if (it == pods_.end())
            continue; // listed before it arrived: upsert_pod() resolves its ports then
        model::PodLike pod = *it->second.shape->second.pod;
        pod.container_ports.resize(pod.container_ports.size() - it->second.resolved_ports);
        change = larger(change, upsert_pod(key, it->second.uid, std::move(pod)));
    }
    return change;
}

StoreChange ObjectStore::reshape_pods_of_service(const std::string& service_key) {
    auto it = service_slices_.find(service_key);
    if (it == service_slices_.end())
        return StoreChange::None;
    std::vector<std::string> pods;
    for (const auto* slice : it->second)
        for (const auto& name : slice->second.slice.pods)
            pods.push_back(slice->second.slice.namespace_name + "/" + name);
    return reshape_pods(std::move(pods));
}

void ObjectStore::clear(ResourceKind kind) {
    all_changed_ = true;
    if (kind == ResourceKind::EndpointSlices) {
        replace(kind, {});
        return;
    }
    objects_[index_of(kind)].clear();
    if (kind == ResourceKind::Pods) {
        pods_.clear();
        shapes_.clear();
    }
    if (kind == ResourceKind::Services) {
        std::vector<std::string> pods;
        for (const auto& [key, refs] : pod_slices_)
            pods.push_back(key);
        reshape_pods(std::move(pods));
    }
}

std::size_t ObjectStore::size(ResourceKind kind) const noexcept {
    const std::size_t general = objects_[index_of(kind)].size();
    if (kind == ResourceKind::EndpointSlices)
        return slices_.size();
    return kind == ResourceKind::Pods ? general + pods_.size() : general;
}

const model::DecodedObject* ObjectStore::find(ResourceKind kind, const std::string& key) const {
    const auto& map = objects_[index_of(kind)];
    auto it = map.find(key);
    return it == map.end() ? nullptr : it->second.object.get();
}

const model::PodLike* ObjectStore::find_pod(const std::string& key) const {
    auto it = pods_.find(key);
    return it == pods_.end() ? nullptr : it->second.shape->second.pod.get();
}

SnapshotInputs ObjectStore::inputs() const {
    SnapshotInputs inputs;
    std::size_t total = 0;
    for (const auto& map : objects_)
        total += map.size();
    inputs.objects.reserve(total);
    for (const auto& map : objects_)
        for (const auto& [key, entry] : map)
            inputs.objects.push_back(entry.object);
    inputs.pod_shapes.reserve(shapes_.size());
    for (const auto& [print, shape] : shapes_)
        inputs.pod_shapes.emplace_back(shape.pod, shape.pods);
    inputs.pods = pods_.size();
    return inputs;
}

SnapshotInputs ObjectStore::collect(bool everything) {
    SnapshotInputs out;
    if (everything || all_changed_) {
        out = inputs();
    } else {
        out.all_changed = false;
        out.pods = pods_.size();
        out.changed_namespaces.assign(changed_namespaces_.begin(), changed_namespaces_.end());
        // The maps are in namespace order: each namespace's objects are one range of each.
        for (const auto& map : objects_) {
            for (const auto& ns : out.changed_namespaces) {
                auto add = [&](const Entry& entry) {
                    if (model::object_namespace(*entry.object) == ns)
                        out.changed_objects.push_back(entry.object);
                };
                if (auto it = map.find(ns); it != map.end())
                    add(it->second); // cluster-scoped, as a Namespace object is
                for (auto it = map.lower_bound(ns + "/");
                     it != map.end() && it->first.size() > ns.size() &&
                     it->first.compare(0, ns.size(), ns) == 0 && it->first[ns.size()] == '/';
                     ++it)
                    add(it->second);
            }
        }
        for (const auto& ns : out.changed_namespaces) {
            std::string prefix = ns;
            prefix.push_back('\0'); // how a fingerprint starts
            for (auto it = shapes_.lower_bound(prefix);
                 it != shapes_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
                out.changed_pod_shapes.emplace_back(it->second.pod, it->second.pods);
        }
    }
    all_changed_ = false;
    changed_namespaces_.clear();
    return out;
}

SnapshotPublisher::SnapshotPublisher(boost::asio::any_io_executor strand, model::Settings settings,
                                     std::chrono::milliseconds coalesce,
                                     std::chrono::milliseconds count_refresh, Collect collect,
                                     Publish publish, bool version_from_objects,
                                     std::chrono::milliseconds settle)
    : strand_(strand), settings_(std::move(settings)), version_from_objects_(version_from_objects),
      coalesce_(coalesce), settle_(settle), count_refresh_(count_refresh),
      collect_(std::move(collect)), publish_(std::move(publish)), timer_(strand) {}

SnapshotPublisher::~SnapshotPublisher() {
    stop();
    if (thread_.joinable())
        thread_.detach(); // only when the last owner let go from the build thread itself
}

void SnapshotPublisher::start() {
    thread_ = std::thread([this] { build_loop(); });
}

void SnapshotPublisher::changed() {
    dirty_ = true;
    structural_dirty_ = true;
    if (!in_flight_)
        schedule(structural_delay());
}

std::chrono::milliseconds SnapshotPublisher::structural_delay() const {
    if (!last_start_)
        return settle_;
    const auto window = std::chrono::ceil<std::chrono::milliseconds>(
        *last_start_ + coalesce_ - std::chrono::steady_clock::now());
    return std::max(settle_, window);
}

void SnapshotPublisher::counts_changed() {
    dirty_ = true;
    if (!in_flight_)
        schedule(count_refresh_);
}

void SnapshotPublisher::publish_now() {
    dirty_ = true;
    structural_dirty_ = true;
    if (!in_flight_)
        hand_over();
}

// Arms the timer for `delay` from now, unless it is already due sooner.
void SnapshotPublisher::schedule(std::chrono::milliseconds delay) {
    const auto due = std::chrono::steady_clock::now() + delay;
    if (timer_armed_ && timer_due_ <= due)
        return;
    timer_armed_ = true;
    timer_due_ = due;
    const auto generation = ++timer_generation_;
    timer_.expires_at(due);
    timer_.async_wait([self = shared_from_this(), generation](boost::system::error_code ec) {
        if (generation != self->timer_generation_)
            return; // re-armed for an earlier time since
        self->timer_armed_ = false;
        if (!ec && self->dirty_)
            self->hand_over();
    });
}

void SnapshotPublisher::hand_over() {
    {
        std::lock_guard lock(publish_mutex_);
        if (stopped_)
            return;
    }
    if (in_flight_)
        return;
    dirty_ = false;
    structural_dirty_ = false;
    in_flight_ = true;
    last_start_ = std::chrono::steady_clock::now();
    SnapshotInputs inputs = collect_(collect_everything_);
    collect_everything_ = false;
    {
        std::lock_guard lock(job_mutex_);
        job_ = std::move(inputs);
    }
    job_ready_.notify_one();
}

void SnapshotPublisher::build_loop() {
    while (true) {
        SnapshotInputs inputs;
        {
            std::unique_lock lock(job_mutex_);
            job_ready_.wait(lock, [&] { return quit_ || job_.has_value(); });
            if (quit_)
                return;
            inputs = std::move(*job_);
            job_.reset();
        }
        const auto started = std::chrono::steady_clock::now();
        std::shared_ptr<const model::Snapshot> snapshot;
        bool incremental = false;
        auto outcome = BuildOutcome::Published;
        try {
            snapshot = update_snapshot(previous_.get(), inputs, settings_, version_from_objects_,
                                       &incremental);
            if (!snapshot)
                outcome = BuildOutcome::NeedsEverything; // the change reached beyond its namespaces
        } catch (const std::exception&) {
            // Out of memory, in practice: keep the last snapshot; the next change tries again.
            failed_builds_.fetch_add(1, std::memory_order_relaxed);
            outcome = BuildOutcome::Failed;
        }
        // A failed or refused build leaves nothing to follow, and the changes it took from the
        // store are gone: the next build starts from all objects (collect_everything_).
        previous_ = snapshot;
        if (incremental)
            incremental_builds_.fetch_add(1, std::memory_order_relaxed);
        inputs = {}; // let go of the shared objects before publishing
        last_build_us_.store(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count(),
                             std::memory_order_relaxed);
        if (snapshot) {
            builds_.fetch_add(1, std::memory_order_relaxed);
            std::lock_guard lock(publish_mutex_);
            if (stopped_)
                return;
            try {
                publish_(std::move(snapshot));
            } catch (...) {
                // The receiver's failure must not end the build thread; it keeps its last one.
            }
        }
        // The previous snapshot and the inputs went just now: give what they held back to the
        // system rather than keep the peak of the last build resident.
        memory::give_back_free_memory();
        boost::asio::post(strand_, [weak = weak_from_this(), outcome] {
            if (auto self = weak.lock())
                self->build_finished(outcome);
        });
    }
}

void SnapshotPublisher::build_finished(BuildOutcome outcome) {
    in_flight_ = false;
    if (outcome != BuildOutcome::Published)
        collect_everything_ = true;
    if (outcome == BuildOutcome::NeedsEverything) {
        // The changes are still unpublished: build them from all objects at once.
        dirty_ = true;
        structural_dirty_ = true;
        hand_over();
    } else if (structural_dirty_)
        schedule(structural_delay());
    else if (dirty_)
        schedule(count_refresh_);
}

void SnapshotPublisher::stop() {
    if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id()) {
        // From inside publish(): this thread holds publish_mutex_ already.
        stopped_ = true;
        std::lock_guard lock(job_mutex_);
        quit_ = true;
        return;
    }
    {
        std::lock_guard lock(publish_mutex_);
        stopped_ = true;
    }
    {
        std::lock_guard lock(job_mutex_);
        quit_ = true;
    }
    job_ready_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
        thread_.join();
    if (auto self = weak_from_this().lock())
        boost::asio::post(strand_, [self] { self->timer_.cancel(); });
}

SnapshotPublisher::Stats SnapshotPublisher::stats() const noexcept {
    Stats out;
    out.builds = builds_.load(std::memory_order_relaxed);
    out.incremental_builds = incremental_builds_.load(std::memory_order_relaxed);
    out.failed_builds = failed_builds_.load(std::memory_order_relaxed);
    out.last_build = std::chrono::microseconds(last_build_us_.load(std::memory_order_relaxed));
    return out;
}

} // namespace mtlsguard::kube
