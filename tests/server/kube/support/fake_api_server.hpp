// A fake Kubernetes API server speaking the real wire format over HTTPS, for tests and benches.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mtlsguard::kube::testing {

struct FakeResource {
    std::string group; // "" for the core group
    std::vector<std::string> versions;
    std::string plural;
    std::string kind;
    bool namespaced = true;
};

// The resources of a cluster without Istio: namespaces, services, pods, configmaps,
// endpointslices, CRDs.
std::vector<FakeResource> core_resources();
// Istio's: peerauthentications (v1, v1beta1); destinationrules, serviceentries, virtualservices
// and sidecars (v1, v1beta1, v1alpha3).
std::vector<FakeResource> istio_resources();

struct RecordedRequest {
    std::string method; // "GET", "POST", "PUT", "PATCH", ...
    std::string path;
    std::map<std::string, std::string> query; // decoded
    std::string accept;
    std::string authorization;
    bool client_certificate = false;
    std::string content_type;
    std::string body;
    unsigned status = 0;          // what the fake answered
    std::uint64_t connection = 0; // which connection it came on: 1 for the first accepted, ...
};

enum class ChunkStyle : std::uint8_t {
    PerEvent,  // one chunk per write of pending events
    Irregular, // events cut at odd places across chunks, several per chunk
};

enum class Cut : std::uint8_t {
    Clean,    // the final chunk, as when timeoutSeconds runs out
    Abrupt,   // the TCP connection closes without the final chunk
    MidEvent, // the next event is written half, inside its chunk, then the connection closes
};

struct FakeServerOptions {
    std::string certificate_pem; // serving certificate and key
    std::string key_pem;
    std::string client_ca_pem; // when set, client certificates it signed authenticate a request
    ChunkStyle chunks = ChunkStyle::Irregular;
    bool keep_alive = true; // false: every answer says Connection: close, and closes
};

// Speaks what client-go's reflector relies on: discovery documents (/api/v1, /apis,
// /apis/<g>/<v>), paginated lists (limit, continue, metadata.resourceVersion; items of built-in
// typed lists without kind), PartialObjectMetadata(List) on request, field selectors on
// metadata.name and metadata.namespace, chunked watches from a resourceVersion with ADDED,
// MODIFIED, DELETED, BOOKMARK and ERROR events, 410 Expired as an ERROR Status for compacted
// history, 401 for a bad token, 403 Forbidden for collections RBAC withholds, injected failures
// with Retry-After, and cut connections.
// Single objects: GET, PUT (409 Conflict when metadata.resourceVersion is stale, 422 when the
// Secret type changes), PATCH with application/json-patch+json (add, replace, remove, test; 422
// when a test fails), POST to a collection (409 AlreadyExists). Writes become watch events.
// Simplification: a continued list page shows the current objects, not the first page's snapshot.
class FakeApiServer {
  public:
    // Listens on 127.0.0.1, on a port of the system's choosing, with a thread of its own.
    explicit FakeApiServer(FakeServerOptions options);
    ~FakeApiServer();
    FakeApiServer(const FakeApiServer&) = delete;
    FakeApiServer& operator=(const FakeApiServer&) = delete;

    std::uint16_t port() const noexcept;
    std::string url() const; // https://127.0.0.1:<port>

    // Bearer tokens accepted; empty: any request is accepted (unless a client CA demands a cert).
    void set_tokens(std::set<std::string> tokens);

    void add_resource(const FakeResource& resource);
    // Stops serving it (discovery, list, watch answer 404); open watches of it end.
    void remove_resource(const std::string& group, const std::string& plural);

    // Changes; each takes the next resourceVersion and becomes a watch event. `object` needs
    // metadata.name (and namespace when namespaced); uid and creationTimestamp are filled in.
    // Return the new resourceVersion.
    std::string create(const std::string& group, const std::string& plural, nlohmann::json object);
    std::string update(const std::string& group, const std::string& plural, nlohmann::json object);
    std::string remove(const std::string& group, const std::string& plural,
                       const std::string& namespace_name, const std::string& name);
    // Objects that existed before any watch history (no events): for large initial states.
    void preload(const std::string& group, const std::string& plural,
                 std::vector<nlohmann::json> objects);
    // Serializes every object of a collection as a list will return it (metadata only, or whole
    // at the preferred version), ahead of the first list. A real API server serializes on its own
    // machine; a benchmark whose client shares the cores with this one calls this before its
    // clock starts, so that a list costs this server only the copy and the TLS.
    void serialize_ahead(const std::string& group, const std::string& plural, bool metadata_only);

    // Sends BOOKMARK with the current resourceVersion on every open watch that allows them.
    void bookmark_all();
    // Forgets the history: watches from an older resourceVersion get ERROR 410 Expired.
    void compact();
    // Continue tokens handed out so far are refused with 410 Expired.
    void expire_continue_tokens();
    // The next `times` requests whose path starts with `path_prefix` get `status` (a Status body),
    // with Retry-After when given.
    void fail_next(const std::string& path_prefix, unsigned status, int times,
                   std::optional<int> retry_after_seconds = std::nullopt);
    // The next `times` list requests that carry a continue token get 410 Expired.
    void expire_next_continue(int times);
    // The next `times` list pages carry, before their metadata, a member `"decoy":{"continue":
    // "not-a-token"}`: text that states a continue token which is not the page's (the API server
    // never writes one; a client that reads the token from the text must check it).
    void decoy_next_continue(int times);
    // Before each of the next `times` PUT or PATCH requests to `path`, the stored object changes
    // (new resourceVersion, an annotation), as when another client writes it first: the request
    // then meets a real conflict.
    void interfere_before_next_writes(const std::string& path, int times);
    // A stored object as the API server would return it; nullopt when it does not exist.
    std::optional<nlohmann::json> get(const std::string& group, const std::string& plural,
                                      const std::string& namespace_name,
                                      const std::string& name) const;
    // While on, RBAC lets the client neither list nor watch the collection: 403 Forbidden, as the
    // authorizer words it; except, as with RBAC resourceNames, a list or watch whose field selector
    // is metadata.name=<one of `allowed_names`>. Watches already open stay open, as the API
    // server's do (it authorizes a request when it starts).
    void forbid(const std::string& group, const std::string& plural, bool on,
                std::set<std::string> allowed_names = {});
    // Forgets failures injected with fail_next that have not happened yet.
    void clear_failures();
    // Writes `raw` (a line, '\n' included) on the newest open watch of `plural`, before any
    // event.
    void inject_line(const std::string& plural, const std::string& raw);
    // Ends every open watch (of `plural`, or all when empty).
    void cut_watches(Cut how, const std::string& plural = {});
    // While on, requests whose path starts with `path_prefix` get no answer at all (their
    // connections stay open, as a hung API server's do), and open watches of such paths go silent
    // without ending.
    void stall(const std::string& path_prefix, bool on);

    // Closes every connection that waits for its next request, without a TLS close_notify, as a
    // server or proxy dropping idle connections does. Returns how many it closed.
    std::size_t close_idle_connections();

    std::vector<RecordedRequest> requests() const;
    void clear_requests();
    std::size_t open_watches(const std::string& plural) const;
    std::string resource_version() const;
    std::size_t object_count(const std::string& group, const std::string& plural) const;

    struct State;

  private:
    std::shared_ptr<State> state_;
};

} // namespace mtlsguard::kube::testing
