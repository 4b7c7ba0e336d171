#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "data/ingest.hpp"

#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <iostream>

namespace btcml::cli {
namespace {

struct IngestArgs {
    std::string source;
    std::string symbol;
    std::string interval;
    std::string resample;
    std::string from;
    std::string to;
    std::string format;
    std::string columns;
    std::string base_url;
};

void print_text(const data::IngestSummary& s) {
    std::cout << fmt::format("ingested {}{}\n", s.source, s.synthetic ? "  [SYNTHETIC DATA, not market prices]" : "");
    std::cout << fmt::format("  format       {}{}\n", s.format, s.newest_first ? " (newest first)" : "");
    std::cout << fmt::format("  series       {} {}", s.symbol, format_interval(s.interval));
    if (s.source_interval) std::cout << fmt::format(" (resampled from {})", format_interval(*s.source_interval));
    std::cout << '\n';
    std::cout << fmt::format("  rows         {} read, {} inserted, {} already stored, {} rejected\n", s.rows_read,
                             s.rows_inserted, s.rows_duplicate, s.rows_rejected);
    for (const auto& [reason, count] : s.rejected_reasons)
        std::cout << fmt::format("    {:<24} {}\n", reason, count);
    if (s.first_time)
        std::cout << fmt::format("  range        {} to {}\n", format_iso8601(*s.first_time),
                                 format_iso8601(*s.last_time));
    std::cout << fmt::format("  missing bars {} (gaps are reported, never filled)\n", s.missing_bars);
    if (s.source_interval) std::cout << fmt::format("  incomplete buckets {}\n", s.incomplete_buckets);
    std::cout << fmt::format("  run          #{} in {:.2f}s\n", s.run_id, s.seconds);
}

void run_ingest(const IngestArgs& args, Context& ctx) {
    data::IngestOptions options;
    options.symbol = args.symbol;
    if (!args.interval.empty()) options.interval = parse_interval_arg(args.interval, "--interval");
    if (!args.resample.empty()) options.resample = parse_interval_arg(args.resample, "--resample");
    if (!args.from.empty()) options.from = parse_time_arg(args.from, "--from");
    if (!args.to.empty()) options.to = parse_time_arg(args.to, "--to");
    options.format = args.format;
    options.columns = args.columns;
    options.base_url = args.base_url;
    options.home = ctx.config.home;
    options.progress = ctx.interactive();

    auto store = ctx.open_store();
    std::error_code ec;
    // Files and Kaggle downloads report bytes; exchanges and the generator report bars.
    const bool bytes = std::filesystem::is_regular_file(args.source, ec) || args.source == "-" ||
                       args.source.starts_with("kaggle");
    Progress progress("ingest", bytes ? Progress::Unit::bytes : Progress::Unit::items, options.progress);
    const auto summary = data::ingest(*store, args.source, options, [&progress](std::int64_t done, std::int64_t total) {
        progress.update(done, total);
    });
    progress.finish();
    log::info("ingest finished", {{"ingest.run_id", summary.run_id},
                                  {"ingest.source", summary.source},
                                  {"ingest.rows_inserted", summary.rows_inserted},
                                  {"ingest.rows_rejected", summary.rows_rejected}});
    if (ctx.json)
        print_json(data::to_json(summary));
    else
        print_text(summary);
}

} // namespace

void setup_ingest(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<IngestArgs>();
    auto* cmd = app.add_subcommand("ingest", "Load bars from a file, Kaggle, an exchange or the synthetic generator");
    cmd->add_option("source", args.source,
                    "A CSV file (.csv, .gz, .zip; a FIFO or pipe too; - for standard input), "
                    "kaggle:OWNER/DATASET[/FILE], bitstamp:PAIR, binance:SYMBOL or synthetic[:SEED]")
        ->required();
    cmd->add_option("--symbol", args.symbol, "Series symbol (default BTCUSD; BTCUSD-SYNTH for synthetic)");
    cmd->add_option("--interval", args.interval, "Bar interval of the source, e.g. 1m, 1h, 1d (inferred if absent)");
    cmd->add_option("--resample", args.resample, "Aggregate to this interval before storing, e.g. 1h, 4h, 1d");
    cmd->add_option("--from", args.from, "Keep bars opening at or after this time (ISO 8601 or unix seconds)");
    cmd->add_option("--to", args.to, "Keep bars opening at or before this time");
    cmd->add_option(
        "--format", args.format,
        "Force a layout: kaggle, kaggle-legacy, yahoo, cryptodatadownload, kraken, binance-klines, generic");
    cmd->add_option("--columns", args.columns,
                    "Map columns: time=COL,open=COL,high=COL,low=COL,close=COL[,volume=COL] (name or 1-based number)");
    cmd->add_option("--base-url", args.base_url, "Override the API base URL of kaggle:/bitstamp:/binance: sources");
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_ingest(args, ctx); });
}

} // namespace btcml::cli
