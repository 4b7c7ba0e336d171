#pragma once
// Private to the exchange sources (source_exchange.cpp) and their tests: one paging loop shared by every exchange,
// with the per-exchange parts (URL, interval names, response shape) plugged in through ExchangeApi.
#include "core/settings.hpp"
#include "data/ingest.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::data::exchange {

/// One candle as an exchange sent it; `raw` owns the record's JSON text that the Candidate points to.
struct Record {
    std::string raw;
    std::optional<std::int64_t> time; // open time, unix seconds
    double open = 0, high = 0, low = 0, close = 0, volume = 0;
    RejectReason parse_error = RejectReason::none;
};

struct ExchangeApi {
    std::string_view name;             // for messages: "Bitstamp"
    std::string_view format;           // ctx.format: "bitstamp-api"
    Setting base_url;                  // Setting::bitstamp_url: its env variable and default (core/settings.hpp)
    std::string_view symbol_example;   // for messages: "btcusd"
    std::int64_t page_limit = 1000;    // the most candles one request may ask for
    /// The exchange's name for an interval in seconds; throws UsageError listing the allowed ones.
    std::string (*interval_name)(std::int64_t seconds);
    /// The URL of the page of candles opening at or after `start` (unix seconds).
    std::string (*page_url)(std::string_view base, std::string_view symbol, std::string_view interval,
                            std::int64_t start, std::int64_t limit);
    /// The candles of one response body; throws InvalidInput (naming `url` and the byte offset) when the body
    /// is not JSON of the expected shape. Records whose fields do not parse come back with parse_error set.
    std::vector<Record> (*parse_page)(std::string_view body, std::string_view url);
};

extern const ExchangeApi bitstamp;
extern const ExchangeApi binance;

/// The span of open times to fetch, inclusive.
struct PagePlan {
    std::int64_t start = 0;
    std::int64_t end = 0; // the last open time wanted: min(--to, the last complete candle)
    std::int64_t interval = 0;
};

/// Where to start and end: at `from` (aligned up to the interval), else at `resume_at` (just after the newest
/// stored bar), else `page_limit` candles back from now; up to `to` or the last candle that has closed by `now`.
PagePlan plan_pages(const ExchangeApi& api, std::int64_t interval, std::optional<std::int64_t> from,
                    std::optional<std::int64_t> to, std::optional<std::int64_t> resume_at, std::int64_t now);

/// Returns the body of a successful response to GET `url`, or throws.
using PageFetcher = std::function<std::string(const std::string& url)>;
/// Receives each record in the plan's span (and every record whose time did not parse), numbered from 1.
using RecordSink = std::function<void(const Record& record, std::int64_t number)>;

/// Fetches pages from plan.start until a page is empty, makes no progress or passes plan.end. Records after
/// plan.end (the forming candle, bars past --to) are left out. Returns the number of records passed on.
std::int64_t fetch_pages(const ExchangeApi& api, std::string_view base_url, std::string_view symbol,
                         const PagePlan& plan, const PageFetcher& fetch, const RecordSink& sink,
                         const ProgressFn& progress);

} // namespace btcml::data::exchange
