// btcml monitor: score matured forecasts and show the live metrics history (src/monitor, docs/monitoring.md).
#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "monitor/exporter.hpp"
#include "monitor/scoring.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <iostream>
#include <set>

namespace btcml::cli {
namespace {

struct MonitorArgs {
    std::string symbol;
    std::string interval;
    std::int64_t limit = 100;
};

nlohmann::json optional_number(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

nlohmann::json metric_json(const store::LiveMetric& m) {
    return {{"computed_at", format_iso8601(m.computed_ms / 1000)},
            {"version", m.model_version},
            {"horizon", m.horizon},
            {"window", monitor::window_label(m.window_s)},
            {"scored", m.scored},
            {"mae", m.mae},
            {"naive_mae", m.naive_mae},
            {"pinball", m.pinball},
            {"baseline_pinball", optional_number(m.baseline_pinball)},
            {"coverage_80", m.coverage_80},
            {"direction_accuracy", optional_number(m.direction_accuracy)}};
}

// The series to score: the one named, else every stored series with a registered model.
std::vector<SeriesKey> series_to_score(const MonitorArgs& args, store::Store& store) {
    if (args.symbol.empty() != args.interval.empty())
        throw UsageError("--symbol and --interval go together (neither: every series with a registered model)");
    if (!args.symbol.empty()) return {{args.symbol, parse_interval_arg(args.interval, "--interval")}};
    const auto models = store.registered_models();
    const std::set<std::string> registered(models.begin(), models.end());
    std::vector<SeriesKey> out;
    for (const auto& s : store.list_series())
        if (registered.contains(tracking::series_model_name(s.key.symbol, format_interval(s.key.interval))))
            out.push_back(s.key);
    return out;
}

void run_score(const MonitorArgs& args, Context& ctx) {
    const auto options = monitor::MonitorOptions::from_config(ctx.config);
    auto store = ctx.open_store();
    nlohmann::json out = {{"as_of", format_iso8601(now_unix())}, {"series", nlohmann::json::array()}};
    const auto series = series_to_score(args, *store);
    if (series.empty() && !ctx.json)
        std::cout << "no stored series has a registered model yet: nothing to score (btcml train makes one)\n";
    for (const auto& key : series) {
        const auto summary = monitor::score_matured(*store, key, now_ms(), options);
        nlohmann::json metrics = nlohmann::json::array();
        for (const auto& m : summary.metrics)
            metrics.push_back(metric_json(m));
        nlohmann::json drift = nlohmann::json::object();
        for (const auto& d : summary.drift)
            drift[d.feature] = d.psi;
        out["series"].push_back({{"symbol", key.symbol},
                                 {"interval", format_interval(key.interval)},
                                 {"scored", summary.scored},
                                 {"live_metrics", metrics},
                                 {"feature_psi", drift}});
        if (!ctx.json)
            std::cout << fmt::format("{} {}: scored {} forecasts, {} live metric rows, {} features' drift\n",
                                     key.symbol, format_interval(key.interval), summary.scored, summary.metrics.size(),
                                     summary.drift.size());
    }
    if (ctx.json) print_json(out);
}

void run_history(const MonitorArgs& args, Context& ctx) {
    if (args.symbol.empty() || args.interval.empty()) throw UsageError("monitor history needs --symbol and --interval");
    if (args.limit < 1) throw UsageError("--limit must be at least 1");
    const SeriesKey key{args.symbol, parse_interval_arg(args.interval, "--interval")};
    auto store = ctx.open_store();
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& m : store->live_metrics_history(key, args.limit))
        rows.push_back(metric_json(m));
    if (ctx.json) {
        print_json({{"symbol", key.symbol}, {"interval", format_interval(key.interval)}, {"live_metrics", rows}});
        return;
    }
    std::cout << "computed_at,version,horizon,window,scored,mae,naive_mae,pinball,baseline_pinball,coverage_80,"
                 "direction_accuracy\n";
    for (const auto& r : rows)
        std::cout << fmt::format("{},{},{},{},{},{},{},{},{},{},{}\n", r["computed_at"].get<std::string>(),
                                 r["version"].get<int>(), r["horizon"].get<int>(), r["window"].get<std::string>(),
                                 r["scored"].get<std::int64_t>(), r["mae"].dump(), r["naive_mae"].dump(),
                                 r["pinball"].dump(), r["baseline_pinball"].dump(), r["coverage_80"].dump(),
                                 r["direction_accuracy"].dump());
}

} // namespace

void setup_monitor(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<MonitorArgs>();
    auto* cmd = app.add_subcommand("monitor", "Live scoring: score matured forecasts, show the live metrics history");
    cmd->require_subcommand(1);
    auto* score = cmd->add_subcommand(
        "score", "Score every stored forecast whose target bar is stored, update the live metrics and feature drift");
    score->add_option("--symbol", args.symbol, "Series symbol (default: every series with a registered model)");
    score->add_option("--interval", args.interval, "Bar interval, with --symbol");
    add_json_flag(*score, ctx);
    score->callback([&args, &ctx] { run_score(args, ctx); });
    auto* history = cmd->add_subcommand("history", "The live metrics history of a series, newest first");
    history->add_option("--symbol", args.symbol, "Series symbol")->required();
    history->add_option("--interval", args.interval, "Bar interval")->required();
    history->add_option("--limit", args.limit, "At most this many rows")->capture_default_str();
    add_json_flag(*history, ctx);
    history->callback([&args, &ctx] { run_history(args, ctx); });
}

} // namespace btcml::cli
