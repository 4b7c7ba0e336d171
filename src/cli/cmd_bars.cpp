#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"

#include <fmt/format.h>
#include <iostream>

namespace btcml::cli {
namespace {

struct BarsArgs {
    std::string symbol = "BTCUSD";
    std::string interval = "1h";
    std::string from;
    std::string to;
    std::string format = "csv";
    std::int64_t limit = 0;
};

std::string series_list(store::Store& store) {
    std::string list;
    for (const auto& s : store.list_series())
        list += fmt::format("{}{} {}", list.empty() ? "" : ", ", s.key.symbol, format_interval(s.key.interval));
    return list.empty() ? "none: run btcml ingest first" : list;
}

void run_bars(const BarsArgs& args, Context& ctx) {
    if (args.format != "csv" && args.format != "json")
        throw UsageError(fmt::format("--format: '{}' is not one of csv, json", args.format));
    store::BarQuery query{{args.symbol, parse_interval_arg(args.interval, "--interval")}, {}, {}, {}};
    if (!args.from.empty()) query.from = parse_time_arg(args.from, "--from");
    if (!args.to.empty()) query.to = parse_time_arg(args.to, "--to");
    if (args.limit > 0) query.limit = args.limit;
    auto store = ctx.open_store();
    const auto bars = store->load_bars(query);
    if (bars.empty() && !store->last_bar_time(query.key))
        throw NotFound(fmt::format("no bars stored for {} {}; stored series: {}", args.symbol, args.interval,
                                   series_list(*store)));
    const auto sources = store->load_bar_sources(query);
    if (args.format == "json" || ctx.json) {
        nlohmann::json out = {{"symbol", args.symbol}, {"interval", format_interval(query.key.interval)}};
        auto& rows = out["bars"] = nlohmann::json::array();
        for (std::size_t i = 0; i < bars.size(); ++i) {
            const auto& b = bars[i];
            rows.push_back({{"time", format_iso8601(b.time)},
                            {"open", b.open},
                            {"high", b.high},
                            {"low", b.low},
                            {"close", b.close},
                            {"volume", b.volume},
                            {"complete", b.complete},
                            {"source", sources[i]}});
        }
        print_json(out);
        return;
    }
    std::string chunk = "time,open,high,low,close,volume,complete,source\n";
    for (std::size_t i = 0; i < bars.size(); ++i) {
        const auto& b = bars[i];
        fmt::format_to(std::back_inserter(chunk), "{},{},{},{},{},{},{},{}\n", format_iso8601(b.time), b.open, b.high,
                       b.low, b.close, b.volume, b.complete ? 1 : 0, sources[i]);
        if (chunk.size() > (1 << 16)) {
            std::cout << chunk;
            chunk.clear();
        }
    }
    std::cout << chunk << std::flush;
}

void run_series(Context& ctx) {
    auto store = ctx.open_store();
    const auto series = store->list_series();
    if (ctx.json) {
        nlohmann::json out = {{"backend", store->backend()}, {"series", nlohmann::json::array()}};
        for (const auto& s : series)
            out["series"].push_back({{"symbol", s.key.symbol},
                                     {"interval", format_interval(s.key.interval)},
                                     {"bars", s.bars},
                                     {"first_time", format_iso8601(s.first_time)},
                                     {"last_time", format_iso8601(s.last_time)},
                                     {"sources", s.sources}});
        print_json(out);
        return;
    }
    if (series.empty()) {
        std::cout << "no series stored yet: run btcml ingest SOURCE\n";
        return;
    }
    std::cout << fmt::format("{:<16} {:<8} {:>10}  {:<20}  {:<20}  {}\n", "symbol", "interval", "bars", "first", "last",
                             "sources");
    for (const auto& s : series)
        std::cout << fmt::format("{:<16} {:<8} {:>10}  {:<20}  {:<20}  {}\n", s.key.symbol,
                                 format_interval(s.key.interval), s.bars, format_iso8601(s.first_time),
                                 format_iso8601(s.last_time), s.sources);
}

} // namespace

void setup_bars(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<BarsArgs>();
    auto* cmd = app.add_subcommand("bars", "Write stored bars as CSV or JSON");
    cmd->add_option("--symbol", args.symbol, "Series symbol")->capture_default_str();
    cmd->add_option("--interval", args.interval, "Bar interval")->capture_default_str();
    cmd->add_option("--from", args.from, "First bar time (inclusive; ISO 8601 or unix seconds)");
    cmd->add_option("--to", args.to, "Last bar time (inclusive)");
    cmd->add_option("--format", args.format, "csv or json")->capture_default_str();
    cmd->add_option("--limit", args.limit, "At most this many bars (0: all)");
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_bars(args, ctx); });
}

void setup_series(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("series", "List the stored series with their extent and sources");
    add_json_flag(*cmd, ctx);
    cmd->callback([&ctx] { run_series(ctx); });
}

} // namespace btcml::cli
