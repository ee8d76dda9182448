// How to reach the Kubernetes API server: the in-cluster service account, or a kubeconfig.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mtlsguard::kube {

// A configuration that cannot be used, with the reason ("kubeconfig k.yaml: user "u": ...").
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Everything needed to open a verified TLS connection to the API server and authenticate.
// A value type: the HTTP client copies what it needs.
struct ClusterConfig {
    std::string server; // https://host[:port][/path-prefix]; https only
    std::string ca_pem; // trust anchors; empty: the system's trust store (kubeconfig only)
    std::string client_certificate_pem; // client certificate authentication, with the key below
    std::string client_key_pem;
    std::string token; // a static bearer token
    std::string
        token_file; // a bearer token re-read every `token_refresh` (service accounts rotate)
    std::chrono::seconds token_refresh{60};
    std::string tls_server_name; // the name the certificate must carry; empty: the server's host
    std::string source;          // where this came from, for messages ("in-cluster", the path)
};

// The server URL split for connecting; host without brackets for IPv6 literals.
struct ServerAddress {
    std::string host;
    std::string port;        // "443" when the URL has none
    std::string path_prefix; // without the trailing slash; usually empty
};

// Parses `https://host[:port][/prefix]`. Throws ConfigError for anything else (http:// included:
// the server certificate is always verified).
ServerAddress parse_server_url(std::string_view url);

// Where the in-cluster configuration comes from; `from_environment()` is what a pod sees.
struct InClusterSource {
    std::string service_host; // KUBERNETES_SERVICE_HOST
    std::string service_port; // KUBERNETES_SERVICE_PORT
    std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

    static InClusterSource from_environment();
};

// The service account's configuration: the API server's Service address, its CA, and the token
// file (re-read every minute: projected tokens rotate). Throws ConfigError when not in a pod or
// when the CA or token cannot be read.
ClusterConfig load_in_cluster(const InClusterSource& source = InClusterSource::from_environment());

// A kubeconfig file: the current context (or `context` when given), its cluster (server,
// certificate-authority[-data], tls-server-name) and user (client-certificate[-data] with
// client-key[-data], token, tokenFile). Relative file paths are relative to the kubeconfig, as
// kubectl reads them. Refuses insecure-skip-tls-verify, exec and auth-provider plugins, basic
// auth and proxies, each with the reason. Throws ConfigError.
ClusterConfig load_kubeconfig(const std::string& path, const std::string& context = {});

// Standard base64 (RFC 4648, padding optional, whitespace ignored), as kubeconfig *-data fields
// are written. Returns nullopt for any other character.
std::optional<std::string> decode_base64(std::string_view text);

// The bearer token to send, re-read from its file at most every `refresh` and immediately after
// invalidate() (a 401 means it rotated). A failed read keeps the last good token. Thread-safe.
class BearerToken {
  public:
    explicit BearerToken(const ClusterConfig& config);

    // The token to send now; empty when there is none.
    std::string current();
    // Forces a re-read of the token file on the next current().
    void invalidate();
    // The last error reading the file, empty when the last read worked.
    std::string last_error() const;

  private:
    mutable std::mutex mutex_;
    std::string token_;
    std::string file_;
    std::chrono::seconds refresh_;
    std::optional<std::chrono::steady_clock::time_point> read_at_;
    std::string error_;
};

} // namespace mtlsguard::kube
