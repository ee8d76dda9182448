// Structured logs for serve: one spdlog logger per component, text or JSON lines, one per decision.
#include "server/observability/logging.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/sink.h>
#include <unistd.h>

namespace mtlsguard::observability {
namespace {

constexpr std::array<std::string_view, 6> components = {"serve",    "http",      "tls",
                                                        "snapshot", "admission", "kube"};
// The Kubernetes client logs fmt-style messages (no fields) that may carry what the API server
// sent: its payload goes through EscapedPayload (flag %*) instead of the field formatter.
constexpr std::string_view free_text_component = "kube";

constexpr const char* text_pattern = "%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v";
// %v is the `"msg":...,"key":value` fragment format_fields builds, so every line is one object.
constexpr const char* json_pattern =
    R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n",%v})";
constexpr const char* free_text_pattern = "%Y-%m-%dT%H:%M:%S.%eZ %l %n: %*";
constexpr const char* free_json_pattern =
    R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","msg":%*})";

// A message as one JSON string (JSON logs), or with control characters escaped (text logs), so
// that text from the API server can neither break a JSON line nor forge a line of its own.
class EscapedPayload final : public spdlog::custom_flag_formatter {
  public:
    explicit EscapedPayload(bool json) : json_(json) {}

    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        std::string out;
        if (json_) {
            out = nlohmann::json(std::string(payload))
                      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            out.reserve(payload.size());
            for (const char c : payload) {
                const auto u = static_cast<unsigned char>(c);
                if (c == '\n') {
                    out += "\\n";
                } else if (u < 0x20 || u == 0x7f) {
                    out += "\\x";
                    out += hex[u >> 4];
                    out += hex[u & 0x0F];
                } else {
                    out += c;
                }
            }
        }
        dest.append(out.data(), out.data() + out.size());
    }
    std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
        return std::make_unique<EscapedPayload>(json_);
    }

  private:
    bool json_;
};

// stderr, one write(2) per line, with no lock held through the write: spdlog's own stderr sink
// holds its lock through the write (and takes it again to flush), so every I/O thread that logs a
// decision while another one is in write(2) blocks on a futex. A line of up to PIPE_BUF bytes (a
// decision line is about 300) is written whole by one write(2) even on a pipe (a container's
// stderr), and Linux serialises writes to one open regular file, so such lines are written side by
// side; a longer line (a request with a huge uid or name) may be split on a pipe, so it is written
// alone.
class StderrLineSink final : public spdlog::sinks::sink {
  public:
    void log(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t line;
        {
            const std::lock_guard lock(format_mutex_);
            formatter_->format(msg, line);
        }
        if (line.size() <= PIPE_BUF) {
            const std::shared_lock lock(write_mutex());
            write_all(line.data(), line.size());
        } else {
            const std::unique_lock lock(write_mutex());
            write_all(line.data(), line.size());
        }
    }
    void flush() override {} // nothing is buffered
    void set_pattern(const std::string& pattern) override {
        set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
    }
    void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
        const std::lock_guard lock(format_mutex_);
        formatter_ = std::move(formatter);
    }

  private:
    static void write_all(const char* data, std::size_t left) {
        while (left > 0) {
            const ssize_t written = ::write(STDERR_FILENO, data, left);
            if (written < 0 && errno == EINTR)
                continue;
            if (written <= 0)
                return; // stderr closed or full: a log line is not worth failing a request for
            data += written;
            left -= static_cast<std::size_t>(written);
        }
    }

    // Shared by every instance: the lines of all sinks go to the one stderr.
    static std::shared_mutex& write_mutex() {
        static std::shared_mutex mutex;
        return mutex;
    }

    std::mutex format_mutex_;
    std::unique_ptr<spdlog::formatter> formatter_ = std::make_unique<spdlog::pattern_formatter>();
};

struct Loggers {
    std::atomic<LogFormat> format{LogFormat::Text};
    std::array<std::shared_ptr<spdlog::logger>, components.size()> loggers;

    Loggers() {
        // One sink shared by every component, so lines from different threads never interleave.
        // The free-text logger needs a sink of its own (the formatter belongs to the sink); both
        // sinks share one write lock, so a long line of either is still written alone.
        auto sink = std::make_shared<StderrLineSink>();
        auto free_text_sink = std::make_shared<StderrLineSink>();
        for (std::size_t i = 0; i < components.size(); ++i) {
            loggers[i] = std::make_shared<spdlog::logger>(
                std::string(components[i]),
                components[i] == free_text_component ? free_text_sink : sink);
            loggers[i]->set_level(spdlog::level::info);
            loggers[i]->flush_on(spdlog::level::info);
        }
        apply(LogFormat::Text);
    }

    void apply(LogFormat f) {
        format.store(f);
        for (std::size_t i = 0; i < components.size(); ++i) {
            if (components[i] != free_text_component) {
                loggers[i]->set_pattern(f == LogFormat::Json ? json_pattern : text_pattern,
                                        spdlog::pattern_time_type::utc);
                continue;
            }
            auto formatter =
                std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
            formatter->add_flag<EscapedPayload>('*', f == LogFormat::Json)
                .set_pattern(f == LogFormat::Json ? free_json_pattern : free_text_pattern);
            loggers[i]->set_formatter(std::move(formatter));
        }
    }
};

Loggers& loggers() {
    static Loggers instance;
    return instance;
}

bool needs_quotes(std::string_view s) {
    if (s.empty())
        return true;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\')
            return true;
    }
    return false;
}

// Text values: bare when safe, else quoted with control characters escaped, so that a name
// holding a newline cannot start a forged line.
void append_text(std::string& out, std::string_view s) {
    if (!needs_quotes(s)) {
        out += s;
        return;
    }
    out += '"';
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (u < 0x20 || u == 0x7f) {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4U];
            out += hex[u & 0xfU];
        } else {
            out += c;
        }
    }
    out += '"';
}

// Exactly nlohmann::json(s).dump(-1, ' ', false, replace): written out here for ASCII (every
// field of a decision line in practice), nlohmann itself for anything else (its UTF-8 checks and
// replacement of invalid bytes), which saves a json, a copy and a string per field.
void append_json_string(std::string& out, std::string_view s) {
    for (const char c : s) {
        if (static_cast<unsigned char>(c) >= 0x80) {
            out += nlohmann::json(std::string(s))
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            return;
        }
    }
    out += '"';
    for (const char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                constexpr std::string_view hex = "0123456789abcdef";
                const auto u = static_cast<unsigned char>(c);
                out += "\\u00";
                out += hex[u >> 4U];
                out += hex[u & 0xfU];
            } else {
                out += c;
            }
        }
    }
    out += '"';
}

void append_value(std::string& out, LogFormat format, const LogValue& value) {
    if (const auto* s = std::get_if<std::string_view>(&value)) {
        if (format == LogFormat::Json)
            append_json_string(out, *s);
        else
            append_text(out, *s);
    } else if (const auto* n = std::get_if<std::int64_t>(&value)) {
        out += std::to_string(*n);
    } else if (const auto* b = std::get_if<bool>(&value)) {
        out += *b ? "true" : "false";
    } else if (const auto* list = std::get<const std::vector<std::string>*>(value);
               format == LogFormat::Json) {
        out += '[';
        for (std::size_t i = 0; list && i < list->size(); ++i) {
            if (i > 0)
                out += ',';
            append_json_string(out, (*list)[i]);
        }
        out += ']';
    } else {
        std::string joined;
        for (std::size_t i = 0; list && i < list->size(); ++i) {
            if (i > 0)
                joined += ',';
            joined += (*list)[i];
        }
        append_text(out, joined);
    }
}

// Request fields are whatever the client sent: longer than any Kubernetes name (253) or uid, they
// are cut, so that one request cannot write megabytes of log.
constexpr std::size_t max_logged_field = 256;
std::string_view clip(std::string_view field) noexcept {
    return field.substr(0, max_logged_field);
}

} // namespace

void configure_logging(LogFormat format) {
    loggers().apply(format);
}

spdlog::logger& component_logger(std::string_view component) {
    auto& all = loggers();
    for (std::size_t i = 0; i < components.size(); ++i)
        if (components[i] == component)
            return *all.loggers[i];
    return *all.loggers[0];
}

std::shared_ptr<spdlog::logger> shared_component_logger(std::string_view component) {
    auto& all = loggers();
    for (std::size_t i = 0; i < components.size(); ++i)
        if (components[i] == component)
            return all.loggers[i];
    return all.loggers[0];
}

std::string format_fields(LogFormat format, std::string_view message,
                          std::initializer_list<LogField> fields) {
    std::string out;
    out.reserve(320); // a decision line is about 250 characters
    if (format == LogFormat::Json) {
        out += "\"msg\":";
        append_json_string(out, message);
        for (const auto& field : fields) {
            out += ',';
            append_json_string(out, field.key);
            out += ':';
            append_value(out, format, field.value);
        }
    } else {
        out += message;
        for (const auto& field : fields) {
            out += ' ';
            out += field.key;
            out += '=';
            append_value(out, format, field.value);
        }
    }
    return out;
}

void log_event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
               std::initializer_list<LogField> fields) {
    if (!logger.should_log(level))
        return;
    const std::string line = format_fields(loggers().format.load(), message, fields);
    logger.log(level, spdlog::string_view_t(line.data(), line.size()));
}

void log_decision(const admission::AdmissionDecision& decision, int http_status,
                  std::int64_t latency_us) {
    auto& logger = component_logger("admission");
    const std::string_view mode = admission::to_string(decision.enforcement);
    if (http_status != 200) {
        // A malformed review: what little is known, and why it was refused.
        log_event(logger, spdlog::level::warn, "rejected",
                  {{"uid", clip(decision.uid)},
                   {"kind", clip(decision.kind)},
                   {"namespace", clip(decision.namespace_name)},
                   {"name", clip(decision.name)},
                   {"operation", clip(decision.operation)},
                   {"dryRun", decision.dry_run},
                   {"allowed", false},
                   {"codes", &decision.codes},
                   {"latency_us", latency_us},
                   {"status", std::int64_t{http_status}},
                   {"mode", mode},
                   {"error", clip(decision.error)}});
        return;
    }
    if (!decision.allow_conflict_reason.empty()) {
        log_event(logger, spdlog::level::info, "decision",
                  {{"uid", clip(decision.uid)},
                   {"kind", clip(decision.kind)},
                   {"namespace", clip(decision.namespace_name)},
                   {"name", clip(decision.name)},
                   {"operation", clip(decision.operation)},
                   {"dryRun", decision.dry_run},
                   {"allowed", decision.allowed},
                   {"codes", &decision.codes},
                   {"latency_us", latency_us},
                   {"status", std::int64_t{http_status}},
                   {"mode", mode},
                   {"allowConflictReason", clip(decision.allow_conflict_reason)}});
        return;
    }
    log_event(logger, spdlog::level::info, "decision",
              {{"uid", clip(decision.uid)},
               {"kind", clip(decision.kind)},
               {"namespace", clip(decision.namespace_name)},
               {"name", clip(decision.name)},
               {"operation", clip(decision.operation)},
               {"dryRun", decision.dry_run},
               {"allowed", decision.allowed},
               {"codes", &decision.codes},
               {"latency_us", latency_us},
               {"status", std::int64_t{http_status}},
               {"mode", mode}});
}

} // namespace mtlsguard::observability
