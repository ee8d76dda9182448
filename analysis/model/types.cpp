// Value types shared by every stage of the engine: modes, labels, object references.
#include "analysis/model/types.hpp"

namespace mtlsguard::model {

std::string_view to_string(MtlsMode mode) noexcept {
    switch (mode) {
    case MtlsMode::Unset:
        return "UNSET";
    case MtlsMode::Disable:
        return "DISABLE";
    case MtlsMode::Permissive:
        return "PERMISSIVE";
    case MtlsMode::Strict:
        return "STRICT";
    }
    return "UNSET";
}

std::string_view to_string(TlsMode mode) noexcept {
    switch (mode) {
    case TlsMode::Disable:
        return "DISABLE";
    case TlsMode::Simple:
        return "SIMPLE";
    case TlsMode::Mutual:
        return "MUTUAL";
    case TlsMode::IstioMutual:
        return "ISTIO_MUTUAL";
    }
    return "DISABLE";
}

std::string_view to_string(Dataplane dataplane) noexcept {
    switch (dataplane) {
    case Dataplane::None:
        return "none";
    case Dataplane::Sidecar:
        return "sidecar";
    case Dataplane::Ambient:
        return "ambient";
    }
    return "none";
}

std::string to_string(IstioVersion version) {
    if (version == IstioVersion::current())
        return "current";
    std::string out = "1." + std::to_string(version.minor);
    if (version.patch != IstioVersion::newest_patch)
        out += "." + std::to_string(version.patch);
    return out;
}

std::optional<MtlsMode> parse_mtls_mode(std::string_view text) noexcept {
    if (text == "UNSET")
        return MtlsMode::Unset;
    if (text == "DISABLE")
        return MtlsMode::Disable;
    if (text == "PERMISSIVE")
        return MtlsMode::Permissive;
    if (text == "STRICT")
        return MtlsMode::Strict;
    return std::nullopt;
}

std::optional<TlsMode> parse_tls_mode(std::string_view text) noexcept {
    if (text == "DISABLE")
        return TlsMode::Disable;
    if (text == "SIMPLE")
        return TlsMode::Simple;
    if (text == "MUTUAL")
        return TlsMode::Mutual;
    if (text == "ISTIO_MUTUAL")
        return TlsMode::IstioMutual;
    return std::nullopt;
}

namespace {

// A decimal number without sign or leading zeros, at most `max`; nullopt otherwise.
std::optional<unsigned> small_number(std::string_view text, unsigned max) noexcept {
    if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0'))
        return std::nullopt;
    unsigned n = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > max)
        return std::nullopt;
    return n;
}

} // namespace

std::optional<std::uint32_t> parse_ipv4(std::string_view text) noexcept {
    std::uint32_t address = 0;
    for (int octet = 0; octet < 4; ++octet) {
        if (octet > 0) {
            if (text.empty() || text.front() != '.')
                return std::nullopt;
            text.remove_prefix(1);
        }
        std::size_t digits = 0;
        std::uint32_t value = 0;
        while (digits < text.size() && digits < 4 && text[digits] >= '0' && text[digits] <= '9')
            value = value * 10 + static_cast<std::uint32_t>(text[digits++] - '0');
        if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && text[0] == '0'))
            return std::nullopt;
        text.remove_prefix(digits);
        address = (address << 8) | value;
    }
    return text.empty() ? std::optional<std::uint32_t>(address) : std::nullopt;
}

std::optional<IstioVersion> parse_istio_version(std::string_view text) noexcept {
    if (text == "current")
        return IstioVersion::current();
    if (!text.starts_with("1."))
        return std::nullopt;
    text.remove_prefix(2);
    const auto dot = text.find('.');
    const auto minor = small_number(text.substr(0, dot), IstioVersion::newest_minor);
    if (!minor || *minor < IstioVersion::oldest_minor)
        return std::nullopt;
    IstioVersion version;
    version.minor = static_cast<std::uint8_t>(*minor);
    if (dot != std::string_view::npos) {
        // 255 is reserved for "the newest patch".
        const auto patch = small_number(text.substr(dot + 1), IstioVersion::newest_patch - 1);
        if (!patch)
            return std::nullopt;
        version.patch = static_cast<std::uint8_t>(*patch);
    }
    return version;
}

Labels::Labels(Entries entries) {
    std::sort(entries.begin(), entries.end());
    // Keys are unique in Kubernetes; keep the first value if a caller passed duplicates.
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const auto& a, const auto& b) { return a.first == b.first; }),
                  entries.end());
    if (!entries.empty())
        entries_ = std::make_shared<Entries>(std::move(entries));
}

const Labels::Entries& Labels::none() noexcept {
    static const Entries empty;
    return empty;
}

bool Labels::subset_of(const Labels& other) const noexcept {
    // Both sides are sorted by key: one merge pass.
    const Entries& theirs = other.entries();
    auto it = theirs.begin();
    for (const auto& [key, value] : entries()) {
        while (it != theirs.end() && it->first < key)
            ++it;
        if (it == theirs.end() || it->first != key || it->second != value)
            return false;
    }
    return true;
}

const std::string* Labels::find(std::string_view key) const noexcept {
    const Entries& mine = entries();
    auto it =
        std::lower_bound(mine.begin(), mine.end(), key,
                         [](const auto& entry, std::string_view k) { return entry.first < k; });
    if (it == mine.end() || it->first != key)
        return nullptr;
    return &it->second;
}

void Labels::erase(std::string_view key) {
    if (!find(key))
        return;
    if (entries_.use_count() > 1)
        entries_ = std::make_shared<Entries>(*entries_); // copies may be read elsewhere
    std::erase_if(*entries_, [&](const auto& entry) { return entry.first == key; });
    if (entries_->empty())
        entries_.reset();
}

std::string display_name(const ObjectRef& ref) {
    if (ref.namespace_name.empty())
        return ref.name;
    return ref.name + "." + ref.namespace_name;
}

bool Age::older_than(const Age& other) const noexcept {
    const bool mine = !creation_timestamp.empty();
    const bool theirs = !other.creation_timestamp.empty();
    if (mine != theirs)
        return mine; // applied objects are older than unapplied ones
    if (creation_timestamp != other.creation_timestamp)
        return creation_timestamp < other.creation_timestamp;
    if (name != other.name)
        return name < other.name;
    return namespace_name < other.namespace_name;
}

} // namespace mtlsguard::model
