// Exchange REST sources: Bitstamp's OHLC and Binance's klines endpoints, sharing one paging loop (exchange.hpp).
#include "core/error.hpp"
#include "core/time.hpp"
#include "data/exchange.hpp"
#include "data/sources.hpp"
#include "net/http_client.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <utility>

namespace btcml::data {
namespace {

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string uppercase(std::string_view text) {
    std::string out(text);
    std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

} // namespace

namespace exchange {
namespace {

using nlohmann::json;

constexpr std::int64_t default_interval = 3600;

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/// Exchanges send prices as strings ("36000.5") to keep their precision; accept plain numbers too.
std::optional<double> number_field(const json& value) {
    if (value.is_number()) return value.get<double>();
    if (!value.is_string()) return std::nullopt;
    const auto& text = value.get_ref<const std::string&>();
    double out = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return out;
}

std::optional<std::int64_t> integer_field(const json& value) {
    if (value.is_number_integer()) return value.get<std::int64_t>();
    if (!value.is_string()) return std::nullopt;
    const auto& text = value.get_ref<const std::string&>();
    std::int64_t out = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return out;
}

/// Fills the prices of `record` from five JSON values in the order open, high, low, close, volume.
void set_prices(Record& record, const std::array<const json*, 5>& fields) {
    std::array<double*, 5> targets = {&record.open, &record.high, &record.low, &record.close, &record.volume};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const auto value = number_field(*fields[i]);
        if (!value) {
            record.parse_error = RejectReason::unparsable_number;
            return;
        }
        *targets[i] = *value;
    }
}

json parse_json(std::string_view body, std::string_view url, std::string_view exchange) {
    try {
        return json::parse(body);
    } catch (const json::parse_error& e) {
        const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1; // nlohmann counts from 1
        if (offset >= body.size()) {
            throw InvalidInput(
                fmt::format("{} sent truncated JSON for {} (the body ends at byte {})", exchange, url, body.size()));
        }
        std::string_view reason = e.what();
        reason.remove_prefix(std::min(reason.size(), reason.find("] ") + 2)); // drop "[json.exception...] "
        throw InvalidInput(fmt::format("{} sent malformed JSON for {} at byte {} of {}: {}", exchange, url, offset,
                                       body.size(), reason));
    }
}

[[noreturn]] void throw_shape(std::string_view exchange, std::string_view url, std::string_view expected,
                              std::string_view body) {
    throw InvalidInput(
        fmt::format("{} answered {} with JSON that is not {}: {}", exchange, url, expected, net::error_gist(body)));
}

template <std::size_t N>
[[noreturn]] void throw_interval(std::string_view exchange, std::int64_t seconds,
                                 const std::array<std::int64_t, N>& allowed) {
    std::string names;
    for (const auto a : allowed)
        names += (names.empty() ? "" : ", ") + format_interval(a);
    throw UsageError(
        fmt::format("{} has no {} candles; use --interval with one of {}", exchange, format_interval(seconds), names));
}

// ---- Bitstamp: GET /api/v2/ohlc/{pair}/?step=S&limit=N&start=T
//      {"data": {"pair": "BTC/USD", "ohlc": [{"timestamp": "1700000000", "open": "36000.5", …}, …]}}

constexpr std::array<std::int64_t, 12> bitstamp_steps = {60,   180,   300,   900,   1800,  3600,
                                                         7200, 14400, 21600, 43200, 86400, 259200};

std::string bitstamp_interval(std::int64_t seconds) {
    if (std::ranges::find(bitstamp_steps, seconds) == bitstamp_steps.end()) {
        throw_interval("Bitstamp", seconds, bitstamp_steps);
    }
    return std::to_string(seconds);
}

std::string bitstamp_url(std::string_view base, std::string_view symbol, std::string_view interval, std::int64_t start,
                         std::int64_t limit) {
    return fmt::format("{}/api/v2/ohlc/{}/?step={}&limit={}&start={}", base, net::url_escape(lowercase(symbol)),
                       interval, limit, start);
}

std::vector<Record> parse_bitstamp(std::string_view body, std::string_view url) {
    const json doc = parse_json(body, url, "Bitstamp");
    const json* ohlc = nullptr;
    if (doc.is_object()) {
        if (const auto data = doc.find("data"); data != doc.end() && data->is_object()) {
            if (const auto it = data->find("ohlc"); it != data->end() && it->is_array()) ohlc = &*it;
        }
    }
    if (ohlc == nullptr) throw_shape("Bitstamp", url, "{\"data\": {\"ohlc\": […]}}", body);
    std::vector<Record> records;
    records.reserve(ohlc->size());
    for (const json& item : *ohlc) {
        Record& record = records.emplace_back();
        record.raw = item.dump();
        static constexpr std::array<const char*, 6> keys = {"timestamp", "open", "high", "low", "close", "volume"};
        if (!item.is_object() || !std::ranges::all_of(keys, [&](const char* k) { return item.contains(k); })) {
            record.parse_error = RejectReason::bad_field_count;
            continue;
        }
        record.time = integer_field(item["timestamp"]);
        if (!record.time) {
            record.parse_error = RejectReason::unparsable_time;
            continue;
        }
        set_prices(record, {&item["open"], &item["high"], &item["low"], &item["close"], &item["volume"]});
    }
    return records;
}

// ---- Binance: GET /api/v3/klines?symbol=S&interval=1h&startTime=MS&limit=N
//      [[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume", trades, …], …]

constexpr std::array<std::int64_t, 14> binance_seconds = {60,    180,   300,   900,   1800,  3600,   7200,
                                                          14400, 21600, 28800, 43200, 86400, 259200, 604800};
constexpr std::array<std::string_view, 14> binance_names = {"1m", "3m", "5m", "15m", "30m", "1h", "2h",
                                                            "4h", "6h", "8h", "12h", "1d",  "3d", "1w"};

std::string binance_interval(std::int64_t seconds) {
    const auto it = std::ranges::find(binance_seconds, seconds);
    if (it == binance_seconds.end()) throw_interval("Binance", seconds, binance_seconds);
    return std::string(binance_names[static_cast<std::size_t>(it - binance_seconds.begin())]);
}

std::string binance_url(std::string_view base, std::string_view symbol, std::string_view interval, std::int64_t start,
                        std::int64_t limit) {
    return fmt::format("{}/api/v3/klines?symbol={}&interval={}&startTime={}&limit={}", base,
                       net::url_escape(uppercase(symbol)), interval, start * 1000, limit);
}

std::vector<Record> parse_binance(std::string_view body, std::string_view url) {
    const json doc = parse_json(body, url, "Binance");
    if (!doc.is_array()) throw_shape("Binance", url, "an array of klines", body);
    std::vector<Record> records;
    records.reserve(doc.size());
    for (const json& item : doc) {
        Record& record = records.emplace_back();
        record.raw = item.dump();
        if (!item.is_array() || item.size() < 6) {
            record.parse_error = RejectReason::bad_field_count;
            continue;
        }
        const auto millis = integer_field(item[0]);
        if (!millis) {
            record.parse_error = RejectReason::unparsable_time;
            continue;
        }
        record.time = floor_div(*millis, 1000);
        set_prices(record, {&item[1], &item[2], &item[3], &item[4], &item[5]});
    }
    return records;
}

} // namespace

const ExchangeApi bitstamp = {
    .name = "Bitstamp",
    .format = "bitstamp-api",
    .base_url = Setting::bitstamp_url,
    .symbol_example = "btcusd",
    .page_limit = 1000,
    .interval_name = bitstamp_interval,
    .page_url = bitstamp_url,
    .parse_page = parse_bitstamp,
};

const ExchangeApi binance = {
    .name = "Binance",
    .format = "binance-api",
    .base_url = Setting::binance_url,
    .symbol_example = "BTCUSDT",
    .page_limit = 1000,
    .interval_name = binance_interval,
    .page_url = binance_url,
    .parse_page = parse_binance,
};

PagePlan plan_pages(const ExchangeApi& api, std::int64_t interval, std::optional<std::int64_t> from,
                    std::optional<std::int64_t> to, std::optional<std::int64_t> resume_at, std::int64_t now) {
    // A candle opening at t has closed when t + interval <= now.
    const std::int64_t last_closed = floor_div(now, interval) * interval - interval;
    PagePlan plan{.start = 0, .end = to ? std::min(*to, last_closed) : last_closed, .interval = interval};
    if (from) {
        plan.start = floor_div(*from + interval - 1, interval) * interval;
    } else if (resume_at) {
        plan.start = floor_div(*resume_at + interval - 1, interval) * interval;
    } else {
        plan.start = plan.end - (api.page_limit - 1) * interval; // one page: the latest page_limit candles
    }
    return plan;
}

std::int64_t fetch_pages(const ExchangeApi& api, std::string_view base_url, std::string_view symbol,
                         const PagePlan& plan, const PageFetcher& fetch, const RecordSink& sink,
                         const ProgressFn& progress) {
    const std::string interval = api.interval_name(plan.interval);
    const std::int64_t expected = plan.end >= plan.start ? (plan.end - plan.start) / plan.interval + 1 : 0;
    std::int64_t passed = 0;
    for (std::int64_t start = plan.start; start <= plan.end;) {
        const std::string url = api.page_url(base_url, symbol, interval, start, api.page_limit);
        const std::vector<Record> records = api.parse_page(fetch(url), url);
        std::optional<std::int64_t> newest;
        for (const Record& record : records) {
            if (record.time) {
                newest = std::max(newest.value_or(*record.time), *record.time);
                if (*record.time < plan.start || *record.time > plan.end) continue;
            }
            sink(record, ++passed); // including records whose time did not parse: the writer rejects them
        }
        if (progress) progress(passed, expected);
        // A server that ignores `start` would otherwise have us fetch the same page forever.
        if (!newest || *newest < start) break;
        start = *newest + plan.interval;
    }
    return passed;
}

} // namespace exchange

namespace {


/// A failed page request as the user should read it: whose fault, what the exchange said, what to do.
[[noreturn]] void throw_status(const exchange::ExchangeApi& api, std::string_view symbol, const std::string& url,
                               const net::HttpResponse& response) {
    const std::string gist = net::error_gist(response.body);
    const std::string said = gist.empty() ? "" : fmt::format(": {}", gist);
    const std::string host = net::url_host(url);
    if (response.status == 400 || response.status == 404) {
        throw UsageError(fmt::format("{} refused the request for {} (HTTP {} from {}){}; check the symbol, e.g. {}",
                                     api.name, symbol, response.status, host, said, api.symbol_example));
    }
    if (response.status == 418 || response.status == 429) {
        throw Unavailable(fmt::format("{} is rate-limiting us (HTTP {} from {}, {} attempts){}; wait and try again",
                                      api.name, response.status, host, response.attempts, said));
    }
    throw Unavailable(fmt::format("{} answered HTTP {} from {} for {} ({} attempts){}; try again later", api.name,
                                  response.status, host, url, response.attempts, said));
}

/// `symbol` is SOURCE after its `bitstamp:` or `binance:` prefix.
void read_exchange(const exchange::ExchangeApi& api, std::string_view symbol, SourceContext& ctx) {
    const bool valid = !symbol.empty() && std::ranges::all_of(symbol, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
    });
    if (!valid) {
        throw UsageError(fmt::format("'{}' is not a {} symbol; write it as {}:{}", symbol, api.name,
                                     lowercase(api.name), api.symbol_example));
    }
    const std::int64_t interval = ctx.options.interval.value_or(exchange::default_interval);
    api.interval_name(interval); // an unsupported interval fails before any request
    // Incremental unless --from: resume after the newest stored bar of the series being written (the resampled
    // one when --resample is given).
    std::optional<std::int64_t> resume_at;
    if (!ctx.options.from) {
        const std::int64_t stored_interval = ctx.options.resample.value_or(interval);
        if (const auto last = ctx.store.last_bar_time({ctx.options.symbol, stored_interval})) {
            resume_at = *last + stored_interval;
        }
    }
    const auto plan = exchange::plan_pages(api, interval, ctx.options.from, ctx.options.to, resume_at, now_unix());
    ctx.format = std::string(api.format);

    net::HttpClient client;
    const auto fetch = [&](const std::string& url) {
        auto response = client.get(url, {{"Accept", "application/json"}});
        if (!response.ok()) throw_status(api, symbol, url, response);
        return std::move(response.body);
    };
    const auto add = [&](const exchange::Record& record, std::int64_t number) {
        ctx.writer.add(Candidate{.line = number,
                                 .raw = record.raw,
                                 .time = record.time,
                                 .open = record.open,
                                 .high = record.high,
                                 .low = record.low,
                                 .close = record.close,
                                 .volume = record.volume,
                                 .parse_error = record.parse_error});
    };
    exchange::fetch_pages(api, source_base_url(ctx, api.base_url), symbol, plan, fetch, add, ctx.progress);
}

} // namespace

std::string source_base_url(const SourceContext& ctx, Setting base_url_setting) {
    std::string base = ctx.options.base_url;
    if (base.empty()) base = env_value(base_url_setting).value_or(std::string(spec(base_url_setting).fallback));
    while (base.ends_with('/'))
        base.pop_back();
    return base;
}

void read_bitstamp(std::string_view spec, SourceContext& ctx) { read_exchange(exchange::bitstamp, spec, ctx); }

void read_binance(std::string_view spec, SourceContext& ctx) { read_exchange(exchange::binance, spec, ctx); }

} // namespace btcml::data
