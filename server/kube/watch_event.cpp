// The wire format of a Kubernetes watch: JSON event lines and Status objects; pure functions.
#include "server/kube/watch_event.hpp"

#include "server/input/json_dom.hpp"

namespace mtlsguard::kube {
namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

// simdjson's DOM converted to nlohmann::json: several times faster than nlohmann's own parser with
// a depth callback, which dominated reading a 50,000-pod list. nullopt for anything simdjson
// refuses: the reference parser then decides, and words the error.
std::optional<json> parse_fast(std::string_view text, std::size_t max_depth) {
    static thread_local dom::parser reused;
    const input::DomParse parse = input::parse_dom(reused, text, max_depth);
    if (!parse.root)
        return std::nullopt;
    json out;
    input::to_json(*parse.root, out, input::ManagedFields::Keep);
    return out;
}

WatchLine malformed(std::string why) {
    WatchLine out;
    out.outcome = WatchLine::Outcome::Malformed;
    out.error = std::move(why);
    return out;
}

std::optional<WatchEventType> parse_type(const std::string& text) {
    if (text == "ADDED")
        return WatchEventType::Added;
    if (text == "MODIFIED")
        return WatchEventType::Modified;
    if (text == "DELETED")
        return WatchEventType::Deleted;
    if (text == "BOOKMARK")
        return WatchEventType::Bookmark;
    if (text == "ERROR")
        return WatchEventType::Error;
    return std::nullopt;
}

std::string string_member(const json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} // namespace

std::string_view to_string(WatchEventType type) noexcept {
    switch (type) {
    case WatchEventType::Added:
        return "ADDED";
    case WatchEventType::Modified:
        return "MODIFIED";
    case WatchEventType::Deleted:
        return "DELETED";
    case WatchEventType::Bookmark:
        return "BOOKMARK";
    case WatchEventType::Error:
        return "ERROR";
    }
    return "UNKNOWN";
}

std::optional<ApiStatus> parse_status(const json& object) noexcept {
    try {
        if (!object.is_object())
            return std::nullopt;
        auto code = object.find("code");
        const bool has_code = code != object.end() && code->is_number_integer();
        if (string_member(object, "kind") != "Status" && !has_code)
            return std::nullopt;
        ApiStatus status;
        if (has_code) {
            const auto value = code->get<std::int64_t>();
            status.code = value >= 0 && value <= 999 ? static_cast<int>(value) : 0;
        }
        status.reason = string_member(object, "reason");
        status.message = string_member(object, "message");
        return status;
    } catch (...) {
        return std::nullopt;
    }
}

std::string describe(const ApiStatus& status) {
    std::string out = std::to_string(status.code);
    if (!status.reason.empty())
        out += " " + status.reason;
    if (!status.message.empty())
        out += ": " + status.message;
    return out;
}

std::optional<json> parse_json_limited(std::string_view text, std::string& error,
                                       std::size_t max_depth) noexcept {
    try {
        // Every value of a document simdjson accepts sits within max_depth containers: the
        // reference parser below would accept it too, and build the same value.
        if (auto fast = parse_fast(text, max_depth))
            return fast;
        bool too_deep = false;
        // Values below the limit are dropped as they are parsed; the parser itself is iterative.
        json::parser_callback_t limit = [&](int depth, json::parse_event_t, json&) {
            if (static_cast<std::size_t>(depth) > max_depth) {
                too_deep = true;
                return false;
            }
            return true;
        };
        json value = json::parse(text.begin(), text.end(), limit);
        if (too_deep) {
            error = "JSON nested deeper than " + std::to_string(max_depth) + " levels";
            return std::nullopt;
        }
        return value;
    } catch (const json::exception& e) {
        error = e.what();
    } catch (const std::exception& e) {
        error = e.what();
    } catch (...) {
        error = "unreadable JSON";
    }
    return std::nullopt;
}

WatchLine decode_watch_line(std::string_view line) noexcept {
    try {
        if (line.find_first_not_of(" \t\r\n") == std::string_view::npos)
            return {};
        std::string error;
        auto parsed = parse_json_limited(line, error);
        if (!parsed)
            return malformed("not JSON: " + error);
        json& root = *parsed;
        if (!root.is_object())
            return malformed("a watch event must be a JSON object");
        auto type_field = root.find("type");
        if (type_field == root.end() || !type_field->is_string())
            return malformed("the event has no type");
        auto type = parse_type(type_field->get<std::string>());
        if (!type)
            return malformed("unknown event type \"" + type_field->get<std::string>() + "\"");
        auto object = root.find("object");
        if (object == root.end() || !object->is_object())
            return malformed(std::string(to_string(*type)) + " event without an object");

        WatchLine out;
        out.outcome = WatchLine::Outcome::Event;
        out.event.type = *type;
        if (*type == WatchEventType::Error) {
            auto status = parse_status(*object);
            // An ERROR whose object is not a Status still ends the watch; code 0 says "unknown".
            out.event.status = status ? std::move(*status) : ApiStatus{0, "", "not a Status"};
            out.event.object = std::move(*object);
            return out;
        }
        auto metadata = object->find("metadata");
        if (metadata == object->end() || !metadata->is_object())
            return malformed(std::string(to_string(*type)) + " event without metadata");
        out.event.resource_version = string_member(*metadata, "resourceVersion");
        if (out.event.resource_version.empty())
            return malformed(std::string(to_string(*type)) +
                             " event without metadata.resourceVersion");
        out.event.object = std::move(*object);
        return out;
    } catch (const std::exception& e) {
        return malformed(std::string("internal error: ") + e.what());
    } catch (...) {
        return malformed("internal error");
    }
}

bool LineSplitter::feed(std::string_view data,
                        const std::function<bool(std::string_view)>& on_line) {
    auto emit = [&](std::string_view line) {
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        return on_line(line);
    };
    while (!data.empty()) {
        const auto newline = data.find('\n');
        if (newline == std::string_view::npos) {
            if (partial_.size() + data.size() > max_line_)
                return false;
            partial_.append(data);
            return true;
        }
        if (partial_.size() + newline > max_line_)
            return false;
        bool keep_going = true;
        if (partial_.empty()) {
            keep_going = emit(data.substr(0, newline)); // the common case: no copy
        } else {
            partial_.append(data.substr(0, newline));
            const std::string line = std::move(partial_);
            partial_.clear();
            keep_going = emit(line);
        }
        data.remove_prefix(newline + 1);
        if (!keep_going)
            return false;
    }
    return true;
}

} // namespace mtlsguard::kube
