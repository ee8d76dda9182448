// The one code path from an AdmissionReview body to the HTTP status and body, for serve and review.
#pragma once

#include "analysis/admission/admission.hpp"
#include "server/admission/review_body.hpp"

#include <string>
#include <string_view>

namespace mtlsguard::server {

struct ReviewReply {
    int status = 200;
    std::string body; // JSON
    admission::AdmissionDecision decision;
};

// Parses the body (400 when it is not JSON, or nested absurdly deep) and decides. Never throws.
// The body is read by read_review (review_body.hpp): simdjson straight into the model, or
// nlohmann::json for the bodies that reader leaves alone; the answer is the same as with the
// reference reader alone.
ReviewReply handle_review(const model::Snapshot& snapshot, std::string_view body,
                          const admission::AdmissionSettings& settings) noexcept;

// The answer to a body already read (handle_review's second half; tests and benchmarks compare the
// two readers through it). Never throws.
ReviewReply answer_review(const model::Snapshot& snapshot, const ReviewBody& read,
                          const admission::AdmissionSettings& settings) noexcept;

} // namespace mtlsguard::server
