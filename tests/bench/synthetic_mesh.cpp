// Builds synthetic Istio meshes: a compact plan first, then one Kubernetes object at a time.
#include "tests/bench/synthetic_mesh.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtlsguard::bench {
namespace {

using nlohmann::json;
using Rng = std::mt19937_64;
using Emit = std::function<void(json&&)>;

// ---------------------------------------------------------------------------------------------
// Randomness. Only the raw mt19937_64 stream is used: the standard distributions, std::shuffle
// and libm may differ between standard libraries, and the mesh must be identical everywhere.

// Uniform in [0, n), n > 0.
std::uint64_t uniform_below(Rng& rng, std::uint64_t n) {
    // Reject the lowest (2^64 mod n) values so that the modulo does not favour small results.
    const std::uint64_t threshold = (std::uint64_t{0} - n) % n;
    for (;;) {
        const std::uint64_t r = rng();
        if (r >= threshold)
            return r % n;
    }
}

// Uniform in [lo, hi].
int uniform_int(Rng& rng, int lo, int hi) {
    const auto span = static_cast<std::uint64_t>(static_cast<std::int64_t>(hi) - lo) + 1;
    return static_cast<int>(lo + static_cast<std::int64_t>(uniform_below(rng, span)));
}

std::size_t uniform_index(Rng& rng, std::size_t size) {
    return static_cast<std::size_t>(uniform_below(rng, size));
}

// Uniform in [0, 1) with 53 random bits, exact in any IEEE double implementation.
double uniform01(Rng& rng) {
    return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

bool chance(Rng& rng, double p) {
    return uniform01(rng) < p;
}

// An index drawn with probability proportional to its (non-negative, not all zero) weight.
std::size_t pick_weighted(Rng& rng, std::initializer_list<int> weights) {
    std::uint64_t total = 0;
    for (const int w : weights)
        total += static_cast<std::uint64_t>(w);
    std::uint64_t r = uniform_below(rng, total);
    std::size_t index = 0;
    for (const int w : weights) {
        const auto uw = static_cast<std::uint64_t>(w);
        if (r < uw)
            return index;
        r -= uw;
        ++index;
    }
    return weights.size() - 1;
}

// Fisher-Yates with our own uniform helper (std::shuffle's draws are implementation-defined).
template <typename T> void shuffle(Rng& rng, std::vector<T>& items) {
    for (std::size_t i = items.size(); i > 1; --i)
        std::swap(items[i - 1], items[uniform_index(rng, i)]);
}

// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
constexpr std::string_view name_alphabet = "bcdfghjklmnpqrstvwxz2456789";

std::string random_token(Rng& rng, std::size_t length) {
    std::string out(length, ' ');
    for (char& c : out)
        c = name_alphabet[uniform_index(rng, name_alphabet.size())];
    return out;
}

std::string random_uuid(Rng& rng) {
    // Version 4, variant 1, as the API server would assign.
    const std::uint64_t hi = (rng() & ~std::uint64_t{0xF000}) | 0x4000;
    const std::uint64_t lo = (rng() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
    constexpr std::string_view hex = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out.push_back('-');
        const std::uint64_t word = i < 16 ? hi : lo;
        const int shift = 60 - 4 * (i % 16);
        out.push_back(hex[static_cast<std::size_t>((word >> shift) & 0xF)]);
    }
    return out;
}

std::string ipv4(std::uint32_t address) {
    return std::to_string(address >> 24) + '.' + std::to_string((address >> 16) & 0xFF) + '.' +
           std::to_string((address >> 8) & 0xFF) + '.' + std::to_string(address & 0xFF);
}

std::string rfc3339(std::int64_t unix_seconds) {
    using namespace std::chrono;
    const sys_seconds at{seconds{unix_seconds}};
    const sys_days day = floor<days>(at);
    const year_month_day date{day};
    const hh_mm_ss time{at - day};
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02dZ",
                  static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                  static_cast<unsigned>(date.day()), static_cast<int>(time.hours().count()),
                  static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()));
    return buffer;
}

std::int64_t start_time() {
    using namespace std::chrono;
    const sys_seconds at = sys_days{year{2025} / January / 2} + hours{3} + minutes{4} + seconds{5};
    return at.time_since_epoch().count();
}

// ---------------------------------------------------------------------------------------------
// The plan: what exists and how it is configured, a few bytes per namespace and service, so
// that Pods, PeerAuthentications and DestinationRules can agree with the Services they target.

enum class Injection : std::uint8_t { None, Enabled, Revision };
enum class Mode : std::uint8_t { Unset, Disable, Permissive, Strict }; // PeerAuthentication
enum class Tls : std::uint8_t { Unset, Disable, Simple, IstioMutual }; // DestinationRule
enum class Sidecars : std::uint8_t { None, All, Mixed };               // of a Service's pods

std::string_view mode_name(Mode m) {
    switch (m) {
    case Mode::Disable:
        return "DISABLE";
    case Mode::Permissive:
        return "PERMISSIVE";
    case Mode::Strict:
        return "STRICT";
    case Mode::Unset:
        break;
    }
    return "UNSET";
}

std::string_view tls_name(Tls t) {
    switch (t) {
    case Tls::Disable:
        return "DISABLE";
    case Tls::Simple:
        return "SIMPLE";
    case Tls::IstioMutual:
        return "ISTIO_MUTUAL";
    case Tls::Unset:
        break;
    }
    return "UNSET";
}

struct PortKind {
    std::string_view name;
    std::uint16_t port;
    std::uint16_t target;
};

// The first three are the main port of a service, the rest are extras. Names and target
// numbers are distinct within any allowed combination, so container ports never collide.
constexpr std::array<PortKind, 8> port_kinds{{
    {"http", 80, 8080},
    {"http", 8080, 8080},
    {"grpc", 9090, 9090},
    {"grpc", 9090, 9090}, // as an extra: not allowed next to a grpc main port
    {"tcp-db", 5432, 5432},
    {"tcp-cache", 6379, 6379},
    {"tcp-mq", 5672, 5672},
    {"http-metrics", 9102, 9102},
}};
constexpr std::size_t main_port_kinds = 3;

constexpr std::array<std::string_view, 32> words{
    "cart",    "checkout",  "catalog", "payments", "orders",  "inventory", "shipping", "users",
    "auth",    "search",    "reviews", "ratings",  "details", "frontend",  "backend",  "billing",
    "ledger",  "pricing",   "profile", "session",  "notify",  "mailer",    "reports",  "audit",
    "gateway", "recommend", "media",   "uploads",  "quotes",  "currency",  "ads",      "analytics"};

struct NamespacePlan {
    Injection injection = Injection::None;
    bool ambient = false;    // istio.io/dataplane-mode=ambient (never with injection)
    Mode mode = Mode::Unset; // of the oldest namespace-wide PeerAuthentication
    std::uint32_t first_service = 0;
    std::uint32_t service_count = 0;
};

struct ServicePlan {
    std::uint32_t ns = 0;    // index of its application namespace
    std::uint32_t local = 0; // index within the namespace; keeps names unique there
    std::uint32_t pods = 0;
    std::uint8_t word = 0;
    std::uint8_t port_count = 1;
    std::array<std::uint8_t, 3> port_kind{};
    std::uint8_t named_target = 0;    // bit i: port i targets its container port by name
    std::uint8_t named_container = 0; // bit i: the container port has a name (superset)
    std::uint8_t deployments = 1;     // v1, or v1 and v2; StatefulSets have one
    std::uint8_t sidecar = 0;         // bit d: pods of deployment d run istio-proxy
    bool headless = false;
    bool has_selector = true;
    bool stateful = false;
    bool workload_pa = false;
    Mode workload_mode = Mode::Unset;
    std::array<Mode, 3> port_mode{}; // portLevelMtls per port slot, Unset when absent
};

struct PeerAuthPlan {
    enum class Kind : std::uint8_t { Mesh, Namespace, Workload } kind = Kind::Mesh;
    std::uint32_t target = 0; // namespace index or service index
    std::uint32_t round = 0;  // > 0: a further policy on an already covered service
    Mode mode = Mode::Unset;
    bool omit_mtls = false;
    bool duplicate = false; // a second namespace-wide policy, newer than the first
};

struct DestRulePlan {
    enum class Kind : std::uint8_t { Global, Wildcard, Host, Selector } kind = Kind::Host;
    std::uint32_t target = 0; // service index, namespace index or global rule index
    std::uint32_t round = 0;
    bool conflict = false;
};

// Number of pods of deployment d, given the service's pods: v2 gets about a third.
std::uint32_t deployment_pods(const ServicePlan& s, int d) {
    if (s.deployments < 2)
        return d == 0 ? s.pods : 0;
    const std::uint32_t v2 = s.pods >= 2 ? std::max<std::uint32_t>(1, s.pods / 3) : 0;
    return d == 0 ? s.pods - v2 : v2;
}

class Generator {
  public:
    Generator(const MeshShape& shape, const Emit& emit)
        : shape_(shape), emit_(emit), rng_(shape.seed), clock_(start_time()) {}

    void run() {
        plan_namespaces();
        plan_services();
        plan_pod_counts();
        plan_peer_authentications();
        plan_destination_rules();

        emit_istio_system();
        emit_mesh_config();
        for (std::uint32_t k = 0; k < namespaces_.size(); ++k)
            emit_namespace(k);
        for (std::uint32_t s = 0; s < services_.size(); ++s)
            emit_service(s);
        emit_service_entries();
        for (std::uint32_t s = 0; s < services_.size(); ++s)
            emit_pods(s);
        for (const PeerAuthPlan& pa : peer_auths_)
            emit_peer_authentication(pa);
        for (const DestRulePlan& dr : dest_rules_)
            emit_destination_rule(dr);
        emit_sidecars();
        emit_virtual_services();
    }

  private:
    // ---- planning ---------------------------------------------------------------------------

    void plan_namespaces() {
        namespaces_.resize(static_cast<std::size_t>(shape_.namespaces - 1));
        const double rest = 1.0 - shape_.sidecar_fraction;
        const double ambient_of_rest = rest > 0 ? shape_.ambient_fraction / rest : 0.0;
        for (NamespacePlan& ns : namespaces_) {
            if (chance(rng_, shape_.sidecar_fraction))
                ns.injection = chance(rng_, 0.04) ? Injection::Revision : Injection::Enabled;
            else
                ns.ambient = chance(rng_, ambient_of_rest);
        }
        // Uneven sizes, like real clusters: most namespaces hold a handful of services, a few
        // are large. Cumulative rounding makes the total exact.
        std::vector<std::uint64_t> weights(namespaces_.size());
        std::uint64_t total = 0;
        for (std::uint64_t& w : weights) {
            w = static_cast<std::uint64_t>(chance(rng_, 0.05) ? uniform_int(rng_, 30, 60)
                                                              : uniform_int(rng_, 5, 15));
            total += w;
        }
        const auto services = static_cast<std::uint64_t>(shape_.services);
        std::uint64_t cumulative = 0;
        for (std::size_t k = 0; k < namespaces_.size(); ++k) {
            const std::uint64_t begin = services * cumulative / total;
            cumulative += weights[k];
            const std::uint64_t end = services * cumulative / total;
            namespaces_[k].first_service = static_cast<std::uint32_t>(begin);
            namespaces_[k].service_count = static_cast<std::uint32_t>(end - begin);
        }
    }

    void plan_services() {
        services_.reserve(static_cast<std::size_t>(shape_.services));
        for (std::uint32_t k = 0; k < namespaces_.size(); ++k) {
            const bool injected = namespaces_[k].injection != Injection::None;
            for (std::uint32_t local = 0; local < namespaces_[k].service_count; ++local) {
                ServicePlan s;
                s.ns = k;
                s.local = local;
                s.word = static_cast<std::uint8_t>(uniform_index(rng_, words.size()));
                s.port_count = static_cast<std::uint8_t>(pick_weighted(rng_, {55, 30, 15}) + 1);
                s.port_kind[0] = static_cast<std::uint8_t>(uniform_index(rng_, main_port_kinds));
                for (std::uint8_t i = 1; i < s.port_count; ++i) {
                    for (;;) {
                        const auto kind = static_cast<std::uint8_t>(
                            main_port_kinds +
                            uniform_index(rng_, port_kinds.size() - main_port_kinds));
                        if (port_kinds[kind].target == port_kinds[s.port_kind[0]].target)
                            continue;
                        if (std::find(s.port_kind.begin(), s.port_kind.begin() + i, kind) !=
                            s.port_kind.begin() + i)
                            continue;
                        s.port_kind[i] = kind;
                        break;
                    }
                }
                for (std::uint8_t i = 0; i < s.port_count; ++i) {
                    const auto bit = static_cast<std::uint8_t>(1U << i);
                    if (chance(rng_, 0.3))
                        s.named_target |= bit;
                    if ((s.named_target & bit) != 0 || chance(rng_, 0.6))
                        s.named_container |= bit;
                }
                s.headless = chance(rng_, 0.03);
                s.has_selector = !chance(rng_, 0.01);
                s.stateful = s.has_selector && chance(rng_, s.headless ? 0.8 : 0.02);
                s.deployments = !s.stateful && chance(rng_, 0.25) ? 2 : 1;
                for (int d = 0; d < s.deployments; ++d) {
                    // ~2% of workloads opt out of an injected namespace, ~1% opt into a plain one.
                    const bool sidecar = injected ? !chance(rng_, 0.02) : chance(rng_, 0.01);
                    if (sidecar)
                        s.sidecar = static_cast<std::uint8_t>(s.sidecar | (1U << d));
                }
                services_.push_back(s);
            }
        }
    }

    void plan_pod_counts() {
        std::vector<std::uint64_t> weights(services_.size());
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < services_.size(); ++i) {
            // Selector-less services have no pods of their own (their endpoints are external).
            if (!services_[i].has_selector)
                continue;
            weights[i] = static_cast<std::uint64_t>(chance(rng_, 0.05) ? uniform_int(rng_, 12, 30)
                                                                       : uniform_int(rng_, 2, 7));
            total += weights[i];
        }
        if (total == 0) {
            std::fill(weights.begin(), weights.end(), 1);
            total = weights.size();
        }
        const auto pods = static_cast<std::uint64_t>(shape_.pods);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < services_.size(); ++i) {
            const std::uint64_t begin = pods * cumulative / total;
            cumulative += weights[i];
            services_[i].pods = static_cast<std::uint32_t>(pods * cumulative / total - begin);
        }
    }

    static std::size_t handful(int n) {
        if (n >= 500)
            return 5;
        if (n >= 50)
            return 2;
        return n >= 10 ? 1 : 0;
    }

    void plan_peer_authentications() {
        if (shape_.peer_authentications <= 0)
            return;
        peer_auths_.reserve(static_cast<std::size_t>(shape_.peer_authentications));
        const int remaining = shape_.peer_authentications - 1;
        const auto namespace_wide = static_cast<std::size_t>((remaining * 35 + 50) / 100);
        std::size_t duplicates = std::min(handful(remaining), namespace_wide / 2);
        const std::size_t originals = std::min(namespace_wide - duplicates, namespaces_.size());
        duplicates = std::min(duplicates, originals);
        const std::size_t workload = static_cast<std::size_t>(remaining) - originals - duplicates;

        std::vector<PeerAuthPlan> plans;
        plans.reserve(static_cast<std::size_t>(remaining));

        // Namespace-wide: STRICT/DISABLE only where sidecars run, as a working mesh would.
        std::vector<std::uint32_t> order(namespaces_.size());
        for (std::uint32_t k = 0; k < order.size(); ++k)
            order[k] = k;
        shuffle(rng_, order);
        for (std::size_t i = 0; i < originals + duplicates; ++i) {
            PeerAuthPlan pa;
            pa.kind = PeerAuthPlan::Kind::Namespace;
            pa.duplicate = i >= originals;
            pa.target = order[pa.duplicate ? i - originals : i];
            NamespacePlan& ns = namespaces_[pa.target];
            if (pa.duplicate) {
                pa.mode = ns.mode == Mode::Strict ? Mode::Permissive : Mode::Strict;
            } else {
                if (ns.injection != Injection::None || ns.ambient) {
                    constexpr std::array modes{Mode::Strict, Mode::Permissive, Mode::Unset,
                                               Mode::Disable};
                    pa.mode = modes[pick_weighted(rng_, {50, 22, 20, 4})];
                } else {
                    pa.mode = chance(rng_, 0.6) ? Mode::Permissive : Mode::Unset;
                }
                pa.omit_mtls = pa.mode == Mode::Unset && chance(rng_, 0.5);
                ns.mode = pa.mode; // the original is the oldest, so it is the one in effect
            }
            plans.push_back(pa);
        }

        // Workload-wide: mostly services of injected namespaces.
        std::vector<std::uint32_t> injected;
        std::vector<std::uint32_t> plain;
        for (std::uint32_t s = 0; s < services_.size(); ++s) {
            if (!services_[s].has_selector)
                continue;
            (namespaces_[services_[s].ns].injection != Injection::None ? injected : plain)
                .push_back(s);
        }
        if (injected.empty() && plain.empty()) {
            for (std::uint32_t s = 0; s < services_.size(); ++s)
                plain.push_back(s);
        }
        shuffle(rng_, injected);
        shuffle(rng_, plain);
        std::size_t next_injected = 0;
        std::size_t next_plain = 0;
        std::uint32_t round = 0;
        for (std::size_t i = 0; i < workload; ++i) {
            if (next_injected == injected.size() && next_plain == plain.size()) {
                next_injected = next_plain = 0;
                ++round;
            }
            const bool from_injected = next_injected < injected.size() &&
                                       (next_plain == plain.size() || chance(rng_, 0.9));
            const std::uint32_t s = from_injected ? injected[next_injected++] : plain[next_plain++];
            PeerAuthPlan pa;
            pa.kind = PeerAuthPlan::Kind::Workload;
            pa.target = s;
            pa.round = round;
            if (round == 0)
                plan_workload_modes(services_[s]);
            pa.mode = services_[s].workload_mode;
            plans.push_back(pa);
        }

        shuffle(rng_, plans);
        // A duplicate must be the newer of its pair: swap it behind its original if needed.
        std::vector<std::size_t> first_seen(namespaces_.size(), plans.size());
        for (std::size_t i = 0; i < plans.size(); ++i) {
            if (plans[i].kind != PeerAuthPlan::Kind::Namespace)
                continue;
            std::size_t& seen = first_seen[plans[i].target];
            if (seen == plans.size()) {
                seen = i;
            } else if (plans[seen].duplicate) {
                std::swap(plans[seen], plans[i]);
            }
        }

        PeerAuthPlan mesh;
        mesh.kind = PeerAuthPlan::Kind::Mesh;
        mesh.mode = Mode::Permissive;
        peer_auths_.push_back(mesh);
        peer_auths_.insert(peer_auths_.end(), plans.begin(), plans.end());
    }

    void plan_workload_modes(ServicePlan& s) {
        const bool injected = namespaces_[s.ns].injection != Injection::None;
        s.workload_pa = true;
        if (injected) {
            constexpr std::array modes{Mode::Strict, Mode::Permissive, Mode::Unset, Mode::Disable};
            s.workload_mode = modes[pick_weighted(rng_, {45, 28, 20, 7})];
        } else {
            s.workload_mode = chance(rng_, 0.7) ? Mode::Permissive : Mode::Unset;
        }
        // UNSET at workload level is only written to carry port-level exceptions.
        if (s.workload_mode != Mode::Unset && !chance(rng_, 0.15))
            return;
        const int entries = s.port_count >= 2 && chance(rng_, 0.2) ? 2 : 1;
        const std::size_t first = uniform_index(rng_, s.port_count);
        for (int e = 0; e < entries; ++e) {
            const std::size_t slot = (first + static_cast<std::size_t>(e)) % s.port_count;
            if (injected) {
                constexpr std::array modes{Mode::Disable, Mode::Permissive, Mode::Strict};
                s.port_mode[slot] = modes[pick_weighted(rng_, {50, 30, 20})];
            } else {
                s.port_mode[slot] = chance(rng_, 0.6) ? Mode::Permissive : Mode::Disable;
            }
        }
    }

    // Which pods of the service run a sidecar (deployments without pods count as planned).
    Sidecars sidecars(const ServicePlan& s) const {
        int with = 0;
        int without = 0;
        for (int d = 0; d < s.deployments; ++d) {
            if (s.pods > 0 && deployment_pods(s, d) == 0)
                continue;
            ((s.sidecar >> d) & 1U ? with : without)++;
        }
        if (with > 0 && without > 0)
            return Sidecars::Mixed;
        return with > 0 ? Sidecars::All : Sidecars::None;
    }

    // What the server side of port slot i accepts, per PeerAuthentication precedence.
    Mode effective_mode(const ServicePlan& s, std::size_t slot) const {
        if (s.port_mode[slot] != Mode::Unset)
            return s.port_mode[slot];
        if (s.workload_mode != Mode::Unset)
            return s.workload_mode;
        const Mode ns = namespaces_[s.ns].mode;
        return ns != Mode::Unset ? ns : Mode::Permissive; // the mesh-wide policy
    }

    // Whether a client using `tls` reaches port slot i of the service.
    bool compatible(const ServicePlan& s, std::size_t slot, Tls tls) const {
        if (tls == Tls::Unset)
            return true; // auto mTLS adapts to the server
        if (namespaces_[s.ns].ambient && sidecars(s) == Sidecars::None)
            return tls != Tls::Simple && !s.headless; // sidecars tunnel (HBONE) whatever the DR
        switch (sidecars(s)) {
        case Sidecars::None:
            return tls != Tls::IstioMutual;
        case Sidecars::Mixed:
            return false;
        case Sidecars::All:
            break;
        }
        const Mode mode = effective_mode(s, slot);
        if (tls == Tls::IstioMutual)
            return mode != Mode::Disable;
        if (tls == Tls::Disable)
            return mode != Mode::Strict;
        return false; // SIMPLE: app-level TLS that a sidecar server does not expect
    }

    // The client setting that breaks the service, or Unset if none would (clearly).
    Tls conflicting_tls(const ServicePlan& s) const {
        if (s.pods == 0 || namespaces_[s.ns].ambient)
            return Tls::Unset; // captured pods take HBONE from sidecars whatever the DR says
        switch (sidecars(s)) {
        case Sidecars::None:
            return Tls::IstioMutual;
        case Sidecars::Mixed:
            return Tls::Unset;
        case Sidecars::All:
            break;
        }
        for (std::size_t i = 0; i < s.port_count; ++i) {
            if (effective_mode(s, i) == Mode::Strict)
                return Tls::Disable;
        }
        for (std::size_t i = 0; i < s.port_count; ++i) {
            if (effective_mode(s, i) == Mode::Disable)
                return Tls::IstioMutual;
        }
        return Tls::Unset;
    }

    void plan_destination_rules() {
        const auto total = static_cast<std::size_t>(shape_.destination_rules);
        dest_rules_.reserve(total);
        std::size_t left = total;
        const auto take = [&left](std::size_t wanted) {
            const std::size_t n = std::min(wanted, left);
            left -= n;
            return n;
        };

        std::vector<std::uint32_t> order(services_.size());
        for (std::uint32_t s = 0; s < order.size(); ++s)
            order[s] = s;
        shuffle(rng_, order);

        // Planted conflicts first, on services where one can be constructed.
        const std::size_t conflicts =
            take(total >= 20 ? std::max<std::size_t>(1, (total + 50) / 100) : 0);
        std::vector<bool> used(services_.size(), false);
        std::size_t planted = 0;
        for (std::size_t i = 0; i < order.size() && planted < conflicts; ++i) {
            if (conflicting_tls(services_[order[i]]) == Tls::Unset)
                continue;
            used[order[i]] = true;
            dest_rules_.push_back({DestRulePlan::Kind::Host, order[i], 0, true});
            ++planted;
        }
        left += conflicts - planted;

        for (std::size_t g = take(total >= 200 ? 2 : 0), i = 0; i < g; ++i)
            dest_rules_.push_back(
                {DestRulePlan::Kind::Global, static_cast<std::uint32_t>(i), 0, false});

        std::vector<std::uint32_t> ns_order(namespaces_.size());
        for (std::uint32_t k = 0; k < ns_order.size(); ++k)
            ns_order[k] = k;
        shuffle(rng_, ns_order);
        const std::size_t wildcards = take(std::min(ns_order.size(), (total * 6 + 50) / 100));
        for (std::size_t i = 0; i < wildcards; ++i)
            dest_rules_.push_back({DestRulePlan::Kind::Wildcard, ns_order[i], 0, false});

        const std::size_t selectors = take((total * 2 + 50) / 100);
        const std::size_t hosts = take(left);
        std::size_t next = 0;
        std::uint32_t round = 0;
        for (std::size_t i = 0; i < selectors + hosts && !order.empty(); ++i) {
            for (;;) {
                if (next == order.size()) {
                    next = 0;
                    ++round;
                }
                const std::uint32_t s = order[next++];
                if (round == 0 && used[s])
                    continue;
                const auto kind =
                    i < selectors ? DestRulePlan::Kind::Selector : DestRulePlan::Kind::Host;
                dest_rules_.push_back({kind, s, round, false});
                break;
            }
        }
        shuffle(rng_, dest_rules_);
    }

    // ---- naming -----------------------------------------------------------------------------

    std::string ns_name(std::uint32_t k) const {
        char buffer[24];
        std::snprintf(buffer, sizeof buffer, "ns-%04u", k);
        return buffer;
    }

    std::string service_name(const ServicePlan& s) const {
        char buffer[24];
        std::snprintf(buffer, sizeof buffer, "-%02u", s.local);
        return std::string(words[s.word]) + buffer;
    }

    std::string fqdn(const ServicePlan& s) const {
        return service_name(s) + '.' + ns_name(s.ns) + ".svc.cluster.local";
    }

    // ---- common object parts ----------------------------------------------------------------

    std::string next_timestamp() {
        clock_ += uniform_int(rng_, 1, 20);
        return rfc3339(clock_);
    }

    json object(std::string_view api_version, std::string_view kind, const std::string& name,
                const std::string* ns) {
        json meta = json::object();
        meta["name"] = name;
        if (ns != nullptr)
            meta["namespace"] = *ns;
        meta["uid"] = random_uuid(rng_);
        meta["resourceVersion"] = std::to_string(++resource_version_);
        meta["creationTimestamp"] = next_timestamp();
        json out = json::object();
        out["apiVersion"] = api_version;
        out["kind"] = kind;
        out["metadata"] = std::move(meta);
        return out;
    }

    void emit(json&& item) { emit_(std::move(item)); }

    // ---- namespaces and mesh config ---------------------------------------------------------

    void emit_istio_system() {
        json ns = object("v1", "Namespace", istio_system_, nullptr);
        ns["metadata"]["labels"] = {{"kubernetes.io/metadata.name", istio_system_},
                                    {"topology.istio.io/network", "network1"}};
        ns["spec"] = {{"finalizers", json::array({"kubernetes"})}};
        ns["status"] = {{"phase", "Active"}};
        emit(std::move(ns));
    }

    void emit_mesh_config() {
        json cm = object("v1", "ConfigMap", "istio", &istio_system_);
        cm["metadata"]["labels"] = {{"app.kubernetes.io/managed-by", "Helm"},
                                    {"install.operator.istio.io/owning-resource", "unknown"},
                                    {"istio.io/rev", "default"},
                                    {"operator.istio.io/component", "Pilot"},
                                    {"release", "istio"}};
        cm["metadata"]["annotations"] = {{"meta.helm.sh/release-name", "istiod"},
                                         {"meta.helm.sh/release-namespace", istio_system_}};
        cm["data"] = {{"mesh", "accessLogFile: /dev/stdout\n"
                               "defaultConfig:\n"
                               "  discoveryAddress: istiod.istio-system.svc:15012\n"
                               "  proxyMetadata: {}\n"
                               "enableAutoMtls: true\n"
                               "enablePrometheusMerge: true\n"
                               "rootNamespace: istio-system\n"
                               "trustDomain: cluster.local\n"},
                      {"meshNetworks", "networks: {}"}};
        emit(std::move(cm));
    }

    void emit_namespace(std::uint32_t k) {
        const std::string name = ns_name(k);
        json ns = object("v1", "Namespace", name, nullptr);
        json labels = {{"kubernetes.io/metadata.name", name}};
        switch (namespaces_[k].injection) {
        case Injection::Enabled:
            labels["istio-injection"] = "enabled";
            break;
        case Injection::Revision:
            labels["istio.io/rev"] = "canary";
            break;
        case Injection::None:
            if (namespaces_[k].ambient) {
                labels["istio.io/dataplane-mode"] = "ambient";
                if (k % 4 == 0)
                    labels["istio.io/use-waypoint"] = "waypoint";
            } else if (chance(rng_, 0.2)) {
                labels["istio-injection"] = "disabled";
            }
            break;
        }
        if (chance(rng_, 0.3))
            labels["team"] = std::string(words[uniform_index(rng_, words.size())]);
        ns["metadata"]["labels"] = std::move(labels);
        ns["spec"] = {{"finalizers", json::array({"kubernetes"})}};
        ns["status"] = {{"phase", "Active"}};
        emit(std::move(ns));
    }

    // ---- services and external hosts --------------------------------------------------------

    void emit_service(std::uint32_t index) {
        const ServicePlan& s = services_[index];
        const std::string name = service_name(s);
        const std::string ns = ns_name(s.ns);
        json svc = object("v1", "Service", name, &ns);
        svc["metadata"]["labels"] = {{"app", name}, {"app.kubernetes.io/name", name}};
        if (chance(rng_, 0.4)) {
            svc["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "Helm";
            svc["metadata"]["annotations"] = {{"meta.helm.sh/release-name", name},
                                              {"meta.helm.sh/release-namespace", ns}};
        }
        json ports = json::array();
        for (std::size_t i = 0; i < s.port_count; ++i) {
            const PortKind& kind = port_kinds[s.port_kind[i]];
            json port = {{"name", kind.name}, {"port", kind.port}, {"protocol", "TCP"}};
            if ((s.named_target >> i) & 1U) {
                port["targetPort"] = kind.name;
            } else {
                port["targetPort"] = kind.target;
            }
            ports.push_back(std::move(port));
        }
        json spec = {{"ports", std::move(ports)},           {"type", "ClusterIP"},
                     {"sessionAffinity", "None"},           {"internalTrafficPolicy", "Cluster"},
                     {"ipFamilies", json::array({"IPv4"})}, {"ipFamilyPolicy", "SingleStack"}};
        // 10.96.0.0/12, the default service CIDR; .1 is the kubernetes API service.
        const std::string ip = s.headless ? "None" : ipv4((10U << 24) + (96U << 16) + 10U + index);
        spec["clusterIP"] = ip;
        spec["clusterIPs"] = json::array({ip});
        if (s.has_selector)
            spec["selector"] = {{"app", name}};
        svc["spec"] = std::move(spec);
        svc["status"] = {{"loadBalancer", json::object()}};
        emit(std::move(svc));
    }

    void emit_service_entries() {
        if (namespaces_.empty())
            return;
        const std::size_t count = std::clamp<std::size_t>(namespaces_.size() / 25, 1, 48);
        for (std::size_t i = 0; i < count; ++i) {
            const std::string ns =
                chance(rng_, 0.5)
                    ? istio_system_
                    : ns_name(static_cast<std::uint32_t>(uniform_index(rng_, namespaces_.size())));
            const std::string host = "api-" + std::to_string(i) + ".example.com";
            json se =
                object("networking.istio.io/v1", "ServiceEntry", "api-" + std::to_string(i), &ns);
            json spec = {
                {"hosts", json::array({host})},
                {"location", "MESH_EXTERNAL"},
                {"ports",
                 json::array({json{{"number", 443}, {"name", "https"}, {"protocol", "HTTPS"}}})},
                {"resolution", "DNS"}};
            if (chance(rng_, 0.4))
                spec["exportTo"] = json::array({chance(rng_, 0.5) ? "." : "*"});
            se["spec"] = std::move(spec);
            emit(std::move(se));
        }
    }

    // ---- pods -------------------------------------------------------------------------------

    void emit_pods(std::uint32_t index) {
        const ServicePlan& s = services_[index];
        if (s.pods == 0)
            return;
        const std::string svc = service_name(s);
        if (s.stateful) {
            const std::string owner_uid = random_uuid(rng_);
            const std::string revision = svc + '-' + random_token(rng_, 10);
            for (std::uint32_t i = 0; i < s.pods; ++i) {
                const std::string name = svc + '-' + std::to_string(i);
                json labels = {{"app", svc},
                               {"version", "v1"},
                               {"controller-revision-hash", revision},
                               {"statefulset.kubernetes.io/pod-name", name},
                               {"apps.kubernetes.io/pod-index", std::to_string(i)}};
                json owner = {{"apiVersion", "apps/v1"},
                              {"kind", "StatefulSet"},
                              {"name", svc},
                              {"uid", owner_uid},
                              {"controller", true},
                              {"blockOwnerDeletion", true}};
                json pod = make_pod(s, name, std::move(labels), std::move(owner), 0, "v1");
                pod["spec"]["hostname"] = name;
                pod["spec"]["subdomain"] = svc;
                emit(std::move(pod));
            }
            return;
        }
        for (int d = 0; d < s.deployments; ++d) {
            const std::uint32_t count = deployment_pods(s, d);
            if (count == 0)
                continue;
            const std::string version = "v" + std::to_string(d + 1);
            const std::string deployment = s.deployments == 1 ? svc : svc + '-' + version;
            const std::string hash = random_token(rng_, 10);
            const std::string replica_set = deployment + '-' + hash;
            const std::string owner_uid = random_uuid(rng_);
            std::vector<std::string> suffixes;
            for (std::uint32_t i = 0; i < count; ++i) {
                std::string suffix;
                do {
                    suffix = random_token(rng_, 5);
                } while (std::find(suffixes.begin(), suffixes.end(), suffix) != suffixes.end());
                suffixes.push_back(suffix);
                json labels = {{"app", svc}, {"version", version}, {"pod-template-hash", hash}};
                json owner = {{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"},
                              {"name", replica_set},     {"uid", owner_uid},
                              {"controller", true},      {"blockOwnerDeletion", true}};
                json pod = make_pod(s, replica_set + '-' + suffix, std::move(labels),
                                    std::move(owner), d, version);
                pod["metadata"]["generateName"] = replica_set + '-';
                emit(std::move(pod));
            }
        }
    }

    json make_pod(const ServicePlan& s, const std::string& name, json labels, json owner,
                  int deployment, const std::string& version) {
        const std::string svc = service_name(s);
        const std::string ns = ns_name(s.ns);
        const Injection injection = namespaces_[s.ns].injection;
        const bool sidecar = ((s.sidecar >> deployment) & 1U) != 0;
        const std::string revision = injection == Injection::Revision ? "canary" : "default";
        const std::string proxy_image = injection == Injection::Revision
                                            ? "docker.io/istio/proxyv2:1.25.1"
                                            : "docker.io/istio/proxyv2:1.24.3";
        const std::string app_container(words[s.word]);

        json pod = object("v1", "Pod", name, &ns);
        json annotations = json::object();
        if (sidecar) {
            labels["security.istio.io/tlsMode"] = "istio";
            labels["service.istio.io/canonical-name"] = svc;
            labels["service.istio.io/canonical-revision"] = version;
            if (injection == Injection::None)
                labels["sidecar.istio.io/inject"] = "true";
            if (injection == Injection::Revision)
                labels["istio.io/rev"] = "canary";
            // With ambient in the mesh, the ambient profile's injector marks sidecars that take
            // HBONE; one deployment in ten was injected before (an older revision) and does not.
            if (shape_.ambient_fraction > 0 &&
                (s.local * 2 + static_cast<unsigned>(deployment)) % 10 != 0)
                labels["networking.istio.io/tunnel"] = "http";
            annotations["sidecar.istio.io/status"] =
                R"({"initContainers":["istio-init"],"containers":["istio-proxy"],)"
                R"("volumes":["workload-socket","credential-socket","workload-certs","istio-envoy",)"
                R"("istio-data","istio-podinfo","istio-token","istiod-ca-cert"],)"
                R"("imagePullSecrets":null,"revision":")" +
                revision + R"("})";
            annotations["istio.io/rev"] = revision;
            annotations["kubectl.kubernetes.io/default-container"] = app_container;
            annotations["kubectl.kubernetes.io/default-logs-container"] = app_container;
            annotations["prometheus.io/path"] = "/stats/prometheus";
            annotations["prometheus.io/port"] = "15020";
            annotations["prometheus.io/scrape"] = "true";
        } else if (injection != Injection::None) {
            labels["sidecar.istio.io/inject"] = "false";
            annotations["sidecar.istio.io/inject"] = "false";
        } else if (namespaces_[s.ns].ambient) {
            // The istio-cni agent's mark on captured pods; ~2% opt out.
            if (chance(rng_, 0.02))
                labels["istio.io/dataplane-mode"] = "none";
            else
                annotations["ambient.istio.io/redirection"] = "enabled";
        }
        pod["metadata"]["labels"] = std::move(labels);
        if (!annotations.empty())
            pod["metadata"]["annotations"] = std::move(annotations);
        pod["metadata"]["ownerReferences"] = json::array({std::move(owner)});

        json container_ports = json::array();
        for (std::size_t i = 0; i < s.port_count; ++i) {
            const PortKind& kind = port_kinds[s.port_kind[i]];
            json port = {{"containerPort", kind.target}, {"protocol", "TCP"}};
            if ((s.named_container >> i) & 1U)
                port["name"] = kind.name;
            container_ports.push_back(std::move(port));
        }
        // The image tag derives from the service so that all replicas run the same build.
        const std::string image = "registry.example.com/shop/" + app_container + ":1." +
                                  std::to_string(s.local % 7) + '.' + std::to_string(s.word % 13);
        json containers = json::array();
        containers.push_back(
            {{"name", app_container},
             {"image", image},
             {"imagePullPolicy", "IfNotPresent"},
             {"ports", std::move(container_ports)},
             {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}}}});
        json spec = json::object();
        if (sidecar) {
            containers.push_back(
                {{"name", "istio-proxy"},
                 {"image", proxy_image},
                 {"args",
                  json::array({"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                               "--proxyLogLevel=warning", "--log_output_level=default:info"})},
                 {"ports", json::array({json{{"containerPort", 15090},
                                             {"name", "http-envoy-prom"},
                                             {"protocol", "TCP"}}})},
                 {"resources",
                  {{"limits", {{"cpu", "2"}, {"memory", "1Gi"}}},
                   {"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}}}});
            spec["initContainers"] = json::array({json{
                {"name", "istio-init"},
                {"image", proxy_image},
                {"args", json::array({"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337",
                                      "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d",
                                      "15090,15021,15020", "--log_output_level=default:info"})}}});
        }
        spec["containers"] = std::move(containers);
        const std::uint32_t nodes =
            std::max<std::uint32_t>(3, static_cast<std::uint32_t>(shape_.pods) / 30);
        const auto node = static_cast<std::uint32_t>(uniform_index(rng_, nodes));
        char node_name[24];
        std::snprintf(node_name, sizeof node_name, "node-%04u", node);
        spec["nodeName"] = node_name;
        spec["serviceAccountName"] = svc;
        spec["restartPolicy"] = "Always";
        spec["dnsPolicy"] = "ClusterFirst";
        spec["schedulerName"] = "default-scheduler";
        spec["terminationGracePeriodSeconds"] = 30;
        pod["spec"] = std::move(spec);

        // 10.128.0.0/9 for pods, 192.168.0.0/16 for nodes.
        const std::string pod_ip = ipv4((10U << 24) + (128U << 16) + 2U + pod_counter_++);
        pod["status"] = {{"phase", "Running"},
                         {"podIP", pod_ip},
                         {"podIPs", json::array({json{{"ip", pod_ip}}})},
                         {"hostIP", ipv4((192U << 24) + (168U << 16) + 10U + node)},
                         {"qosClass", "Burstable"},
                         {"startTime", pod["metadata"]["creationTimestamp"]}};
        return pod;
    }

    // ---- PeerAuthentications ----------------------------------------------------------------

    void emit_peer_authentication(const PeerAuthPlan& plan) {
        json spec = json::object();
        std::string name = "default";
        std::string ns = istio_system_;
        switch (plan.kind) {
        case PeerAuthPlan::Kind::Mesh:
            break;
        case PeerAuthPlan::Kind::Namespace:
            ns = ns_name(plan.target);
            if (plan.duplicate)
                name = "mtls-policy";
            break;
        case PeerAuthPlan::Kind::Workload: {
            const ServicePlan& s = services_[plan.target];
            ns = ns_name(s.ns);
            name = service_name(s);
            json match = {{"app", name}};
            if (plan.round > 0) {
                // Further policies narrow to a version so each one still has its own name.
                match["version"] = "v" + std::to_string(plan.round + 1);
                name += "-v" + std::to_string(plan.round + 1);
            }
            spec["selector"] = {{"matchLabels", std::move(match)}};
            json ports = json::object();
            for (std::size_t i = 0; i < s.port_count; ++i) {
                if (s.port_mode[i] == Mode::Unset)
                    continue;
                ports[std::to_string(port_kinds[s.port_kind[i]].target)] = {
                    {"mode", mode_name(s.port_mode[i])}};
            }
            if (!ports.empty())
                spec["portLevelMtls"] = std::move(ports);
            break;
        }
        }
        if (!plan.omit_mtls)
            spec["mtls"] = {{"mode", mode_name(plan.mode)}};
        json pa = object("security.istio.io/v1", "PeerAuthentication", name, &ns);
        if (chance(rng_, 0.3))
            pa["metadata"]["labels"] = {{"app.kubernetes.io/managed-by", "Helm"}};
        pa["spec"] = std::move(spec);
        emit(std::move(pa));
    }

    // ---- DestinationRules -------------------------------------------------------------------

    static json tls_block(Tls tls) { return {{"mode", tls_name(tls)}}; }

    void add_pool_settings(json& policy) {
        switch (pick_weighted(rng_, {40, 35, 25})) {
        case 0:
            policy["connectionPool"] = {
                {"tcp", {{"maxConnections", 100 * uniform_int(rng_, 1, 10)}}},
                {"http", {{"http1MaxPendingRequests", 1024}, {"maxRequestsPerConnection", 10}}}};
            break;
        case 1:
            policy["outlierDetection"] = {{"consecutive5xxErrors", uniform_int(rng_, 3, 7)},
                                          {"interval", "30s"},
                                          {"baseEjectionTime", "30s"},
                                          {"maxEjectionPercent", 50}};
            break;
        default: {
            constexpr std::array<std::string_view, 3> simple{"ROUND_ROBIN", "LEAST_REQUEST",
                                                             "RANDOM"};
            policy["loadBalancer"] = {{"simple", simple[uniform_index(rng_, simple.size())]}};
            break;
        }
        }
    }

    json export_to(const std::string& dr_ns) {
        switch (pick_weighted(rng_, {70, 15, 10, 5})) {
        case 0:
            return nullptr;
        case 1:
            return json::array({"."});
        case 2:
            return json::array({"*"});
        default:
            break;
        }
        const std::string other = namespaces_.size() > 7 ? ns_name(7) : ns_name(0);
        return other == dr_ns ? json::array({"."}) : json::array({".", other});
    }

    // A client setting that works with the service, chosen like operators do.
    Tls healthy_tls(const ServicePlan& s) {
        switch (sidecars(s)) {
        case Sidecars::Mixed:
            return Tls::Unset;
        case Sidecars::None: {
            constexpr std::array choices{Tls::Unset, Tls::Disable, Tls::Simple};
            return choices[pick_weighted(rng_, {80, 13, 7})];
        }
        case Sidecars::All:
            break;
        }
        constexpr std::array choices{Tls::IstioMutual, Tls::Unset, Tls::Disable};
        Tls tls = choices[pick_weighted(rng_, {62, 36, 2})];
        bool any_strict = false;
        bool all_disabled = true;
        for (std::size_t i = 0; i < s.port_count; ++i) {
            any_strict = any_strict || effective_mode(s, i) == Mode::Strict;
            all_disabled = all_disabled && effective_mode(s, i) == Mode::Disable;
        }
        if (tls == Tls::Disable && any_strict)
            tls = Tls::IstioMutual;
        if (tls == Tls::IstioMutual && all_disabled)
            tls = Tls::Disable;
        return tls;
    }

    // trafficPolicy for a rule on one service; port-level exceptions keep a healthy rule
    // healthy where a port's server mode differs, a planted conflict gets none.
    json service_policy(const ServicePlan& s, Tls tls, bool conflict) {
        json policy = json::object();
        if (tls != Tls::Unset)
            policy["tls"] = tls_block(tls);
        json port_level = json::array();
        std::vector<std::size_t> covered;
        if (!conflict) {
            for (std::size_t i = 0; i < s.port_count; ++i) {
                if (compatible(s, i, tls))
                    continue;
                const Tls fix = compatible(s, i, Tls::Disable) ? Tls::Disable : Tls::IstioMutual;
                port_level.push_back({{"port", {{"number", port_kinds[s.port_kind[i]].port}}},
                                      {"tls", tls_block(fix)}});
                covered.push_back(i);
            }
        }
        // Random extra port settings, never on a planted conflict (they could mask it).
        if (!conflict && chance(rng_, 0.1)) {
            const std::size_t i = uniform_index(rng_, s.port_count);
            if (std::find(covered.begin(), covered.end(), i) == covered.end()) {
                json entry = {{"port", {{"number", port_kinds[s.port_kind[i]].port}}}};
                const Tls port_tls =
                    sidecars(s) == Sidecars::All && effective_mode(s, i) != Mode::Disable
                        ? Tls::IstioMutual
                        : Tls::Disable;
                if (sidecars(s) != Sidecars::Mixed && compatible(s, i, port_tls) &&
                    chance(rng_, 0.5)) {
                    entry["tls"] = tls_block(port_tls);
                } else {
                    entry["connectionPool"] = {{"tcp", {{"maxConnections", 50}}}};
                }
                port_level.push_back(std::move(entry));
            }
        }
        if (!port_level.empty())
            policy["portLevelSettings"] = std::move(port_level);
        if (chance(rng_, 0.01)) {
            policy["loadBalancer"] = {{"simple", "PASSTHROUGH"}};
        } else if (tls == Tls::Unset || chance(rng_, 0.4)) {
            add_pool_settings(policy);
        }
        return policy;
    }

    json subsets(const ServicePlan& s, const json& policy) {
        json out = json::array();
        for (int d = 0; d < s.deployments; ++d) {
            const std::string version = "v" + std::to_string(d + 1);
            json subset = {{"name", version}, {"labels", {{"version", version}}}};
            if (chance(rng_, 0.25)) {
                // A subset policy replaces the top-level one, so it repeats the TLS settings.
                json sub_policy = {{"loadBalancer", {{"simple", "LEAST_REQUEST"}}}};
                if (policy.contains("tls"))
                    sub_policy["tls"] = policy["tls"];
                if (policy.contains("portLevelSettings"))
                    sub_policy["portLevelSettings"] = policy["portLevelSettings"];
                subset["trafficPolicy"] = std::move(sub_policy);
            }
            out.push_back(std::move(subset));
        }
        return out;
    }

    std::string_view dest_rule_api_version() {
        constexpr std::array<std::string_view, 3> versions{"networking.istio.io/v1",
                                                           "networking.istio.io/v1beta1",
                                                           "networking.istio.io/v1alpha3"};
        return versions[pick_weighted(rng_, {80, 15, 5})];
    }

    // True when ISTIO_MUTUAL for every host of the namespace breaks nothing.
    bool namespace_mtls_safe(std::uint32_t k) const {
        const NamespacePlan& ns = namespaces_[k];
        if (ns.injection == Injection::None)
            return false;
        for (std::uint32_t i = 0; i < ns.service_count; ++i) {
            const ServicePlan& s = services_[ns.first_service + i];
            for (std::size_t p = 0; p < s.port_count; ++p) {
                if (!compatible(s, p, Tls::IstioMutual))
                    return false;
            }
        }
        return true;
    }

    void emit_destination_rule(const DestRulePlan& plan) {
        const std::string_view api_version = dest_rule_api_version();
        std::string name;
        std::string ns;
        json spec = json::object();
        bool conflict = false;
        switch (plan.kind) {
        case DestRulePlan::Kind::Global: {
            ns = istio_system_;
            name = plan.target == 0 ? "default" : "local-defaults";
            spec["host"] = plan.target == 0 ? "*.svc.cluster.local" : "*.local";
            json policy = json::object();
            add_pool_settings(policy);
            spec["trafficPolicy"] = std::move(policy);
            break;
        }
        case DestRulePlan::Kind::Wildcard: {
            ns = ns_name(plan.target);
            name = "namespace-defaults";
            spec["host"] = "*." + ns + ".svc.cluster.local";
            json policy = json::object();
            if (namespace_mtls_safe(plan.target) && chance(rng_, 0.5)) {
                policy["tls"] = tls_block(Tls::IstioMutual);
            } else {
                add_pool_settings(policy);
            }
            spec["trafficPolicy"] = std::move(policy);
            if (json e = export_to(ns); !e.is_null())
                spec["exportTo"] = std::move(e);
            break;
        }
        case DestRulePlan::Kind::Host:
        case DestRulePlan::Kind::Selector: {
            const ServicePlan& s = services_[plan.target];
            const std::string svc = service_name(s);
            const std::string svc_ns = ns_name(s.ns);
            conflict = plan.conflict;
            const Tls tls = conflict ? conflicting_tls(s) : healthy_tls(s);
            json policy = service_policy(s, tls, conflict);
            if (plan.kind == DestRulePlan::Kind::Selector) {
                // A rule only some clients use: placed with one client workload.
                const ServicePlan& client = services_[uniform_index(rng_, services_.size())];
                ns = ns_name(client.ns);
                name = svc + '-' + svc_ns + "-from-" + service_name(client);
                spec["host"] = fqdn(s);
                spec["workloadSelector"] = {{"matchLabels", {{"app", service_name(client)}}}};
                spec["exportTo"] = json::array({"."});
            } else {
                const std::size_t form =
                    pick_weighted(rng_, {35, 50, namespaces_.size() > 1 ? 15 : 0});
                ns = svc_ns;
                name = svc;
                spec["host"] = form == 0 ? svc : fqdn(s);
                if (form == 2) {
                    // Client-side override in another namespace, usually kept private to it.
                    std::uint32_t other = s.ns;
                    while (other == s.ns)
                        other = static_cast<std::uint32_t>(uniform_index(rng_, namespaces_.size()));
                    ns = ns_name(other);
                    name = svc + '-' + svc_ns;
                    if (chance(rng_, 0.7))
                        spec["exportTo"] = json::array({"."});
                } else if (json e = export_to(ns); !e.is_null()) {
                    spec["exportTo"] = std::move(e);
                }
            }
            if (plan.round > 0)
                name += "-r" + std::to_string(plan.round);
            if (s.has_selector && chance(rng_, 0.2)) {
                spec["subsets"] = subsets(s, policy);
                // Routed to when the rule is the service's own: its clients see these subsets.
                if (plan.kind == DestRulePlan::Kind::Host && plan.round == 0 && ns == svc_ns)
                    split_routes_.push_back({ns, plan.target, s.deployments});
            }
            spec["trafficPolicy"] = std::move(policy);
            break;
        }
        }
        json dr = object(api_version, "DestinationRule", name, &ns);
        if (conflict)
            dr["metadata"]["annotations"] = {{planted_conflict_annotation, "conflict"}};
        dr["spec"] = std::move(spec);
        emit(std::move(dr));
    }

    // ---- Sidecars and VirtualServices (after everything else) ---------------------------------

    // A namespace-wide Sidecar in a share of the injected namespaces: its own namespace,
    // istio-system and up to three namespaces it calls, as egress lockdowns are written. Its
    // clients no longer see the other namespaces' services (ambient.md §14).
    void emit_sidecars() {
        for (std::uint32_t k = 0; k < namespaces_.size(); ++k) {
            if (namespaces_[k].injection == Injection::None ||
                !chance(rng_, shape_.sidecar_resource_fraction))
                continue;
            const std::string ns = ns_name(k);
            json hosts = json::array({"./*", istio_system_ + "/*"});
            const int callees = uniform_int(rng_, 0, 3);
            for (int i = 0; i < callees && namespaces_.size() > 1; ++i) {
                const auto other =
                    static_cast<std::uint32_t>(uniform_index(rng_, namespaces_.size()));
                if (other != k)
                    hosts.push_back(ns_name(other) + "/*");
            }
            json sidecar = object("networking.istio.io/v1", "Sidecar", "default", &ns);
            sidecar["spec"] = {{"egress", json::array({{{"hosts", hosts}}})}};
            emit(std::move(sidecar));
            const NamespacePlan& plan = namespaces_[k];
            if (plan.service_count == 0 || !chance(rng_, 0.1))
                continue;
            // One workload that may also call everything in the namespace's first callee.
            const ServicePlan& s =
                services_[plan.first_service + uniform_index(rng_, plan.service_count)];
            json wider =
                object("networking.istio.io/v1", "Sidecar", service_name(s) + "-egress", &ns);
            json wider_hosts = hosts;
            wider_hosts.push_back("*/*.svc.cluster.local");
            wider["spec"] = {{"workloadSelector", {{"labels", {{"app", service_name(s)}}}}},
                             {"egress", json::array({{{"hosts", std::move(wider_hosts)}}})}};
            emit(std::move(wider));
        }
    }

    // VirtualServices: a weighted split for every DestinationRule with subsets (in the rule's
    // namespace, so that its clients see the rule that defines them), and timeouts and retries
    // on a share of the services.
    void emit_virtual_services() {
        for (const SplitRoute& split : split_routes_) {
            const ServicePlan& s = services_[split.service];
            json vs = object("networking.istio.io/v1", "VirtualService", service_name(s) + "-split",
                             &split.ns);
            json route = json::array();
            const int v1_weight = split.subsets > 1 ? 90 : 100;
            route.push_back(
                {{"destination", {{"host", fqdn(s)}, {"subset", "v1"}}}, {"weight", v1_weight}});
            if (split.subsets > 1)
                route.push_back({{"destination", {{"host", fqdn(s)}, {"subset", "v2"}}},
                                 {"weight", 100 - v1_weight}});
            vs["spec"] = {{"hosts", json::array({fqdn(s)})},
                          {"exportTo", json::array({"."})},
                          {"http", json::array({{{"route", std::move(route)}}})}};
            emit(std::move(vs));
        }
        for (const ServicePlan& s : services_) {
            if (!chance(rng_, shape_.virtual_service_fraction))
                continue;
            const std::string ns = ns_name(s.ns);
            json vs = object("networking.istio.io/v1", "VirtualService", service_name(s), &ns);
            json http = {
                {"timeout", std::to_string(uniform_int(rng_, 1, 30)) + "s"},
                {"retries", {{"attempts", uniform_int(rng_, 1, 3)}, {"perTryTimeout", "2s"}}},
                {"route", json::array({{{"destination", {{"host", service_name(s)}}}}})}};
            vs["spec"] = {{"hosts", json::array({service_name(s)})},
                          {"http", json::array({std::move(http)})}};
            emit(std::move(vs));
        }
    }

    struct SplitRoute {
        std::string ns;            // where the DestinationRule with the subsets lives
        std::uint32_t service = 0; // index into services_
        int subsets = 1;
    };

    const MeshShape& shape_;
    const Emit& emit_;
    Rng rng_;
    std::int64_t clock_;
    std::uint64_t resource_version_ = 1000;
    std::uint32_t pod_counter_ = 0;
    const std::string istio_system_ = "istio-system";
    std::vector<NamespacePlan> namespaces_; // application namespaces, ns-0000 onwards
    std::vector<ServicePlan> services_;
    std::vector<PeerAuthPlan> peer_auths_;
    std::vector<DestRulePlan> dest_rules_;
    std::vector<SplitRoute> split_routes_; // DestinationRules emitted with subsets
};

void validate(const MeshShape& shape) {
    const auto fail = [](const char* why) { throw std::invalid_argument(why); };
    if (shape.namespaces < 1)
        fail("namespaces must be at least 1 (istio-system)");
    if (shape.services < 0 || shape.pods < 0 || shape.destination_rules < 0 ||
        shape.peer_authentications < 0)
        fail("counts must not be negative");
    if (!(shape.sidecar_fraction >= 0.0 && shape.sidecar_fraction <= 1.0))
        fail("sidecar_fraction must be within [0, 1]");
    if (!(shape.ambient_fraction >= 0.0 && shape.ambient_fraction <= 1.0 - shape.sidecar_fraction))
        fail("ambient_fraction must be within [0, 1 - sidecar_fraction]");
    if (!(shape.sidecar_resource_fraction >= 0.0 && shape.sidecar_resource_fraction <= 1.0))
        fail("sidecar_resource_fraction must be within [0, 1]");
    if (!(shape.virtual_service_fraction >= 0.0 && shape.virtual_service_fraction <= 1.0))
        fail("virtual_service_fraction must be within [0, 1]");
    if (shape.services > 0 && shape.namespaces < 2)
        fail("services need at least one namespace besides istio-system (namespaces >= 2)");
    if (shape.services == 0 &&
        (shape.pods > 0 || shape.destination_rules > 0 || shape.peer_authentications > 1))
        fail("pods, destination rules and non-mesh-wide peer authentications need services");
    if (shape.namespaces > 10'000'000 || shape.services > 100'000'000 || shape.pods > 1'000'000'000)
        fail("shape too large");
}

} // namespace

void generate_synthetic_mesh(const MeshShape& shape,
                             const std::function<void(nlohmann::json&&)>& emit) {
    validate(shape);
    Generator(shape, emit).run();
}

} // namespace mtlsguard::bench
