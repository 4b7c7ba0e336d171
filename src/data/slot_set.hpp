#pragma once
// A set of bar slots (time / interval) as a bitmap that grows in both directions. Hand-written because a hash set
// of 7.7 million times would take hundreds of MB, while one bit per slot over the file's span stays near 1 MB.
#include <cstdint>
#include <vector>

namespace btcml::data {

/// Not thread-safe.
class SlotSet {
  public:
    /// Adds a slot; false if it was already there.
    bool insert(std::int64_t slot);
    [[nodiscard]] std::int64_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }
    [[nodiscard]] std::int64_t min() const { return min_; }
    [[nodiscard]] std::int64_t max() const { return max_; }
    /// Slots between min and max that are absent.
    [[nodiscard]] std::int64_t gaps() const { return empty() ? 0 : (max_ - min_ + 1) - size_; }

  private:
    void grow_to_include(std::int64_t slot);

    std::vector<std::uint64_t> words_;
    std::int64_t base_ = 0; // slot of bit 0 of words_[0]; a multiple of 64
    std::int64_t size_ = 0;
    std::int64_t min_ = 0;
    std::int64_t max_ = 0;
};

} // namespace btcml::data
