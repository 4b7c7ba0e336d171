#include "data/slot_set.hpp"

#include <algorithm>

namespace btcml::data {
namespace {
std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
} // namespace

void SlotSet::grow_to_include(std::int64_t slot) {
    const std::int64_t word = floor_div(slot, 64);
    if (words_.empty()) {
        base_ = word * 64;
        words_.assign(1, 0);
        return;
    }
    const std::int64_t first_word = base_ / 64;
    const std::int64_t last_word = first_word + static_cast<std::int64_t>(words_.size()) - 1;
    if (word > last_word) {
        // Grow geometrically so that a long ascending file costs amortised O(1) per slot.
        const auto need = static_cast<std::size_t>(word - first_word + 1);
        words_.resize(std::max(need, words_.size() * 2), 0);
    } else if (word < first_word) {
        // Newest-first files grow downwards: prepend geometrically too.
        const auto extra = static_cast<std::size_t>(
            std::max<std::int64_t>(first_word - word, static_cast<std::int64_t>(words_.size())));
        words_.insert(words_.begin(), extra, 0);
        base_ -= static_cast<std::int64_t>(extra) * 64;
    }
}

bool SlotSet::insert(std::int64_t slot) {
    grow_to_include(slot);
    const std::int64_t offset = slot - base_;
    auto& w = words_[static_cast<std::size_t>(offset / 64)];
    const std::uint64_t bit = std::uint64_t{1} << (offset % 64);
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

} // namespace btcml::data
