// The one code path from an AdmissionReview body to the HTTP status and body, for serve and review.
#pragma once

#include "analysis/admission/admission.hpp"

#include <string>
#include <string_view>

namespace mtlsguard::server {

struct ReviewReply {
    int status = 200;
    std::string body; // JSON
    admission::AdmissionDecision decision;
};

// Parses the body (400 when it is not JSON, or nested absurdly deep) and decides. Never throws.
ReviewReply handle_review(const model::Snapshot& snapshot, std::string_view body,
                          const admission::AdmissionSettings& settings) noexcept;

} // namespace mtlsguard::server
