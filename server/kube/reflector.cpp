// One resource kept in step with the API server, as client-go's reflector: list, then watch.
#include "server/kube/reflector.hpp"

#include "analysis/model/json_node.hpp"
#include "server/input/json_dom.hpp"
#include "server/kube/list_item.hpp"

#include <spdlog/logger.h>

namespace mtlsguard::kube {
namespace {

std::int64_t to_ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The API server says "Too large resource version" (504) when it lags behind the resourceVersion
// asked for; client-go relists rather than retrying the same watch forever.
bool resource_version_too_large(const ApiStatus& status) {
    return status.code == 504 &&
           status.message.find("Too large resource version") != std::string::npos;
}

// A list page's parse, with a parser per thread of its own: the page's DOM is read while the sinks
// run, and nothing they call may parse into it.
simdjson::dom::parser& page_parser() noexcept {
    static thread_local simdjson::dom::parser reused;
    return reused;
}

input::DomParse parse_page(const std::string& text) noexcept {
    return input::parse_dom_in_place(page_parser(), text, max_json_depth);
}

// A parser holds about 14 bytes per byte of the largest page it read (a page of 500 real pods is
// 3 MB): kept between the pages of a list, given back when the list ends, not held until the next
// relist.
void release_page_parser() noexcept {
    page_parser() = simdjson::dom::parser{};
}

// What is wrong with a list page ("" when nothing), on either parse; reads its resourceVersion and
// continue token.
template <class Node>
std::string check_page(const Node& page, std::string& resource_version, std::string& token) {
    if (!page.is_object())
        return "not an object";
    const auto metadata = page.find("metadata");
    const auto items = page.find("items");
    if (!metadata || !metadata->is_object())
        return "no metadata";
    if (items && !items->is_null() && !items->is_array())
        return "items is not a list";
    const auto rv = metadata->find("resourceVersion");
    if (!rv || !rv->is_string() || rv->string().empty())
        return "no metadata.resourceVersion";
    resource_version = std::string(rv->string());
    const auto cont = metadata->find("continue");
    token = cont && cont->is_string() ? std::string(cont->string()) : std::string();
    return {};
}

} // namespace

std::string encode_query_value(std::string_view value) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
            u == '-' || u == '.' || u == '_' || u == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0x0F]);
        }
    }
    return out;
}

std::string continue_hint(std::string_view page) {
    constexpr std::string_view key = "\"continue\":\"";
    const std::string_view head = page.substr(0, page.find("\"items\""));
    const auto at = head.find(key);
    if (at == std::string_view::npos)
        return {};
    const auto start = at + key.size();
    const auto end = head.find('"', start);
    if (end == std::string_view::npos)
        return {};
    const std::string_view token = head.substr(start, end - start);
    return token.find('\\') == std::string_view::npos ? std::string(token) : std::string();
}

Reflector::Reflector(boost::asio::any_io_executor executor, std::shared_ptr<ApiClient> client,
                     ResourceTarget target, std::shared_ptr<ReflectorSink> sink,
                     std::shared_ptr<ReflectorCounters> counters, ReflectorOptions options,
                     std::shared_ptr<spdlog::logger> logger)
    : executor_(executor), client_(std::move(client)), target_(std::move(target)),
      sink_(std::move(sink)), counters_(std::move(counters)), options_(options),
      logger_(std::move(logger)),
      backoff_(options.backoff, options.seed.value_or(std::random_device{}())),
      random_(options.seed.value_or(std::random_device{}()) ^ 0x9E3779B97F4A7C15ull),
      retry_timer_(executor), splitter_(options.max_event_bytes) {}

std::optional<std::chrono::steady_clock::time_point> Reflector::broken_since() const noexcept {
    const auto ns = broken_since_ns_.load(std::memory_order_acquire);
    if (ns == 0)
        return std::nullopt;
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::nanoseconds(ns)));
}

void Reflector::start() {
    list(false);
}

void Reflector::stop() {
    stopped_ = true;
    retry_timer_.cancel();
    cancel_call();
    listing_ = false;
}

void Reflector::cancel_call() {
    if (call_)
        call_->cancel();
    call_.reset();
}

std::string Reflector::query_prefix() const {
    std::string query = target_.path + "?";
    if (!target_.field_selector.empty())
        query += "fieldSelector=" + encode_query_value(target_.field_selector) + "&";
    return query;
}

void Reflector::list(bool relist) {
    if (stopped_)
        return;
    if (relist && synced())
        counters_->relists.fetch_add(1, std::memory_order_relaxed);
    listing_ = true;
    continue_.clear();
    list_resource_version_.clear();
    request_page();
}

void Reflector::request_page() {
    // No resourceVersion: a consistent read of the current state, paginated.
    HttpRequest request;
    request.target = query_prefix() + "limit=" + std::to_string(options_.page_size);
    if (!continue_.empty())
        request.target += "&continue=" + encode_query_value(continue_);
    request.accept = target_.metadata_only ? metadata_list_accept : "application/json";
    request.timeout = options_.request_timeout;
    request.body_limit = options_.max_page_bytes;
    request.body_storage = std::move(page_buffer_);
    request.body_padding = simdjson::SIMDJSON_PADDING;
    // Weak: the call in flight must not keep the reflector alive (it holds the call).
    call_ = client_->get(std::move(request), [weak = weak_from_this()](HttpResult result) {
        if (auto self = weak.lock())
            self->on_page(std::move(result));
    });
}

void Reflector::on_page(HttpResult result) {
    if (stopped_)
        return;
    call_.reset();
    if (!result.ok()) {
        sink_->list_abandoned();
        listing_ = false;
        if (!result.error && result.status == 410 && !continue_.empty()) {
            // The continue token outlived the server's snapshot: the list must start over.
            logger_->info("list of {}: continue token expired; listing again from the start",
                          target_.name);
            healthy();
            return list(true);
        }
        return after_http_error(result, true);
    }
    // The next page is asked for before this one is parsed, with the token its text states: the
    // server prepares it meanwhile. Its answer runs on this strand, so it cannot overtake these
    // items; if the parse finds another token (or a bad page), that request is cancelled.
    const std::string hinted = continue_hint(result.body);
    if (!hinted.empty()) {
        continue_ = hinted;
        page_buffer_ = std::move(spare_page_buffer_);
        request_page();
    }
    // simdjson's parse is read in place; only when it refuses the text does nlohmann::json's
    // reference parser read it (and word the error).
    input::DomParse parse = parse_page(result.body);
    std::optional<nlohmann::json> document;
    std::string problem;
    std::string resource_version;
    std::string token;
    if (parse.root) {
        problem = check_page(input::DomNode(*parse.root), resource_version, token);
    } else {
        std::string parse_error;
        document = parse_json_limited(result.body, parse_error);
        problem = document
                      ? check_page(model::decoding::JsonNode{&*document}, resource_version, token)
                      : "not JSON: " + parse_error;
    }
    // The parse holds no reference to the text: the buffer serves a later page.
    (hinted.empty() ? page_buffer_ : spare_page_buffer_) = std::move(result.body);
    // The request made with the hint stands only if the parse confirms it (without a hint, no
    // request is in flight).
    const bool asked = !hinted.empty() && problem.empty() && token == hinted;
    if (!asked)
        cancel_call();
    if (!problem.empty()) {
        page_buffer_ = std::string{};
        spare_page_buffer_ = std::string{};
        sink_->list_abandoned();
        listing_ = false;
        return retry(true, "list of " + target_.name + ": " + problem);
    }
    healthy();
    list_resource_version_ = std::move(resource_version);
    // Without a token in the text (or another one), the next page is asked for now, before this
    // one's items are decoded.
    continue_ = std::move(token);
    if (!continue_.empty() && !asked)
        request_page();
    if (parse.root) {
        const auto items = input::DomNode(*parse.root).find("items");
        if (items && items->is_array()) {
            items->for_each_item([&](std::size_t, const input::DomNode& item) {
                // Not an object: nothing to key it by; the API server never sends this.
                if (stopped_ || !item.is_object())
                    return; // after a stop, the sink stopped the reflector
                if (sink_->list_item_parsed(ListItem{item, target_.api_version, target_.kind}))
                    return;
                nlohmann::json object;
                input::to_json(item.element(), object, input::ManagedFields::Drop);
                stamp(object);
                sink_->list_item(std::move(object));
            });
        }
    } else if (auto items = document->find("items");
               items != document->end() && items->is_array()) {
        for (auto& item : *items) {
            if (stopped_)
                return; // the sink stopped the reflector
            if (!item.is_object())
                continue; // nothing to key it by; the API server never sends this
            stamp(item);
            sink_->list_item(std::move(item));
        }
    }
    if (stopped_)
        return;
    parse = {};
    document.reset();
    if (!continue_.empty())
        return;
    release_page_parser();
    page_buffer_ = std::string{};
    spare_page_buffer_ = std::string{};
    listing_ = false;
    resource_version_ = list_resource_version_;
    // Synced before the sink hears of it: the sink may ask whether every reflector is.
    synced_.store(true, std::memory_order_release);
    sink_->list_done();
    note_event();
    watch();
}

void Reflector::watch() {
    if (stopped_)
        return;
    std::uniform_int_distribution<std::int64_t> pick(
        options_.min_watch_timeout.count(),
        std::max(options_.min_watch_timeout, options_.max_watch_timeout).count());
    const std::chrono::seconds timeout(pick(random_));
    HttpRequest request;
    request.target = query_prefix() + "watch=true&allowWatchBookmarks=true&resourceVersion=" +
                     encode_query_value(resource_version_) +
                     "&timeoutSeconds=" + std::to_string(timeout.count());
    request.accept = target_.metadata_only ? metadata_watch_accept : "application/json";
    request.timeout = options_.request_timeout;
    request.stream_idle_timeout = timeout + options_.watch_idle_grace;
    request.body_limit = std::size_t{1} << 20; // an error answer's Status
    splitter_.reset();
    watch_decided_ = false;
    watch_events_ = 0;
    watch_started_ = std::chrono::steady_clock::now();
    // Weak, as for lists: the stream must not keep the reflector that holds it alive.
    StreamHandlers handlers;
    handlers.on_open = [weak = weak_from_this()] {
        if (auto self = weak.lock())
            self->healthy();
    };
    handlers.on_data = [weak = weak_from_this()](std::string_view data) {
        auto self = weak.lock();
        return self && self->on_watch_data(data);
    };
    handlers.on_end = [weak = weak_from_this()](HttpResult result) {
        if (auto self = weak.lock())
            self->on_watch_end(std::move(result));
    };
    call_ = client_->stream(request, std::move(handlers));
}

bool Reflector::on_watch_data(std::string_view data) {
    if (stopped_ || watch_decided_)
        return false;
    const bool more =
        splitter_.feed(data, [this](std::string_view line) { return on_watch_line(line); });
    if (!more && !watch_decided_ && !stopped_) {
        // The splitter refused a line: an event beyond the size limit.
        watch_decided_ = true;
        call_.reset();
        retry(false, "watch of " + target_.name + ": an event is larger than " +
                         std::to_string(options_.max_event_bytes) + " bytes");
    }
    return more;
}

bool Reflector::on_watch_line(std::string_view line) {
    if (stopped_)
        return false;
    WatchLine decoded = decode_watch_line(line);
    switch (decoded.outcome) {
    case WatchLine::Outcome::Blank:
        return true;
    case WatchLine::Outcome::Malformed:
        watch_decided_ = true;
        call_.reset();
        retry(false, "watch of " + target_.name + ": malformed event: " + decoded.error);
        return false;
    case WatchLine::Outcome::Event:
        break;
    }
    WatchEvent& event = decoded.event;
    switch (event.type) {
    case WatchEventType::Error:
        watch_decided_ = true;
        call_.reset();
        if (event.status.code == 410) {
            // The resourceVersion was compacted away: only a new list can catch up.
            logger_->info("watch of {}: {}; listing again", target_.name, describe(event.status));
            list(true);
        } else if (resource_version_too_large(event.status)) {
            retry(true, "watch of " + target_.name + ": " + describe(event.status));
        } else {
            retry(false, "watch of " + target_.name + ": ERROR event " + describe(event.status));
        }
        return false;
    case WatchEventType::Bookmark:
        // Nothing changed; the resourceVersion moves on so that a resumed watch starts later.
        resource_version_ = std::move(event.resource_version);
        ++watch_events_;
        return true;
    case WatchEventType::Added:
    case WatchEventType::Modified:
    case WatchEventType::Deleted:
        stamp(event.object);
        sink_->watch_event(event.type, std::move(event.object));
        resource_version_ = std::move(event.resource_version);
        ++watch_events_;
        note_event();
        return !stopped_;
    }
    return true;
}

void Reflector::on_watch_end(HttpResult result) {
    if (stopped_ || watch_decided_)
        return;
    call_.reset();
    if (result.ok()) {
        const auto lasted = std::chrono::steady_clock::now() - watch_started_;
        if (splitter_.pending() > 0)
            return retry(false, "watch of " + target_.name + ": the stream ended inside an event");
        if (watch_events_ == 0 && lasted < options_.min_healthy_watch)
            return retry(false, "watch of " + target_.name + ": the server ended it at once");
        // The server ended the watch at timeoutSeconds: resume where it stopped.
        logger_->debug("watch of {} ended by the server; resuming at {}", target_.name,
                       resource_version_);
        return watch();
    }
    if (!result.error && result.status == 410) {
        logger_->info("watch of {}: {}; listing again", target_.name, result.describe());
        return list(true);
    }
    after_http_error(result, false);
}

void Reflector::after_http_error(const HttpResult& result, bool listing) {
    if (!result.error) {
        if (result.status == 401)
            client_->token_rejected(); // the token may have rotated: re-read it before retrying
        if (result.status == 404)
            sink_->resource_missing();
    }
    const std::string what = (listing ? "list of " : "watch of ") + target_.name;
    // Before the first list there is nothing to resume; after it, a watch resumes.
    retry(listing || resource_version_.empty(), what + ": " + result.describe(),
          result.error ? std::nullopt : result.retry_after);
}

void Reflector::retry(bool relist, std::string why,
                      std::optional<std::chrono::seconds> retry_after) {
    if (stopped_)
        return;
    const auto now = std::chrono::steady_clock::now();
    std::int64_t expected = 0;
    broken_since_ns_.compare_exchange_strong(expected, to_ns(now), std::memory_order_acq_rel);
    auto delay = backoff_.next(now);
    if (retry_after)
        delay = std::max<std::chrono::milliseconds>(delay, *retry_after);
    logger_->warn("{}; retrying in {} ms", why, delay.count());
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([self = shared_from_this(), relist](boost::system::error_code ec) {
        if (ec || self->stopped_)
            return;
        if (relist) {
            self->list(true);
        } else {
            self->counters_->watch_restarts.fetch_add(1, std::memory_order_relaxed);
            self->watch();
        }
    });
}

void Reflector::healthy() {
    broken_since_ns_.store(0, std::memory_order_release);
}

void Reflector::note_event() {
    counters_->last_event_ns.store(to_ns(std::chrono::steady_clock::now()),
                                   std::memory_order_relaxed);
}

void Reflector::stamp(nlohmann::json& object) const {
    object["apiVersion"] = target_.api_version;
    object["kind"] = target_.kind;
}

} // namespace mtlsguard::kube
