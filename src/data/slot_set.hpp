#pragma once
// A set of bar slots (time / interval): a bitmap that grows in both directions while the slots span up to
// kMaxDenseSlots, then 64-slot words in a hash map. Hand-written because a hash set of 7.7 million times would
// take hundreds of MB, while one bit per slot over the file's span stays near 1 MB; the hash map bounds memory by
// the slots present when the span is huge (a 1970 bar among 1-second bars of today would need 200 MB of bits).
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace btcml::data {

/// Not thread-safe.
class SlotSet {
  public:
    /// The widest span of slots kept as a plain bitmap (32 MB).
    static constexpr std::int64_t kMaxDenseSlots = std::int64_t{1} << 28;

    /// Adds a slot; false if it was already there.
    bool insert(std::int64_t slot);
    [[nodiscard]] std::int64_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }
    [[nodiscard]] std::int64_t min() const { return min_; }
    [[nodiscard]] std::int64_t max() const { return max_; }
    /// Slots between min and max that are absent.
    [[nodiscard]] std::int64_t gaps() const { return empty() ? 0 : (max_ - min_ + 1) - size_; }
    /// Bytes held for the slots (not counting the hash map's own bookkeeping): for tests of the bound.
    [[nodiscard]] std::size_t memory_bytes() const;

  private:
    std::uint64_t& word_of(std::int64_t word);
    bool grow_to_include(std::int64_t word);
    void go_sparse();

    std::vector<std::uint64_t> words_;
    std::int64_t base_ = 0; // word index of words_[0]
    bool sparse_ = false;   // the words live in sparse_words_, not words_
    std::unordered_map<std::int64_t, std::uint64_t> sparse_words_;
    std::int64_t size_ = 0;
    std::int64_t min_ = 0;
    std::int64_t max_ = 0;
};

} // namespace btcml::data
