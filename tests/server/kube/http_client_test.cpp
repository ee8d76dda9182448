// Tests of server/kube/http_client over loopback TLS: verification, auth, limits, timeouts.
#include "server/kube/http_client.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>

using namespace mtlsguard::kube;
using namespace mtlsguard::kube::testing;
namespace net = boost::asio;

namespace {

// One client used for several requests in a row, as the watcher uses it.
class OneClient {
  public:
    OneClient(IoThread& thread, const ClusterConfig& config)
        : strand_(net::make_strand(thread.io)),
          client_(std::make_shared<ApiClient>(strand_, config)) {}

    HttpResult send(HttpRequest request) {
        std::promise<HttpResult> promise;
        auto result = promise.get_future();
        net::post(strand_, [&] {
            client_->send(std::move(request),
                          [&promise](HttpResult r) { promise.set_value(std::move(r)); });
        });
        REQUIRE(result.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
        return result.get();
    }

    // Streams to the end and returns how it ended.
    HttpResult stream(const HttpRequest& request) {
        std::promise<HttpResult> promise;
        auto result = promise.get_future();
        net::post(strand_, [&] {
            StreamHandlers handlers;
            handlers.on_data = [](std::string_view) { return true; };
            handlers.on_end = [&promise](HttpResult r) { promise.set_value(std::move(r)); };
            client_->stream(request, std::move(handlers));
        });
        REQUIRE(result.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
        return result.get();
    }

    std::size_t idle() {
        std::promise<std::size_t> promise;
        auto result = promise.get_future();
        net::post(strand_, [&] { promise.set_value(client_->idle_connections()); });
        return result.get();
    }

  private:
    net::strand<net::io_context::executor_type> strand_;
    std::shared_ptr<ApiClient> client_;
};

std::vector<std::uint64_t> connections_used(const FakeApiServer& server) {
    std::vector<std::uint64_t> out;
    for (const auto& request : server.requests())
        out.push_back(request.connection);
    return out;
}

// Runs one GET on a client of its own and waits for its result.
HttpResult get(IoThread& thread, const ClusterConfig& config, const HttpRequest& request) {
    return OneClient(thread, config).send(request);
}

HttpRequest request_for(const std::string& target) {
    HttpRequest request;
    request.target = target;
    request.timeout = std::chrono::seconds(5);
    return request;
}

} // namespace

TEST_CASE("A GET over verified TLS sends the bearer token and Accept header") {
    IoThread thread;
    FakeCluster cluster;
    HttpRequest request = request_for("/api/v1");
    request.accept = "application/json";
    HttpResult result = get(thread, cluster.config(), request);
    REQUIRE(result.ok());
    CHECK_THAT(result.body, Catch::Contains("APIResourceList"));
    auto requests = cluster.server.requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].authorization == "Bearer token-a");
    CHECK(requests[0].accept == "application/json");
}

TEST_CASE("A server whose certificate another CA signed is refused") {
    IoThread thread;
    FakeCluster cluster;
    ClusterConfig config = cluster.config();
    config.ca_pem = make_test_ca("some other CA").ca.certificate_pem;
    HttpResult result = get(thread, config, request_for("/api/v1"));
    CHECK(result.error);
    CHECK_THAT(result.error_detail, Catch::Contains("TLS handshake"));
    CHECK_THAT(result.error_detail, Catch::Contains("unable to get local issuer certificate"));
    CHECK(cluster.server.requests().empty());
}

TEST_CASE("The certificate must name the host dialled, or tls-server-name when set") {
    IoThread thread;
    TestCa ca = make_test_ca();
    // Like an API server whose certificate names the service, not the address dialled.
    KeyPair serving = ca.issue_server({}, {"kubernetes.default.svc"});
    FakeApiServer server(FakeServerOptions{serving.certificate_pem, serving.key_pem, {}, {}});
    ClusterConfig config;
    config.server = server.url();
    config.ca_pem = ca.ca.certificate_pem;

    HttpResult mismatch = get(thread, config, request_for("/api/v1"));
    CHECK(mismatch.error);
    CHECK_THAT(mismatch.error_detail, Catch::Contains("IP address mismatch"));

    config.tls_server_name = "kubernetes.default.svc";
    HttpResult named = get(thread, config, request_for("/api/v1"));
    CHECK(named.ok());

    config.tls_server_name = "kubernetes.default";
    HttpResult wrong_name = get(thread, config, request_for("/api/v1"));
    CHECK_THAT(wrong_name.error_detail, Catch::Contains("hostname mismatch"));
}

TEST_CASE("A client certificate authenticates where no token is given") {
    IoThread thread;
    TestCa ca = make_test_ca();
    KeyPair serving = ca.issue_server({"127.0.0.1"}, {});
    KeyPair user = ca.issue_client("test-user");
    FakeApiServer server(
        FakeServerOptions{serving.certificate_pem, serving.key_pem, ca.ca.certificate_pem, {}});
    ClusterConfig config;
    config.server = server.url();
    config.ca_pem = ca.ca.certificate_pem;
    CHECK(get(thread, config, request_for("/api/v1")).status == 401);

    config.client_certificate_pem = user.certificate_pem;
    config.client_key_pem = user.key_pem;
    HttpResult result = get(thread, config, request_for("/api/v1"));
    CHECK(result.ok());
    CHECK(server.requests().back().client_certificate);

    ClusterConfig mismatched = config;
    mismatched.client_key_pem = ca.issue_client("someone-else").key_pem;
    CHECK_THROWS_WITH(ApiClient(thread.io.get_executor(), mismatched),
                      Catch::Contains("does not match"));
    ClusterConfig garbage = config;
    garbage.ca_pem = "not PEM";
    CHECK_THROWS_AS(ApiClient(thread.io.get_executor(), garbage), ConfigError);
}

TEST_CASE("A 429 answer gives its status, Status message and Retry-After") {
    IoThread thread;
    FakeCluster cluster;
    cluster.server.fail_next("/api/v1", 429, 1, 7);
    HttpResult result = get(thread, cluster.config(), request_for("/api/v1"));
    CHECK_FALSE(result.error);
    CHECK(result.status == 429);
    REQUIRE(result.retry_after);
    CHECK(*result.retry_after == std::chrono::seconds(7));
    CHECK_THAT(result.describe(), Catch::Contains("HTTP 429 TooManyRequests"));
}

TEST_CASE("Retry-After in seconds is read; dates and garbage are ignored") {
    using std::chrono::seconds;
    const auto [header, expected] = GENERATE(table<std::string, std::optional<seconds>>({
        {"1", seconds(1)},
        {" 30 ", seconds(30)},
        {"86400", seconds(600)},
        {"Wed, 21 Oct 2015 07:28:00 GMT", std::nullopt},
        {"-1", std::nullopt},
        {"", std::nullopt},
    }));
    CAPTURE(header);
    CHECK(parse_retry_after(header) == expected);
}

TEST_CASE("An answer over the body limit is an error, not a truncated body") {
    IoThread thread;
    FakeCluster cluster;
    HttpRequest request = request_for("/api/v1");
    request.body_limit = 64;
    HttpResult result = get(thread, cluster.config(), request);
    INFO("status " << result.status << ", " << result.body.size() << " bytes");
    CHECK(result.error);
    CHECK_THAT(result.error_detail, Catch::Contains("larger than 64 bytes"));
}

TEST_CASE("A server that accepts but never completes the handshake times out") {
    IoThread thread;
    net::io_context silent_io;
    net::ip::tcp::acceptor acceptor(silent_io, {net::ip::make_address("127.0.0.1"), 0});
    net::ip::tcp::socket held(silent_io);
    acceptor.async_accept(held, [](boost::system::error_code) {});
    std::thread silent([&] { silent_io.run(); });

    TestCa ca = make_test_ca();
    ClusterConfig config;
    config.server = "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
    config.ca_pem = ca.ca.certificate_pem;
    HttpRequest request = request_for("/api/v1");
    request.timeout = std::chrono::milliseconds(300);
    const auto started = std::chrono::steady_clock::now();
    HttpResult result = get(thread, config, request);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    CHECK(result.error);
    CHECK_THAT(result.error_detail, Catch::Contains("timed out"));
    silent.join();
}

TEST_CASE("A refused connection is reported as such") {
    IoThread thread;
    TestCa ca = make_test_ca();
    net::io_context io;
    net::ip::tcp::acceptor probe(io, {net::ip::make_address("127.0.0.1"), 0});
    const auto port = probe.local_endpoint().port();
    probe.close(); // nothing listens there now
    ClusterConfig config;
    config.server = "https://127.0.0.1:" + std::to_string(port);
    config.ca_pem = ca.ca.certificate_pem;
    HttpResult result = get(thread, config, request_for("/api/v1"));
    CHECK(result.error);
    CHECK_THAT(result.error_detail, Catch::Contains("connect to 127.0.0.1"));
}

TEST_CASE("A large answer is read into the storage given, with the padding asked for to spare") {
    IoThread thread;
    FakeCluster cluster;
    std::vector<nlohmann::json> maps;
    for (int i = 0; i < 200; ++i)
        maps.push_back({{"apiVersion", "v1"},
                        {"kind", "ConfigMap"},
                        {"metadata", {{"name", "map-" + std::to_string(i)}, {"namespace", "shop"}}},
                        {"data", {{"blob", std::string(1000, 'x')}}}});
    cluster.server.preload("", "configmaps", std::move(maps));
    OneClient client(thread, cluster.config());
    HttpRequest request = request_for("/api/v1/configmaps");
    request.body_padding = 64;
    request.body_storage.reserve(std::size_t{1} << 20);
    const HttpResult stored = client.send(std::move(request));
    REQUIRE(stored.ok());
    CHECK(nlohmann::json::parse(stored.body)["items"].size() == 200);
    CHECK(stored.body.capacity() >= std::size_t{1} << 20); // the storage's, not a new string
    CHECK(stored.body.capacity() - stored.body.size() >= 64);
    // Without storage or padding: the same text, over the same kept connection.
    const HttpResult plain = client.send(request_for("/api/v1/configmaps"));
    REQUIRE(plain.ok());
    CHECK(plain.body == stored.body);
    CHECK(connections_used(cluster.server) == std::vector<std::uint64_t>(2, 1));
}

TEST_CASE("GETs one after another share one kept-alive connection") {
    IoThread thread;
    FakeCluster cluster;
    OneClient client(thread, cluster.config());
    for (int i = 0; i < 3; ++i)
        CHECK(client.send(request_for("/api/v1")).ok());
    const auto used = connections_used(cluster.server);
    REQUIRE(used.size() == 3);
    CHECK(used[1] == used[0]);
    CHECK(used[2] == used[0]);
    CHECK(client.idle() == 1);
}

TEST_CASE("A kept connection the server dropped while idle is replaced, and the GET succeeds") {
    IoThread thread;
    FakeCluster cluster;
    OneClient client(thread, cluster.config());
    REQUIRE(client.send(request_for("/api/v1")).ok());
    REQUIRE(client.idle() == 1);
    // The server counts the connection idle once its own write has completed, which can come
    // just after the client has read the response (it did, under load): wait for it, bounded.
    std::size_t closed = 0;
    for (int i = 0; i < 200 && closed == 0; ++i) {
        closed = cluster.server.close_idle_connections();
        if (closed == 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(closed == 1);

    HttpResult again = client.send(request_for("/api/v1"));
    CHECK(again.ok());
    CHECK_THAT(again.body, Catch::Contains("APIResourceList"));
    const auto used = connections_used(cluster.server);
    REQUIRE(used.size() == 2); // the dropped connection never delivered the second request
    CHECK(used[1] != used[0]);
    CHECK(client.idle() == 1);
}

TEST_CASE("A server that answers Connection: close gets a new connection for every request") {
    IoThread thread;
    TestCa ca = make_test_ca();
    KeyPair serving = ca.issue_server({"127.0.0.1"}, {});
    FakeServerOptions options;
    options.certificate_pem = serving.certificate_pem;
    options.key_pem = serving.key_pem;
    options.keep_alive = false;
    FakeApiServer server(options);
    ClusterConfig config;
    config.server = server.url();
    config.ca_pem = ca.ca.certificate_pem;
    OneClient client(thread, config);
    CHECK(client.send(request_for("/api/v1")).ok());
    CHECK(client.send(request_for("/api/v1")).ok());
    const auto used = connections_used(server);
    REQUIRE(used.size() == 2);
    CHECK(used[1] != used[0]);
    CHECK(client.idle() == 0);
}

TEST_CASE("A write goes on a new connection, which a later GET may reuse") {
    IoThread thread;
    FakeCluster cluster;
    OneClient client(thread, cluster.config());
    REQUIRE(client.send(request_for("/api/v1")).ok());
    HttpRequest create = request_for("/api/v1/namespaces");
    create.method = HttpMethod::Post;
    create.body = R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"written"}})";
    HttpResult created = client.send(create);
    CHECK(created.success());
    const auto used = connections_used(cluster.server);
    REQUIRE(used.size() == 2);
    CHECK(used[1] != used[0]); // not sent again if a kept connection turned out closed
    CHECK(client.idle() == 2);
}

TEST_CASE("A watch takes a kept connection, and is not kept after it ends") {
    IoThread thread;
    FakeCluster cluster;
    OneClient client(thread, cluster.config());
    REQUIRE(client.send(request_for("/api/v1/namespaces")).ok());
    HttpRequest watch = request_for("/api/v1/namespaces?watch=true&timeoutSeconds=1&"
                                    "resourceVersion=" +
                                    cluster.server.resource_version());
    HttpResult ended = client.stream(watch);
    CHECK(ended.ok());
    const auto used = connections_used(cluster.server);
    REQUIRE(used.size() == 2);
    CHECK(used[1] == used[0]);
    CHECK(client.idle() == 0);
}
