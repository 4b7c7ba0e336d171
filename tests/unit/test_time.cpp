#include "core/time.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <limits>
#include <thread>

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

// One range for every form: 1970-01-01T00:00:00Z included, 2100-01-01T00:00:00Z excluded.
TEST(Time, RefusesTimesOutsideTheValidRange) {
    const TimeCase cases[] = {
        {"1970-01-01", 0},
        {"1970-01-01T00:00:00Z", 0},
        {"0", 0},
        {"1969-12-31", std::nullopt},
        {"1969-12-31T23:59:59Z", std::nullopt},
        {"0001-01-01", std::nullopt},
        {"0001-01-01T00:00:00Z", std::nullopt},
        {"1970-01-01T00:30:00+01:00", std::nullopt}, // 1969 in UTC
        {"2099-12-31T23:59:59Z", 4102444799},
        {"2100-01-01", std::nullopt},
        {"9999-12-31T23:59:59Z", std::nullopt},
        {"4102444799", 4102444799},
        {"4102444800", std::nullopt},
        {"99999999999", std::nullopt},    // seconds past 2100, below the milliseconds threshold
        {"4102444800000", std::nullopt},  // 2100 in milliseconds
        {"4102444799999999", 4102444799}, // the last second in microseconds
        {"1e300", std::nullopt},
        {"inf", std::nullopt},
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

struct IntervalCase {
    const char* text;
    std::optional<std::int64_t> expected;
};

// Numbers whose product with the unit overflows 64 bits were undefined behaviour; they are refused, as is any
// interval longer than the valid time range.
TEST(Time, RefusesIntervalsThatOverflowOrOutlastTheTimeRange) {
    const IntervalCase cases[] = {
        {"99999999999999999999h", std::nullopt}, // over int64 before the unit
        {"9223372036854775807s", std::nullopt},
        {"9223372036854775807w", std::nullopt},
        {"5124095576030432h", std::nullopt}, // n * 3600 wraps to 3584
        {"30500568904944w", std::nullopt},   // n * 604800 wraps to 579584
        {"4102444800s", 4102444800},         // the whole range
        {"4102444801s", std::nullopt},
        {"47482d", 47482 * 86400LL},
        {"47483d", std::nullopt},
        {"-1h", std::nullopt},
        {"+1h", std::nullopt},
        {"1.5h", std::nullopt},
        {" 1h", std::nullopt},
        {"1", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& c : cases)
        EXPECT_EQ(parse_interval(c.text), c.expected) << c.text;
}

TEST(ProcessClock, IsWallTimeByDefault) {
    EXPECT_FALSE(replay_clock_running());
    const auto wall =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    EXPECT_NEAR(static_cast<double>(now_ms()), static_cast<double>(wall), 1000);
    EXPECT_NEAR(static_cast<double>(now_unix()), static_cast<double>(wall_unix()), 1);
}

// The replay clock is process-wide: each case runs in a child process (a death test) so that it leaves this one's
// clock alone.
TEST(ProcessClockDeathTest, ReplayStartsAtItsStartAndRunsAtItsSpeed) {
    EXPECT_EXIT(
        {
            const std::int64_t start = 1'704'067'200; // 2024-01-01
            start_replay_clock(start, 3600);
            const auto first = now_ms();
            std::this_thread::sleep_for(std::chrono::milliseconds(50)); // lets the clock move: no synchronisation
            const auto second = now_ms();
            // At 3600x, 50 ms or more of wall time is at least 180 s of market time; an hour of wall time bounds it.
            const bool ok = replay_clock_running() && first >= start * 1000 && first < start * 1000 + 3'600'000 &&
                            second - first >= 180'000 && now_unix() < start + 3600 * 3600 && wall_unix() > start + 3600;
            std::exit(ok ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST(ProcessClock, ReplaySettingsAreChecked) {
    EXPECT_THROW(start_replay_clock(0, 0), UsageError);
    EXPECT_THROW(start_replay_clock(0, -1), UsageError);
    EXPECT_THROW(start_replay_clock(0, std::numeric_limits<double>::infinity()), UsageError);
    EXPECT_THROW(start_replay_clock(kTimeEnd, 1), UsageError);
    EXPECT_FALSE(replay_clock_running()) << "a refused setting changes nothing";
}

} // namespace
} // namespace btcml
