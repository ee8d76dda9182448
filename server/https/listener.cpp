// Accepts connections on one address and runs one session per connection: TLS detection, the
// handshake, then HTTP/1.1 keep-alive requests, each step under a timeout (the Beast async-ssl
// server pattern).
#include "server/https/listener.hpp"

#include "server/observability/logging.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <optional>
#include <string_view>

namespace mtlsguard::https {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

// Reads of what a peer still sends after we closed on it: discarded.
constexpr std::size_t discard_read_size = 4096;
// The first read of a kept-alive connection's next request: a whole TLS record's plaintext, so
// that a typical AdmissionReview (header and body, a few KB) arrives in one read instead of two.
constexpr std::size_t request_read_size = 16384;
// A request body's buffer is kept for the connection's next request up to this capacity: a body
// allocation past 1 KB makes glibc's malloc consolidate its fast bins, on every request. Bigger
// ones are freed, so that an idle connection does not pin a large body's memory.
constexpr std::size_t reused_body_capacity = 32 * 1024;
constexpr std::chrono::milliseconds accept_retry_delay{100};
// After answering a client we close on, read what it still sends for this long, so that closing
// with unread bytes does not reset the connection before the answer arrives.
constexpr std::chrono::milliseconds linger_timeout{1000};

std::string_view view(beast::string_view s) noexcept {
    return {s.data(), s.size()};
}

void log_debug(std::string_view message, const error_code& ec) {
    auto& log = observability::component_logger("http");
    if (log.should_log(spdlog::level::debug))
        observability::log_event(log, spdlog::level::debug, message, {{"error", ec.message()}});
}

// One connection after detection: TLS (ssl_stream) on the webhook port, plain on the metrics port.
template <class Stream>
class HttpSession : public Connection, public std::enable_shared_from_this<HttpSession<Stream>> {
  public:
    static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

    HttpSession(beast::tcp_stream&& stream, SslContextPtr tls, beast::flat_buffer&& buffer,
                ListenerContext& context, ConnectionTracker::Slot slot) requires is_tls
        : tls_(std::move(tls)),
          stream_(std::move(stream), *tls_),
          buffer_(std::move(buffer)),
          context_(context),
          slot_(std::move(slot)) {
        // Asio's engine asks OpenSSL to free its record buffers (some 34 KB) whenever they run
        // empty, so every request allocated and freed them anew; past 1 KB, glibc's malloc then
        // consolidates its fast bins each time. Keeping them costs that memory per connection
        // (at most --max-connections of them) and saves the churn on every request.
        SSL_clear_mode(stream_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    }

    HttpSession(beast::tcp_stream&& stream, ListenerContext& context,
                ConnectionTracker::Slot slot) requires(!is_tls)
        : stream_(std::move(stream)), context_(context), slot_(std::move(slot)) {}

    void run() {
        slot_.attach(this->weak_from_this());
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&HttpSession::on_run, this->shared_from_this()));
    }

    void begin_drain() override {
        net::post(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::on_drain, this->shared_from_this()));
    }

  private:
    enum class Phase : std::uint8_t { Handshake, Idle, Reading, Writing, Closing };

    beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

    void on_run() {
        if constexpr (is_tls) {
            phase_ = Phase::Handshake;
            lowest().expires_after(context_.settings.handshake_timeout);
            // The bytes TLS detection already read are the start of the ClientHello.
            stream_.async_handshake(
                ssl::stream_base::server, buffer_.data(),
                beast::bind_front_handler(&HttpSession::on_handshake, this->shared_from_this()));
        } else {
            start_request(true);
        }
    }

    void on_handshake(error_code ec, std::size_t used) {
        if (ec) {
            context_.metrics.record_tls_handshake_failure();
            log_debug("TLS handshake failed", ec);
            return;
        }
        buffer_.consume(used);
        start_request(true);
    }

    void start_request(bool first) {
        if (!first && context_.handler.draining()) {
            do_close();
            return;
        }
        Request next;
        next.body() = std::move(spare_body_); // empty, with the last body's capacity
        spare_body_ = {};
        parser_.emplace(std::move(next));
        parser_->header_limit(context_.settings.header_limit);
        parser_->body_limit(context_.settings.body_limit);
        endpoint_.reset();
        if (first || buffer_.size() > 0) {
            read_header();
            return;
        }
        // Between requests the connection may idle for long; once a byte arrives, the header
        // has the header timeout to complete.
        phase_ = Phase::Idle;
        lowest().expires_after(context_.settings.idle_timeout);
        stream_.async_read_some(
            buffer_.prepare(request_read_size),
            beast::bind_front_handler(&HttpSession::on_idle_read, this->shared_from_this()));
    }

    void on_idle_read(error_code ec, std::size_t bytes) {
        if (ec) {
            // Cancelled by the drain: say goodbye properly. Otherwise the peer left or idled out.
            if (ec == net::error::operation_aborted && context_.handler.draining())
                do_close();
            return;
        }
        buffer_.commit(bytes);
        read_header();
    }

    void read_header() {
        phase_ = Phase::Reading;
        lowest().expires_after(context_.settings.header_timeout);
        http::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&HttpSession::on_header, this->shared_from_this()));
    }

    void on_header(error_code ec, std::size_t) {
        if (ec) {
            on_read_error(ec);
            return;
        }
        const auto& header = parser_->get();
        const Route route =
            check_request_header(view(header.method_string()), view(header.target()),
                                 view(header[http::field::content_type]), context_.role);
        // A body we will not read must not be taken for the next request: answer and close.
        const bool body_pending = !parser_->is_done();
        if (!route.endpoint) {
            reply_error(route.status, route.reason, route.allow, body_pending);
            return;
        }
        endpoint_ = route.endpoint;
        if (body_pending) {
            // Room in memory for the whole body (its worst case when chunked) before reading it.
            const auto length = parser_->content_length();
            body_reservation_ =
                context_.bodies.try_reserve(length ? *length : context_.settings.body_limit);
            if (!body_reservation_) {
                reply_error(503, "too many large request bodies in progress; retry shortly", {},
                            true);
                return;
            }
        }
        if (body_pending && expects_continue(view(header[http::field::expect]))) {
            continue_.emplace(http::status::continue_, header.version());
            phase_ = Phase::Writing;
            lowest().expires_after(context_.settings.write_timeout);
            http::async_write(
                stream_, *continue_,
                beast::bind_front_handler(&HttpSession::on_continue, this->shared_from_this()));
            return;
        }
        read_body();
    }

    void on_continue(error_code ec, std::size_t) {
        if (ec)
            return;
        phase_ = Phase::Reading;
        read_body();
    }

    void read_body() {
        lowest().expires_after(context_.settings.body_timeout);
        http::async_read(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&HttpSession::on_body, this->shared_from_this()));
    }

    void on_body(error_code ec, std::size_t) {
        if (ec) {
            on_read_error(ec);
            return;
        }
        Request request = parser_->release();
        response_ = context_.handler.respond(*endpoint_, request);
        response_.keep_alive(request.keep_alive() && !context_.handler.draining());
        if (request.body().capacity() <= reused_body_capacity) {
            spare_body_ = std::move(request.body());
            spare_body_.clear();
        }
        request = {};
        body_reservation_.reset(); // the body is gone
        send();
    }

    void on_read_error(const error_code& ec) {
        const unsigned version =
            parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
        if (auto reply = read_error_reply(ec, context_.settings.body_limit)) {
            reply_error(reply->status, reply->reason, {}, true, version);
            return;
        }
        log_debug("connection ended while reading a request", ec);
    }

    void reply_error(unsigned status, std::string_view reason, std::string_view allow, bool close,
                     unsigned version = 0) {
        if (version == 0)
            version = parser_->get().version();
        response_ = context_.handler.error_response(status, reason, version, allow);
        const bool keep = !close && !context_.handler.draining() && parser_ &&
                          parser_->is_header_done() && parser_->get().keep_alive();
        response_.keep_alive(keep);
        send();
    }

    void send() {
        phase_ = Phase::Writing;
        lowest().expires_after(context_.settings.write_timeout);
        http::async_write(
            stream_, response_,
            beast::bind_front_handler(&HttpSession::on_write, this->shared_from_this()));
    }

    void on_write(error_code ec, std::size_t) {
        if (ec) {
            log_debug("write failed", ec);
            return;
        }
        if (!response_.keep_alive()) {
            do_close();
            return;
        }
        response_ = {};
        start_request(false);
    }

    void do_close() {
        phase_ = Phase::Closing;
        if constexpr (is_tls) {
            lowest().expires_after(context_.settings.close_timeout);
            stream_.async_shutdown(
                beast::bind_front_handler(&HttpSession::on_shutdown, this->shared_from_this()));
        } else {
            linger();
        }
    }

    void on_shutdown(error_code) {
        // close_notify is sent; whether the peer answered or kept sending (a refused body), close
        // the TCP side gracefully too.
        linger();
    }

    // Closing a socket with unread bytes makes the kernel send a reset, which can destroy the
    // response still on its way: send FIN, then discard what the peer sends until it closes too
    // or the linger time is up.
    void linger() {
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
        buffer_.clear();
        lowest().expires_after(linger_timeout);
        lowest().async_read_some(
            buffer_.prepare(discard_read_size),
            beast::bind_front_handler(&HttpSession::on_linger, this->shared_from_this()));
    }

    void on_linger(error_code ec, std::size_t) {
        if (ec)
            return; // the peer closed, or the linger time is over: the stream closes with us
        lowest().async_read_some(
            buffer_.prepare(discard_read_size),
            beast::bind_front_handler(&HttpSession::on_linger, this->shared_from_this()));
    }

    void on_drain() {
        // Only a connection waiting for its next request is cut now; one mid-request finishes it
        // and closes after the response (keep-alive is off while draining).
        if (phase_ == Phase::Idle)
            lowest().cancel();
    }

    SslContextPtr tls_; // declared before stream_: the SSL stream must not outlive its context
    Stream stream_;
    beast::flat_buffer buffer_;
    ListenerContext& context_;
    ConnectionTracker::Slot slot_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::string spare_body_; // see reused_body_capacity
    std::optional<http::response<http::empty_body>> continue_;
    Response response_;
    std::optional<Endpoint> endpoint_;
    std::optional<BodyBudget::Reservation> body_reservation_;
    Phase phase_ = Phase::Reading;
};

using TlsSession = HttpSession<beast::ssl_stream<beast::tcp_stream>>;
using PlainSession = HttpSession<beast::tcp_stream>;

// The first bytes of a webhook-port connection: a TLS ClientHello goes on to a TlsSession; plain
// HTTP gets a 400 in plain HTTP, since it could not read a TLS alert anyway.
class TlsDetector : public Connection, public std::enable_shared_from_this<TlsDetector> {
  public:
    TlsDetector(tcp::socket&& socket, ListenerContext& context, ConnectionTracker::Slot slot)
        : executor_(socket.get_executor()), stream_(std::move(socket)), context_(context),
          slot_(std::move(slot)) {}

    void run() {
        slot_.attach(weak_from_this());
        net::dispatch(executor_,
                      beast::bind_front_handler(&TlsDetector::on_run, shared_from_this()));
    }

    // Uses the executor kept aside: once handed to the session, stream_ is moved from.
    void begin_drain() override {
        net::post(executor_, beast::bind_front_handler(&TlsDetector::on_drain, shared_from_this()));
    }

  private:
    void on_run() {
        stream_.expires_after(context_.settings.handshake_timeout);
        beast::async_detect_ssl(
            stream_, buffer_,
            beast::bind_front_handler(&TlsDetector::on_detect, shared_from_this()));
    }

    void on_detect(error_code ec, bool tls) {
        if (draining_)
            return; // the drain came before the client said anything
        if (ec) {
            log_debug("connection ended before TLS", ec);
            return;
        }
        if (tls) {
            handed_off_ = true;
            std::make_shared<TlsSession>(std::move(stream_), context_.tls->current(),
                                         std::move(buffer_), context_, std::move(slot_))
                ->run();
            return;
        }
        context_.metrics.record_tls_handshake_failure();
        response_ = context_.handler.error_response(400, "this port speaks HTTPS", 11);
        response_.keep_alive(false);
        stream_.expires_after(context_.settings.write_timeout);
        http::async_write(stream_, response_,
                          beast::bind_front_handler(&TlsDetector::on_write, shared_from_this()));
    }

    void on_write(error_code ec, std::size_t) {
        if (ec)
            return;
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream_.expires_after(linger_timeout);
        stream_.async_read_some(
            buffer_.prepare(discard_read_size),
            beast::bind_front_handler(&TlsDetector::on_linger, shared_from_this()));
    }

    void on_linger(error_code ec, std::size_t bytes) {
        if (ec)
            return;
        buffer_.commit(bytes);
        buffer_.consume(buffer_.size());
        stream_.async_read_some(
            buffer_.prepare(discard_read_size),
            beast::bind_front_handler(&TlsDetector::on_linger, shared_from_this()));
    }

    void on_drain() {
        if (handed_off_)
            return; // the session has been told itself
        draining_ = true;
        stream_.cancel();
    }

    net::any_io_executor executor_; // the connection's loop
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    ListenerContext& context_;
    ConnectionTracker::Slot slot_;
    Response response_;
    bool draining_ = false;
    bool handed_off_ = false;
};

} // namespace

Listener::Listener(IoPool& loops, const tcp::endpoint& endpoint, ListenerContext& context)
    : loops_(loops), acceptor_(loops.first()), retry_timer_(acceptor_.get_executor()),
      context_(context) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
    port_ = acceptor_.local_endpoint().port();
}

void Listener::run() {
    do_accept();
}

void Listener::stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
        error_code ignored;
        self->acceptor_.close(ignored);
        self->retry_timer_.cancel();
    });
}

void Listener::do_accept() {
    // Each connection lives on the pool's next loop. One thread runs that loop, so the loop is the
    // connection's strand: its handlers never run concurrently, and an explicit strand on top
    // would only add a queue and a lock per handler (measured: 31-45 us of CPU per /validate
    // against 27-33 us without).
    acceptor_.async_accept(loops_.next().get_executor(),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
}

void Listener::on_accept(error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open())
        return;
    if (ec) {
        // Out of file descriptors and the like: pause instead of spinning on the error.
        observability::log_event(observability::component_logger("http"), spdlog::level::warn,
                                 "accept failed", {{"error", ec.message()}});
        retry_timer_.expires_after(accept_retry_delay);
        retry_timer_.async_wait([self = shared_from_this()](error_code wait_ec) {
            if (!wait_ec && self->acceptor_.is_open())
                self->do_accept();
        });
        return;
    }
    auto slot = context_.tracker.try_acquire();
    if (!slot) {
        context_.metrics.record_connection_rejected();
        error_code ignored;
        socket.close(ignored);
    } else {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        if (context_.tls)
            std::make_shared<TlsDetector>(std::move(socket), context_, std::move(*slot))->run();
        else
            std::make_shared<PlainSession>(beast::tcp_stream(std::move(socket)), context_,
                                           std::move(*slot))
                ->run();
    }
    do_accept();
}

} // namespace mtlsguard::https
