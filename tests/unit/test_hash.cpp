#include "core/hash.hpp"
#include "features/dataset.hpp"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace btcml {
namespace {

std::uint64_t fnv_of(std::string_view text) {
    return fnv1a64({reinterpret_cast<const unsigned char*>(text.data()), text.size()});
}

TEST(Hash, Fnv1a64KnownVectors) {
    // The published FNV-1a 64 test vectors.
    EXPECT_EQ(fnv_of(""), 0xcbf29ce484222325ULL);
    EXPECT_EQ(fnv_of("a"), 0xaf63dc4c8601ec8cULL);
    EXPECT_EQ(fnv_of("foobar"), 0x85944171f73967e8ULL);
    Fnv1a64 pieces;
    pieces.update({reinterpret_cast<const unsigned char*>("foo"), 3});
    pieces.update({reinterpret_cast<const unsigned char*>("bar"), 3});
    EXPECT_EQ(pieces.digest(), fnv_of("foobar"));
}

TEST(Hash, TrainingDataHashIsUnchanged) {
    // Model cards store this hash: it must stay the FNV-1a 64 of each bar's time and OHLCV, little-endian int64 and
    // float64 (computed independently in Python with struct.pack('<q5d', ...)).
    const std::vector<Bar> bars{{1704067200, 100.5, 101.0, 99.5, 100.0, 12.25},
                                {1704070800, 100.0, 102.0, 99.0, 101.5, 3.0}};
    EXPECT_EQ(features::hash_bars(bars), "fnv1a64:c00160512b8791e7");
}

} // namespace
} // namespace btcml
