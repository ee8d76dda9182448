// A fake Kubernetes API server speaking the real wire format over HTTPS, for tests and benches.
#include "tests/server/kube/support/fake_api_server.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <openssl/ssl.h>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace mtlsguard::kube::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::vector<FakeResource> core_resources() {
    return {
        {"", {"v1"}, "namespaces", "Namespace", false},
        {"", {"v1"}, "services", "Service", true},
        {"", {"v1"}, "pods", "Pod", true},
        {"", {"v1"}, "configmaps", "ConfigMap", true},
        {"discovery.k8s.io", {"v1"}, "endpointslices", "EndpointSlice", true},
        {"apiextensions.k8s.io",
         {"v1"},
         "customresourcedefinitions",
         "CustomResourceDefinition",
         false},
    };
}

std::vector<FakeResource> istio_resources() {
    return {
        {"security.istio.io", {"v1", "v1beta1"}, "peerauthentications", "PeerAuthentication", true},
        {"networking.istio.io",
         {"v1", "v1beta1", "v1alpha3"},
         "destinationrules",
         "DestinationRule",
         true},
        {"networking.istio.io",
         {"v1", "v1beta1", "v1alpha3"},
         "serviceentries",
         "ServiceEntry",
         true},
        {"networking.istio.io",
         {"v1", "v1beta1", "v1alpha3"},
         "virtualservices",
         "VirtualService",
         true},
        {"networking.istio.io", {"v1", "v1beta1", "v1alpha3"}, "sidecars", "Sidecar", true},
    };
}

namespace {

std::string collection_key(const std::string& group, const std::string& plural) {
    return group + "/" + plural;
}

std::string object_key(const json& object) {
    const json& metadata = object.at("metadata");
    const std::string ns = metadata.value("namespace", "");
    const std::string name = metadata.at("name").get<std::string>();
    return ns.empty() ? name : ns + "/" + name;
}

std::string base64(const std::string& in) {
    static constexpr char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto n = (static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16) |
                       (static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8) |
                       static_cast<unsigned>(static_cast<unsigned char>(in[i + 2]));
        out += table[(n >> 18) & 63];
        out += table[(n >> 12) & 63];
        out += table[(n >> 6) & 63];
        out += table[n & 63];
    }
    if (i < in.size()) {
        auto n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16;
        if (i + 1 < in.size())
            n |= static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8;
        out += table[(n >> 18) & 63];
        out += table[(n >> 12) & 63];
        out += i + 1 < in.size() ? table[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string unbase64(const std::string& in) {
    static constexpr std::string_view table =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned value = 0;
    int bits = 0;
    for (char c : in) {
        const auto index = table.find(c);
        if (index == std::string_view::npos)
            continue; // padding
        value = (value << 6) | static_cast<unsigned>(index);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((value >> bits) & 0xFF));
        }
    }
    return out;
}

std::string url_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            out.push_back(
                static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
            i += 2;
        } else if (text[i] == '+') {
            out.push_back(' ');
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

json status_body(unsigned code, const std::string& reason, const std::string& message) {
    return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason},
            {"code", code}};
}

struct Collection {
    FakeResource resource;
    std::map<std::string, json> objects;
    // A list item as last serialized, by object key: a real API server's list costs the client,
    // not the benchmark's own CPU, so each object is written once per resourceVersion.
    struct Serialized {
        std::string resource_version;
        std::string variant; // the version asked for, and "m" for metadata only
        std::string text;
    };
    mutable std::unordered_map<std::string, Serialized> list_items;
};

struct Event {
    std::uint64_t rv = 0;
    std::string collection;
    std::string type;
    json object;
};

struct Selector {
    std::string namespace_name; // from the path or metadata.namespace=
    std::string name;           // metadata.name=
    bool matches(const json& object) const {
        const json& metadata = object.at("metadata");
        if (!namespace_name.empty() && metadata.value("namespace", "") != namespace_name)
            return false;
        return name.empty() || metadata.value("name", "") == name;
    }
};

struct WatchState {
    std::string path; // as requested, for stall()
    std::string collection;
    std::string version;
    Selector selector;
    bool metadata_only = false;
    bool bookmarks = false;
    std::uint64_t last_rv = 0;
    bool bookmark_pending = false;
    std::optional<Cut> cut;
    std::string immediate; // an event line to send at once, then end (ERROR 410)
    std::string injected;  // raw lines a test wants written next
    Clock::time_point deadline{};
};

struct Answer {
    unsigned status = 200;
    std::string body;
    std::optional<int> retry_after;
    std::shared_ptr<WatchState> watch;
    bool stall = false; // send nothing, keep the connection
};

} // namespace

struct FakeApiServer::State {
    explicit State(FakeServerOptions opts)
        : options(std::move(opts)), tls(ssl::context::tls_server), acceptor(io) {}

    FakeServerOptions options;
    net::io_context io;
    ssl::context tls;
    tcp::acceptor acceptor;
    std::thread thread;
    std::uint16_t port = 0;

    mutable std::mutex mutex;
    std::set<std::string> tokens;
    std::map<std::string, Collection> collections;
    std::uint64_t rv = 100;
    std::uint64_t compacted_rv = 0;
    std::vector<Event> log;
    std::uint64_t continue_generation = 0;
    int expire_continues = 0;
    int decoy_continues = 0;
    struct Failure {
        std::string prefix;
        unsigned status;
        int times;
        std::optional<int> retry_after;
    };
    std::vector<Failure> failures;
    std::vector<RecordedRequest> recorded;
    struct Interference {
        std::string path;
        int times;
    };
    std::vector<Interference> interferences;
    int interfered = 0;
    std::vector<std::weak_ptr<WatchState>> watches;
    std::set<std::string> stalls; // path prefixes
    // Collections RBAC does not let the client list or watch, with the names it may still read
    // (resourceNames: a list or watch whose field selector is metadata.name=<one of them>).
    std::map<std::string, std::set<std::string>> forbidden;
    std::uint64_t uid_counter = 0;
    std::uint64_t connections = 0; // accepted so far
    // Sessions waiting for their next request, by connection number: how to close each.
    std::map<std::uint64_t, std::function<void(std::shared_ptr<std::promise<void>>)>> idle;

    bool stalled(const std::string& path) const {
        for (const auto& prefix : stalls)
            if (path.rfind(prefix, 0) == 0)
                return true;
        return false;
    }

    // --- object changes (under mutex) ---
    Collection& collection_of(const std::string& group, const std::string& plural) {
        auto it = collections.find(collection_key(group, plural));
        if (it == collections.end())
            throw std::invalid_argument("fake API server: no resource " + group + "/" + plural);
        return it->second;
    }

    void fill_metadata(json& object, const Collection& c, const json* previous) {
        json& metadata = object["metadata"];
        if (!metadata.contains("name"))
            throw std::invalid_argument("fake API server: object without metadata.name");
        if (c.resource.namespaced && !metadata.contains("namespace"))
            throw std::invalid_argument("fake API server: namespaced object without namespace");
        if (!c.resource.namespaced)
            metadata.erase("namespace");
        if (previous) {
            metadata["uid"] = previous->at("metadata").at("uid");
            metadata["creationTimestamp"] = previous->at("metadata").at("creationTimestamp");
        } else {
            if (!metadata.contains("uid"))
                metadata["uid"] = "00000000-0000-4000-8000-" + [&] {
                    std::string n = std::to_string(++uid_counter);
                    return std::string(12 - std::min<std::size_t>(12, n.size()), '0') + n;
                }();
            if (!metadata.contains("creationTimestamp"))
                metadata["creationTimestamp"] = "2024-01-01T00:00:00Z";
        }
        metadata["resourceVersion"] = std::to_string(rv);
    }

    std::string change(const std::string& group, const std::string& plural, json object,
                       const std::string& type) {
        std::lock_guard lock(mutex);
        return change_locked(group, plural, std::move(object), type);
    }

    std::string change_locked(const std::string& group, const std::string& plural, json object,
                              const std::string& type) {
        Collection& c = collection_of(group, plural);
        ++rv;
        const std::string key = object_key(object);
        auto existing = c.objects.find(key);
        if (type == "ADDED" && existing != c.objects.end())
            throw std::invalid_argument("fake API server: " + key + " exists");
        if (type == "MODIFIED" && existing == c.objects.end())
            throw std::invalid_argument("fake API server: " + key + " does not exist");
        fill_metadata(object, c, existing == c.objects.end() ? nullptr : &existing->second);
        c.objects[key] = object;
        log.push_back(Event{rv, collection_key(group, plural), type, std::move(object)});
        return std::to_string(rv);
    }

    // --- presenting objects ---
    static std::string group_version(const FakeResource& r, const std::string& version) {
        return r.group.empty() ? version : r.group + "/" + version;
    }

    json present(const Collection& c, const std::string& version, const json& stored,
                 bool metadata_only, bool list_item) const {
        if (metadata_only)
            return {{"kind", "PartialObjectMetadata"},
                    {"apiVersion", "meta.k8s.io/v1"},
                    {"metadata", stored.at("metadata")}};
        json out = stored;
        // The API server's own groups are "" and *.k8s.io here; Istio's are served through CRDs.
        const bool built_in = c.resource.group.empty() || c.resource.group.ends_with(".k8s.io");
        if (list_item && built_in) {
            // Items of a typed list (built-in kinds: CRDs and EndpointSlices too) carry no
            // apiVersion or kind.
            out.erase("apiVersion");
            out.erase("kind");
        } else {
            out["apiVersion"] = group_version(c.resource, version);
            out["kind"] = c.resource.kind;
        }
        return out;
    }

    std::string event_line(const Collection& c, const WatchState& w, const std::string& type,
                           const json& object) const {
        json event = {{"type", type},
                      {"object", present(c, w.version, object, w.metadata_only, false)}};
        return event.dump() + "\n";
    }

    // --- requests ---
    Answer handle(const http::request<http::string_body>& request, bool client_certificate,
                  std::uint64_t connection) {
        RecordedRequest record;
        record.connection = connection;
        const std::string target(request.target());
        const auto qmark = target.find('?');
        record.path = target.substr(0, qmark);
        if (qmark != std::string::npos) {
            std::istringstream query(target.substr(qmark + 1));
            std::string pair;
            while (std::getline(query, pair, '&')) {
                const auto eq = pair.find('=');
                record.query[url_decode(pair.substr(0, eq))] =
                    eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
            }
        }
        record.method = std::string(request.method_string());
        record.content_type = std::string(request[http::field::content_type]);
        record.body = request.body();
        record.accept = std::string(request[http::field::accept]);
        record.authorization = std::string(request[http::field::authorization]);
        record.client_certificate = client_certificate;

        std::lock_guard lock(mutex);
        Answer answer = route(record, request.method());
        record.status = answer.status;
        recorded.push_back(std::move(record));
        return answer;
    }

    bool authenticated(const RecordedRequest& r) const {
        if (client_certificate_accepted(r))
            return true;
        if (tokens.empty())
            return options.client_ca_pem.empty();
        return r.authorization.rfind("Bearer ", 0) == 0 && tokens.count(r.authorization.substr(7));
    }
    bool client_certificate_accepted(const RecordedRequest& r) const {
        return r.client_certificate && !options.client_ca_pem.empty();
    }

    static Answer error(unsigned code, const std::string& reason, const std::string& message) {
        return Answer{code, status_body(code, reason, message).dump(), std::nullopt, nullptr};
    }

    // RBAC's answer, worded as the API server's authorizer words it.
    static Answer forbidden_answer(const std::string& group, const std::string& plural,
                                   const std::string& verb, const std::string& namespace_name) {
        const std::string resource = group.empty() ? plural : plural + "." + group;
        const std::string scope = namespace_name.empty()
                                      ? std::string("at the cluster scope")
                                      : "in the namespace \"" + namespace_name + "\"";
        return error(403, "Forbidden",
                     resource +
                         " is forbidden: User \"system:serviceaccount:mtls-guard:mtls-guard\" "
                         "cannot " +
                         verb + " resource \"" + plural + "\" in API group \"" + group + "\" " +
                         scope);
    }

    Answer route(const RecordedRequest& r, http::verb method) {
        if (!authenticated(r))
            return error(401, "Unauthorized", "Unauthorized");
        if (stalled(r.path)) {
            Answer hang;
            hang.stall = true;
            return hang;
        }
        for (auto it = failures.begin(); it != failures.end(); ++it) {
            if (r.path.rfind(it->prefix, 0) != 0)
                continue;
            Answer failure =
                error(it->status, it->status == 429 ? "TooManyRequests" : "InternalError",
                      "injected failure");
            failure.retry_after = it->retry_after;
            if (--it->times <= 0)
                failures.erase(it);
            return failure;
        }
        std::vector<std::string> parts;
        std::istringstream path(r.path);
        for (std::string part; std::getline(path, part, '/');)
            if (!part.empty())
                parts.push_back(part);
        const bool discovery = (parts.size() == 2 && parts[0] == "api" && parts[1] == "v1") ||
                               (parts.size() == 1 && parts[0] == "apis") ||
                               (parts.size() == 3 && parts[0] == "apis");
        if (discovery && method != http::verb::get)
            return error(405, "MethodNotAllowed", "discovery documents are read-only");
        if (parts.size() == 2 && parts[0] == "api" && parts[1] == "v1")
            return resource_list("", "v1");
        if (parts.size() == 1 && parts[0] == "apis")
            return group_list();
        if (parts.size() == 3 && parts[0] == "apis")
            return resource_list(parts[1], parts[2]);
        // Collections: /api/v1/[namespaces/<ns>/]<plural>, /apis/<g>/<v>/[namespaces/<ns>/]<plural>
        std::string group;
        std::size_t at = 0;
        if (parts.size() >= 3 && parts[0] == "api" && parts[1] == "v1") {
            at = 2;
        } else if (parts.size() >= 4 && parts[0] == "apis") {
            group = parts[1];
            at = 3;
        } else {
            return error(404, "NotFound", "the server could not find the requested resource");
        }
        const std::string version = group.empty() ? "v1" : parts[2];
        Selector selector;
        if ((parts.size() == at + 3 || parts.size() == at + 4) && parts[at] == "namespaces") {
            selector.namespace_name = parts[at + 1];
            at += 2;
        }
        if (parts.size() != at + 1 && parts.size() != at + 2)
            return error(404, "NotFound", "the server could not find the requested resource");
        auto c = collections.find(collection_key(group, parts[at]));
        if (c == collections.end() ||
            std::find(c->second.resource.versions.begin(), c->second.resource.versions.end(),
                      version) == c->second.resource.versions.end())
            return error(404, "NotFound", "the server could not find the requested resource");
        if (c->second.resource.namespaced == selector.namespace_name.empty() &&
            (parts.size() == at + 2 || method == http::verb::post))
            return error(404, "NotFound", "the server could not find the requested resource");
        if (parts.size() == at + 2)
            return object_request(c->second, version, selector.namespace_name, parts[at + 1],
                                  method, r);
        if (method == http::verb::post)
            return create_object(c->second, version, selector.namespace_name, r);
        if (method != http::verb::get)
            return error(405, "MethodNotAllowed", "collections take GET and POST");
        auto watch = r.query.find("watch");
        const bool watching =
            watch != r.query.end() && (watch->second == "true" || watch->second == "1");
        if (auto fs = r.query.find("fieldSelector"); fs != r.query.end()) {
            std::istringstream terms(fs->second);
            for (std::string term; std::getline(terms, term, ',');) {
                const auto eq = term.find('=');
                const std::string field = term.substr(0, eq);
                const std::string value = eq == std::string::npos ? "" : term.substr(eq + 1);
                if (field == "metadata.name")
                    selector.name = value;
                else if (field == "metadata.namespace")
                    selector.namespace_name = value;
                else
                    return error(400, "BadRequest", "field label not supported: " + field);
            }
        }
        if (auto f = forbidden.find(collection_key(group, parts[at]));
            f != forbidden.end() && !f->second.count(selector.name))
            return forbidden_answer(group, parts[at], watching ? "watch" : "list",
                                    selector.namespace_name);
        if (watching)
            return start_watch(c->second, version, selector, r);
        return list(c->second, version, selector, r);
    }

    // --- writes (under mutex) ---
    static std::string not_found(const Collection& c, const std::string& name) {
        return c.resource.plural + " \"" + name + "\" not found";
    }

    Answer stored_answer(const Collection& c, const std::string& version, const std::string& key,
                         unsigned status) const {
        return Answer{status, present(c, version, c.objects.at(key), false, false).dump(),
                      std::nullopt, nullptr};
    }

    Answer object_request(Collection& c, const std::string& version, const std::string& ns,
                          const std::string& name, http::verb method, const RecordedRequest& r) {
        const std::string key = ns.empty() ? name : ns + "/" + name;
        const bool write = method == http::verb::put || method == http::verb::patch;
        if (write) {
            for (auto it = interferences.begin(); it != interferences.end(); ++it) {
                if (it->path != r.path)
                    continue;
                if (auto stored = c.objects.find(key); stored != c.objects.end()) {
                    json changed = stored->second;
                    changed["metadata"]["annotations"]["fake.test/interfered"] =
                        std::to_string(++interfered);
                    change_locked(c.resource.group, c.resource.plural, std::move(changed),
                                  "MODIFIED");
                }
                if (--it->times <= 0)
                    interferences.erase(it);
                break;
            }
        }
        auto stored = c.objects.find(key);
        if (method == http::verb::get) {
            if (stored == c.objects.end())
                return error(404, "NotFound", not_found(c, name));
            return stored_answer(c, version, key, 200);
        }
        if (!write)
            return error(405, "MethodNotAllowed", "objects take GET, PUT and PATCH here");
        if (stored == c.objects.end())
            return error(404, "NotFound", not_found(c, name));
        json updated;
        if (method == http::verb::put) {
            updated = json::parse(r.body, nullptr, false);
            if (!updated.is_object() || !updated.contains("metadata") ||
                !updated["metadata"].is_object())
                return error(400, "BadRequest", "the body is not an object with metadata");
            if (updated["metadata"].value("name", "") != name ||
                updated["metadata"].value("namespace", ns) != ns)
                return error(400, "BadRequest", "the name or namespace of the body does not match");
            const std::string rv_sent = updated["metadata"].value("resourceVersion", "");
            if (!rv_sent.empty() &&
                rv_sent != stored->second["metadata"].value("resourceVersion", ""))
                return error(409, "Conflict",
                             "Operation cannot be fulfilled on " + c.resource.plural + " \"" +
                                 name +
                                 "\": the object has been modified; please apply your changes "
                                 "to the latest version and try again");
        } else {
            if (r.content_type.rfind("application/json-patch+json", 0) != 0)
                return error(415, "UnsupportedMediaType",
                             "the fake takes application/json-patch+json only");
            const json ops = json::parse(r.body, nullptr, false);
            if (!ops.is_array())
                return error(400, "BadRequest", "a JSON patch is an array");
            try {
                updated = stored->second.patch(ops);
            } catch (const json::exception& e) {
                return error(422, "Invalid", std::string("the JSON patch failed: ") + e.what());
            }
        }
        if (c.resource.kind == "Secret" &&
            updated.value("type", "Opaque") != stored->second.value("type", "Opaque"))
            return error(422, "Invalid",
                         "Secret \"" + name + "\" is invalid: type: field is immutable");
        updated["metadata"]["name"] = name;
        if (!ns.empty())
            updated["metadata"]["namespace"] = ns;
        change_locked(c.resource.group, c.resource.plural, std::move(updated), "MODIFIED");
        return stored_answer(c, version, key, 200);
    }

    Answer create_object(Collection& c, const std::string& version, const std::string& ns,
                         const RecordedRequest& r) {
        json object = json::parse(r.body, nullptr, false);
        if (!object.is_object() || !object.contains("metadata") ||
            !object["metadata"].is_object() || !object["metadata"].contains("name"))
            return error(400, "BadRequest", "the body is not an object with metadata.name");
        if (object["metadata"].value("namespace", ns) != ns)
            return error(400, "BadRequest", "the namespace of the body does not match the path");
        if (!ns.empty())
            object["metadata"]["namespace"] = ns;
        object["metadata"].erase("resourceVersion");
        const std::string name = object["metadata"]["name"].get<std::string>();
        const std::string key = ns.empty() ? name : ns + "/" + name;
        if (c.objects.count(key))
            return error(409, "AlreadyExists",
                         c.resource.plural + " \"" + name + "\" already exists");
        change_locked(c.resource.group, c.resource.plural, std::move(object), "ADDED");
        return stored_answer(c, version, key, 201);
    }

    Answer resource_list(const std::string& group, const std::string& version) {
        json resources = json::array();
        for (const auto& [key, c] : collections) {
            const auto& v = c.resource.versions;
            if (c.resource.group != group || std::find(v.begin(), v.end(), version) == v.end())
                continue;
            resources.push_back({{"name", c.resource.plural},
                                 {"singularName", ""},
                                 {"namespaced", c.resource.namespaced},
                                 {"kind", c.resource.kind},
                                 {"verbs",
                                  {"create", "delete", "deletecollection", "get", "list", "patch",
                                   "update", "watch"}}});
            resources.push_back({{"name", c.resource.plural + "/status"},
                                 {"singularName", ""},
                                 {"namespaced", c.resource.namespaced},
                                 {"kind", c.resource.kind},
                                 {"verbs", {"get", "patch", "update"}}});
        }
        if (resources.empty() && !group.empty())
            return error(404, "NotFound", "the server could not find the requested resource");
        json body = {{"kind", "APIResourceList"},
                     {"apiVersion", "v1"},
                     {"groupVersion", group.empty() ? version : group + "/" + version},
                     {"resources", resources}};
        return Answer{200, body.dump(), std::nullopt, nullptr};
    }

    Answer group_list() {
        std::map<std::string, std::set<std::string>> groups;
        for (const auto& [key, c] : collections)
            if (!c.resource.group.empty())
                groups[c.resource.group].insert(c.resource.versions.begin(),
                                                c.resource.versions.end());
        json list = json::array();
        for (const auto& [group, versions] : groups) {
            json entries = json::array();
            for (const auto& v : versions)
                entries.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
            list.push_back(
                {{"name", group}, {"versions", entries}, {"preferredVersion", entries[0]}});
        }
        json body = {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}};
        return Answer{200, body.dump(), std::nullopt, nullptr};
    }

    Answer list(const Collection& c, const std::string& version, const Selector& selector,
                const RecordedRequest& r) {
        const bool metadata_only =
            r.accept.find("as=PartialObjectMetadataList") != std::string::npos;
        if (r.accept.find("as=PartialObjectMetadata;") != std::string::npos)
            return error(406, "NotAcceptable", "a list is a PartialObjectMetadataList");
        std::size_t limit = 0;
        if (auto l = r.query.find("limit"); l != r.query.end() && !l->second.empty())
            limit = std::stoul(l->second);
        std::uint64_t list_rv = rv;
        std::string after;
        std::size_t position = 0; // items of the earlier pages
        if (auto cont = r.query.find("continue"); cont != r.query.end() && !cont->second.empty()) {
            const json token = json::parse(unbase64(cont->second), nullptr, false);
            if (!token.is_object() || token.value("gen", std::uint64_t{0}) < continue_generation)
                return error(410, "Expired",
                             "The provided continue parameter is too old to display a consistent "
                             "list result. You can start a new list without the continue "
                             "parameter.");
            if (expire_continues > 0) {
                --expire_continues;
                return error(410, "Expired",
                             "The provided continue parameter is too old to display a consistent "
                             "list result. You can start a new list without the continue "
                             "parameter.");
            }
            list_rv = token.value("rv", rv);
            after = token.value("start", "");
            position = token.value("pos", std::size_t{0});
        }
        std::string items;
        std::size_t item_count = 0;
        std::string last_key;
        bool more = false;
        std::size_t remaining = 0;
        const bool everything = selector.namespace_name.empty() && selector.name.empty();
        const std::string variant = metadata_only ? std::string("m") : version;
        for (auto it = after.empty() ? c.objects.begin() : c.objects.upper_bound(after);
             it != c.objects.end(); ++it) {
            if (limit != 0 && item_count == limit) {
                // Counting the rest must not cost a lookup per object: pages would be quadratic.
                if (everything) {
                    // As approximate as the real remainingItemCount when objects change between
                    // pages; a walk to the end per page would make a long list quadratic.
                    const std::size_t listed = position + item_count;
                    remaining = c.objects.size() > listed ? c.objects.size() - listed : 1;
                    more = true;
                    break;
                }
                if (selector.matches(it->second)) {
                    more = true;
                    ++remaining;
                }
                continue;
            }
            if (!everything && !selector.matches(it->second))
                continue;
            if (item_count++ != 0)
                items.push_back(',');
            items.append(list_item(c, version, variant, it->first, it->second, metadata_only));
            last_key = it->first;
        }
        json metadata = {{"resourceVersion", std::to_string(list_rv)}};
        if (more) {
            metadata["continue"] = base64(json{
                {"rv", list_rv},
                {"start", last_key},
                {"pos", position + item_count},
                {"gen", continue_generation}}.dump());
            metadata["remainingItemCount"] = remaining;
        }
        // The members in the order the API server writes them (its Go types' field order): kind,
        // apiVersion, metadata, then the items.
        const json kind =
            metadata_only ? std::string("PartialObjectMetadataList") : c.resource.kind + "List";
        const json api_version =
            metadata_only ? std::string("meta.k8s.io/v1") : group_version(c.resource, version);
        std::string body;
        body.reserve(items.size() + 256);
        body.append("{\"kind\":").append(kind.dump());
        body.append(",\"apiVersion\":").append(api_version.dump());
        if (decoy_continues > 0) {
            --decoy_continues;
            body.append(",\"decoy\":{\"continue\":\"not-a-token\"}");
        }
        body.append(",\"metadata\":").append(metadata.dump());
        body.append(",\"items\":[").append(items).append("]}");
        return Answer{200, std::move(body), std::nullopt, nullptr};
    }

    // One list item as JSON text, serialized again only when the object changed.
    const std::string& list_item(const Collection& c, const std::string& version,
                                 const std::string& variant, const std::string& key,
                                 const json& stored, bool metadata_only) const {
        const std::string& object_rv =
            stored.at("metadata").at("resourceVersion").get_ref<const std::string&>();
        Collection::Serialized& entry = c.list_items[key];
        if (entry.text.empty() || entry.resource_version != object_rv || entry.variant != variant) {
            entry.resource_version = object_rv;
            entry.variant = variant;
            entry.text = present(c, version, stored, metadata_only, true).dump();
        }
        return entry.text;
    }

    Answer start_watch(const Collection& c, const std::string& version, const Selector& selector,
                       const RecordedRequest& r) {
        if (r.accept.find("as=PartialObjectMetadataList") != std::string::npos)
            return error(406, "NotAcceptable", "a watch event holds a PartialObjectMetadata");
        auto w = std::make_shared<WatchState>();
        w->path = r.path;
        w->collection = collection_key(c.resource.group, c.resource.plural);
        w->version = version;
        w->selector = selector;
        w->metadata_only = r.accept.find("as=PartialObjectMetadata") != std::string::npos;
        auto bm = r.query.find("allowWatchBookmarks");
        w->bookmarks = bm != r.query.end() && bm->second == "true";
        auto rv_param = r.query.find("resourceVersion");
        const std::uint64_t from = rv_param == r.query.end() || rv_param->second.empty()
                                       ? rv
                                       : std::stoull(rv_param->second);
        w->last_rv = from;
        auto timeout = r.query.find("timeoutSeconds");
        w->deadline =
            Clock::now() +
            std::chrono::seconds(timeout == r.query.end() ? 1800 : std::stol(timeout->second));
        if (from < compacted_rv) {
            json event = {
                {"type", "ERROR"},
                {"object", status_body(410, "Expired",
                                       "too old resource version: " + std::to_string(from) + " (" +
                                           std::to_string(compacted_rv) + ")")}};
            w->immediate = event.dump() + "\n";
        }
        watches.push_back(w);
        return Answer{200, {}, std::nullopt, w};
    }

    // What a watch has to send now (under mutex). Returns false when the watch must end.
    std::string pending_output(WatchState& w, bool& end, std::optional<Cut>& cut, bool& silent) {
        silent = stalled(w.path) && !w.cut;
        if (silent)
            return {};
        std::string out = std::move(w.injected);
        w.injected.clear();
        auto c = collections.find(w.collection);
        if (c == collections.end()) {
            end = true; // the resource is no longer served
            return out;
        }
        auto first = std::upper_bound(log.begin(), log.end(), w.last_rv,
                                      [](std::uint64_t v, const Event& e) { return v < e.rv; });
        for (auto it = first; it != log.end(); ++it) {
            w.last_rv = it->rv;
            if (it->collection != w.collection || !w.selector.matches(it->object))
                continue;
            out += event_line(c->second, w, it->type, it->object);
        }
        if (w.bookmark_pending) {
            w.bookmark_pending = false;
            if (w.bookmarks) {
                json object = {{"kind", w.metadata_only ? std::string("PartialObjectMetadata")
                                                        : c->second.resource.kind},
                               {"apiVersion", w.metadata_only
                                                  ? std::string("meta.k8s.io/v1")
                                                  : group_version(c->second.resource, w.version)},
                               {"metadata", {{"resourceVersion", std::to_string(rv)}}}};
                out += json{{"type", "BOOKMARK"}, {"object", object}}.dump() + "\n";
                w.last_rv = std::max(w.last_rv, rv);
            }
        }
        cut = w.cut;
        return out;
    }
};

namespace {

// One accepted connection: TLS, then requests until the client or a watch ends it.
class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(tcp::socket socket, FakeApiServer::State& state)
        : stream_(std::move(socket), state.tls), state_(state), timer_(stream_.get_executor()) {
        // As Go's net package does for every TCP connection, the API server's included: without
        // it, the last segment of an answer can wait for the client's delayed ACK.
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().set_option(tcp::no_delay(true), ignored);
        std::lock_guard lock(state_.mutex);
        number_ = ++state_.connections;
    }

    void run() {
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
        stream_.async_handshake(
            ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
                if (ec)
                    return self->close();
                X509* peer = SSL_get0_peer_certificate(self->stream_.native_handle());
                self->client_certificate_ =
                    peer && SSL_get_verify_result(self->stream_.native_handle()) == X509_V_OK;
                self->read();
            });
    }

  private:
    void read() {
        request_ = {};
        {
            std::lock_guard lock(state_.mutex);
            state_.idle[number_] =
                [weak = weak_from_this()](std::shared_ptr<std::promise<void>> closed) {
                    auto self = weak.lock();
                    if (!self)
                        return closed->set_value();
                    net::post(self->stream_.get_executor(), [self, closed] {
                        self->close();
                        closed->set_value();
                    });
                };
        }
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
        http::async_read(stream_, buffer_, request_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             {
                                 std::lock_guard lock(self->state_.mutex);
                                 self->state_.idle.erase(self->number_);
                             }
                             if (ec || self->closed_)
                                 return self->close();
                             self->respond();
                         });
    }

    void respond() {
        Answer answer = state_.handle(request_, client_certificate_, number_);
        if (answer.stall) {
            // No answer, ever: only the client giving up ends this connection.
            beast::get_lowest_layer(stream_).expires_never();
            return watch_for_hangup();
        }
        if (answer.watch)
            return start_watch(std::move(answer.watch));
        auto response = std::make_shared<http::response<http::string_body>>(
            static_cast<http::status>(answer.status), 11);
        response->set(http::field::content_type, "application/json");
        if (answer.retry_after)
            response->set(http::field::retry_after, std::to_string(*answer.retry_after));
        response->keep_alive(request_.keep_alive() && state_.options.keep_alive);
        response->body() = std::move(answer.body);
        response->prepare_payload();
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
        http::async_write(stream_, *response,
                          [self = shared_from_this(), response](beast::error_code ec, std::size_t) {
                              if (ec || !response->keep_alive())
                                  return self->close();
                              self->read();
                          });
    }

    void start_watch(std::shared_ptr<WatchState> watch) {
        watch_ = std::move(watch);
        // The stream outlives any single write timeout: no expiry while watching.
        beast::get_lowest_layer(stream_).expires_never();
        write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              "Cache-Control: no-cache, private\r\nTransfer-Encoding: chunked\r\n\r\n",
              [self = shared_from_this()] {
                  std::string immediate;
                  {
                      std::lock_guard lock(self->state_.mutex);
                      immediate = std::move(self->watch_->immediate);
                  }
                  if (!immediate.empty())
                      return self->write(self->chunks(immediate) + "0\r\n\r\n",
                                         [self] { self->close(); });
                  self->watch_for_hangup();
                  self->poll();
              });
    }

    std::string chunks(const std::string& data) {
        std::string out;
        auto chunk = [&](std::string_view piece) {
            std::ostringstream size;
            size << std::hex << piece.size();
            out += size.str() + "\r\n";
            out.append(piece);
            out += "\r\n";
        };
        if (state_.options.chunks == ChunkStyle::PerEvent) {
            chunk(data);
            return out;
        }
        static constexpr std::array<std::size_t, 6> sizes = {1, 7, 50, 4096, 3, 100000};
        std::string_view rest(data);
        while (!rest.empty()) {
            const std::size_t n = std::min(rest.size(), sizes[irregular_++ % sizes.size()]);
            chunk(rest.substr(0, n));
            rest.remove_prefix(n);
        }
        return out;
    }

    void poll() {
        if (closed_)
            return;
        bool end = false;
        bool silent = false;
        std::optional<Cut> cut;
        std::string data;
        {
            std::lock_guard lock(state_.mutex);
            data = state_.pending_output(*watch_, end, cut, silent);
        }
        if (silent)
            return wait(); // a hung server: no events, no end at timeoutSeconds
        if (end || (cut && *cut == Cut::Clean) || Clock::now() >= watch_->deadline)
            return write(chunks(data) + "0\r\n\r\n",
                         [self = shared_from_this()] { self->close(); });
        if (cut && *cut == Cut::Abrupt)
            return close();
        if (cut && *cut == Cut::MidEvent && !data.empty()) {
            const auto line_end = data.find('\n') + 1;
            std::ostringstream size;
            size << std::hex << line_end;
            std::string half = size.str() + "\r\n" + data.substr(0, line_end / 2);
            return write(std::move(half), [self = shared_from_this()] { self->close(); });
        }
        if (data.empty())
            return wait();
        write(chunks(data), [self = shared_from_this()] { self->wait(); });
    }

    // A watch client only ever closes: any read completing means it went away.
    void watch_for_hangup() {
        stream_.async_read_some(
            net::buffer(scratch_),
            [self = shared_from_this()](beast::error_code, std::size_t) { self->close(); });
    }

    void wait() {
        timer_.expires_after(std::chrono::milliseconds(2));
        timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (!ec)
                self->poll();
        });
    }

    template <typename Next> void write(std::string data, Next next) {
        auto buffer = std::make_shared<std::string>(std::move(data));
        net::async_write(
            stream_, net::buffer(*buffer),
            [self = shared_from_this(), buffer, next](beast::error_code ec, std::size_t) {
                if (ec)
                    return self->close();
                next();
            });
    }

    void close() {
        closed_ = true; // a timer that already fired must not poll again
        beast::error_code ignored;
        timer_.cancel();
        beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(stream_).socket().close(ignored);
    }

    beast::ssl_stream<beast::tcp_stream> stream_;
    FakeApiServer::State& state_; // owns the io_context that owns this session
    net::steady_timer timer_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    bool client_certificate_ = false;
    std::shared_ptr<WatchState> watch_;
    std::size_t irregular_ = 0;
    bool closed_ = false;
    std::uint64_t number_ = 0;
    std::array<char, 64> scratch_{};
};

void accept_next(FakeApiServer::State& state) {
    state.acceptor.async_accept(net::make_strand(state.io),
                                [&state](beast::error_code ec, tcp::socket socket) {
                                    if (ec)
                                        return; // closed: the server is going away
                                    std::make_shared<Session>(std::move(socket), state)->run();
                                    accept_next(state);
                                });
}

} // namespace

FakeApiServer::FakeApiServer(FakeServerOptions options)
    : state_(std::make_shared<State>(std::move(options))) {
    State& s = *state_;
    s.tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3);
    s.tls.use_certificate_chain(net::buffer(s.options.certificate_pem));
    s.tls.use_private_key(net::buffer(s.options.key_pem), ssl::context::pem);
    if (!s.options.client_ca_pem.empty()) {
        s.tls.add_certificate_authority(net::buffer(s.options.client_ca_pem));
        s.tls.set_verify_mode(ssl::verify_peer); // asked for, not required: tokens work too
        s.tls.set_verify_callback([](bool, ssl::verify_context&) { return true; });
    }
    tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
    s.acceptor.open(endpoint.protocol());
    s.acceptor.set_option(net::socket_base::reuse_address(true));
    s.acceptor.bind(endpoint);
    s.acceptor.listen();
    s.port = s.acceptor.local_endpoint().port();
    for (const auto& resource : core_resources())
        add_resource(resource);
    accept_next(s);
    s.thread = std::thread([&s] { s.io.run(); });
}

FakeApiServer::~FakeApiServer() {
    State& s = *state_;
    net::post(s.io, [&s] {
        beast::error_code ignored;
        s.acceptor.close(ignored);
        s.io.stop();
    });
    state_->thread.join();
}

std::uint16_t FakeApiServer::port() const noexcept {
    return state_->port;
}

std::string FakeApiServer::url() const {
    return "https://127.0.0.1:" + std::to_string(state_->port);
}

void FakeApiServer::set_tokens(std::set<std::string> tokens) {
    std::lock_guard lock(state_->mutex);
    state_->tokens = std::move(tokens);
}

void FakeApiServer::add_resource(const FakeResource& resource) {
    std::lock_guard lock(state_->mutex);
    auto& c = state_->collections[collection_key(resource.group, resource.plural)];
    c.resource = resource;
}

void FakeApiServer::remove_resource(const std::string& group, const std::string& plural) {
    std::lock_guard lock(state_->mutex);
    state_->collections.erase(collection_key(group, plural));
}

std::string FakeApiServer::create(const std::string& group, const std::string& plural,
                                  json object) {
    return state_->change(group, plural, std::move(object), "ADDED");
}

std::string FakeApiServer::update(const std::string& group, const std::string& plural,
                                  json object) {
    return state_->change(group, plural, std::move(object), "MODIFIED");
}

std::string FakeApiServer::remove(const std::string& group, const std::string& plural,
                                  const std::string& namespace_name, const std::string& name) {
    std::lock_guard lock(state_->mutex);
    Collection& c = state_->collection_of(group, plural);
    const std::string key = namespace_name.empty() ? name : namespace_name + "/" + name;
    auto it = c.objects.find(key);
    if (it == c.objects.end())
        throw std::invalid_argument("fake API server: " + key + " does not exist");
    ++state_->rv;
    json last = std::move(it->second);
    c.objects.erase(it);
    c.list_items.erase(key);
    last["metadata"]["resourceVersion"] = std::to_string(state_->rv);
    state_->log.push_back(
        Event{state_->rv, collection_key(group, plural), "DELETED", std::move(last)});
    return std::to_string(state_->rv);
}

void FakeApiServer::preload(const std::string& group, const std::string& plural,
                            std::vector<json> objects) {
    std::lock_guard lock(state_->mutex);
    Collection& c = state_->collection_of(group, plural);
    for (auto& object : objects) {
        ++state_->rv;
        state_->fill_metadata(object, c, nullptr);
        const std::string key = object_key(object);
        c.objects[key] = std::move(object);
    }
    state_->compacted_rv = state_->rv; // no history before this point
}

void FakeApiServer::serialize_ahead(const std::string& group, const std::string& plural,
                                    bool metadata_only) {
    std::lock_guard lock(state_->mutex);
    const Collection& c = state_->collection_of(group, plural);
    const std::string& version = c.resource.versions.front();
    const std::string variant = metadata_only ? std::string("m") : version;
    for (const auto& [key, object] : c.objects)
        state_->list_item(c, version, variant, key, object, metadata_only);
}

void FakeApiServer::bookmark_all() {
    std::lock_guard lock(state_->mutex);
    for (auto& weak : state_->watches)
        if (auto w = weak.lock())
            w->bookmark_pending = true;
}

void FakeApiServer::compact() {
    std::lock_guard lock(state_->mutex);
    state_->compacted_rv = state_->rv;
    state_->log.clear();
}

void FakeApiServer::expire_continue_tokens() {
    std::lock_guard lock(state_->mutex);
    ++state_->continue_generation;
}

void FakeApiServer::fail_next(const std::string& path_prefix, unsigned status, int times,
                              std::optional<int> retry_after_seconds) {
    std::lock_guard lock(state_->mutex);
    state_->failures.push_back({path_prefix, status, times, retry_after_seconds});
}

void FakeApiServer::expire_next_continue(int times) {
    std::lock_guard lock(state_->mutex);
    state_->expire_continues = times;
}

void FakeApiServer::decoy_next_continue(int times) {
    std::lock_guard lock(state_->mutex);
    state_->decoy_continues = times;
}

void FakeApiServer::interfere_before_next_writes(const std::string& path, int times) {
    std::lock_guard lock(state_->mutex);
    state_->interferences.push_back({path, times});
}

std::optional<json> FakeApiServer::get(const std::string& group, const std::string& plural,
                                       const std::string& namespace_name,
                                       const std::string& name) const {
    std::lock_guard lock(state_->mutex);
    auto c = state_->collections.find(collection_key(group, plural));
    if (c == state_->collections.end())
        return std::nullopt;
    auto it = c->second.objects.find(namespace_name.empty() ? name : namespace_name + "/" + name);
    if (it == c->second.objects.end())
        return std::nullopt;
    return it->second;
}

void FakeApiServer::forbid(const std::string& group, const std::string& plural, bool on,
                           std::set<std::string> allowed_names) {
    std::lock_guard lock(state_->mutex);
    if (on)
        state_->forbidden[collection_key(group, plural)] = std::move(allowed_names);
    else
        state_->forbidden.erase(collection_key(group, plural));
}

void FakeApiServer::clear_failures() {
    std::lock_guard lock(state_->mutex);
    state_->failures.clear();
}

void FakeApiServer::inject_line(const std::string& plural, const std::string& raw) {
    std::lock_guard lock(state_->mutex);
    for (auto it = state_->watches.rbegin(); it != state_->watches.rend(); ++it) {
        if (auto w = it->lock(); w && !w->cut && w->collection.ends_with("/" + plural)) {
            w->injected += raw;
            return;
        }
    }
}

void FakeApiServer::cut_watches(Cut how, const std::string& plural) {
    std::lock_guard lock(state_->mutex);
    for (auto& weak : state_->watches) {
        auto w = weak.lock();
        if (!w)
            continue;
        if (plural.empty() || w->collection.ends_with("/" + plural))
            w->cut = how;
    }
    // Cut watches are gone for good; the next ones start clean.
    state_->watches.erase(std::remove_if(state_->watches.begin(), state_->watches.end(),
                                         [&](const std::weak_ptr<WatchState>& weak) {
                                             auto w = weak.lock();
                                             return !w || w->cut.has_value();
                                         }),
                          state_->watches.end());
}

void FakeApiServer::stall(const std::string& path_prefix, bool on) {
    std::lock_guard lock(state_->mutex);
    if (on)
        state_->stalls.insert(path_prefix);
    else
        state_->stalls.erase(path_prefix);
}

std::size_t FakeApiServer::close_idle_connections() {
    std::map<std::uint64_t, std::function<void(std::shared_ptr<std::promise<void>>)>> idle;
    {
        std::lock_guard lock(state_->mutex);
        idle.swap(state_->idle);
    }
    std::vector<std::future<void>> closed;
    for (auto& [number, close] : idle) {
        auto promise = std::make_shared<std::promise<void>>();
        closed.push_back(promise->get_future());
        close(std::move(promise));
    }
    for (auto& f : closed)
        f.wait(); // the server's own thread closes them; never called from it
    return idle.size();
}

std::vector<RecordedRequest> FakeApiServer::requests() const {
    std::lock_guard lock(state_->mutex);
    return state_->recorded;
}

void FakeApiServer::clear_requests() {
    std::lock_guard lock(state_->mutex);
    state_->recorded.clear();
}

std::size_t FakeApiServer::open_watches(const std::string& plural) const {
    std::lock_guard lock(state_->mutex);
    std::size_t n = 0;
    for (const auto& weak : state_->watches)
        if (auto w = weak.lock(); w && !w->cut && w->collection.ends_with("/" + plural))
            ++n;
    return n;
}

std::string FakeApiServer::resource_version() const {
    std::lock_guard lock(state_->mutex);
    return std::to_string(state_->rv);
}

std::size_t FakeApiServer::object_count(const std::string& group, const std::string& plural) const {
    std::lock_guard lock(state_->mutex);
    auto it = state_->collections.find(collection_key(group, plural));
    return it == state_->collections.end() ? 0 : it->second.objects.size();
}

} // namespace mtlsguard::kube::testing
