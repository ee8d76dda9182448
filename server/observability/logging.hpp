// Structured logs for serve: one spdlog logger per component, text or JSON lines, one per decision.
#pragma once

#include "analysis/admission/admission.hpp"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <spdlog/logger.h>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mtlsguard::observability {

enum class LogFormat : std::uint8_t { Text, Json };

// A value in a log line. Strings are escaped (text) or JSON-encoded (json): request fields are
// client-controlled and must not be able to forge a line.
using LogValue =
    std::variant<std::string_view, std::int64_t, bool, const std::vector<std::string>*>;

struct LogField {
    std::string_view key;
    LogValue value;
};

// Creates the loggers (serve, http, tls, snapshot, admission, kube) writing to stderr in `format`.
// Call once, before any thread logs; later calls replace the format.
void configure_logging(LogFormat format);

// The logger of one component; configure_logging must have run.
spdlog::logger& component_logger(std::string_view component);
// The same logger, for code that keeps it (the Kubernetes client logs through "kube", whose
// free-text messages are escaped for the configured format).
std::shared_ptr<spdlog::logger> shared_component_logger(std::string_view component);

// The part of a log line after the time, level and logger name: `message key=value ...` in text,
// `"msg":"message","key":value,...` in JSON (the pattern wraps it in braces). Pure, for tests.
std::string format_fields(LogFormat format, std::string_view message,
                          std::initializer_list<LogField> fields);

// Logs one line through `logger` in the configured format.
void log_event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
               std::initializer_list<LogField> fields = {});

// The decision line: uid, kind, namespace, name, operation, dryRun, allowed, codes, latency_us,
// status, mode, and the allow-conflict reason or the error when present. Never the object.
void log_decision(const admission::AdmissionDecision& decision, int http_status,
                  std::int64_t latency_us);

} // namespace mtlsguard::observability
