#include "core/time.hpp"

#include <gtest/gtest.h>

namespace btcml {
namespace {

struct TimeCase {
    const char* text;
    std::optional<std::int64_t> expected;
};

TEST(Time, ParsesEveryAcceptedForm) {
    const TimeCase cases[] = {
        {"2024-01-02", 1704153600},
        {"2024-01-02 03:04:05", 1704164645},
        {"2024-01-02T03:04:05Z", 1704164645},
        {"2024-01-02T03:04:05.999Z", 1704164645},
        {"2024-01-02T05:04:05+02:00", 1704164645},
        {"2024-01-02T01:04:05-0200", 1704164645},
        {"2023-03-01 00:00:00+00:00", 1677628800},
        {"1325412060.0", 1325412060},
        {"1325412060", 1325412060},
        {"1502942400000", 1502942400},
        {"1502942400000000", 1502942400},
        {"\"2024-01-02\"", 1704153600},
        {"2024-02-30", std::nullopt},
        {"2024-01-02T25:00:00", std::nullopt},
        {"2024-01-02T03", std::nullopt},
        {"yesterday", std::nullopt},
        {"", std::nullopt},
        {"-5", std::nullopt},
        {"NaN", std::nullopt},
        {"2024-01-02T03:04:05Zjunk", std::nullopt},
    };
    for (const auto& c : cases)
        EXPECT_EQ(parse_time(c.text), c.expected) << c.text;
}

TEST(Time, FormatsIso8601) {
    EXPECT_EQ(format_iso8601(1704164645), "2024-01-02T03:04:05Z");
    EXPECT_EQ(format_iso8601(0), "1970-01-01T00:00:00Z");
}

TEST(Time, ParsesAndFormatsIntervals) {
    EXPECT_EQ(parse_interval("1m"), 60);
    EXPECT_EQ(parse_interval("4h"), 14400);
    EXPECT_EQ(parse_interval("1d"), 86400);
    EXPECT_EQ(parse_interval("1w"), 604800);
    EXPECT_EQ(parse_interval("0h"), std::nullopt);
    EXPECT_EQ(parse_interval("h"), std::nullopt);
    EXPECT_EQ(parse_interval("5x"), std::nullopt);
    EXPECT_EQ(format_interval(60), "1m");
    EXPECT_EQ(format_interval(3600), "1h");
    EXPECT_EQ(format_interval(5400), "90m");
    EXPECT_EQ(format_interval(86400), "1d");
    EXPECT_EQ(format_interval(604800), "1w");
    EXPECT_EQ(format_interval(45), "45s");
}

} // namespace
} // namespace btcml
