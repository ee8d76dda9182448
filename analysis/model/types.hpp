// Value types shared by every stage of the engine: modes, labels, object references.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtlsguard::model {

// What a server sidecar accepts (PeerAuthentication / legacy Policy).
enum class MtlsMode : std::uint8_t { Unset, Disable, Permissive, Strict };

// What a client sidecar is told to send by a DestinationRule (proto default is DISABLE).
enum class TlsMode : std::uint8_t { Disable, Simple, Mutual, IstioMutual };

// What proxies a workload's traffic (ambient.md §10): exactly one of these.
enum class Dataplane : std::uint8_t { None, Sidecar, Ambient };

// The Istio release whose rules apply: 1.minor.patch. `patch` 255 means the newest patch of that
// minor, so that the engine never assumes an old release's bug (a false denial is the worst bug).
struct IstioVersion {
    static constexpr std::uint8_t oldest_minor = 4;
    static constexpr std::uint8_t newest_minor = 29; // `current`: the newest modelled
    static constexpr std::uint8_t newest_patch = 255;

    std::uint8_t minor = newest_minor;
    std::uint8_t patch = newest_patch;

    static constexpr IstioVersion current() noexcept { return {}; }
    // The v1alpha1 authentication rules of semantics §3 (Istio 1.4 and 1.5).
    constexpr bool legacy_alpha() const noexcept { return minor <= 5; }
    // Today's pilot rules (auto mTLS, PeerAuthentication only): 1.6 and later.
    constexpr bool modern() const noexcept { return minor >= 6; }
    constexpr bool at_least(std::uint8_t mi, std::uint8_t pa = 0) const noexcept {
        return minor > mi || (minor == mi && patch >= pa);
    }
    friend constexpr bool operator==(const IstioVersion&, const IstioVersion&) = default;
    friend constexpr auto operator<=>(const IstioVersion&, const IstioVersion&) = default;
};

std::string_view to_string(MtlsMode mode) noexcept;
std::string_view to_string(TlsMode mode) noexcept;
std::string_view to_string(Dataplane dataplane) noexcept; // "none", "sidecar", "ambient"
// "1.N", "1.N.P", or "current" for IstioVersion::current().
std::string to_string(IstioVersion version);
std::optional<MtlsMode> parse_mtls_mode(std::string_view text) noexcept;
std::optional<TlsMode> parse_tls_mode(std::string_view text) noexcept;
// "1.N" (4 ≤ N ≤ 29: the newest patch of 1.N), "1.N.P", or "current"; nullopt for anything else.
std::optional<IstioVersion> parse_istio_version(std::string_view text) noexcept;
// A dotted-quad IPv4 address ("10.96.0.1"), in host order; nullopt for anything else.
std::optional<std::uint32_t> parse_ipv4(std::string_view text) noexcept;

// A sorted, duplicate-free label set; flat because workloads are many and label sets are small.
// Its entries are shared by copies, never changed once shared: an incremental snapshot copies
// every unchanged workload, and at 150,000 realistic pods copying their 10-15 labels was most of
// a pod event's rebuild.
class Labels {
  public:
    using Entries = std::vector<std::pair<std::string, std::string>>;

    Labels() = default;
    explicit Labels(Entries entries);

    // True when every entry of this set is present, with the same value, in `other`.
    bool subset_of(const Labels& other) const noexcept;
    const std::string* find(std::string_view key) const noexcept;
    bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }
    bool empty() const noexcept { return entries().empty(); }
    const Entries& entries() const noexcept { return entries_ ? *entries_ : none(); }
    void erase(std::string_view key);
    friend bool operator==(const Labels& a, const Labels& b) noexcept {
        return a.entries_ == b.entries_ || a.entries() == b.entries();
    }
    friend auto operator<=>(const Labels& a, const Labels& b) noexcept {
        return a.entries() <=> b.entries();
    }

  private:
    static const Entries& none() noexcept;

    std::shared_ptr<Entries> entries_; // null when empty; changed only while not shared
};

// Names a Kubernetes object in findings and messages.
struct ObjectRef {
    std::string api_version;
    std::string kind;
    std::string namespace_name; // empty for cluster-scoped objects
    std::string name;

    friend bool operator==(const ObjectRef&, const ObjectRef&) = default;
    friend auto operator<=>(const ObjectRef&, const ObjectRef&) = default;
};

// "name.namespace" as istioctl prints it, or just "name" for cluster-scoped objects.
std::string display_name(const ObjectRef& ref);

// Istio orders configuration oldest first: by creationTimestamp, then name, then namespace.
// An object without a timestamp (a manifest not yet applied) counts as newer than any applied one.
struct Age {
    std::string creation_timestamp; // RFC 3339 as the API server writes it ("Z" suffix)
    std::string name;
    std::string namespace_name;

    bool older_than(const Age& other) const noexcept;
    friend bool operator==(const Age&, const Age&) = default;
};

} // namespace mtlsguard::model
