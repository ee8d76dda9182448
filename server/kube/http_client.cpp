// A verified HTTPS client for the Kubernetes API on Boost.Beast: whole and streamed GETs, and
// writes, over kept-alive connections.
#include "server/kube/http_client.hpp"

#include "server/kube/watch_event.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <vector>

namespace mtlsguard::kube {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct ApiClient::Target {
    ServerAddress address;
    std::string server_name; // checked against the certificate; SNI unless an IP address
    bool server_name_is_ip = false;
    std::string host_header;
    std::shared_ptr<ssl::context> tls;
};

namespace {

using Clock = std::chrono::steady_clock;

// One TLS connection to the API server, moved from call to call while it stays usable.
struct Connection {
    Connection(const net::any_io_executor& executor, std::shared_ptr<const ApiClient::Target> t)
        : target(std::move(t)), stream(executor, *target->tls) {}

    void close() noexcept {
        boost::system::error_code ignored;
        beast::get_lowest_layer(stream).socket().close(ignored);
    }

    std::shared_ptr<const ApiClient::Target> target; // before stream: owns the TLS context
    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    Clock::time_point idle_since;
};

} // namespace

// Connections whose last answer ended cleanly, kept for the next request as client-go's
// transport keeps them: a page of a list then costs no TCP and TLS handshake. Shared with calls
// in flight, which may end after the client; locked because the client may be destroyed on
// another thread than its executor's.
class ApiClient::Pool {
  public:
    // Newest first: the one least likely to have been closed by the server meanwhile. Too old
    // ones are closed here rather than by a timer, which would keep an io_context's run() busy.
    std::unique_ptr<Connection> take() {
        std::lock_guard lock(mutex_);
        const auto now = Clock::now();
        while (!idle_.empty()) {
            auto connection = std::move(idle_.back());
            idle_.pop_back();
            if (now - connection->idle_since < max_idle_time)
                return connection;
            connection->close();
        }
        return nullptr;
    }

    void put(std::unique_ptr<Connection> connection) {
        connection->idle_since = Clock::now();
        beast::get_lowest_layer(connection->stream).expires_never();
        std::lock_guard lock(mutex_);
        if (closed_) {
            connection->close();
            return;
        }
        if (idle_.size() >= max_idle) {
            idle_.front()->close();
            idle_.erase(idle_.begin());
        }
        idle_.push_back(std::move(connection));
    }

    void close_all() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        for (auto& connection : idle_)
            connection->close();
        idle_.clear();
    }

    std::size_t idle() const {
        std::lock_guard lock(mutex_);
        return idle_.size();
    }

  private:
    // client-go keeps up to 25 per host; a watcher has about one request in flight per resource.
    static constexpr std::size_t max_idle = 8;
    // Below the idle timeouts servers and proxies commonly use (Go's: 90 s), so that a kept
    // connection is rarely found closed; one that is, is replaced (see Exchange::stale).
    static constexpr auto max_idle_time = std::chrono::seconds(30);

    mutable std::mutex mutex_;
    bool closed_ = false;
    std::vector<std::unique_ptr<Connection>> idle_;
};

namespace {

constexpr const char* user_agent = "mtls-guard/0.1 (kube-watcher)";
constexpr std::size_t header_limit = 64 * 1024;

bool is_ip_address(const std::string& text) {
    boost::system::error_code ec;
    net::ip::make_address(text, ec);
    return !ec;
}

std::shared_ptr<ssl::context> make_tls_context(const ClusterConfig& config) {
    const std::string where = config.source.empty() ? "cluster configuration" : config.source;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (config.ca_pem.empty()) {
        // A kubeconfig without a CA trusts the system's roots, as kubectl does; still verified.
        ctx->set_default_verify_paths(ec);
        if (ec)
            throw ConfigError(where + ": cannot load the system trust store: " + ec.message());
    } else {
        ctx->add_certificate_authority(net::buffer(config.ca_pem), ec);
        if (ec)
            throw ConfigError(where +
                              ": the certificate authority is not a usable PEM "
                              "certificate: " +
                              ec.message());
    }
    if (!config.client_certificate_pem.empty()) {
        ctx->use_certificate_chain(net::buffer(config.client_certificate_pem), ec);
        if (ec)
            throw ConfigError(where +
                              ": the client certificate is not usable PEM: " + ec.message());
        ctx->use_private_key(net::buffer(config.client_key_pem), ssl::context::pem, ec);
        if (ec &&
            ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
            throw ConfigError(where + ": the client key does not match the client certificate");
        if (ec)
            throw ConfigError(where + ": the client key is not usable PEM: " + ec.message());
        if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
            throw ConfigError(where + ": the client key does not match the client certificate");
    }
    return ctx;
}

// Dead peers behind a silent network would otherwise keep a watch open until its timeout.
void enable_keepalive(tcp::socket& socket) {
    boost::system::error_code ec;
    socket.set_option(net::socket_base::keep_alive(true), ec);
    socket.set_option(net::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>(30), ec);
    socket.set_option(net::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>(10), ec);
    socket.set_option(net::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPCNT>(3), ec);
    socket.set_option(tcp::no_delay(true), ec);
}

// A body larger than this is read with this much room in the connection's buffer.
constexpr std::size_t large_body = std::size_t{64} << 10;

// One request: on a kept connection, or on a new one (resolve, connect, handshake); then write
// and read.
class Exchange final : public HttpCall, public std::enable_shared_from_this<Exchange> {
  public:
    Exchange(net::any_io_executor executor, std::shared_ptr<const ApiClient::Target> target,
             std::weak_ptr<ApiClient::Pool> pool, HttpRequest request, std::string token)
        : executor_(executor), target_(std::move(target)), pool_(std::move(pool)),
          request_(std::move(request)), token_(std::move(token)), resolver_(executor),
          timer_(executor) {}

    // A whole answer: a GET, or a write with its body.
    void start_get(std::function<void(HttpResult)> done) {
        done_ = std::move(done);
        start();
    }

    void start_stream(StreamHandlers handlers) {
        streaming_ = true;
        handlers_ = std::move(handlers);
        start();
    }

    void cancel() override {
        if (cancelled_)
            return;
        cancelled_ = true;
        close();
        // The handlers may own whoever cancels (and may be running right now): let them go on
        // the next turn of the executor, or with the io_context.
        net::post(executor_, [done = std::move(done_), handlers = std::move(handlers_)] {});
        done_ = nullptr;
        handlers_ = {};
    }

  private:
    bool stopped() const noexcept { return cancelled_ || finished_; }
    beast::ssl_stream<beast::tcp_stream>& stream() noexcept { return connection_->stream; }
    beast::flat_buffer& buffer() noexcept { return connection_->buffer; }

    void start() {
        build_request();
        // Only a GET goes on a kept connection: it may be sent again if the server turns out to
        // have closed that connection, and a write may not.
        if (request_.method == HttpMethod::Get) {
            if (auto pool = pool_.lock())
                connection_ = pool->take();
        }
        if (connection_) {
            reused_ = true;
            return write_request();
        }
        resolve();
    }

    void resolve() {
        connection_ = std::make_unique<Connection>(executor_, target_);
        reused_ = false;
        // The resolver has no timeout of its own.
        timer_.expires_after(request_.timeout);
        timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec) {
                self->resolve_timed_out_ = true;
                self->resolver_.cancel();
            }
        });
        resolver_.async_resolve(target_->address.host, target_->address.port,
                                [self = shared_from_this()](boost::system::error_code ec,
                                                            tcp::resolver::results_type results) {
                                    self->on_resolve(ec, std::move(results));
                                });
    }

    void on_resolve(boost::system::error_code ec, const tcp::resolver::results_type& results) {
        timer_.cancel();
        if (stopped())
            return;
        if (resolve_timed_out_)
            return fail("resolve " + target_->address.host, beast::error::timeout);
        if (ec)
            return fail("resolve " + target_->address.host, ec);
        beast::get_lowest_layer(stream()).expires_after(request_.timeout);
        beast::get_lowest_layer(stream()).async_connect(
            results, [self = shared_from_this()](boost::system::error_code e,
                                                 const tcp::endpoint&) { self->on_connect(e); });
    }

    void on_connect(boost::system::error_code ec) {
        if (stopped())
            return;
        if (ec)
            return fail("connect to " + target_->host_header, ec);
        enable_keepalive(beast::get_lowest_layer(stream()).socket());
        SSL* ssl_handle = stream().native_handle();
        // The certificate must name the server: a DNS name (no partial wildcards) or an IP SAN.
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        const bool name_set =
            target_->server_name_is_ip
                ? X509_VERIFY_PARAM_set1_ip_asc(param, target_->server_name.c_str()) == 1
                : X509_VERIFY_PARAM_set1_host(param, target_->server_name.c_str(), 0) == 1;
        if (!name_set)
            return fail("TLS setup", net::error::invalid_argument);
        // SNI carries host names only (RFC 6066).
        // SSL_set_tlsext_host_name without its C cast.
        if (!target_->server_name_is_ip &&
            SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(target_->server_name.c_str())) != 1)
            return fail("TLS setup (SNI)", net::error::invalid_argument);
        beast::get_lowest_layer(stream()).expires_after(request_.timeout);
        stream().async_handshake(
            ssl::stream_base::client,
            [self = shared_from_this()](boost::system::error_code e) { self->on_handshake(e); });
    }

    void on_handshake(boost::system::error_code ec) {
        if (stopped())
            return;
        if (ec) {
            std::string step = "TLS handshake with " + target_->host_header;
            const long verify = SSL_get_verify_result(stream().native_handle());
            if (verify != X509_V_OK)
                step +=
                    " (server certificate: " + std::string(X509_verify_cert_error_string(verify)) +
                    ")";
            return fail(step, ec);
        }
        write_request();
    }

    // Once per exchange: a retry on a new connection sends the same message.
    void build_request() {
        switch (request_.method) {
        case HttpMethod::Get:
            request_message_.method(http::verb::get);
            break;
        case HttpMethod::Post:
            request_message_.method(http::verb::post);
            break;
        case HttpMethod::Put:
            request_message_.method(http::verb::put);
            break;
        case HttpMethod::Patch:
            request_message_.method(http::verb::patch);
            break;
        }
        request_message_.target(target_->address.path_prefix + request_.target);
        request_message_.version(11);
        request_message_.set(http::field::host, target_->host_header);
        request_message_.set(http::field::user_agent, user_agent);
        request_message_.set(http::field::accept, request_.accept);
        if (!token_.empty())
            request_message_.set(http::field::authorization, "Bearer " + token_);
        token_.clear();
        if (request_.method != HttpMethod::Get) {
            request_message_.set(http::field::content_type, request_.content_type);
            request_message_.body() = std::move(request_.body);
            request_.body.clear();
            request_message_.prepare_payload();
        }
    }

    void write_request() {
        beast::get_lowest_layer(stream()).expires_after(request_.timeout);
        http::async_write(stream(), request_message_,
                          [self = shared_from_this()](boost::system::error_code e, std::size_t) {
                              self->on_write(e);
                          });
    }

    // A kept connection the server closed while it was idle fails at once, before any byte of
    // an answer: then the request goes again on a new connection, as Go's transport does. A
    // timeout is not such a failure: the server may be busy with the request.
    bool stale(boost::system::error_code ec) const {
        if (!reused_ || (parser_ && parser_->got_some()))
            return false;
        return ec == http::error::end_of_stream || ec == net::error::eof ||
               ec == net::error::connection_reset || ec == net::error::broken_pipe ||
               ec == net::error::connection_aborted || ec == ssl::error::stream_truncated;
    }

    void retry_on_new_connection() {
        connection_->close();
        parser_.reset();
        resolve();
    }

    void on_write(boost::system::error_code ec) {
        if (stopped())
            return;
        if (ec && stale(ec))
            return retry_on_new_connection();
        if (ec)
            return fail("send request", ec);
        parser_.emplace();
        parser_->get().body() = std::move(request_.body_storage);
        parser_->get().body().clear();
        parser_->header_limit(header_limit);
        parser_->body_limit(request_.body_limit);
        beast::get_lowest_layer(stream()).expires_after(request_.timeout);
        http::async_read_header(stream(), buffer(), *parser_,
                                [self = shared_from_this()](boost::system::error_code e,
                                                            std::size_t) { self->on_header(e); });
    }

    HttpResult answer() {
        HttpResult result;
        auto& message = parser_->get();
        result.status = message.result_int();
        auto retry = message.find(http::field::retry_after);
        if (retry != message.end())
            result.retry_after =
                parse_retry_after(std::string_view(retry->value().data(), retry->value().size()));
        return result;
    }

    void on_whole(boost::system::error_code ec) {
        if (stopped())
            return;
        if (ec)
            return fail("read response", ec);
        HttpResult result = answer();
        result.body = std::move(parser_->get().body());
        if (request_.body_padding != 0 &&
            result.body.capacity() - result.body.size() < request_.body_padding)
            result.body.reserve(result.body.size() + request_.body_padding);
        finish(std::move(result));
    }

    void on_header(boost::system::error_code ec) {
        if (stopped())
            return;
        if (ec && stale(ec))
            return retry_on_new_connection();
        if (ec)
            return fail("read response header", ec);
        if (!streaming_ || parser_->get().result_int() != 200) {
            // A whole answer, or an error answer (a Status object, read for its code and
            // message). Beast 1.74 loses its own Content-Length check against the body limit when
            // it parses eagerly, so the length is checked here before reading on.
            const auto length = parser_->content_length();
            if (length && *length > request_.body_limit)
                return fail("read response", http::error::body_limit);
            // Before the body's reader reserves exactly the length: with the padding too.
            if (length)
                parser_->get().body().reserve(*length + request_.body_padding);
            // Beast reads as much as the connection's buffer has room for, and the parser empties
            // it after each read: with the few hundred bytes left by the header, a 3 MB list page
            // took thousands of reads (each a TLS call, a timer and a handler). Room for a few
            // TLS records makes a read per record.
            if (length && *length > large_body && buffer().capacity() < large_body)
                buffer().reserve(large_body);
            beast::get_lowest_layer(stream()).expires_after(request_.timeout);
            http::async_read(stream(), buffer(), *parser_,
                             [self = shared_from_this()](boost::system::error_code e, std::size_t) {
                                 self->on_whole(e);
                             });
            return;
        }
        // A watch runs for minutes: no total limit, the line splitter bounds each event instead.
        parser_->body_limit(boost::none);
        // The API server streams a watch as chunked transfer encoding; take each chunk's data
        // as it arrives rather than storing it in the body.
        chunk_callback_ = [this](std::uint64_t, beast::string_view data,
                                 boost::system::error_code&) -> std::size_t {
            pending_.append(data.data(), data.size());
            return data.size();
        };
        parser_->on_chunk_body(chunk_callback_);
        if (handlers_.on_open)
            handlers_.on_open();
        if (stopped())
            return;
        read_some();
    }

    void read_some() {
        beast::get_lowest_layer(stream()).expires_after(
            request_.stream_idle_timeout.value_or(request_.timeout));
        http::async_read_some(stream(), buffer(), *parser_,
                              [self = shared_from_this()](boost::system::error_code e,
                                                          std::size_t) { self->on_some(e); });
    }

    void on_some(boost::system::error_code ec) {
        if (stopped())
            return;
        // A proxy may have removed the chunking: then the data lands in the body.
        std::string& body = parser_->get().body();
        if (!body.empty()) {
            pending_.append(body);
            body.clear();
        }
        if (!pending_.empty()) {
            // Whatever arrived before an error is still delivered: complete lines in it are valid.
            const std::string data = std::move(pending_);
            pending_.clear();
            if (!handlers_.on_data || !handlers_.on_data(data)) {
                cancel();
                return;
            }
            if (stopped())
                return;
        }
        if (ec)
            return fail("read watch stream", ec);
        if (parser_->is_done()) {
            HttpResult result;
            result.status = 200;
            return finish(std::move(result));
        }
        read_some();
    }

    void fail(const std::string& step, boost::system::error_code ec) {
        HttpResult result;
        result.error = ec;
        if (ec == beast::error::timeout)
            result.error_detail = step + ": timed out";
        else if (ec == http::error::body_limit)
            result.error_detail =
                step + ": larger than " + std::to_string(request_.body_limit) + " bytes";
        else
            result.error_detail = step + ": " + ec.message();
        finish(std::move(result));
    }

    void finish(HttpResult result) {
        if (stopped())
            return;
        finished_ = true;
        timer_.cancel();
        const bool complete = !result.error && parser_ && parser_->is_done();
        // Kept before the handler runs, which often sends the next request (a list's next page).
        // A watch's connection is not: the API server may close it when the watch times out.
        if (complete && !streaming_ && parser_->keep_alive() && buffer().size() == 0) {
            if (auto pool = pool_.lock()) {
                pool->put(std::move(connection_));
                parser_.reset();
            }
        }
        const bool reusable_shutdown = complete && !streaming_;
        if (streaming_) {
            if (handlers_.on_end)
                handlers_.on_end(std::move(result));
        } else if (done_) {
            done_(std::move(result));
        }
        handlers_ = {};
        done_ = nullptr;
        if (!connection_)
            return; // kept for the next request
        if (reusable_shutdown && !cancelled_)
            shutdown();
        else
            close();
    }

    // A polite TLS close after a complete answer, bounded by a short timeout.
    void shutdown() {
        beast::get_lowest_layer(stream()).expires_after(std::chrono::seconds(2));
        stream().async_shutdown(
            [self = shared_from_this()](boost::system::error_code) { self->close(); });
    }

    void close() {
        timer_.cancel();
        resolver_.cancel();
        if (connection_)
            connection_->close();
    }

    net::any_io_executor executor_;
    std::shared_ptr<const ApiClient::Target> target_;
    std::weak_ptr<ApiClient::Pool> pool_;
    HttpRequest request_;
    std::string token_;
    tcp::resolver resolver_;
    std::unique_ptr<Connection> connection_; // none while kept in the pool
    net::steady_timer timer_;
    http::request<http::string_body> request_message_;
    std::optional<http::response_parser<http::string_body>> parser_;
    std::function<std::size_t(std::uint64_t, beast::string_view, boost::system::error_code&)>
        chunk_callback_;
    std::string pending_;
    bool streaming_ = false;
    bool resolve_timed_out_ = false;
    bool cancelled_ = false;
    bool finished_ = false;
    bool reused_ = false; // connection_ came from the pool
    std::function<void(HttpResult)> done_;
    StreamHandlers handlers_;
};

} // namespace

std::string HttpResult::describe() const {
    if (error)
        return error_detail.empty() ? error.message() : error_detail;
    std::string out = "HTTP " + std::to_string(status);
    std::string parse_error;
    if (auto json = parse_json_limited(body, parse_error)) {
        if (auto api_status = parse_status(*json)) {
            if (!api_status->reason.empty())
                out += " " + api_status->reason;
            if (!api_status->message.empty())
                out += ": " + api_status->message;
            return out;
        }
    }
    if (!body.empty())
        out += ": " + body.substr(0, 200);
    return out;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) noexcept {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    if (value.size() > 9)
        return std::chrono::seconds(600);
    long seconds = 0;
    std::from_chars(value.data(), value.data() + value.size(), seconds);
    return std::chrono::seconds(std::min(seconds, 600L));
}

ApiClient::ApiClient(net::any_io_executor executor, const ClusterConfig& config)
    : executor_(std::move(executor)), server_(config.server),
      token_(std::make_shared<BearerToken>(config)) {
    auto target = std::make_shared<Target>();
    target->address = parse_server_url(config.server);
    target->server_name =
        config.tls_server_name.empty() ? target->address.host : config.tls_server_name;
    target->server_name_is_ip = is_ip_address(target->server_name);
    const bool ipv6 = target->address.host.find(':') != std::string::npos;
    target->host_header = (ipv6 ? "[" + target->address.host + "]" : target->address.host);
    if (target->address.port != "443")
        target->host_header += ":" + target->address.port;
    target->tls = make_tls_context(config);
    target_ = std::move(target);
    pool_ = std::make_shared<Pool>();
}

ApiClient::~ApiClient() {
    pool_->close_all();
}

std::shared_ptr<HttpCall> ApiClient::get(HttpRequest request,
                                         std::function<void(HttpResult)> done) {
    request.method = HttpMethod::Get;
    return send(std::move(request), std::move(done));
}

std::shared_ptr<HttpCall> ApiClient::send(HttpRequest request,
                                          std::function<void(HttpResult)> done) {
    auto call = std::make_shared<Exchange>(executor_, target_, pool_, std::move(request),
                                           token_->current());
    call->start_get(std::move(done));
    return call;
}

std::shared_ptr<HttpCall> ApiClient::stream(const HttpRequest& request, StreamHandlers handlers) {
    HttpRequest get_request = request;
    get_request.method = HttpMethod::Get;
    auto call =
        std::make_shared<Exchange>(executor_, target_, pool_, get_request, token_->current());
    call->start_stream(std::move(handlers));
    return call;
}

std::size_t ApiClient::idle_connections() const {
    return pool_->idle();
}

void ApiClient::token_rejected() {
    token_->invalidate();
}

} // namespace mtlsguard::kube
