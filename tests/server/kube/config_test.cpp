// Tests of server/kube/config: server URLs, base64, kubeconfig, in-cluster, rotating tokens.
#include "server/kube/config.hpp"
#include "tests/server/kube/support/kube_harness.hpp"

#include <catch2/catch.hpp>
#include <thread>

using namespace mtlsguard::kube;
using mtlsguard::kube::testing::TempDir;

namespace {

std::string b64(const std::string& in) {
    static constexpr char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned value = 0;
    int bits = 0;
    for (char ch : in) {
        value = (value << 8) | static_cast<unsigned char>(ch);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += table[(value >> bits) & 63];
        }
    }
    if (bits > 0)
        out += table[(value << (6 - bits)) & 63];
    while (out.size() % 4)
        out += '=';
    return out;
}

const std::string ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

std::string kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& current = "dev") {
    return "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
           "\n"
           "contexts:\n"
           "- name: dev\n  context: {cluster: dev-cluster, user: dev-user}\n"
           "- name: other\n  context: {cluster: other-cluster, user: other-user}\n"
           "clusters:\n"
           "- name: dev-cluster\n  cluster:\n" +
           cluster +
           "- name: other-cluster\n  cluster:\n    server: https://other.example:8443\n"
           "users:\n"
           "- name: dev-user\n  user:\n" +
           user + "- name: other-user\n  user:\n    token: other-token\n";
}

} // namespace

TEST_CASE("A server URL is split into host, port and path prefix, https only") {
    auto a = parse_server_url("https://10.0.0.1:6443");
    CHECK(a.host == "10.0.0.1");
    CHECK(a.port == "6443");
    CHECK(a.path_prefix.empty());
    auto b = parse_server_url("https://api.example.com");
    CHECK(b.port == "443");
    auto c = parse_server_url("https://[fd00::1]:443/k8s/clusters/c-1/");
    CHECK(c.host == "fd00::1");
    CHECK(c.path_prefix == "/k8s/clusters/c-1");
    CHECK_THROWS_WITH(parse_server_url("http://localhost:8080"),
                      Catch::Contains("plain http is refused"));
    CHECK_THROWS_AS(parse_server_url("https://:443"), ConfigError);
    CHECK_THROWS_AS(parse_server_url("https://host:99999"), ConfigError);
    CHECK_THROWS_AS(parse_server_url("https://host:12ab"), ConfigError);
    CHECK_THROWS_AS(parse_server_url("https://user@host"), ConfigError);
    CHECK_THROWS_AS(parse_server_url("ftp://host"), ConfigError);
}

TEST_CASE("Base64 of kubeconfig data fields decodes with or without padding and newlines") {
    CHECK(decode_base64(b64("hello world")) == "hello world");
    CHECK(decode_base64("aGVsbG8") == "hello");
    CHECK(decode_base64("aGVs\nbG8=\n") == "hello");
    CHECK(decode_base64("") == "");
    CHECK_FALSE(decode_base64("aGVsbG8*").has_value());
    CHECK_FALSE(decode_base64("a").has_value()); // six bits are no byte
    CHECK_FALSE(decode_base64("aGVsbG8=aGVs").has_value());
}

TEST_CASE("A kubeconfig's current context gives server, CA data and token") {
    TempDir dir;
    const auto path = dir.write("config", kubeconfig("    server: https://10.1.2.3:6443\n"
                                                     "    certificate-authority-data: " +
                                                         b64(ca_pem) + "\n",
                                                     "    token: abc.def\n"));
    const ClusterConfig config = load_kubeconfig(path);
    CHECK(config.server == "https://10.1.2.3:6443");
    CHECK(config.ca_pem == ca_pem);
    CHECK(config.token == "abc.def");
    CHECK(config.token_file.empty());
    CHECK(config.client_certificate_pem.empty());
}

TEST_CASE("A kubeconfig may name another context, and files relative to itself") {
    TempDir dir;
    dir.write("pki/ca.crt", ca_pem);
    dir.write("pki/user.crt", "CERT");
    dir.write("pki/user.key", "KEY");
    dir.write("pki/token", "from-file\n");
    const auto path = dir.write(
        "kube/config",
        kubeconfig("    server: https://api:6443\n    certificate-authority: ../pki/ca.crt\n"
                   "    tls-server-name: kubernetes.default.svc\n",
                   "    client-certificate: ../pki/user.crt\n    client-key: ../pki/user.key\n"
                   "    tokenFile: ../pki/token\n"));
    const ClusterConfig config = load_kubeconfig(path);
    CHECK(config.ca_pem == ca_pem);
    CHECK(config.client_certificate_pem == "CERT");
    CHECK(config.client_key_pem == "KEY");
    CHECK(config.tls_server_name == "kubernetes.default.svc");
    CHECK(config.token_file == (dir.path() / "pki/token").string());

    const ClusterConfig other = load_kubeconfig(path, "other");
    CHECK(other.server == "https://other.example:8443");
    CHECK(other.token == "other-token");
    CHECK(other.ca_pem.empty()); // the system trust store then; still verified
}

TEST_CASE("Kubeconfig settings that would weaken or bypass verification are refused") {
    TempDir dir;
    auto load = [&](const std::string& cluster, const std::string& user,
                    const std::string& current = "dev") {
        return load_kubeconfig(dir.write("config", kubeconfig(cluster, user, current)));
    };
    const std::string server = "    server: https://api:6443\n";
    CHECK_THROWS_WITH(load(server + "    insecure-skip-tls-verify: true\n", "    token: t\n"),
                      Catch::Contains("insecure-skip-tls-verify is refused"));
    CHECK_THROWS_WITH(load("    server: http://api:8080\n", "    token: t\n"),
                      Catch::Contains("plain http is refused"));
    CHECK_THROWS_WITH(
        load(server,
             "    exec:\n      command: aws\n      apiVersion: client.authentication.k8s.io/v1\n"),
        Catch::Contains("exec credential plugins are not supported"));
    CHECK_THROWS_WITH(load(server, "    auth-provider:\n      name: gcp\n"),
                      Catch::Contains("auth-provider"));
    CHECK_THROWS_WITH(load(server, "    username: admin\n    password: secret\n"),
                      Catch::Contains("basic authentication"));
    CHECK_THROWS_WITH(load(server +
                               "    certificate-authority: /nonexistent/ca.crt\n"
                               "    certificate-authority-data: " +
                               b64(ca_pem) + "\n",
                           "    token: t\n"),
                      Catch::Contains("both certificate-authority and certificate-authority-data"));
    CHECK_THROWS_WITH(
        load(server + "    certificate-authority: /nonexistent/ca.crt\n", "    token: t\n"),
        Catch::Contains("/nonexistent/ca.crt"));
    CHECK_THROWS_WITH(load(server, "    client-certificate-data: " + b64("CERT") + "\n"),
                      Catch::Contains("needs its key"));
    CHECK_THROWS_WITH(
        load(server + "    certificate-authority-data: not*base64\n", "    token: t\n"),
        Catch::Contains("not valid base64"));
    CHECK_THROWS_WITH(load(server, "    token: t\n", "missing"),
                      Catch::Contains("context \"missing\" is not defined"));
    CHECK_THROWS_WITH(load_kubeconfig(dir.write("empty", "apiVersion: v1\nkind: Config\n")),
                      Catch::Contains("no current-context"));
    CHECK_THROWS_WITH(load_kubeconfig((dir.path() / "absent").string()), Catch::Contains("absent"));
}

TEST_CASE("In a pod the service account's CA, token file and service address are used") {
    TempDir dir;
    InClusterSource source;
    source.service_host = "10.96.0.1";
    source.service_port = "443";
    source.ca_file = dir.write("ca.crt", ca_pem);
    source.token_file = dir.write("token", "sa-token\n");
    const ClusterConfig config = load_in_cluster(source);
    CHECK(config.server == "https://10.96.0.1:443");
    CHECK(config.ca_pem == ca_pem);
    CHECK(config.token_file == source.token_file);
    CHECK(config.token.empty());

    source.service_host = "fd00::1";
    CHECK(load_in_cluster(source).server == "https://[fd00::1]:443");

    InClusterSource outside = source;
    outside.service_host.clear();
    CHECK_THROWS_WITH(load_in_cluster(outside), Catch::Contains("KUBERNETES_SERVICE_HOST"));
    InClusterSource no_token = source;
    no_token.token_file = (dir.path() / "missing-token").string();
    CHECK_THROWS_WITH(load_in_cluster(no_token), Catch::Contains("service account token"));
    InClusterSource bad_ca = source;
    bad_ca.ca_file = dir.write("bad-ca.crt", "not a certificate");
    CHECK_THROWS_WITH(load_in_cluster(bad_ca), Catch::Contains("holds no PEM certificate"));
}

TEST_CASE("A token file is re-read when its refresh interval passes or the token was rejected") {
    TempDir dir;
    ClusterConfig config;
    config.token_file = dir.write("token", "first\n");
    config.token_refresh = std::chrono::seconds(3600);
    BearerToken token(config);
    CHECK(token.current() == "first");

    dir.write("token", "second");
    CHECK(token.current() == "first"); // within the interval: the cached token
    token.invalidate();                // a 401
    CHECK(token.current() == "second");

    config.token_refresh = std::chrono::seconds(0);
    BearerToken eager(config);
    CHECK(eager.current() == "second");
    dir.write("token", "third");
    CHECK(eager.current() == "third");

    // A failed read keeps the last good token and says why.
    std::filesystem::remove(config.token_file);
    CHECK(eager.current() == "third");
    CHECK_THAT(eager.last_error(), Catch::Contains("token"));
    dir.write("token", "   ");
    CHECK(eager.current() == "third");
    CHECK_THAT(eager.last_error(), Catch::Contains("empty"));

    ClusterConfig fixed;
    fixed.token = "static";
    CHECK(BearerToken(fixed).current() == "static");
}
