// The wire format of a Kubernetes watch: JSON event lines and Status objects; pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mtlsguard::kube {

enum class WatchEventType : std::uint8_t { Added, Modified, Deleted, Bookmark, Error };
std::string_view to_string(WatchEventType type) noexcept;

// A meta.k8s.io/v1 Status: the body of an HTTP error, and the object of an ERROR event.
struct ApiStatus {
    int code = 0;       // HTTP status code it stands for; 410 means the resourceVersion is gone
    std::string reason; // "Expired", "Gone", "TooManyRequests", ...
    std::string message;
};

// Reads a Status object; nullopt when `object` is not one (no kind Status and no integer code).
std::optional<ApiStatus> parse_status(const nlohmann::json& object) noexcept;

// "410 Expired: too old resource version: 5 (10)", for logs.
std::string describe(const ApiStatus& status);

struct WatchEvent {
    WatchEventType type = WatchEventType::Added;
    // ADDED/MODIFIED/DELETED: the object (for DELETED, its last state). BOOKMARK: an object of the
    // watched kind carrying only metadata.resourceVersion. ERROR: the Status.
    nlohmann::json object;
    std::string resource_version; // metadata.resourceVersion of the object; empty for ERROR
    ApiStatus status;             // ERROR only
};

struct WatchLine {
    enum class Outcome : std::uint8_t { Event, Blank, Malformed };
    Outcome outcome = Outcome::Blank;
    WatchEvent event;  // Event
    std::string error; // Malformed: why
};

// Decodes one line of a watch stream (`{"type":"ADDED","object":{...}}`). Blank lines are allowed
// between events. Malformed: not JSON, nested deeper than `max_json_depth`, an unknown type, no
// object, or an event without metadata.resourceVersion (a client could not resume after it).
// Never throws.
WatchLine decode_watch_line(std::string_view line) noexcept;

inline constexpr std::size_t max_json_depth = 100;

// Parses JSON text with a nesting limit (deep documents would otherwise cost unbounded work).
// Returns nullopt with `error` set on failure. Never throws.
std::optional<nlohmann::json> parse_json_limited(std::string_view text, std::string& error,
                                                 std::size_t max_depth = max_json_depth) noexcept;

// Cuts a byte stream into lines wherever its pieces happen to end: a watch event may be split
// across HTTP chunks, and one chunk may hold several events. A trailing '\r' is dropped.
class LineSplitter {
  public:
    explicit LineSplitter(std::size_t max_line_bytes) : max_line_(max_line_bytes) {}

    // Feeds the next piece; calls `on_line` for every line it completes. Returns false, and stops,
    // when `on_line` returns false or a line grows beyond the limit (the stream must be dropped).
    bool feed(std::string_view data, const std::function<bool(std::string_view)>& on_line);
    // Bytes of an incomplete line held back; nonzero at the end of a stream means it was cut.
    std::size_t pending() const noexcept { return partial_.size(); }
    void reset() noexcept { partial_.clear(); }

  private:
    std::size_t max_line_;
    std::string partial_;
};

} // namespace mtlsguard::kube
