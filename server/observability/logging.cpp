// Structured logs for serve: one spdlog logger per component, text or JSON lines, one per decision.
#include "server/observability/logging.hpp"

#include <array>
#include <atomic>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>

namespace mtlsguard::observability {
namespace {

constexpr std::array<std::string_view, 5> components = {"serve", "http", "tls", "snapshot",
                                                        "admission"};

constexpr const char* text_pattern = "%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v";
// %v is the `"msg":...,"key":value` fragment format_fields builds, so every line is one object.
constexpr const char* json_pattern =
    R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n",%v})";

struct Loggers {
    std::atomic<LogFormat> format{LogFormat::Text};
    std::array<std::shared_ptr<spdlog::logger>, components.size()> loggers;

    Loggers() {
        // One sink shared by every component, so lines from different threads never interleave.
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        for (std::size_t i = 0; i < components.size(); ++i) {
            loggers[i] = std::make_shared<spdlog::logger>(std::string(components[i]), sink);
            loggers[i]->set_level(spdlog::level::info);
            loggers[i]->flush_on(spdlog::level::info);
        }
        apply(LogFormat::Text);
    }

    void apply(LogFormat f) {
        format.store(f);
        for (auto& logger : loggers)
            logger->set_pattern(f == LogFormat::Json ? json_pattern : text_pattern,
                                spdlog::pattern_time_type::utc);
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

void append_json_string(std::string& out, std::string_view s) {
    out += nlohmann::json(std::string(s))
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

std::string format_fields(LogFormat format, std::string_view message,
                          std::initializer_list<LogField> fields) {
    std::string out;
    out.reserve(160);
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
