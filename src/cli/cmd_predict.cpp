// btcml predict: one forecast of a stored model from the latest stored bars (or those up to --at).
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/time.hpp"
#include "model/forecaster.hpp"
#include "pipeline/forecast.hpp"

#include <fmt/format.h>

#include <iostream>

namespace btcml::cli {
namespace {

struct PredictArgs {
    std::string model = "champion";
    SeriesOptions series;
    std::string at;
};

void run_predict(const PredictArgs& args, Context& ctx) {
    std::optional<std::int64_t> at;
    if (!args.at.empty()) at = parse_time_arg(args.at, "--at");
    auto store = ctx.open_store();
    const model::LoadedModel loaded =
        model::load_model(ctx.config.home, std::to_string(resolve_model_spec(*store, ctx, args.model, args.series)));
    const std::int64_t interval = loaded.series.interval;
    const auto last = at ? at : store->last_bar_time(loaded.series);
    // The window plus the bar before it (for the first return), and one more interval since --at need not fall on
    // a bar's open time; a gap inside shows as too few bars.
    const std::int64_t span = static_cast<std::int64_t>(loaded.forecaster.spec().window + 1) * interval;
    const auto bars = load_series(*store, loaded.series, last ? std::optional(*last - span) : std::nullopt, last);
    const auto forecast = pipeline::served_forecast(*store, loaded, bars);
    const auto out = model::to_json(forecast, loaded.version, loaded.series.symbol, interval);
    if (ctx.json) {
        print_json(out);
        return;
    }
    std::cout << fmt::format("model {} forecast for {} {} as of the bar at {} (close {:.2f}):\n", loaded.version,
                             loaded.series.symbol, format_interval(interval), out["as_of"].get<std::string>(),
                             bars.back().close);
    std::cout << fmt::format("  {:>7}  {:<20}  {:>12}  {:>25}  {:>10}\n", "horizon", "target bar", "median",
                             "80% interval", "log return");
    for (const auto& h : forecast.horizons)
        std::cout << fmt::format("  {:>7}  {:<20}  {:>12.2f}  {:>12.2f} .. {:<10.2f}  {:>10.5f}\n", h.horizon,
                                 format_iso8601(h.target_time), h.price, h.lower, h.upper, h.log_return);
}

} // namespace

void setup_predict(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<PredictArgs>();
    auto* cmd = app.add_subcommand("predict", "Forecast each horizon from the latest stored bars with a model");
    cmd->add_option("--model", args.model,
                    "Model version, or an alias of the series' registered model: champion, "
                    "challenger, @ALIAS")
        ->capture_default_str();
    add_series_options(*cmd, args.series);
    cmd->add_option("--at", args.at, "Forecast from the last bar at or before this time (default: the latest)");
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_predict(args, ctx); });
}

} // namespace btcml::cli
