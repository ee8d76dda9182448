// A snapshot's workload or Service records by id, in per-namespace blocks later snapshots share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

namespace mtlsguard::model {

// Where `element` sits in `items`, if it is one of them (nullopt for a copy elsewhere).
template <typename T>
std::optional<std::uint32_t> position_in(const std::vector<T>& items, const T& element) noexcept {
    const std::less<const T*> before; // a total order even between unrelated objects
    if (before(&element, items.data()) || !before(&element, items.data() + items.size()))
        return std::nullopt;
    return static_cast<std::uint32_t>(&element - items.data());
}

// Records of type T (each with a member `ns`, its namespace id) numbered 0..size()-1. The records
// of one namespace live in one immutable block, in the order of that namespace's id list: an
// incremental build renumbers the ids of an unchanged namespace but takes its block over as it
// is, so that its cost follows the change and not the cluster (at 150,000 pods, copying every
// record was half of a pod event's build, much of it the kernel zeroing fresh pages for copies).
template <typename T> class RecordTable {
  public:
    using Block = std::vector<T>;

    class iterator {
      public:
        using iterator_category = std::random_access_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = const T*;
        using reference = const T&;

        iterator() = default;
        explicit iterator(const T* const* at) : at_(at) {}
        reference operator*() const noexcept { return **at_; }
        pointer operator->() const noexcept { return *at_; }
        reference operator[](difference_type n) const noexcept { return *at_[n]; }
        iterator& operator++() noexcept { return ++at_, *this; }
        iterator operator++(int) noexcept { return iterator(at_++); }
        iterator& operator--() noexcept { return --at_, *this; }
        iterator operator--(int) noexcept { return iterator(at_--); }
        iterator& operator+=(difference_type n) noexcept { return at_ += n, *this; }
        iterator& operator-=(difference_type n) noexcept { return at_ -= n, *this; }
        friend iterator operator+(iterator i, difference_type n) noexcept { return i += n; }
        friend iterator operator+(difference_type n, iterator i) noexcept { return i += n; }
        friend iterator operator-(iterator i, difference_type n) noexcept { return i -= n; }
        friend difference_type operator-(iterator a, iterator b) noexcept { return a.at_ - b.at_; }
        friend auto operator<=>(const iterator&, const iterator&) = default;

      private:
        const T* const* at_ = nullptr;
    };

    const T& operator[](std::size_t id) const noexcept { return *items_[id]; }
    std::size_t size() const noexcept { return items_.size(); }
    bool empty() const noexcept { return items_.empty(); }
    iterator begin() const noexcept { return iterator(items_.data()); }
    iterator end() const noexcept { return iterator(items_.data() + items_.size()); }

    // The block of namespace `ns` (null when it has no records), to share with the next snapshot.
    const std::shared_ptr<const Block>& block(std::uint32_t ns) const noexcept {
        return blocks_[ns];
    }
    // Where `record`, one of this table's, sits in its namespace's block (and id list).
    std::uint32_t position_of(const T& record) const noexcept {
        return static_cast<std::uint32_t>(&record - blocks_[record.ns]->data());
    }
    // The same for any record: nullopt when it is not one of this table's (a copy elsewhere).
    std::optional<std::uint32_t> find_position(const T& record) const noexcept {
        if (record.ns >= blocks_.size() || !blocks_[record.ns])
            return std::nullopt;
        return position_in(*blocks_[record.ns], record);
    }
    // Building: `count` records over `namespaces` namespaces, then every namespace's block placed
    // at its ids (ids[k] is the id of (*block)[k]). Every id must be placed before the table is
    // read.
    void reset(std::size_t namespaces, std::size_t count) {
        blocks_.assign(namespaces, nullptr);
        items_.assign(count, nullptr);
    }
    void place(std::uint32_t ns, std::shared_ptr<const Block> block,
               const std::vector<std::uint32_t>& ids) {
        for (std::size_t k = 0; block && k < ids.size(); ++k)
            items_[ids[k]] = &(*block)[k];
        blocks_[ns] = std::move(block);
    }

  private:
    std::vector<const T*> items_;                      // by id
    std::vector<std::shared_ptr<const Block>> blocks_; // by namespace id
};

} // namespace mtlsguard::model
