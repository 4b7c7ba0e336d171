#include "core/error.hpp"
#include "data/layout.hpp"
#include "data/slot_set.hpp"

#include <gtest/gtest.h>

namespace btcml::data {
namespace {

struct LayoutCase {
    const char* what;
    std::vector<std::string> lines;
    std::string format;
    std::string columns;
    std::string expected_name;
    int time, open, high, low, close, volume, skip;
};

TEST(Layout, RecognisesEveryKnownLayout) {
    const LayoutCase cases[] = {
        {"kaggle",
         {"Timestamp,Open,High,Low,Close,Volume", "1325412060.0,4.58,4.58,4.58,4.58,0.0"},
         "",
         "",
         "kaggle",
         0,
         1,
         2,
         3,
         4,
         5,
         1},
        {"kaggle legacy",
         {"Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price",
          "1325317920,4.39,4.39,4.39,4.39,0.455,2.0,4.39"},
         "",
         "",
         "kaggle-legacy",
         0,
         1,
         2,
         3,
         4,
         5,
         1},
        {"yahoo",
         {"Date,Open,High,Low,Close,Adj Close,Volume", "2014-09-17,465.8,468.1,452.4,457.3,457.3,21056800"},
         "",
         "",
         "yahoo",
         0,
         1,
         2,
         3,
         4,
         6,
         1},
        {"yahoo hourly, reordered, ticker",
         {"Datetime,Ticker,Close,High,Low,Open,Volume", "2024-01-01 00:00:00+00:00,BTC-USD,1,1,1,1,0"},
         "",
         "",
         "generic",
         0,
         5,
         3,
         4,
         2,
         6,
         1},
        {"cryptodatadownload",
         {"https://www.CryptoDataDownload.com", "unix,date,symbol,open,high,low,close,Volume BTC,Volume USD",
          "1660953600,2022-08-20 00:00:00,BTC/USD,21,21,21,21,1,21"},
         "",
         "",
         "cryptodatadownload",
         0,
         3,
         4,
         5,
         6,
         7,
         2},
        {"kraken headerless", {"1381095255,122.0,122.0,122.0,122.0,0.1,1"}, "", "", "kraken", 0, 1, 2, 3, 4, 5, 0},
        {"binance klines headerless",
         {"1502942400000,4261.48,4313.62,4261.32,4308.83,47.18,1502945999999,202366.1,171,35.16,150952.4,0"},
         "",
         "",
         "binance-klines",
         0,
         1,
         2,
         3,
         4,
         5,
         0},
        {"binance export",
         {"DateTime,Open,High,Low,Close,Volume", "2017-08-17 04:00:00,4261.48,4313.62,4261.32,4308.83,47.18"},
         "",
         "",
         "generic",
         0,
         1,
         2,
         3,
         4,
         5,
         1},
        {"binance.us",
         {"open_time,open,high,low,close,volume", "2023-03-01 00:00:00+00:00,1,1,1,1,1"},
         "",
         "",
         "generic",
         0,
         1,
         2,
         3,
         4,
         5,
         1},
        {"no volume", {"time,open,high,low,close", "2024-01-01,1,1,1,1"}, "", "", "generic", 0, 1, 2, 3, 4, -1, 1},
        {"BOM and quotes",
         {"\xEF\xBB\xBF\"Date\",\"Open\",\"High\",\"Low\",\"Close\"", "2024-01-01,1,1,1,1"},
         "",
         "",
         "generic",
         0,
         1,
         2,
         3,
         4,
         -1,
         1},
        {"explicit columns by name",
         {"when,o,hi,lo,last", "2024-01-01,1,1,1,1"},
         "",
         "time=when,open=o,high=hi,low=lo,close=last",
         "generic",
         0,
         1,
         2,
         3,
         4,
         -1,
         1},
        {"explicit columns by number",
         {"2024-01-01,1,2,0.5,1.5,9,x,y"},
         "",
         "time=1,open=2,high=3,low=4,close=5,volume=6",
         "generic",
         0,
         1,
         2,
         3,
         4,
         5,
         0},
        {"forced kraken",
         {"1381095255,122.0,122.0,122.0,122.0,0.1,1,extra"},
         "kraken",
         "",
         "kraken",
         0,
         1,
         2,
         3,
         4,
         5,
         0},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        const Layout l = detect_layout(c.lines, c.format, c.columns);
        EXPECT_EQ(l.name, c.expected_name);
        EXPECT_EQ(l.time, c.time);
        EXPECT_EQ(l.open, c.open);
        EXPECT_EQ(l.high, c.high);
        EXPECT_EQ(l.low, c.low);
        EXPECT_EQ(l.close, c.close);
        EXPECT_EQ(l.volume, c.volume);
        EXPECT_EQ(l.skip_lines, c.skip);
    }
}

struct TimeColumnCase {
    const char* what;
    std::vector<std::string> lines;
    int time;
    int time_of_day;
    const char* source;
};

// The time column is chosen by what the first rows hold: a full timestamp over a date-only column, a date completed
// by a time-of-day column when that is all there is, and the choice is named for errors.
TEST(Layout, ChoosesTheTimeColumnByItsValues) {
    const TimeColumnCase cases[] = {
        {"date, time of day, epoch",
         {"date,time,epoch,open,high,low,close,volume", "2023-01-01,00:00:00,1672531200,1,1,1,1,1"},
         2,
         -1,
         "column 3 'epoch' (a full timestamp)"},
        {"date-only before a datetime",
         {"date,datetime,open,high,low,close", "2023-01-01,2023-01-01 05:00,1,1,1,1"},
         1,
         -1,
         "column 2 'datetime' (a full timestamp)"},
        {"date and time of day",
         {"Date,Time,Open,High,Low,Close", "2023-01-01,05:00:00,1,1,1,1", "2023-01-01,bad,1,1,1,1"},
         0,
         1,
         "column 1 'Date' (dates) with column 2 'Time' (times of day)"},
        {"daily", {"Date,Open,High,Low,Close", "2023-01-01,1,1,1,1"}, 0, -1,
         "column 1 'Date' (dates without a time of day)"},
        {"binance klines header",
         {"open_time,open,high,low,close,volume,close_time", "1502942400000,1,1,1,1,1,1502945999999"},
         0,
         -1,
         "column 1 'open_time' (a full timestamp)"},
        {"no rows", {"timestamp,open,high,low,close"}, 0, -1, "column 1 'timestamp' (its name; no rows to check)"},
        {"unparsable", {"time,open,high,low,close", "soon,1,1,1,1"}, 0, -1,
         "column 1 'time' (its name; its first values are not times)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        const Layout l = detect_layout(c.lines, "", "");
        EXPECT_EQ(l.time, c.time);
        EXPECT_EQ(l.time_of_day, c.time_of_day);
        EXPECT_EQ(l.time_source, c.source);
    }
}

struct BadLayoutCase {
    const char* what;
    std::vector<std::string> lines;
    std::string format;
    std::string columns;
    std::string message_part;
};

TEST(Layout, NamesTheProblemWhenItCannotRecognise) {
    const BadLayoutCase cases[] = {
        {"empty", {"", "  "}, "", "", "empty"},
        {"binary", {std::string("PK\x01\x02\x00junk", 9)}, "", "", "binary"},
        {"unknown header", {"a,b,c,d,e", "1,2,3,4,5"}, "", "", "--columns"},
        {"header without close", {"date,open,high,low,vol", "2024-01-01,1,1,1,1"}, "", "", "no close column"},
        {"headerless with 9 fields", {"1381095255,1,1,1,1,1,1,1,1"}, "", "", "9 fields"},
        {"unknown format", {"Date,Open,High,Low,Close"}, "excel", "", "is not one of"},
        {"bad columns role", {"Date,Open,High,Low,Close"}, "", "when=Date", "unknown role"},
        {"bad columns name",
         {"Date,Open,High,Low,Close"},
         "",
         "time=Day,open=Open,high=High,low=Low,close=Close",
         "no column named"},
        {"columns missing close",
         {"Date,Open,High,Low,Close"},
         "",
         "time=Date,open=Open,high=High,low=Low",
         "no column given for close"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        try {
            detect_layout(c.lines, c.format, c.columns);
            ADD_FAILURE() << "expected an error";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
        }
    }
}

TEST(Layout, SplitsQuotedFields) {
    std::vector<std::string_view> f;
    split_csv("a,\"b,c\",,d", f);
    ASSERT_EQ(f.size(), 4U);
    EXPECT_EQ(f[1], "b,c");
    EXPECT_EQ(f[2], "");
    split_csv("", f);
    EXPECT_EQ(f.size(), 1U);
}

TEST(SlotSet, CountsDuplicatesAndGapsInBothDirections) {
    SlotSet s;
    EXPECT_TRUE(s.insert(1000));
    EXPECT_TRUE(s.insert(999)); // newest first
    for (std::int64_t i = 998; i >= 100; --i)
        EXPECT_TRUE(s.insert(i));
    EXPECT_FALSE(s.insert(500));
    EXPECT_TRUE(s.insert(2000));
    EXPECT_TRUE(s.insert(-70));
    EXPECT_EQ(s.size(), 903);
    EXPECT_EQ(s.min(), -70);
    EXPECT_EQ(s.max(), 2000);
    EXPECT_EQ(s.gaps(), (2000 - -70 + 1) - 903);
}

// A 1970 bar among 1-second bars of today spans 1.7 billion slots: 200 MB as one bitmap. Past the dense cap the
// set keeps only the words that hold slots, and answers the same.
TEST(SlotSet, BoundsMemoryWhenTheSpanIsHuge) {
    SlotSet s;
    const std::int64_t today = 1'700'000'000;
    EXPECT_TRUE(s.insert(0));
    for (std::int64_t i = 0; i < 10'000; ++i)
        EXPECT_TRUE(s.insert(today + i));
    EXPECT_TRUE(s.insert(4'102'444'799)); // the last second of the valid range
    EXPECT_FALSE(s.insert(0));
    EXPECT_FALSE(s.insert(today + 5'000));
    EXPECT_TRUE(s.insert(today - 1)); // downwards, as newest-first files grow
    EXPECT_LT(s.memory_bytes(), std::size_t{1} << 20);
    EXPECT_EQ(s.size(), 10'003);
    EXPECT_EQ(s.min(), 0);
    EXPECT_EQ(s.max(), 4'102'444'799);
    EXPECT_EQ(s.gaps(), 4'102'444'800 - 10'003);

    // Below the cap it stays one bitmap, a bit per slot of the span.
    SlotSet dense;
    for (std::int64_t i = 0; i < SlotSet::kMaxDenseSlots; i += 1'000)
        dense.insert(i);
    EXPECT_LE(dense.memory_bytes(), static_cast<std::size_t>(SlotSet::kMaxDenseSlots / 8));
}

} // namespace
} // namespace btcml::data
