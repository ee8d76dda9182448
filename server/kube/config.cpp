// How to reach the Kubernetes API server: the in-cluster service account, or a kubeconfig.
#include "server/kube/config.hpp"

#include "server/input/manifest_loader.hpp"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace mtlsguard::kube {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::size_t max_credential_bytes = std::size_t{1} << 20;
constexpr std::size_t max_kubeconfig_bytes = std::size_t{16} << 20;

std::string read_credential_file(const std::string& path, const std::string& what) {
    try {
        return input::read_file(path, max_credential_bytes);
    } catch (const input::LoadError& e) {
        throw ConfigError(what + ": " + e.to_string());
    }
}

std::string trim(std::string text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

// A kubeconfig entry `{name: ..., <field>: {...}}` from one of its named lists.
const json* find_named(const json& config, const char* list, const char* field,
                       const std::string& name) {
    auto it = config.find(list);
    if (it == config.end() || !it->is_array())
        return nullptr;
    for (const json& entry : *it) {
        if (!entry.is_object())
            continue;
        auto entry_name = entry.find("name");
        if (entry_name == entry.end() || !entry_name->is_string() || *entry_name != name)
            continue;
        static const json missing; // `user:` with nothing under it: null, not "undefined"
        auto body = entry.find(field);
        return body == entry.end() ? &missing : &*body;
    }
    return nullptr;
}

std::string string_field(const json& object, const char* key, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return {};
    if (!it->is_string())
        throw ConfigError(where + ": " + key + " must be a string");
    return it->get<std::string>();
}

bool true_field(const json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() &&
           ((it->is_boolean() && it->get<bool>()) || (it->is_string() && *it == "true"));
}

bool present(const json& object, const char* key) {
    auto it = object.find(key);
    return it != object.end() && !it->is_null() &&
           !(it->is_string() && it->get_ref<const std::string&>().empty());
}

// A file path of the kubeconfig, resolved against the kubeconfig's directory as kubectl does.
std::string resolve_path(const std::string& value, const fs::path& base) {
    if (value.empty())
        return value;
    fs::path p(value);
    return p.is_absolute() ? value : (base / p).lexically_normal().string();
}

// `<key>-data` (base64) or `<key>` (a file), whichever is set; both is an error, as in kubectl.
std::string data_or_file(const json& object, const std::string& key, const fs::path& base,
                         const std::string& where) {
    const std::string data_key = key + "-data";
    const std::string data = string_field(object, data_key.c_str(), where);
    const std::string file = string_field(object, key.c_str(), where);
    if (!data.empty() && !file.empty())
        throw ConfigError(where + ": both " + key + " and " + data_key + " are set");
    if (!data.empty()) {
        auto decoded = decode_base64(data);
        if (!decoded)
            throw ConfigError(where + ": " + data_key + " is not valid base64");
        return *decoded;
    }
    if (!file.empty())
        return read_credential_file(resolve_path(file, base), where + ": " + key);
    return {};
}

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

} // namespace

std::optional<std::string> decode_base64(std::string_view text) {
    std::string out;
    out.reserve(text.size() / 4 * 3 + 3);
    std::uint32_t accumulator = 0;
    int bits = 0;
    bool padding = false;
    for (char c : text) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            padding = true;
            continue;
        }
        const int v = base64_value(c);
        if (v < 0 || padding) // data after padding is not base64 either
            return std::nullopt;
        accumulator = (accumulator << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((accumulator >> bits) & 0xFFu));
        }
    }
    // Six leftover bits cannot come from whole bytes: the input was cut.
    if (bits >= 6)
        return std::nullopt;
    return out;
}

ServerAddress parse_server_url(std::string_view url) {
    constexpr std::string_view scheme = "https://";
    if (url.substr(0, scheme.size()) != scheme) {
        if (url.substr(0, 7) == "http://")
            throw ConfigError("server " + std::string(url) +
                              ": plain http is refused; the API server must be reached over "
                              "https with a verified certificate");
        throw ConfigError("server \"" + std::string(url) + "\" is not an https:// URL");
    }
    std::string_view rest = url.substr(scheme.size());
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    ServerAddress out;
    if (slash != std::string_view::npos) {
        out.path_prefix = std::string(rest.substr(slash));
        while (!out.path_prefix.empty() && out.path_prefix.back() == '/')
            out.path_prefix.pop_back();
        if (out.path_prefix.find_first_of("?#") != std::string::npos)
            throw ConfigError("server " + std::string(url) +
                              ": a query or fragment is not allowed");
    }
    if (authority.find('@') != std::string_view::npos)
        throw ConfigError("server " + std::string(url) + ": user information is not allowed");
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            throw ConfigError("server " + std::string(url) + ": unterminated IPv6 address");
        out.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                throw ConfigError("server " + std::string(url) + ": malformed host");
            out.port = std::string(after.substr(1));
        }
    } else {
        const auto colon = authority.rfind(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos)
            out.port = std::string(authority.substr(colon + 1));
    }
    if (out.host.empty())
        throw ConfigError("server " + std::string(url) + ": no host");
    if (out.port.empty())
        out.port = "443";
    if (out.port.find_first_not_of("0123456789") != std::string::npos || out.port.size() > 5 ||
        std::stoul(out.port) == 0 || std::stoul(out.port) > 65535)
        throw ConfigError("server " + std::string(url) + ": bad port \"" + out.port + "\"");
    return out;
}

InClusterSource InClusterSource::from_environment() {
    InClusterSource source;
    if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"))
        source.service_host = host;
    if (const char* port = std::getenv("KUBERNETES_SERVICE_PORT"))
        source.service_port = port;
    return source;
}

ClusterConfig load_in_cluster(const InClusterSource& source) {
    if (source.service_host.empty() || source.service_port.empty())
        throw ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and "
                          "KUBERNETES_SERVICE_PORT are not set (use --kubeconfig outside a pod)");
    ClusterConfig config;
    config.source = "in-cluster";
    // An IPv6 service address needs brackets in the URL (net.JoinHostPort in client-go).
    const bool ipv6 = source.service_host.find(':') != std::string::npos;
    config.server = "https://" + (ipv6 ? "[" + source.service_host + "]" : source.service_host) +
                    ":" + source.service_port;
    parse_server_url(config.server); // rejects a malformed port now, not at the first request
    config.ca_pem = read_credential_file(source.ca_file, "service account CA");
    if (config.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
        throw ConfigError("service account CA " + source.ca_file + " holds no PEM certificate");
    config.token_file = source.token_file;
    if (trim(read_credential_file(source.token_file, "service account token")).empty())
        throw ConfigError("service account token " + source.token_file + " is empty");
    return config;
}

ClusterConfig load_kubeconfig(const std::string& path, const std::string& context) {
    std::vector<json> documents;
    try {
        documents = input::parse_yaml_documents(input::read_file(path, max_kubeconfig_bytes), path);
    } catch (const input::LoadError& e) {
        throw ConfigError("kubeconfig " + e.to_string());
    }
    const std::string where = "kubeconfig " + path;
    if (documents.empty() || !documents.front().is_object())
        throw ConfigError(where + ": not a kubeconfig (expected a map)");
    const json& root = documents.front();
    const fs::path base = fs::path(path).parent_path();

    std::string context_name = context;
    if (context_name.empty())
        context_name = string_field(root, "current-context", where);
    if (context_name.empty())
        throw ConfigError(where + ": no current-context is set");
    const json* ctx = find_named(root, "contexts", "context", context_name);
    if (!ctx || !ctx->is_object())
        throw ConfigError(where + ": context \"" + context_name + "\" is not defined");
    const std::string ctx_where = where + ": context \"" + context_name + "\"";
    const std::string cluster_name = string_field(*ctx, "cluster", ctx_where);
    const std::string user_name = string_field(*ctx, "user", ctx_where);
    if (cluster_name.empty())
        throw ConfigError(ctx_where + " names no cluster");

    const json* cluster = find_named(root, "clusters", "cluster", cluster_name);
    if (!cluster || !cluster->is_object())
        throw ConfigError(where + ": cluster \"" + cluster_name + "\" is not defined");
    const std::string cluster_where = where + ": cluster \"" + cluster_name + "\"";
    ClusterConfig config;
    config.source = path;
    config.server = string_field(*cluster, "server", cluster_where);
    if (config.server.empty())
        throw ConfigError(cluster_where + " has no server");
    try {
        parse_server_url(config.server);
    } catch (const ConfigError& e) {
        throw ConfigError(cluster_where + ": " + e.what());
    }
    if (true_field(*cluster, "insecure-skip-tls-verify"))
        throw ConfigError(cluster_where +
                          ": insecure-skip-tls-verify is refused; mtls-guard always verifies the "
                          "API server certificate (set certificate-authority-data)");
    if (present(*cluster, "proxy-url"))
        throw ConfigError(cluster_where + ": proxy-url is not supported");
    config.ca_pem = data_or_file(*cluster, "certificate-authority", base, cluster_where);
    config.tls_server_name = string_field(*cluster, "tls-server-name", cluster_where);

    if (user_name.empty())
        return config; // an anonymous user: the API server decides what it may read
    const json* user = find_named(root, "users", "user", user_name);
    if (!user)
        throw ConfigError(where + ": user \"" + user_name + "\" is not defined");
    if (!user->is_object())
        return config; // `user: {}` or null: no credentials
    const std::string user_where = where + ": user \"" + user_name + "\"";
    if (present(*user, "exec"))
        throw ConfigError(user_where +
                          ": exec credential plugins are not supported; use a token, a token "
                          "file or a client certificate");
    if (present(*user, "auth-provider"))
        throw ConfigError(user_where + ": auth-provider plugins are not supported");
    if (present(*user, "username") || present(*user, "password"))
        throw ConfigError(user_where + ": basic authentication is not supported");
    if (present(*user, "as") || present(*user, "as-groups") || present(*user, "as-uid"))
        throw ConfigError(user_where + ": impersonation is not supported");
    config.client_certificate_pem = data_or_file(*user, "client-certificate", base, user_where);
    config.client_key_pem = data_or_file(*user, "client-key", base, user_where);
    if (config.client_certificate_pem.empty() != config.client_key_pem.empty())
        throw ConfigError(user_where + ": a client certificate needs its key, and a key its "
                                       "certificate");
    config.token = trim(string_field(*user, "token", user_where));
    const std::string token_file = string_field(*user, "tokenFile", user_where);
    if (!token_file.empty()) {
        // kubectl reads tokenFile only when no token is given inline.
        if (config.token.empty()) {
            config.token_file = resolve_path(token_file, base);
            read_credential_file(config.token_file, user_where + ": tokenFile");
        }
    }
    return config;
}

BearerToken::BearerToken(const ClusterConfig& config)
    : token_(config.token), file_(config.token_file), refresh_(config.token_refresh) {}

std::string BearerToken::current() {
    std::lock_guard lock(mutex_);
    if (file_.empty())
        return token_;
    const auto now = std::chrono::steady_clock::now();
    if (!read_at_ || now - *read_at_ >= refresh_) {
        read_at_ = now;
        try {
            std::string text = trim(input::read_file(file_, max_credential_bytes));
            if (text.empty()) {
                error_ = "token file " + file_ + " is empty";
            } else {
                token_ = std::move(text);
                error_.clear();
            }
        } catch (const input::LoadError& e) {
            error_ = e.to_string(); // keep the last good token: the kubelet rewrites atomically
        }
    }
    return token_;
}

void BearerToken::invalidate() {
    std::lock_guard lock(mutex_);
    read_at_.reset();
}

std::string BearerToken::last_error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

} // namespace mtlsguard::kube
