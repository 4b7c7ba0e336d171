#include "data/slot_set.hpp"

#include <algorithm>

namespace btcml::data {
namespace {

constexpr std::int64_t kMaxDenseWords = SlotSet::kMaxDenseSlots / 64;

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

} // namespace

// False when the bitmap would span more than kMaxDenseWords.
bool SlotSet::grow_to_include(std::int64_t word) {
    if (words_.empty()) {
        base_ = word;
        words_.assign(1, 0);
        return true;
    }
    const auto size = static_cast<std::int64_t>(words_.size());
    const std::int64_t last = base_ + size - 1;
    if (word >= base_ && word <= last) return true;
    const std::int64_t need = word > last ? word - base_ + 1 : last - word + 1;
    if (need > kMaxDenseWords) return false;
    // Grow geometrically so that a long file costs amortised O(1) per slot, in either direction (newest-first files
    // grow downwards), but never past the cap.
    const std::int64_t grown = std::min(std::max(need, 2 * size), kMaxDenseWords);
    words_.reserve(static_cast<std::size_t>(grown)); // exactly: the vector's own growth could pass the cap
    if (word > last) {
        words_.resize(static_cast<std::size_t>(grown), 0);
    } else {
        const std::int64_t extra = grown - size;
        words_.insert(words_.begin(), static_cast<std::size_t>(extra), 0);
        base_ -= extra;
    }
    return true;
}

void SlotSet::go_sparse() {
    for (std::size_t i = 0; i < words_.size(); ++i)
        if (words_[i] != 0) sparse_words_.emplace(base_ + static_cast<std::int64_t>(i), words_[i]);
    words_ = {};
    sparse_ = true;
}

std::uint64_t& SlotSet::word_of(std::int64_t word) {
    if (!sparse_ && !grow_to_include(word)) go_sparse();
    if (sparse_) return sparse_words_[word];
    return words_[static_cast<std::size_t>(word - base_)];
}

bool SlotSet::insert(std::int64_t slot) {
    const std::int64_t word = floor_div(slot, 64);
    auto& w = word_of(word);
    const std::uint64_t bit = std::uint64_t{1} << (slot - word * 64);
    if ((w & bit) != 0) return false;
    w |= bit;
    if (size_ == 0) {
        min_ = max_ = slot;
    } else {
        min_ = std::min(min_, slot);
        max_ = std::max(max_, slot);
    }
    ++size_;
    return true;
}

std::size_t SlotSet::memory_bytes() const {
    return words_.capacity() * sizeof(std::uint64_t) +
           sparse_words_.size() * (sizeof(std::int64_t) + sizeof(std::uint64_t));
}

} // namespace btcml::data
