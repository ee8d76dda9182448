// The one code path from an AdmissionReview body to the HTTP status and body, for serve and review.
#include "server/admission/review_endpoint.hpp"

#include "server/admission/review_body.hpp"

namespace mtlsguard::server {
namespace {

ReviewReply error_reply(int status, const std::string& reason) {
    ReviewReply reply;
    reply.status = status;
    reply.decision.http_status = status;
    reply.decision.allowed = false;
    reply.decision.error = reason;
    reply.body = nlohmann::json{{"error", reason}}.dump();
    return reply;
}

} // namespace

ReviewReply answer_review(const model::Snapshot& snapshot, const ReviewBody& read,
                          const admission::AdmissionSettings& settings) noexcept {
    try {
        if (read.status == ReviewBody::Status::TooDeep)
            return error_reply(400, "the body is nested too deeply");
        if (read.status == ReviewBody::Status::NotJson)
            return error_reply(400, "the body is not valid JSON");
        ReviewReply reply;
        reply.decision = read.request ? admission::decide(snapshot, *read.request, settings)
                                      : admission::decide(snapshot, read.review, settings);
        reply.status = reply.decision.http_status;
        reply.body =
            reply.decision.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return reply;
    } catch (const std::exception& e) {
        return error_reply(500, std::string("internal error: ") + e.what());
    } catch (...) {
        return error_reply(500, "internal error");
    }
}

ReviewReply handle_review(const model::Snapshot& snapshot, std::string_view body,
                          const admission::AdmissionSettings& settings) noexcept {
    try {
        return answer_review(snapshot, read_review(body), settings);
    } catch (const std::exception& e) {
        return error_reply(500, std::string("internal error: ") + e.what());
    } catch (...) {
        return error_reply(500, "internal error");
    }
}

} // namespace mtlsguard::server
