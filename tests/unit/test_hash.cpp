#include "core/hash.hpp"

#include <gtest/gtest.h>

#include <string_view>

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

} // namespace
} // namespace btcml
