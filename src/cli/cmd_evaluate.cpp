// btcml evaluate: walk-forward scoring of a stored model and the baselines over a stored period. Every forecast
// reads only bars up to its origin; with --retrain-every N everything is refitted on an expanding window every N
// bars, using only targets known at the fold's start.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "model/forecaster.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>

namespace btcml::cli {
namespace {

struct EvaluateArgs {
    std::string model = "champion";
    std::string from;
    std::string to;
    std::int64_t retrain_every = 0;
};

void run_evaluate(const EvaluateArgs& args, Context& ctx) {
    const std::int64_t from = parse_time_arg(args.from, "--from");
    const std::int64_t to = parse_time_arg(args.to, "--to");
    if (to <= from) throw UsageError("--to must be after --from");
    if (args.retrain_every < 0) throw UsageError("--retrain-every must be a positive bar count (0: never)");
    const model::LoadedModel loaded =
        model::load_model(ctx.config.home, std::to_string(resolve_model_spec(*ctx.open_store(), ctx, args.model, {})));
    const auto& spec = loaded.forecaster.spec();
    const std::int64_t interval = loaded.series.interval;
    const std::int64_t reach = spec.max_horizon() * interval;

    const auto bars = load_series(*ctx.open_store(), loaded.series, std::nullopt, to);
    const auto table = features::compute_features(bars, interval);
    const auto all = features::target_origins(table, spec);
    std::vector<std::size_t> origins;
    for (const std::size_t o : all)
        if (table.times[o] >= from && table.times[o] + reach <= to) origins.push_back(o);
    if (origins.empty())
        throw InvalidInput(fmt::format("no forecast origin between {} and {}: each needs {} gap-free bars before it "
                                       "and its {}-bar target inside the period",
                                       format_iso8601(from), format_iso8601(to),
                                       std::max<std::size_t>(spec.window, static_cast<std::size_t>(spec.max_horizon())),
                                       spec.max_horizon()));

    evaluate::Scoreboard board(spec.horizons, true);
    std::size_t folds = 0;
    bool overlaps_training = false;
    if (args.retrain_every == 0) {
        const auto forecasts = loaded.forecaster.forecast(table, origins);
        board.add(table, loaded.forecaster.scaler(), loaded.baselines, origins, &forecasts);
        folds = 1;
        const auto trained_to = parse_time(loaded.card.value("/training_range/to"_json_pointer, std::string()));
        overlaps_training = trained_to && from < *trained_to;
    } else {
        const auto options = model::TrainOptions::from_json(loaded.card.at("hyperparameters"));
        const std::int64_t fold_span = args.retrain_every * interval;
        for (auto begin = origins.begin(); begin != origins.end();) {
            const std::int64_t fold_start = table.times[*begin];
            const auto end = std::find_if(begin, origins.end(),
                                          [&](std::size_t o) { return table.times[o] >= fold_start + fold_span; });
            std::vector<std::size_t> known; // targets realised by the fold's first origin
            for (const std::size_t o : all)
                if (table.times[o] + reach <= fold_start) known.push_back(o);
            const auto split = features::split_chronological(table, known, spec.max_horizon(), {0.85, 0.15});
            const auto fitted = model::fit_models(table, spec, split.train, split.validation, options);
            const std::vector<std::size_t> fold(begin, end);
            const auto forecasts = fitted.trained.forecaster.forecast(table, fold);
            board.add(table, fitted.scaler, fitted.baselines, fold, &forecasts);
            ++folds;
            if (ctx.interactive())
                std::fprintf(stderr, "fold %zu: refitted on %zu windows, forecast %zu\n", folds, split.train.size(),
                             fold.size());
            begin = end;
        }
    }
    if (overlaps_training)
        log::warn("the evaluated period overlaps the model's training data: these numbers are optimistic",
                  {{"model.version", loaded.version}});
    const auto metrics = board.metrics();
    const auto verdicts = evaluate::Scoreboard::verdicts(metrics);
    nlohmann::json out{{"model_version", loaded.version},
                       {"symbol", loaded.series.symbol},
                       {"interval", format_interval(interval)},
                       {"from", format_iso8601(table.times[origins.front()])},
                       {"to", format_iso8601(table.times[origins.back()])},
                       {"retrain_every", args.retrain_every},
                       {"folds", folds},
                       {"points", board.points()},
                       {"overlaps_training", overlaps_training},
                       {"metrics", metrics},
                       {"verdict", verdicts}};
    if (ctx.json) {
        print_json(out);
        return;
    }
    std::cout << fmt::format("walk-forward evaluation of model {} on {} {}: origins {} .. {}, {} fold(s){}\n",
                             loaded.version, loaded.series.symbol, format_interval(interval),
                             out["from"].get<std::string>(), out["to"].get<std::string>(), folds,
                             overlaps_training ? " (WARNING: overlaps the training data)" : "")
              << format_metrics_table(metrics, verdicts);
}

} // namespace

void setup_evaluate(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<EvaluateArgs>();
    auto* cmd = app.add_subcommand("evaluate", "Walk-forward evaluation of a model and the baselines on a stored "
                                               "period");
    cmd->add_option("--model", args.model, "Model version or 'champion'")->capture_default_str();
    cmd->add_option("--from", args.from, "First forecast origin (ISO 8601 or unix seconds)")->required();
    cmd->add_option("--to", args.to, "End of the period: the last target bar (inclusive)")->required();
    cmd->add_option("--retrain-every", args.retrain_every,
                    "Refit model and baselines on all earlier data every N bars (0: use the stored model)")
        ->capture_default_str();
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_evaluate(args, ctx); });
}

} // namespace btcml::cli
