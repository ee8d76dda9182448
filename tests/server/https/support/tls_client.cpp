// The loopback TLS and plain clients of tls_client.hpp.
#include "tests/server/https/support/tls_client.hpp"

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sstream>
#include <stdexcept>

namespace mtlsguard::serve_testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

bool is_closed(const error_code& ec) {
    return ec == net::error::eof || ec == ssl::error::stream_truncated ||
           ec == net::error::connection_reset || ec == http::error::end_of_stream ||
           ec == net::error::broken_pipe || ec.category() == net::error::get_ssl_category();
}

bool hung_up(int fd, std::chrono::milliseconds wait) {
    pollfd p{fd, POLLRDHUP, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(wait.count()));
    return ready > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

http::request<http::string_body> get(const std::string& target) {
    http::request<http::string_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "localhost");
    return request;
}

http::request<http::string_body> post(const std::string& body, const std::string& target,
                                      const std::string& content_type) {
    http::request<http::string_body> request{http::verb::post, target, 11};
    request.set(http::field::host, "localhost");
    if (!content_type.empty())
        request.set(http::field::content_type, content_type);
    request.body() = body;
    request.prepare_payload();
    return request;
}

// ------------------------------------------------------------------------------------ TlsClient

TlsClient::TlsClient(std::uint16_t port, const ClientOptions& options)
    : port_(port), ctx_(ssl::context::tls_client) {
    ctx_.set_verify_mode(ssl::verify_peer);
    for (const auto& ca : options.trusted)
        ctx_.load_verify_file(ca.string());
    if (options.certificate) {
        ctx_.use_certificate_chain_file(options.certificate->string());
        ctx_.use_private_key_file(options.key->string(), ssl::context::pem);
    }
    if (options.tls10_only) {
        // What an old client offers: TLS 1.0 only (OpenSSL 3 needs security level 0 for it).
        SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_VERSION);
        SSL_CTX_set_max_proto_version(ctx_.native_handle(), TLS1_VERSION);
        SSL_CTX_set_cipher_list(ctx_.native_handle(), "DEFAULT@SECLEVEL=0");
    }
}

error_code TlsClient::run(const std::function<void(Handler)>& start,
                          std::chrono::milliseconds timeout) {
    beast::get_lowest_layer(*stream_).expires_after(timeout);
    std::optional<error_code> result;
    start([&result](error_code ec) { result = ec; });
    io_.restart();
    io_.run();
    return result.value_or(net::error::timed_out);
}

error_code TlsClient::connect() {
    stream_.emplace(io_, ctx_);
    buffer_.clear();
    // SNI, as the API server sends it (SSL_set_tlsext_host_name without its C cast).
    if (SSL_ctrl(stream_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>("localhost")) != 1)
        return {static_cast<int>(::ERR_get_error()), net::error::get_ssl_category()};
    stream_->set_verify_callback(ssl::host_name_verification("localhost"));
    error_code ec = run([&](Handler handler) {
        beast::get_lowest_layer(*stream_).async_connect(
            tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), handler);
    });
    if (ec)
        return ec;
    return run(
        [&](Handler handler) { stream_->async_handshake(ssl::stream_base::client, handler); });
}

error_code TlsClient::send(const Request& request) {
    return run([&](Handler handler) {
        http::async_write(*stream_, request,
                          [handler](error_code ec, std::size_t) { handler(ec); });
    });
}

error_code TlsClient::write_raw(const std::string& bytes) {
    return run([&](Handler handler) {
        net::async_write(*stream_, net::buffer(bytes),
                         [handler](error_code ec, std::size_t) { handler(ec); });
    });
}

error_code TlsClient::read(Reply& reply, std::chrono::milliseconds timeout) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    const error_code ec = run(
        [&](Handler handler) {
            http::async_read(*stream_, buffer_, parser,
                             [handler](error_code e, std::size_t) { handler(e); });
        },
        timeout);
    if (ec)
        return ec;
    const auto& message = parser.get();
    reply.status = message.result_int();
    reply.body = message.body();
    reply.content_type = std::string(message[http::field::content_type]);
    reply.allow = std::string(message[http::field::allow]);
    reply.connection = std::string(message[http::field::connection]);
    reply.keep_alive = message.keep_alive();
    return {};
}

Reply TlsClient::exchange(const Request& request) {
    Reply reply;
    if (const error_code sent = send(request))
        throw std::runtime_error("send: " + sent.message());
    if (const error_code read_ec = read(reply))
        throw std::runtime_error("read: " + read_ec.message());
    return reply;
}

error_code TlsClient::exchange(const Request& request, Reply& reply) {
    if (const error_code sent = send(request))
        return sent;
    if (const error_code read_ec = read(reply))
        return read_ec;
    if (!reply.keep_alive)
        drop();
    return {};
}

error_code TlsClient::wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::array<char, 4096> scratch{};
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left <= 0ms)
            return beast::error::timeout;
        const error_code ec = run(
            [&](Handler handler) {
                stream_->async_read_some(net::buffer(scratch),
                                         [handler](error_code e, std::size_t) { handler(e); });
            },
            left);
        if (ec)
            return ec;
    }
}

bool TlsClient::peer_hung_up(std::chrono::milliseconds wait) {
    return hung_up(beast::get_lowest_layer(*stream_).socket().native_handle(), wait);
}

std::string TlsClient::peer_fingerprint() {
    X509* cert = SSL_get1_peer_certificate(stream_->native_handle());
    if (!cert)
        return {};
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int size = 0;
    X509_digest(cert, EVP_sha256(), md.data(), &size);
    X509_free(cert);
    return std::string(md.begin(), md.begin() + size);
}

void TlsClient::close() {
    if (stream_) {
        error_code ignored;
        beast::get_lowest_layer(*stream_).socket().close(ignored);
    }
}

// ---------------------------------------------------------------------------------- PlainClient

PlainClient::PlainClient(std::uint16_t port) : port_(port), stream_(io_) {}

error_code PlainClient::run(const std::function<void(Handler)>& start,
                            std::chrono::milliseconds timeout) {
    stream_.expires_after(timeout);
    std::optional<error_code> result;
    start([&result](error_code ec) { result = ec; });
    io_.restart();
    io_.run();
    return result.value_or(net::error::timed_out);
}

error_code PlainClient::connect() {
    return run([&](Handler handler) {
        stream_.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), handler);
    });
}

error_code PlainClient::write_raw(const std::string& bytes) {
    return run([&](Handler handler) {
        net::async_write(stream_, net::buffer(bytes),
                         [handler](error_code ec, std::size_t) { handler(ec); });
    });
}

bool PlainClient::peer_hung_up(std::chrono::milliseconds wait) {
    return hung_up(stream_.socket().native_handle(), wait);
}

void PlainClient::close() {
    error_code ignored;
    stream_.socket().close(ignored);
}

std::pair<std::string, error_code>
PlainClient::read_until_closed(std::chrono::milliseconds timeout) {
    std::string received;
    const auto deadline = Clock::now() + timeout;
    std::array<char, 4096> scratch{};
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left <= 0ms)
            return {received, beast::error::timeout};
        std::size_t got = 0;
        const error_code ec = run(
            [&](Handler handler) {
                stream_.async_read_some(net::buffer(scratch),
                                        [&got, handler](error_code e, std::size_t n) {
                                            got = n;
                                            handler(e);
                                        });
            },
            left);
        received.append(scratch.data(), got);
        if (ec)
            return {received, ec};
    }
}

} // namespace mtlsguard::serve_testing
