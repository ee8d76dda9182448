// Reads manifests from files, directories and stdin: multi-document YAML, JSON, `kind: List`.
#include "server/input/manifest_loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <libfyaml.h>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <unordered_map>

namespace mtlsguard::input {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// YAML 1.2 core-schema resolution of a plain scalar: null, booleans, integers, floats, else text.
json plain_scalar(std::string_view text) {
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
        return nullptr;
    if (text == "true" || text == "True" || text == "TRUE")
        return true;
    if (text == "false" || text == "False" || text == "FALSE")
        return false;
    if (std::string_view("0123456789+-.eE").find(text[0]) == std::string_view::npos)
        return std::string(text); // not a number either
    // strtoll and strtod read up to a NUL; the input has none (refused before parsing).
    std::string copy(text);
    const char* begin = copy.c_str();
    char* end = nullptr;
    const bool sign = text[0] == '-' || text[0] == '+';
    const std::string_view digits = text.substr(sign ? 1 : 0);
    if (!digits.empty() &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        errno = 0;
        const long long v = std::strtoll(begin, &end, 10);
        if (errno == 0 && *end == '\0')
            return v;
        return copy; // out of range: keep the text rather than guess
    }
    if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o')) {
        const char* number = begin + (sign ? 1 : 0) + 2;
        errno = 0;
        const long long v = std::strtoll(number, &end, digits[1] == 'x' ? 16 : 8);
        if (errno == 0 && *end == '\0' && end != number)
            return text[0] == '-' ? -v : v;
        return copy;
    }
    const bool floaty = text.find_first_of("0123456789") != std::string_view::npos &&
                        text.find_first_not_of("0123456789+-.eE") == std::string_view::npos;
    if (floaty) {
        errno = 0;
        const double v = std::strtod(begin, &end);
        if (errno == 0 && *end == '\0' && std::isfinite(v))
            return v;
    }
    return copy;
}

// Whether plain_scalar could make something other than a string of `text`: only when it is empty
// or starts with a character that begins null, a boolean or a number. Most plain scalars of a
// manifest (keys, names, labels) do not, and skip its comparisons and copies.
bool may_be_typed(std::string_view text) {
    return text.empty() ||
           std::string_view("~nNtTfF+-.eE0123456789").find(text[0]) != std::string_view::npos;
}

json plain_value(std::string_view text) {
    return may_be_typed(text) ? plain_scalar(text) : json(std::string(text));
}

// A map key as text: a typed plain key is written as JSON writes its value, null as "".
std::string key_text(json&& value) {
    if (value.is_string())
        return std::move(value.get_ref<std::string&>());
    return value.is_null() ? std::string() : value.dump();
}

// Offset of the first byte that is not part of valid UTF-8 text, or is NUL unless `allow_nul`;
// npos when there is none. libfyaml stops at such a byte as if the input ended there, which would
// silently drop the rest of a document. Eight ASCII bytes at a time: this runs over every byte of
// a large file.
std::size_t first_invalid_byte(std::string_view s, bool allow_nul = false) {
    constexpr std::uint64_t high = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
    std::size_t i = 0;
    while (i < s.size()) {
        if (i + 8 <= s.size()) {
            std::uint64_t w = 0;
            std::memcpy(&w, s.data() + i, 8);
            if ((w & high) == 0 && (allow_nul || ((w - ones) & ~w & high) == 0)) {
                i += 8;
                continue;
            }
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0 && !allow_nul)
            return i;
        if (c < 0x80) {
            ++i;
            continue;
        }
        const std::size_t n = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 0;
        if (n == 0 || i + n >= s.size())
            return i;
        for (std::size_t k = 1; k <= n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2)
                return i;
        i += n + 1;
    }
    return std::string_view::npos;
}

// A double-quoted escape may make text that is not UTF-8 (a NUL is allowed there).
bool valid_utf8(std::string_view s) {
    return first_invalid_byte(s, true) == std::string_view::npos;
}

// Whether a plain scalar's raw text is on one line, so that it is its value as it is: a plain
// scalar has no escapes, and only a line break folds it. NEL, LS and PS break lines in YAML 1.1.
bool one_line(std::string_view raw) {
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const auto c = static_cast<unsigned char>(raw[i]);
        if (c == '\n' || c == '\r')
            return false;
        if (c >= 0x80 &&
            (raw.substr(i).starts_with("\xc2\x85") || raw.substr(i).starts_with("\xe2\x80\xa8") ||
             raw.substr(i).starts_with("\xe2\x80\xa9")))
            return false;
    }
    return true;
}

// The value of four hex digits at the start of `text`.
std::optional<unsigned> hex4(std::string_view text) {
    if (text.size() < 4)
        return std::nullopt;
    unsigned code = 0;
    for (const char h : text.substr(0, 4)) {
        const int digit = h >= '0' && h <= '9'   ? h - '0'
                          : h >= 'a' && h <= 'f' ? h - 'a' + 10
                          : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                 : -1;
        if (digit < 0)
            return std::nullopt;
        code = code * 16 + static_cast<unsigned>(digit);
    }
    return code;
}

// A code point of the Basic Multilingual Plane as UTF-8.
void append_utf8(unsigned code, std::string& out) {
    if (code < 0x80) {
        out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (code >> 6)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xE0 | (code >> 12)));
        out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
}

// The text of a one-line double-quoted scalar whose raw form is printable ASCII with only JSON's
// escapes, written to `out`; false for anything else (folded lines, YAML's other escapes, other
// bytes), which is left to libfyaml. Kubernetes writes JSON in annotations this way. libfyaml has
// already checked the escapes when it scanned.
bool unescape_json_style(std::string_view raw, std::string& out) {
    out.clear();
    std::size_t i = 0;
    while (i < raw.size()) {
        std::size_t run = i; // up to the next escape, copied at once
        for (; run < raw.size() && raw[run] != '\\'; ++run) {
            const auto c = static_cast<unsigned char>(raw[run]);
            if ((c < 0x20 && c != '\t') || c >= 0x7f)
                return false;
        }
        out.append(raw.data() + i, run - i);
        if (run == raw.size())
            return true;
        i = run + 2; // past the backslash and the escape's letter
        if (i > raw.size())
            return false;
        switch (raw[run + 1]) {
        case '"':
            out.push_back('"');
            break;
        case '\\':
            out.push_back('\\');
            break;
        case '/':
            out.push_back('/');
            break;
        case 'b':
            out.push_back('\b');
            break;
        case 'f':
            out.push_back('\f');
            break;
        case 'n':
            out.push_back('\n');
            break;
        case 'r':
            out.push_back('\r');
            break;
        case 't':
            out.push_back('\t');
            break;
        case 'u': {
            const auto code = hex4(raw.substr(i));
            // NUL and surrogates are left to libfyaml's rules.
            if (!code || *code == 0 || (*code >= 0xD800 && *code <= 0xDFFF))
                return false;
            append_utf8(*code, out);
            i += 4;
            break;
        }
        default:
            return false;
        }
    }
    return true;
}

// Where libfyaml saw something, 0-based within the chunk it parsed.
struct Mark {
    int line = 0;
    int column = 0;
};

// A document refused while it is read: for its syntax, or for what it is (too deep, too big,
// duplicate key...).
struct YamlRefused {
    Mark mark;
    std::string reason;
    bool syntax = false; // said as "invalid YAML at ...", like the parser's own errors
};

// Builds JSON straight from parser events: no YAML node tree, and limits on depth, size and alias
// expansion are enforced as the document is read. Keys must be unique scalars.
class YamlToJson {
  public:
    explicit YamlToJson(const LoadLimits& limits) : limits_(limits) {}

    json result;

    // A plain, untagged scalar follows the core schema; quoted, block and tagged ones stay strings.
    // `text` is valid UTF-8 when it is the input itself (checked first); `check_utf8` when it was
    // unescaped, as a double-quoted escape may make bytes that are not.
    void scalar(const Mark& mark, std::string_view anchor, std::string_view text, bool plain,
                bool check_utf8) {
        if (check_utf8 && !valid_utf8(text))
            fail(mark, "a string is not valid UTF-8");
        if (anchor.empty() && awaiting_key()) {
            // Most scalars are keys: straight into the map, without a JSON value in between.
            count(mark, 1);
            set_key(mark, plain ? key_text(plain_value(text)) : std::string(text));
            return;
        }
        put(mark, plain ? plain_value(text) : json(std::string(text)), register_anchor(anchor), 1);
    }
    void alias(const Mark& mark, std::string_view name) {
        auto id = anchor_ids_.find(std::string(name));
        if (id == anchor_ids_.end())
            throw YamlRefused{mark, "the referenced anchor is not defined", true};
        if (std::any_of(stack_.begin(), stack_.end(),
                        [&](const Frame& f) { return f.anchor == id->second; }))
            fail(mark, "a YAML alias refers to a value that contains it (recursive anchor)");
        const auto& [value, nodes] = anchors_.at(id->second);
        alias_nodes_ += nodes;
        if (alias_nodes_ > limits_.max_alias_nodes)
            fail(mark, "YAML aliases expand to more than " +
                           std::to_string(limits_.max_alias_nodes) + " values");
        put(mark, value, 0, nodes);
    }
    void open(const Mark& mark, json container, std::string_view anchor) {
        count(mark, 1);
        if (stack_.size() + 1 > limits_.max_depth)
            fail(mark,
                 "document is nested deeper than " + std::to_string(limits_.max_depth) + " levels");
        if (awaiting_key())
            fail(mark, "a map key is not a scalar");
        const bool is_map = container.is_object();
        // Registered before the contents, so an alias inside refers to this (recursive) value.
        const std::size_t id = register_anchor(anchor);
        stack_.push_back(Frame{std::move(container), id, nodes_, is_map, nullptr, mark});
    }
    void close() {
        if (stack_.empty())
            return; // the parser balances its events; stay safe if it ever did not
        Frame frame = std::move(stack_.back());
        stack_.pop_back();
        if (frame.is_map && frame.slot)
            fail(frame.mark, "a map key has no value");
        attach(frame.mark, std::move(frame.value), frame.anchor, nodes_ - frame.nodes_at_start + 1);
    }

  private:
    struct Frame {
        json value;
        std::size_t anchor = 0; // 0: none
        std::size_t nodes_at_start = 0;
        bool is_map = false;
        json* slot = nullptr; // in a map, the value of the key just read, until it is read
        Mark mark;
    };

    bool awaiting_key() const {
        return !stack_.empty() && stack_.back().is_map && !stack_.back().slot;
    }

    // The key goes into the map at once (one lookup, which also finds a duplicate) and its value
    // is put in the slot it leaves.
    void set_key(const Mark& mark, std::string key) {
        Frame& parent = stack_.back();
        auto [it, inserted] = parent.value.get_ref<json::object_t&>().try_emplace(std::move(key));
        if (!inserted) // try_emplace leaves `key` alone then
            fail(mark, "duplicate key \"" + key + "\"");
        parent.slot = &it->second;
    }

    [[noreturn]] static void fail(const Mark& mark, const std::string& reason) {
        throw YamlRefused{mark, reason};
    }

    // An anchor name may be defined again; an alias refers to the latest definition, so each
    // definition gets its own id.
    std::size_t register_anchor(std::string_view name) {
        if (name.empty())
            return 0;
        anchor_ids_[std::string(name)] = ++last_anchor_;
        return last_anchor_;
    }

    void count(const Mark& mark, std::size_t n) {
        nodes_ += n;
        if (nodes_ > limits_.max_nodes_per_document)
            fail(mark, "document is too large (more than " +
                           std::to_string(limits_.max_nodes_per_document) + " values)");
    }

    void put(const Mark& mark, json value, std::size_t anchor, std::size_t nodes) {
        count(mark, nodes);
        attach(mark, std::move(value), anchor, nodes);
    }

    void attach(const Mark& mark, json value, std::size_t anchor, std::size_t nodes) {
        if (anchor != 0)
            anchors_[anchor] = {value, nodes};
        if (stack_.empty()) {
            result = std::move(value);
            return;
        }
        Frame& parent = stack_.back();
        if (!parent.is_map) {
            parent.value.push_back(std::move(value));
            return;
        }
        if (!parent.slot) {
            if (value.is_structured())
                fail(mark, "a map key is not a scalar");
            set_key(mark, key_text(std::move(value)));
            return;
        }
        *parent.slot = std::move(value);
        parent.slot = nullptr;
    }

    const LoadLimits& limits_;
    std::vector<Frame> stack_;
    std::unordered_map<std::string, std::size_t> anchor_ids_;
    std::unordered_map<std::size_t, std::pair<json, std::size_t>> anchors_;
    std::size_t last_anchor_ = 0;
    std::size_t nodes_ = 0;
    std::size_t alias_nodes_ = 0;
};

std::string_view token_text(fy_token* token) {
    std::size_t length = 0;
    const char* text = token ? fy_token_get_text(token, &length) : nullptr;
    return text ? std::string_view(text, length) : std::string_view();
}

// Whether `part` lies inside `whole`'s bytes (std::less: a total order over any pointers).
bool within(std::string_view whole, std::string_view part) {
    const std::less<const char*> before;
    return !before(part.data(), whole.data()) &&
           !before(whole.data() + whole.size(), part.data() + part.size());
}

Mark event_mark(fy_event* event) {
    const fy_mark* mark = fy_event_start_mark(event);
    return mark ? Mark{mark->line, mark->column} : Mark{};
}

struct ParserDeleter {
    void operator()(fy_parser* parser) const { fy_parser_destroy(parser); }
};
// libfyaml 0.7 frees the errors a diagnostic object collected only when collecting is turned
// off, not when the object is destroyed (LeakSanitizer found them).
void drop_collected_errors(fy_diag* diag) {
    fy_diag_set_collect_errors(diag, false);
    fy_diag_reset_error(diag);
}
struct DiagDeleter {
    void operator()(fy_diag* diag) const {
        drop_collected_errors(diag);
        fy_diag_unref(diag);
    }
};

// One libfyaml event, given back to its parser when it goes out of scope.
class Event {
  public:
    Event(fy_parser* parser, fy_event* event) : parser_(parser), event_(event) {}
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    ~Event() {
        if (event_)
            fy_parser_event_free(parser_, event_);
    }
    fy_event* get() const { return event_; }

  private:
    fy_parser* parser_;
    fy_event* event_;
};

// A libfyaml event parser, reused for every document of a file. Its errors are collected in a
// diagnostic object of our own rather than printed to stderr.
class YamlReader {
  public:
    YamlReader() {
        fy_diag_cfg diag_cfg;
        fy_diag_cfg_default(&diag_cfg);
        diag_cfg.fp = nullptr;
        diag_cfg.output_fn = [](fy_diag*, void*, const char*, std::size_t) {};
        diag_.reset(fy_diag_create(&diag_cfg));
        if (!diag_)
            throw std::bad_alloc();
        fy_diag_set_collect_errors(diag_.get(), true);
        fy_parse_cfg cfg{};
        cfg.flags = static_cast<fy_parse_cfg_flags>(FYPCF_QUIET | FYPCF_COLLECT_DIAG);
        cfg.diag = diag_.get();
        parser_.reset(fy_parser_create(&cfg));
        if (!parser_)
            throw std::bad_alloc();
    }

    // The one document of `text` as JSON, null when it has none. Throws YamlRefused.
    json parse(std::string_view text, const LoadLimits& limits) {
        fy_parser* parser = parser_.get();
        // Errors of an earlier document must not be taken for this one's.
        drop_collected_errors(diag_.get());
        fy_diag_set_collect_errors(diag_.get(), true);
        if (fy_parser_reset(parser) != 0 ||
            fy_parser_set_string(parser, text.empty() ? "" : text.data(), text.size()) != 0)
            throw YamlRefused{{}, "cannot start the YAML parser", true};
        if (const auto bad = first_invalid_byte(text); bad != std::string_view::npos) {
            const auto before = text.substr(0, bad);
            const auto line_start = before.rfind('\n');
            const int line = static_cast<int>(std::count(before.begin(), before.end(), '\n'));
            const auto column = bad - (line_start == std::string_view::npos ? 0 : line_start + 1);
            throw YamlRefused{Mark{line, static_cast<int>(column)},
                              text[bad] == '\0' ? "a NUL byte" : "not valid UTF-8", true};
        }
        YamlToJson builder(limits);
        bool had_document = false;
        for (;;) {
            Event event(parser, fy_parser_parse(parser));
            fy_event* e = event.get();
            if (!e) {
                if (fy_parser_get_stream_error(parser))
                    throw syntax_error();
                break;
            }
            switch (e->type) {
            case FYET_DOCUMENT_START:
                if (had_document)
                    throw YamlRefused{event_mark(e), "unexpected content after the document", true};
                break;
            case FYET_DOCUMENT_END:
                had_document = true;
                break;
            case FYET_SCALAR:
                scalar(builder, e, text);
                break;
            case FYET_ALIAS:
                builder.alias(event_mark(e), token_text(e->alias.anchor));
                break;
            case FYET_SEQUENCE_START:
                builder.open(event_mark(e), json::array(), token_text(e->sequence_start.anchor));
                break;
            case FYET_MAPPING_START:
                builder.open(event_mark(e), json::object(), token_text(e->mapping_start.anchor));
                break;
            case FYET_SEQUENCE_END:
            case FYET_MAPPING_END:
                builder.close();
                break;
            default:
                break;
            }
            if (e->type == FYET_STREAM_END)
                break;
        }
        return std::move(builder.result);
    }

  private:
    // One scalar event into the builder. The text of a one-line plain or double-quoted scalar is
    // taken from the input here: libfyaml points into the input only for a plain scalar that is
    // not the last thing on its line, and otherwise formats a copy (two passes of its character
    // iterator and a malloc), which cost a sixth of reading a large mesh.
    void scalar(YamlToJson& builder, fy_event* e, std::string_view input) {
        fy_token* token = e->scalar.value;
        const fy_scalar_style style = token ? fy_token_scalar_style(token) : FYSS_PLAIN;
        const bool plain = !e->scalar.tag && style == FYSS_PLAIN;
        const std::string_view anchor = token_text(e->scalar.anchor);
        if (token && (style == FYSS_PLAIN || style == FYSS_DOUBLE_QUOTED)) {
            const fy_mark* start = fy_token_start_mark(token);
            const fy_mark* end = fy_token_end_mark(token);
            if (start && end && start->input_pos <= end->input_pos &&
                end->input_pos <= input.size()) {
                // Between the quotes, for a quoted scalar.
                const std::string_view raw =
                    input.substr(start->input_pos, end->input_pos - start->input_pos);
                if (style == FYSS_PLAIN && one_line(raw)) {
                    builder.scalar(event_mark(e), anchor, raw, plain, false);
                    return;
                }
                if (style == FYSS_DOUBLE_QUOTED && unescape_json_style(raw, scratch_)) {
                    builder.scalar(event_mark(e), anchor, scratch_, plain, false);
                    return;
                }
            }
        }
        const std::string_view value = token_text(token);
        // libfyaml points into the input unless it had to unescape or fold the text.
        const bool unescaped = style == FYSS_DOUBLE_QUOTED && !within(input, value);
        builder.scalar(event_mark(e), anchor, value, plain, unescaped);
    }

    // The first error libfyaml collected, with its position.
    YamlRefused syntax_error() const {
        void* iter = nullptr;
        const fy_diag_error* error = fy_diag_errors_iterate(diag_.get(), &iter);
        if (!error)
            return YamlRefused{{}, "syntax error", true};
        // libfyaml counts lines and columns from 1.
        return YamlRefused{Mark{error->line - 1, error->column - 1},
                           error->msg ? error->msg : "syntax error", true};
    }

    std::unique_ptr<fy_diag, DiagDeleter> diag_; // before the parser, which refers to it
    std::unique_ptr<fy_parser, ParserDeleter> parser_;
    std::string scratch_; // unescaped text, reused
};

bool manifest_extension(const fs::path& path) {
    const auto ext = path.extension().string();
    return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

bool looks_like_json(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    return first != std::string::npos && (text[first] == '{' || text[first] == '[');
}

// The mesh config inside the istio ConfigMap is YAML in a string, and so are the ambient
// enablement selectors of the istio-cni-config ConfigMap; the engine reads JSON.
// `any_name`: convert whatever the ConfigMap is called (an explicit --mesh-config, e.g.
// istio-canary).
void convert_mesh_config(json& object, const std::string& file, std::size_t index,
                         const LoadLimits& limits, bool any_name = false) {
    if (!object.is_object() || object.value("kind", "") != "ConfigMap" ||
        object.value("apiVersion", "") != "v1")
        return;
    auto meta = object.find("metadata");
    if (meta == object.end() || !meta->is_object())
        return;
    const std::string name = meta->value("name", "");
    const char* key = any_name || name == "istio"  ? "mesh"
                      : name == "istio-cni-config" ? "AMBIENT_ENABLEMENT_SELECTOR"
                                                   : nullptr;
    if (!key)
        return;
    auto data = object.find("data");
    if (data == object.end() || !data->is_object())
        return;
    auto value = data->find(key);
    if (value == data->end() || !value->is_string())
        return;
    std::vector<json> docs;
    try {
        docs = parse_yaml_documents(value->get<std::string>(), file, limits);
    } catch (LoadError& e) {
        e.index = index;
        e.reason = "data." + std::string(key) + ": " + e.reason;
        throw;
    }
    *value = docs.empty() ? json(nullptr) : docs.front();
}

using Sink = std::function<void(Document&&)>;

// One decoded document (or List item): checks it is an object, flattens Lists, converts mesh YAML.
void deliver(json object, const std::string& file, std::size_t index,
             std::optional<std::size_t> item, const LoadLimits& limits, const Sink& sink,
             std::size_t line = 0) {
    if (object.is_null())
        return; // an empty document between separators
    if (object.is_object() && object.contains("items") &&
        object.value("kind", "").ends_with("List")) {
        json& items = object["items"];
        if (!items.is_array())
            throw LoadError{file, index, true, "items of a List must be a list", item};
        for (std::size_t i = 0; i < items.size(); ++i)
            deliver(std::move(items[i]), file, index, i, limits, sink, line);
        return;
    }
    if (!object.is_object())
        throw LoadError{file, index, true,
                        std::string("the document is not an object but ") +
                            (object.is_array() ? std::string("an array")
                                               : std::string("a ") + object.type_name()),
                        item};
    convert_mesh_config(object, file, index, limits);
    sink(Document{file, index, item, std::move(object), line});
}

// Builds a DOM from SAX events; the streaming parser keeps one for the envelope and one per item.
struct DomBuilder {
    json root;
    std::vector<json*> stack;
    json* element = nullptr;

    void reset() {
        root = json();
        stack.clear();
        element = nullptr;
    }
    json* value(json&& v) {
        if (stack.empty()) {
            root = std::move(v);
            return &root;
        }
        if (stack.back()->is_array()) {
            stack.back()->push_back(std::move(v));
            return &stack.back()->back();
        }
        *element = std::move(v);
        return element;
    }
    void open(json&& container) { stack.push_back(value(std::move(container))); }
    void key(const std::string& k) { element = &(*stack.back())[k]; }
    void close() { stack.pop_back(); }
};

// Parses a JSON document and hands over, one by one, the elements of a top-level array or of the
// top-level object's `items` array (a List), so that only one item is ever built at a time.
class StreamingJson : public nlohmann::json_sax<json> {
  public:
    StreamingJson(std::size_t max_depth, std::function<void(json&&, std::size_t)> emit)
        : max_depth_(max_depth), emit_(std::move(emit)) {}

    bool too_deep = false;
    std::string error;
    DomBuilder envelope;

    bool null() override { return scalar(nullptr); }
    bool boolean(bool v) override { return scalar(v); }
    bool number_integer(number_integer_t v) override { return scalar(v); }
    bool number_unsigned(number_unsigned_t v) override { return scalar(v); }
    bool number_float(number_float_t v, const string_t&) override { return scalar(v); }
    bool string(string_t& v) override { return scalar(std::move(v)); }
    bool binary(binary_t& v) override { return scalar(json::binary(std::move(v))); }
    bool start_object(std::size_t) override { return open(json::object()); }
    bool start_array(std::size_t) override {
        // The array whose elements are streamed: the top level, or the top-level `items`.
        const bool stream = !in_item_ && ((depth_ == 0) || (depth_ == 1 && top_key_ == "items"));
        if (!open(json::array()))
            return false;
        if (stream)
            streamed_depth_ = depth_;
        return true;
    }
    bool key(string_t& k) override {
        if (depth_ == 1 && !in_item_)
            top_key_ = k;
        target().key(k);
        return true;
    }
    bool end_object() override { return close(); }
    bool end_array() override {
        if (!in_item_ && depth_ == streamed_depth_)
            streamed_depth_ = 0;
        return close();
    }
    bool parse_error(std::size_t position, const std::string&,
                     const nlohmann::detail::exception& e) override {
        error = "invalid JSON at byte " + std::to_string(position) + ": " + e.what();
        return false;
    }

  private:
    DomBuilder& target() { return in_item_ ? item_ : envelope; }
    bool starts_item() const {
        return !in_item_ && streamed_depth_ != 0 && depth_ == streamed_depth_;
    }

    bool scalar(json v) {
        if (starts_item()) {
            emit_(std::move(v), next_item_++);
            return true;
        }
        target().value(std::move(v));
        return true;
    }
    bool open(json container) {
        if (++depth_ > max_depth_) {
            too_deep = true;
            return false;
        }
        if (depth_ - 1 == streamed_depth_ && streamed_depth_ != 0 && !in_item_) {
            in_item_ = true;
            item_.reset();
        }
        target().open(std::move(container));
        return true;
    }
    bool close() {
        target().close();
        --depth_;
        if (in_item_ && depth_ == streamed_depth_) {
            in_item_ = false;
            emit_(std::move(item_.root), next_item_++);
            item_.reset();
        }
        return true;
    }

    std::size_t max_depth_;
    std::function<void(json&&, std::size_t)> emit_;
    DomBuilder item_;
    std::size_t depth_ = 0;
    std::size_t streamed_depth_ = 0; // depth of the streamed array while inside it, else 0
    bool in_item_ = false;
    std::string top_key_;
    std::size_t next_item_ = 0;
};

// Runs the streaming parser over the input; a parse failure becomes a LoadError.
template <typename Input>
void parse_json(Input&& input, StreamingJson& parser, const std::string& file,
                const LoadLimits& limits) {
    if (json::sax_parse(std::forward<Input>(input), &parser))
        return;
    if (parser.too_deep)
        throw LoadError{file, 0, true,
                        "document is nested deeper than " + std::to_string(limits.max_depth) +
                            " levels"};
    throw LoadError{file, 0, true,
                    parser.error.empty() ? std::string("invalid JSON") : parser.error};
}

template <typename Input>
void stream_json(Input&& input, const std::string& file, const LoadLimits& limits,
                 const Sink& sink) {
    StreamingJson parser(limits.max_depth, [&](json&& item, std::size_t position) {
        deliver(std::move(item), file, 0, position, limits, sink);
    });
    parse_json(std::forward<Input>(input), parser, file, limits);
    json& envelope = parser.envelope.root;
    if (envelope.is_array())
        return; // a top-level array: every element was delivered
    if (envelope.is_object() && envelope.contains("items")) {
        if (!envelope.value("kind", "").ends_with("List"))
            throw LoadError{file, 0, true,
                            "a top-level object with items must be a List (kind ...List)"};
        return;
    }
    deliver(std::move(envelope), file, 0, std::nullopt, limits, sink);
}

// Splits multi-document YAML at `---` lines, so each document is parsed and dropped on its own.
struct YamlChunk {
    std::size_t first_line = 0; // 0-based line of the chunk in the file
    std::string_view text;
};

std::vector<YamlChunk> split_yaml(const std::string& text) {
    std::vector<YamlChunk> chunks;
    std::size_t chunk_start = 0, chunk_line = 0, line = 0;
    bool leading = true; // before the first marker: counts only if it has content
    auto has_content = [](std::string_view t) {
        std::size_t pos = 0;
        while (pos < t.size()) {
            const auto end = t.find('\n', pos);
            const auto l =
                t.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
            const auto first = l.find_first_not_of(" \t\r");
            if (first != std::string_view::npos && l[first] != '#' && l[first] != '%')
                return true;
            if (end == std::string_view::npos)
                break;
            pos = end + 1;
        }
        return false;
    };
    for (std::size_t pos = 0; pos <= text.size();) {
        const auto end = text.find('\n', pos);
        const bool marker =
            text.compare(pos, 3, "---") == 0 &&
            (pos + 3 >= text.size() || text[pos + 3] == '\n' || text[pos + 3] == ' ' ||
             text[pos + 3] == '\t' || text[pos + 3] == '\r');
        if (marker && pos > chunk_start) {
            const std::string_view chunk(text.data() + chunk_start, pos - chunk_start);
            if (!leading || has_content(chunk))
                chunks.push_back({chunk_line, chunk});
        }
        if (marker) {
            chunk_start = pos;
            chunk_line = line;
            leading = false;
        }
        if (end == std::string::npos)
            break;
        pos = end + 1;
        ++line;
    }
    const std::string_view last(text.data() + chunk_start, text.size() - chunk_start);
    if (!leading || has_content(last))
        chunks.push_back({chunk_line, last});
    return chunks;
}

// The 1-based file line of a chunk's first line that is neither blank, a comment, nor a `---`
// separator or directive: where the object starts, for reports that point at it.
std::size_t first_content_line(const YamlChunk& chunk) {
    std::size_t line = chunk.first_line + 1;
    std::string_view rest = chunk.text;
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        std::string_view current = rest.substr(0, end);
        const auto start = current.find_first_not_of(" \t\r");
        const bool skip = start == std::string_view::npos || current[start] == '#' ||
                          current.starts_with("---") || current.starts_with("%");
        if (!skip)
            return line;
        if (end == std::string_view::npos)
            break;
        rest.remove_prefix(end + 1);
        ++line;
    }
    return chunk.first_line + 1;
}

json yaml_chunk_to_json(YamlReader& reader, const YamlChunk& chunk, const std::string& file,
                        std::size_t index, const LoadLimits& limits) {
    auto where = [&](const Mark& mark) {
        return "line " +
               std::to_string(chunk.first_line + static_cast<std::size_t>(std::max(mark.line, 0)) +
                              1) +
               ", column " + std::to_string(std::max(mark.column, 0) + 1);
    };
    try {
        return reader.parse(chunk.text, limits);
    } catch (const YamlRefused& e) {
        if (e.syntax)
            throw LoadError{file, index, true,
                            "invalid YAML at " + where(e.mark) + ": " + e.reason};
        throw LoadError{file, index, true, e.reason + " (" + where(e.mark) + ")"};
    }
}

void stream_text(const std::string& text, const std::string& file, const LoadLimits& limits,
                 const Sink& sink) {
    if (looks_like_json(text)) {
        stream_json(text, file, limits, sink);
        return;
    }
    const auto chunks = split_yaml(text);
    YamlReader reader;
    for (std::size_t i = 0; i < chunks.size(); ++i)
        deliver(yaml_chunk_to_json(reader, chunks[i], file, i, limits), file, i, std::nullopt,
                limits, sink, first_content_line(chunks[i]));
}

} // namespace

std::string LoadError::to_string() const {
    std::string out = file;
    if (has_index)
        out += ": document " + std::to_string(index + 1);
    if (item)
        out += ", item " + std::to_string(*item + 1);
    return out + ": " + reason;
}

std::vector<json> parse_yaml_documents(const std::string& text, const std::string& file,
                                       const LoadLimits& limits) {
    std::vector<json> out;
    const auto chunks = split_yaml(text);
    out.reserve(chunks.size());
    YamlReader reader;
    for (std::size_t i = 0; i < chunks.size(); ++i)
        out.push_back(yaml_chunk_to_json(reader, chunks[i], file, i, limits));
    return out;
}

std::vector<json> parse_manifest_text(const std::string& text, const std::string& file,
                                      const LoadLimits& limits) {
    if (!looks_like_json(text))
        return parse_yaml_documents(text, file, limits);
    std::vector<json> out;
    StreamingJson parser(limits.max_depth,
                         [&](json&& item, std::size_t) { out.push_back(std::move(item)); });
    parse_json(text, parser, file, limits);
    json& envelope = parser.envelope.root;
    if (envelope.is_object() && envelope.contains("items")) {
        // Give the List back whole: callers of this function flatten it themselves.
        envelope["items"] = std::move(out);
        return {std::move(envelope)};
    }
    if (envelope.is_array())
        return out;
    return {std::move(envelope)};
}

std::string read_file(const std::string& path, std::size_t max_bytes) {
    std::string text;
    if (path == "-") {
        char buffer[65536];
        while (std::cin.read(buffer, sizeof buffer) || std::cin.gcount() > 0) {
            text.append(buffer, static_cast<std::size_t>(std::cin.gcount()));
            if (text.size() > max_bytes)
                throw LoadError{"<stdin>", 0, false,
                                "input is larger than " + std::to_string(max_bytes) + " bytes"};
        }
        return text;
    }
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
        throw LoadError{path, 0, false, "cannot read: " + ec.message()};
    if (size > max_bytes)
        throw LoadError{path, 0, false,
                        "file is larger than " + std::to_string(max_bytes) + " bytes"};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw LoadError{path, 0, false, std::string("cannot open: ") + std::strerror(errno)};
    // One read of the size the file had (istreambuf_iterator went byte by byte, growing the
    // string as it went: a sixth of the time of a large YAML file), then whatever it has grown
    // by since; /proc files report a size of 0.
    text.resize(static_cast<std::size_t>(size));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    char buffer[65536];
    while (in && (in.read(buffer, sizeof buffer) || in.gcount() > 0)) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_bytes)
            throw LoadError{path, 0, false,
                            "file is larger than " + std::to_string(max_bytes) + " bytes"};
    }
    if (in.bad())
        throw LoadError{path, 0, false, "read error"};
    return text;
}

namespace {

// A JSON file is parsed straight from the stream (a 100 MB List never sits in memory as text);
// YAML is read whole and split into documents.
void stream_file(const std::string& path, const LoadLimits& limits, const Sink& sink) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
        throw LoadError{path, 0, false, "cannot read: " + ec.message()};
    if (size > limits.max_file_bytes)
        throw LoadError{path, 0, false,
                        "file is larger than " + std::to_string(limits.max_file_bytes) + " bytes"};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw LoadError{path, 0, false, std::string("cannot open: ") + std::strerror(errno)};
    in >> std::ws;
    const int first = in.peek();
    if (first == '{' || first == '[') {
        stream_json(in, path, limits, sink);
        if (in.bad())
            throw LoadError{path, 0, false, "read error"};
        return;
    }
    stream_text(read_file(path, limits.max_file_bytes), path, limits, sink);
}

} // namespace

void for_each_manifest(const std::vector<std::string>& paths, const LoadLimits& limits,
                       const Sink& sink) {
    for (const auto& path : paths) {
        if (path == "-") {
            stream_text(read_file(path, limits.max_file_bytes), "<stdin>", limits, sink);
            continue;
        }
        std::error_code ec;
        const auto status = fs::status(path, ec);
        if (ec || !fs::exists(status))
            throw LoadError{path, 0, false, "no such file or directory"};
        if (fs::is_directory(status)) {
            std::vector<fs::path> files;
            for (fs::recursive_directory_iterator
                     it(path, fs::directory_options::skip_permission_denied, ec),
                 end;
                 !ec && it != end; it.increment(ec)) {
                if (it->is_regular_file() && manifest_extension(it->path()))
                    files.push_back(it->path());
            }
            if (ec)
                throw LoadError{path, 0, false, "cannot list: " + ec.message()};
            std::sort(files.begin(), files.end());
            for (const auto& file : files)
                stream_file(file.string(), limits, sink);
        } else {
            stream_file(path, limits, sink);
        }
    }
}

std::vector<Document> load_manifests(const std::vector<std::string>& paths,
                                     const LoadLimits& limits) {
    std::vector<Document> out;
    for_each_manifest(paths, limits, [&](Document&& doc) { out.push_back(std::move(doc)); });
    return out;
}

json load_mesh_config(const std::string& path, const LoadLimits& limits) {
    const std::string file = path == "-" ? "<stdin>" : path;
    auto docs = parse_manifest_text(read_file(path, limits.max_file_bytes), file, limits);
    for (std::size_t i = 0; i < docs.size(); ++i) {
        json& doc = docs[i];
        if (doc.is_null())
            continue;
        if (!doc.is_object())
            throw LoadError{file, i, true, "mesh config must be a map"};
        if (doc.value("kind", "") == "ConfigMap") {
            convert_mesh_config(doc, file, i, limits, true);
            const json* data = doc.contains("data") ? &doc["data"] : nullptr;
            if (!data || !data->is_object() || !data->contains("mesh"))
                throw LoadError{file, i, true, "ConfigMap has no data.mesh"};
            return (*data)["mesh"];
        }
        return doc;
    }
    return json::object();
}

} // namespace mtlsguard::input
