#pragma once
// Bars: the unit of market data everywhere in btcml.
#include <cstdint>
#include <string>

namespace btcml {

/// One OHLCV bar. `time` is the bar's open time in unix seconds, UTC.
struct Bar {
    std::int64_t time = 0;
    double open = 0;
    double high = 0;
    double low = 0;
    double close = 0;
    double volume = 0;
    /// False for a resampled bucket that lacked some of its source bars.
    bool complete = true;

    friend bool operator==(const Bar&, const Bar&) = default;
};

/// A series is identified by symbol and interval (seconds), e.g. BTCUSD at 3600.
struct SeriesKey {
    std::string symbol;
    std::int64_t interval = 0;

    friend bool operator==(const SeriesKey&, const SeriesKey&) = default;
};

} // namespace btcml
