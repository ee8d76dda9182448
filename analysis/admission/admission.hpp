// The admission decision: snapshot + AdmissionReview request in, AdmissionReview response out (spec
// §9).
#pragma once

#include "analysis/model/decode.hpp"
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
    // Spare work that cannot change a decision: flows to hosts a Sidecar hides (they carry no
    // code), a second evaluation of a PeerAuthentication change (each flow is evaluated once,
    // with what it was before), and a namespace built again for the configuration before the
    // change when that is the snapshot's own (an UPDATE whose oldObject is the snapshot's copy, a
    // CREATE of an object it does not hold). Only tests and benchmarks turn it off, to compare.
    bool shortcuts = true;
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
    std::vector<std::string> codes; // codes of the findings behind the verdict
    // A denial's own codes: those of the errors the change introduces (empty for an object that
    // cannot be read), each once, in the order the denial lists them.
    std::vector<std::string> denial_codes;
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

// One version of the object under review (request.object or request.oldObject), already read.
struct ReviewObject {
    // model::decode_object of it in the request's namespace ("default" when that is empty); left
    // Skipped when decides_on_kind(the request's kind) is false, as decide() then never reads it.
    model::DecodeOutcome decoded;
    std::string allow_conflict; // its allow_conflict_annotation, when that is a string
};

// An AdmissionReview as decide() reads it, for a reader that parses the body its own way (and so
// need not build a nlohmann::json of it): the members decide(json) reads, with their meaning there.
// Only for a well-formed review: every reason to answer 400 comes from decide(json).
struct ReviewRequest {
    std::string review_api_version; // admission.k8s.io/v1 or admission.k8s.io/v1beta1
    std::string uid;                // not empty
    std::string operation;          // not empty
    std::string namespace_name;     // request.namespace, when a string
    std::string name;               // request.name, when a string
    // request.kind.kind when a non-empty string, else the "kind" of object (or else of oldObject).
    std::string kind;
    bool dry_run = false;                   // request.dryRun, when a boolean
    std::optional<ReviewObject> object;     // nullopt when absent or null
    std::optional<ReviewObject> old_object; // nullopt when absent or null
};

// Whether decide() decodes the objects of a request of this kind (ReviewRequest::kind).
bool decides_on_kind(std::string_view kind) noexcept;

// decide() on a review already read: the same decision as decide(json) on that review.
AdmissionDecision decide(const model::Snapshot& snapshot, const ReviewRequest& request,
                         const AdmissionSettings& settings) noexcept;

// Makes a warning fit the API server's limits: one line, printable, at most 256 characters.
std::string clamp_warning(std::string_view text);

} // namespace mtlsguard::admission
