// One resource kept in step with the API server, as client-go's reflector: list, then watch.
#pragma once

#include "server/kube/backoff.hpp"
#include "server/kube/discovery.hpp"
#include "server/kube/http_client.hpp"
#include "server/kube/watch_event.hpp" // decode_watch_line: the reflector's pure event decoder

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>

namespace spdlog {
class logger;
} // namespace spdlog

namespace mtlsguard::kube {

struct ListItem;

// Receives what a reflector learns, on the reflector's executor. Objects carry apiVersion and kind
// of the watched resource (set by the reflector: list items of built-in types have none).
class ReflectorSink {
  public:
    virtual ~ReflectorSink() = default;
    // One object of a list in progress; more pages may follow.
    virtual void list_item(nlohmann::json&& object) = 0;
    // The same object straight from the page's parse (list_item.hpp), offered first: a sink that
    // takes it returns true; otherwise list_item gets it as JSON. Building a nlohmann::json of
    // every item, and freeing it, was most of the cost of reading a large list.
    virtual bool list_item_parsed(const ListItem& /*item*/) { return false; }
    // The list is complete: its items are now the whole truth (objects not in it are gone).
    virtual void list_done() = 0;
    // The list failed part way: forget its items; the previous state stands.
    virtual void list_abandoned() = 0;
    // ADDED, MODIFIED or DELETED (with the object's last state).
    virtual void watch_event(WatchEventType type, nlohmann::json&& object) = 0;
    // The API server answered 404 for the resource: its CRD may be gone.
    virtual void resource_missing() {}
};

// Counters shared by every reflector of a watcher; read from any thread.
struct ReflectorCounters {
    std::atomic<std::size_t> watch_restarts{0}; // watches re-opened after an error or a cut
    std::atomic<std::size_t> relists{0};        // lists after the first (410, expired continue)
    std::atomic<std::int64_t> last_event_ns{0}; // steady_clock of the last event or list
};

struct ReflectorOptions {
    std::size_t page_size = 500;
    // Each watch asks the server to end it after a random time in this range, so that watches
    // of many clients do not all reconnect together and a dead stream cannot linger.
    std::chrono::seconds min_watch_timeout{300};
    std::chrono::seconds max_watch_timeout{600};
    std::chrono::milliseconds request_timeout{std::chrono::seconds(60)};
    // Silence allowed on a watch beyond its timeoutSeconds before it counts as dead.
    std::chrono::milliseconds watch_idle_grace{std::chrono::seconds(30)};
    std::size_t max_page_bytes = std::size_t{128} << 20;
    std::size_t max_event_bytes = std::size_t{16} << 20;
    // A watch that ends cleanly this soon without a single event is treated as a failure, so that
    // a misbehaving server cannot make the reflector spin.
    std::chrono::milliseconds min_healthy_watch{std::chrono::seconds(1)};
    BackoffPolicy backoff;
    std::optional<std::uint64_t> seed; // jitter and watch timeouts; random when unset
};

// Accept headers: metadata-only reads ask for PartialObjectMetadata (falling back to the full
// object, as client-go's metadata client does).
inline constexpr const char* metadata_list_accept =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
inline constexpr const char* metadata_watch_accept =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

// Percent-encodes a query value (continue tokens are base64, selectors hold '=').
std::string encode_query_value(std::string_view value);

// The continue token a list page's text states before its items (the API server writes a list's
// metadata first), read without parsing the page: "" when there is none there, or it is escaped.
// Only a hint, which lets the next page be asked for while this one is parsed; the parse
// confirms it.
std::string continue_hint(std::string_view page);

// Runs on one executor (a strand); every member function must be called there, except the
// accessors marked thread-safe.
class Reflector : public std::enable_shared_from_this<Reflector> {
  public:
    Reflector(boost::asio::any_io_executor executor, std::shared_ptr<ApiClient> client,
              ResourceTarget target, std::shared_ptr<ReflectorSink> sink,
              std::shared_ptr<ReflectorCounters> counters, ReflectorOptions options,
              std::shared_ptr<spdlog::logger> logger);

    void start();
    // Cancels the request in flight and any retry; the sink hears nothing more.
    void stop();

    const ResourceTarget& target() const noexcept { return target_; }
    // Thread-safe: the first list is complete.
    bool synced() const noexcept { return synced_.load(std::memory_order_acquire); }
    // Thread-safe: since when requests have been failing (nullopt while healthy).
    std::optional<std::chrono::steady_clock::time_point> broken_since() const noexcept;
    // The resourceVersion a watch resumes from; empty before the first list.
    const std::string& resource_version() const noexcept { return resource_version_; }

  private:
    void list(bool relist);
    void request_page();
    void cancel_call();
    void on_page(HttpResult result);
    void watch();
    bool on_watch_data(std::string_view data);
    bool on_watch_line(std::string_view line);
    void on_watch_end(HttpResult result);
    // `relist`: start over with a list; else resume the watch. `retry_after` from the server.
    void retry(bool relist, std::string why, std::optional<std::chrono::seconds> retry_after = {});
    void after_http_error(const HttpResult& result, bool listing);
    void healthy();
    void note_event();
    void stamp(nlohmann::json& object) const;
    std::string query_prefix() const;

    boost::asio::any_io_executor executor_;
    std::shared_ptr<ApiClient> client_;
    ResourceTarget target_;
    std::shared_ptr<ReflectorSink> sink_;
    std::shared_ptr<ReflectorCounters> counters_;
    ReflectorOptions options_;
    std::shared_ptr<spdlog::logger> logger_;
    Backoff backoff_;
    std::mt19937_64 random_;
    boost::asio::steady_timer retry_timer_;
    std::shared_ptr<HttpCall> call_;
    LineSplitter splitter_;
    std::string continue_;
    std::string page_buffer_; // a list page's text, its capacity kept for the next page
    // The page before's text, for the page after next: the next page is asked for while this
    // one's text is still being parsed.
    std::string spare_page_buffer_;
    std::string list_resource_version_;
    std::string resource_version_;
    bool stopped_ = false;
    bool listing_ = false;
    bool watch_decided_ = false; // the reflector ended the watch itself (410, bad line)
    std::size_t watch_events_ = 0;
    std::chrono::steady_clock::time_point watch_started_{};
    std::atomic<bool> synced_{false};
    std::atomic<std::int64_t> broken_since_ns_{0}; // 0: healthy
};

} // namespace mtlsguard::kube
