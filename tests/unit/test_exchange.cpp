#include "core/error.hpp"
#include "data/exchange.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <regex>

namespace btcml::data::exchange {
namespace {

constexpr std::int64_t hour = 3600;
constexpr std::int64_t now = 1700001800;     // the test's clock
constexpr std::int64_t forming = 1699999200; // the hourly candle open at `now`, still forming

TEST(ExchangeParse, BitstampRecords) {
    const auto records = bitstamp.parse_page(
        R"({"data": {"pair": "BTC/USD", "ohlc": [
            {"timestamp": "1700000000", "open": "36000.5", "high": "36100", "low": "35900", "close": "36050",
             "volume": "12.3"},
            {"timestamp": 1700003600, "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 0},
            {"timestamp": "1700007200", "open": "abc", "high": "1", "low": "1", "close": "1", "volume": "1"},
            {"timestamp": "soon", "open": "1", "high": "1", "low": "1", "close": "1", "volume": "1"},
            {"timestamp": "1700014400", "open": "1", "high": "1", "low": "1", "close": "1"},
            ["not", "an", "object"]
        ]}})",
        "http://x/");
    ASSERT_EQ(records.size(), 6U);
    EXPECT_EQ(records[0].time, 1700000000);
    EXPECT_DOUBLE_EQ(records[0].open, 36000.5);
    EXPECT_DOUBLE_EQ(records[0].high, 36100);
    EXPECT_DOUBLE_EQ(records[0].low, 35900);
    EXPECT_DOUBLE_EQ(records[0].close, 36050);
    EXPECT_DOUBLE_EQ(records[0].volume, 12.3);
    EXPECT_EQ(records[0].parse_error, RejectReason::none);
    EXPECT_EQ(records[0].raw.find(R"("open":"36000.5")") != std::string::npos, true) << records[0].raw;
    EXPECT_EQ(records[1].time, 1700003600);
    EXPECT_EQ(records[1].parse_error, RejectReason::none);
    const RejectReason expected[] = {RejectReason::unparsable_number, RejectReason::unparsable_time,
                                     RejectReason::bad_field_count, RejectReason::bad_field_count};
    for (std::size_t i = 0; i < 4; ++i)
        EXPECT_EQ(records[i + 2].parse_error, expected[i]) << records[i + 2].raw;
    EXPECT_EQ(records[2].time, 1700007200); // the time still counts for paging
}

TEST(ExchangeParse, BinanceRecords) {
    const auto records = binance.parse_page(
        R"([[1700000000000, "36000.5", "36100.0", "35900.0", "36050.0", "12.3", 1700003599999, "443000.1", 1234,
             "6.1", "220000.0", "0"],
            [1700003600000, "1", "2", "0.5", "x", "1", 1700007199999, "1", 1, "1", "1", "0"],
            ["1700007200000", "1", "1", "1", "1", "1", 0, "0", 0, "0", "0", "0"],
            [null, "1", "1", "1", "1", "1"],
            [1700014400000, "1", "1"]])",
        "http://x/");
    ASSERT_EQ(records.size(), 5U);
    EXPECT_EQ(records[0].time, 1700000000);
    EXPECT_DOUBLE_EQ(records[0].close, 36050);
    EXPECT_DOUBLE_EQ(records[0].volume, 12.3);
    EXPECT_EQ(records[0].parse_error, RejectReason::none);
    EXPECT_EQ(records[1].parse_error, RejectReason::unparsable_number);
    EXPECT_EQ(records[2].time, 1700007200);
    EXPECT_EQ(records[2].parse_error, RejectReason::none);
    EXPECT_EQ(records[3].parse_error, RejectReason::unparsable_time);
    EXPECT_EQ(records[4].parse_error, RejectReason::bad_field_count);
}

TEST(ExchangeParse, MalformedBodiesNameTheUrlAndByte) {
    struct Case {
        const ExchangeApi* api;
        const char* body;
        const char* needle;
    };
    const Case cases[] = {
        {&bitstamp, R"({"data": {"ohlc": [{"timestamp": "17)",
         "truncated JSON for http://127.0.0.1:1/page (the body ends at byte 36)"},
        {&bitstamp, R"({"data": {"ohlc": [}})", "malformed JSON for http://127.0.0.1:1/page at byte 19 of 21"},
        {&bitstamp, R"({"data": {"pair": "BTC/USD"}})", "is not {\"data\": {\"ohlc\""},
        {&bitstamp, "", "ends at byte 0"},
        {&binance, R"([[1700000000000, "1", "1)", "ends at byte 24"},
        {&binance, R"({"code": -1121, "msg": "Invalid symbol."})", "not an array of klines: Invalid symbol."},
    };
    for (const auto& c : cases) {
        try {
            c.api->parse_page(c.body, "http://127.0.0.1:1/page");
            ADD_FAILURE() << "no exception for " << c.body;
        } catch (const InvalidInput& e) {
            const std::string message = e.what();
            EXPECT_NE(message.find("http://127.0.0.1:1/page"), std::string::npos) << message;
            EXPECT_NE(message.find(c.needle), std::string::npos) << message;
            EXPECT_EQ(message.find('\n'), std::string::npos) << message;
        }
    }
}

TEST(ExchangeApi, IntervalsAndUrls) {
    EXPECT_EQ(bitstamp.interval_name(3600), "3600");
    EXPECT_EQ(bitstamp.interval_name(259200), "259200");
    EXPECT_THROW(bitstamp.interval_name(28800), UsageError); // 8h: Binance has it, Bitstamp does not
    EXPECT_EQ(binance.interval_name(60), "1m");
    EXPECT_EQ(binance.interval_name(28800), "8h");
    EXPECT_EQ(binance.interval_name(604800), "1w");
    EXPECT_THROW(binance.interval_name(120), UsageError);
    try {
        bitstamp.interval_name(120);
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d, 3d"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(bitstamp.page_url("https://www.bitstamp.net", "BTCUSD", "3600", 1700000000, 1000),
              "https://www.bitstamp.net/api/v2/ohlc/btcusd/?step=3600&limit=1000&start=1700000000");
    EXPECT_EQ(binance.page_url("https://api.binance.com", "btcusdt", "1h", 1700000000, 1000),
              "https://api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=1700000000000&limit=1000");
}

TEST(ExchangePlan, StartAndEnd) {
    struct Case {
        const char* name;
        std::optional<std::int64_t> from, to, resume_at;
        std::int64_t start, end;
    };
    const std::int64_t last_closed = forming - hour;
    const Case cases[] = {
        {"default: one page back", {}, {}, {}, last_closed - 999 * hour, last_closed},
        {"incremental", {}, {}, 1698998400, 1698998400, last_closed},
        {"incremental after a 4h bucket", {}, {}, 1698998400 + 4 * hour, 1698998400 + 4 * hour, last_closed},
        {"from aligns up", 1699000001, {}, {}, 1699000000 - 1699000000 % hour + hour, last_closed},
        {"from on a boundary", 1698998400, {}, {}, 1698998400, last_closed},
        {"to in the past", 1698998400, 1699010000, {}, 1698998400, 1699010000},
        {"to in the future", 1698998400, now + 99 * hour, {}, 1698998400, last_closed},
    };
    for (const auto& c : cases) {
        const auto plan = plan_pages(binance, hour, c.from, c.to, c.resume_at, now);
        EXPECT_EQ(plan.start, c.start) << c.name;
        EXPECT_EQ(plan.end, c.end) << c.name;
        EXPECT_EQ(plan.interval, hour) << c.name;
    }
}

/// A Binance that serves hourly candles from `listed` up to the forming one at `now`, honouring startTime and
/// limit; records the URLs it was asked for.
struct FakeBinance {
    std::int64_t listed = 1690000000 - 1690000000 % hour;
    std::int64_t limit = 1000;
    bool ignore_start = false;
    std::vector<std::string> urls;

    std::string operator()(const std::string& url) {
        urls.push_back(url);
        std::smatch match;
        EXPECT_TRUE(std::regex_search(url, match, std::regex("startTime=(\\d+)&limit=(\\d+)")));
        const std::int64_t asked = ignore_start ? listed : std::stoll(match[1]) / 1000;
        std::int64_t t = std::max(listed, (asked + hour - 1) / hour * hour);
        std::string body = "[";
        for (std::int64_t n = 0; n < std::min<std::int64_t>(limit, std::stoll(match[2])) && t <= now; ++n, t += hour) {
            body += fmt::format(R"({}[{},"1","2","0.5","1.5","3",{},"0",1,"0","0","0"])", n == 0 ? "" : ",", t * 1000,
                                (t + hour) * 1000 - 1);
        }
        return body + "]";
    }
};

TEST(ExchangePaging, WalksPagesAndLeavesOutTheFormingCandle) {
    struct Case {
        const char* name;
        std::int64_t start, end;
        std::int64_t server_limit;
        std::size_t requests;
        std::int64_t records;
    };
    const std::int64_t last_closed = forming - hour;
    const Case cases[] = {
        {"one page", last_closed - 9 * hour, last_closed, 1000, 1, 10},
        {"several full pages", last_closed - 2499 * hour, last_closed, 1000, 3, 2500},
        {"short pages (server caps lower)", last_closed - 249 * hour, last_closed, 100, 3, 250},
        {"stops at --to", last_closed - 2499 * hour, last_closed - 1500 * hour, 1000, 1, 1000},
        {"nothing new", last_closed + hour, last_closed, 1000, 0, 0},
        {"before listing: starts at listing", 1680000000, 1690000000 + 10 * hour, 1000, 1, 11},
    };
    for (const auto& c : cases) {
        FakeBinance server;
        server.limit = c.server_limit;
        std::vector<std::int64_t> times;
        std::int64_t last_done = -1;
        const auto passed = fetch_pages(
            binance, "http://x", "BTCUSDT", {.start = c.start, .end = c.end, .interval = hour}, std::ref(server),
            [&](const Record& record, std::int64_t number) {
                EXPECT_EQ(number, static_cast<std::int64_t>(times.size()) + 1);
                times.push_back(*record.time);
            },
            [&](std::int64_t done, std::int64_t) { last_done = done; });
        EXPECT_EQ(server.urls.size(), c.requests) << c.name;
        EXPECT_EQ(passed, c.records) << c.name;
        ASSERT_EQ(static_cast<std::int64_t>(times.size()), c.records) << c.name;
        if (c.records > 0) {
            EXPECT_EQ(last_done, c.records) << c.name;
            EXPECT_LE(times.back(), c.end) << c.name;
            EXPECT_NE(times.back(), forming) << c.name;
            for (std::size_t i = 1; i < times.size(); ++i)
                ASSERT_EQ(times[i] - times[i - 1], hour) << c.name;
        }
    }
}

TEST(ExchangePaging, StopsWhenAServerIgnoresStart) {
    FakeBinance server;
    server.ignore_start = true;
    server.limit = 10;
    const auto passed = fetch_pages(binance, "http://x", "BTCUSDT",
                                    {.start = server.listed + 50 * hour, .end = forming - hour, .interval = hour},
                                    std::ref(server), [](const Record&, std::int64_t) {}, {});
    EXPECT_EQ(server.urls.size(), 1U);
    EXPECT_EQ(passed, 0);
}

TEST(ExchangePaging, StopsOnAnEmptyPageAndPassesUnparsableRecords) {
    std::vector<std::string> pages = {
        R"([[1700000000000,"1","2","0.5","x","3",0,"0",1,"0","0","0"],[null,"1","1","1","1","1"]])", "[]"};
    std::size_t served = 0;
    std::vector<RejectReason> seen;
    fetch_pages(
        binance, "http://x", "BTCUSDT", {.start = 1700000000, .end = 1700000000 + 99 * hour, .interval = hour},
        [&](const std::string&) { return pages.at(served++); },
        [&](const Record& record, std::int64_t) { seen.push_back(record.parse_error); }, {});
    EXPECT_EQ(served, 2U);
    EXPECT_EQ(seen, (std::vector<RejectReason>{RejectReason::unparsable_number, RejectReason::unparsable_time}));
}

} // namespace
} // namespace btcml::data::exchange
