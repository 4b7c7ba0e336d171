// Which series a request or command means: registered model names and the documented defaults.
#include "core/error.hpp"
#include "tracking/registry.hpp"
#include "tracking/tracker.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace btcml::tracking {
namespace {

constexpr std::int64_t kHour = 3600, kDay = 86400;

TEST(Series, RegisteredModelNamesStandForTheirSeries) {
    EXPECT_EQ(series_of_model("btcml-BTCUSD-1h"), (SeriesKey{"BTCUSD", kHour}));
    EXPECT_EQ(series_of_model("btcml-BTCUSD-SYNTH-1d"), (SeriesKey{"BTCUSD-SYNTH", kDay})); // a dash in the symbol
    EXPECT_EQ(series_model_name("ETHUSD", "5m"), "btcml-ETHUSD-5m");
    for (const char* other : {"mymodel", "btcml-", "btcml-1h", "btcml--1h", "btcml-BTCUSD-hourly", "x-BTCUSD-1h"})
        EXPECT_EQ(series_of_model(other), std::nullopt) << other;
}

TEST(Series, ChoosesTheOnlyMatchElseTheDefaultElseRefusesNamingTheChoices) {
    const SeriesKey btc_h{"BTCUSD", kHour}, btc_d{"BTCUSD", kDay}, eth_h{"ETHUSD", kHour}, eth_d{"ETHUSD", kDay};
    const auto none = std::optional<std::string>(), btc = std::optional<std::string>("BTCUSD"),
               eth = std::optional<std::string>("ETHUSD");
    const auto any = std::optional<std::int64_t>();
    struct Case {
        std::vector<SeriesKey> available;
        std::optional<std::string> symbol;
        std::optional<std::int64_t> interval;
        SeriesKey expected;
    };
    const std::vector<Case> chosen = {
        {{eth_d}, none, any, eth_d},                 // the only one, whatever it is
        {{btc_h, eth_h}, none, any, btc_h},          // several: the default
        {{btc_h, eth_h}, eth, any, eth_h},           // named
        {{btc_d, eth_h, eth_d}, none, kHour, eth_h}, // the only 1h series
        {{eth_h, eth_d}, eth, any, eth_h},           // ETHUSD in the default interval
        {{btc_h, btc_d}, btc, kDay, btc_d},
    };
    for (const auto& c : chosen)
        EXPECT_EQ(choose_series(c.available, c.symbol, c.interval), c.expected)
            << c.expected.symbol << " " << c.expected.interval;

    EXPECT_THROW(choose_series({}, none, any), NotFound);
    const std::vector<SeriesKey> two = {eth_h, eth_d};
    try {
        choose_series(two, btc, kHour);
        FAIL() << "BTCUSD 1h is not available";
    } catch (const NotFound& e) {
        EXPECT_NE(std::string(e.what()).find("BTCUSD 1h"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("ETHUSD 1h, ETHUSD 1d"), std::string::npos) << e.what();
    }
    const std::vector<SeriesKey> no_default = {btc_d, eth_d};
    try {
        choose_series(no_default, none, any);
        FAIL() << "two series and neither is the default";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("BTCUSD 1d, ETHUSD 1d"), std::string::npos) << e.what();
    }
}

} // namespace
} // namespace btcml::tracking
