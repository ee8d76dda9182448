// The one code path from an AdmissionReview body to the HTTP status and body, for serve and review.
#include "server/admission/review_endpoint.hpp"

namespace mtlsguard::server {
namespace {

constexpr std::size_t max_depth = 128;

// nlohmann's SAX parser tracks depth for us: refuse absurd nesting before building the DOM.
struct DepthLimit : nlohmann::json_sax<nlohmann::json> {
    std::size_t depth = 0;
    bool too_deep = false;
    bool enter() {
        if (++depth > max_depth)
            too_deep = true;
        return !too_deep;
    }
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return enter(); }
    bool key(string_t&) override { return true; }
    bool end_object() override {
        --depth;
        return true;
    }
    bool start_array(std::size_t) override { return enter(); }
    bool end_array() override {
        --depth;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        return false;
    }
};

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
        DepthLimit limit;
        if (!nlohmann::json::sax_parse(body.begin(), body.end(), &limit))
            return error_reply(400, limit.too_deep ? "the body is nested too deeply"
                                                   : "the body is not valid JSON");
        const auto review = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
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
