// The admission decision: snapshot + AdmissionReview request in, AdmissionReview response out (spec
// §9).
#pragma once

#include "analysis/model/snapshot.hpp"

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace mtlsguard::admission {

enum class Enforcement : std::uint8_t { Enforce, Warn, Off };
std::string_view to_string(Enforcement mode) noexcept;
std::optional<Enforcement> parse_enforcement(std::string_view text) noexcept;
// `mode`, or `ceiling` when that is less strict (enforce > warn > off).
Enforcement at_most(Enforcement mode, Enforcement ceiling) noexcept;

inline constexpr std::string_view mode_label = "mtls-guard.io/mode";
inline constexpr std::string_view allow_conflict_annotation = "mtls-guard.io/allow-conflict";
// The API server keeps at most this much of a response's warnings.
inline constexpr std::size_t max_warning_length = 256;
inline constexpr std::size_t max_warnings_total = 4096;

struct AdmissionSettings {
    Enforcement default_mode = Enforcement::Enforce;
    // The strictest mode any object gets, whatever its namespace label says (off stays off): serve
    // lowers it to warn while its live snapshot is stale, when told to (--stale-policy warn).
    Enforcement strictest_mode = Enforcement::Enforce;
    // Extra warnings to attach to every verdict (e.g. "snapshot may be stale"), already one line.
    std::vector<std::string> extra_warnings;
};

struct AdmissionDecision {
    // 200 with `body` an AdmissionReview; or 4xx with `body` {"error": reason} for a malformed
    // review.
    int http_status = 200;
    nlohmann::json body;
    // For the decision log: never the object itself.
    std::string uid;
    std::string kind;
    std::string namespace_name;
    std::string name;
    std::string operation;
    bool dry_run = false;
    bool allowed = true;
    Enforcement enforcement = Enforcement::Enforce;
    std::vector<std::string> codes;    // codes of the findings behind the verdict
    std::string allow_conflict_reason; // set when the annotation turned a denial into warnings
    std::string error;                 // reason for a 4xx
};

// Everything decide() reads of a review: the review's "apiVersion", "kind" and "request", and of
// the request only these members (object and oldObject whole). A reader may hand decide() a review
// with only these, and nothing else, and get the same decision (server/admission's fast reader
// does); keep the list in step with parse_review in admission.cpp.
inline constexpr std::array<std::string_view, 3> review_members = {"apiVersion", "kind", "request"};
inline constexpr std::array<std::string_view, 8> request_members = {
    "uid", "kind", "operation", "namespace", "name", "dryRun", "object", "oldObject"};

// Decides one AdmissionReview (admission.k8s.io/v1, or v1beta1 answered in kind). Never throws.
AdmissionDecision decide(const model::Snapshot& snapshot, const nlohmann::json& review,
                         const AdmissionSettings& settings) noexcept;

// Makes a warning fit the API server's limits: one line, printable, at most 256 characters.
std::string clamp_warning(std::string_view text);

} // namespace mtlsguard::admission
