// btcml quality: the data-quality gate of a retrain (pipeline::check_quality), for Airflow's quality task.
#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "pipeline/quality.hpp"

#include <fmt/format.h>

#include <charconv>
#include <iostream>

namespace btcml::cli {
namespace {

struct QualityArgs {
    std::string symbol = "BTCUSD";
    std::string interval = "1h";
    std::optional<std::string> max_rejected;
    std::optional<std::string> max_age;
};

double parse_fraction(const std::string& text) {
    double value = -1;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !(value >= 0 && value <= 1))
        throw UsageError(fmt::format("--max-rejected '{}' is not a fraction from 0 to 1", text));
    return value;
}

void run_quality(const QualityArgs& args, Context& ctx) {
    const SeriesKey key{args.symbol, parse_interval_arg(args.interval, "--interval")};
    pipeline::QualityLimits limits;
    limits.max_rejected_fraction = parse_fraction(
        ctx.config.value(Setting::quality_max_rejected, args.max_rejected));
    if (const auto age = ctx.config.value(Setting::quality_max_age, args.max_age); !age.empty())
        limits.max_age = parse_interval_arg(age, "--max-age");
    const auto out = pipeline::check_quality(*ctx.open_store(), key, limits, now_unix());
    if (ctx.json) {
        print_json(out);
        return;
    }
    std::cout << fmt::format("{} {} passes: newest bar {} ({}s old), {} of {} rows rejected by the latest ingest\n",
                             args.symbol, args.interval, out["last_time"].get<std::string>(),
                             out["age_seconds"].get<std::int64_t>(), out["rows_rejected"].dump(),
                             out["rows_read"].dump());
}

} // namespace

void setup_quality(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<QualityArgs>();
    auto* cmd = app.add_subcommand("quality", "Data-quality gate of a series: fails (exit 3) when its latest ingest "
                                              "rejected too many rows or its newest bar is too old");
    cmd->add_option("--symbol", args.symbol, "Series symbol")->capture_default_str();
    cmd->add_option("--interval", args.interval, "Bar interval")->capture_default_str();
    cmd->add_option("--max-rejected", args.max_rejected, flag_help(Setting::quality_max_rejected));
    cmd->add_option("--max-age", args.max_age, flag_help(Setting::quality_max_age));
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_quality(args, ctx); });
}

} // namespace btcml::cli
