// The one code path from an AdmissionReview body to the HTTP status and body, for serve and review.
#include "server/admission/review_endpoint.hpp"

namespace mtlsguard::server {
namespace {

constexpr std::size_t max_depth = 128;

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

ReviewReply handle_review(const model::Snapshot& snapshot, std::string_view body,
                          const admission::AdmissionSettings& settings) noexcept {
    try {
        // One pass: the parse callback refuses absurd nesting and drops metadata.managedFields
        // (often most of an object's bytes, never read by the engine) before it is built.
        bool too_deep = false;
        const nlohmann::json::parser_callback_t filter =
            [&too_deep](int depth, nlohmann::json::parse_event_t event, nlohmann::json& value) {
                if (depth > static_cast<int>(max_depth)) {
                    too_deep = true;
                    return false;
                }
                return !(event == nlohmann::json::parse_event_t::key && value == "managedFields");
            };
        const auto review = nlohmann::json::parse(body.begin(), body.end(), filter, false);
        if (too_deep)
            return error_reply(400, "the body is nested too deeply");
        if (review.is_discarded())
            return error_reply(400, "the body is not valid JSON");
        ReviewReply reply;
        reply.decision = admission::decide(snapshot, review, settings);
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

} // namespace mtlsguard::server
