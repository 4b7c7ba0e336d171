// btcml train: fit the LSTM forecaster and its baselines on a stored series, score them on the held-out test part,
// and publish the model as the next version.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "model/forecaster.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace btcml::cli {
namespace {

struct TrainArgs {
    std::string symbol = "BTCUSD";
    std::string interval = "1h";
    std::string until;
    std::size_t window = 48;
    std::string horizons = "1,6,24";
    model::TrainOptions options;
};

nlohmann::json part_json(const features::FeatureTable& table, const std::vector<std::size_t>& origins) {
    return {{"from", format_iso8601(table.times[origins.front()])},
            {"to", format_iso8601(table.times[origins.back()])},
            {"windows", origins.size()}};
}

nlohmann::json epoch_json(const model::EpochReport& e) {
    return {{"epoch", e.epoch},      {"train_loss", e.train_loss}, {"validation_loss", e.validation_loss},
            {"lr", e.learning_rate}, {"seconds", e.seconds},       {"improved", e.improved}};
}

void run_train(const TrainArgs& args, Context& ctx) {
    const auto started = std::chrono::steady_clock::now();
    const SeriesKey key{args.symbol, parse_interval_arg(args.interval, "--interval")};
    features::DatasetSpec spec{args.window, parse_horizons(args.horizons)};
    spec.validate();
    std::optional<std::int64_t> until;
    if (!args.until.empty()) until = parse_time_arg(args.until, "--until");

    const auto bars = load_series(*ctx.open_store(), key, std::nullopt, until);
    const auto table = features::compute_features(bars, key.interval);
    const auto origins = features::require_target_origins(table, spec);
    const auto split = features::split_chronological(table, origins, spec.max_horizon());

    const bool progress = ctx.interactive();
    const auto on_epoch = [&](const model::EpochReport& e) {
        if (!progress) return;
        const double eta = e.seconds * (args.options.epochs - e.epoch);
        std::fprintf(stderr, "epoch %d/%d  train %.4f  validation %.4f%s  lr %.2g  %.1fs  ETA <= %.0fs\n", e.epoch,
                     args.options.epochs, e.train_loss, e.validation_loss, e.improved ? " *" : "  ", e.learning_rate,
                     e.seconds, eta);
    };
    if (progress)
        std::fprintf(stderr, "training on %zu windows (%zu per epoch), validating on %zu\n", split.train.size(),
                     args.options.samples_per_epoch ? std::min(args.options.samples_per_epoch, split.train.size())
                                                    : split.train.size(),
                     split.validation.size());
    const auto fitted = model::fit_models(table, spec, split.train, split.validation, args.options, on_epoch);
    const auto& forecaster = fitted.trained.forecaster;

    evaluate::Scoreboard board(spec.horizons, true);
    const auto forecasts = forecaster.forecast(table, split.test);
    board.add(table, fitted.scaler, fitted.baselines, split.test, &forecasts);
    const auto metrics = board.metrics();
    const auto verdicts = evaluate::Scoreboard::verdicts(metrics);

    nlohmann::json splits{{"train", part_json(table, split.train)},
                          {"validation", part_json(table, split.validation)},
                          {"test", part_json(table, split.test)},
                          {"embargo_bars", spec.max_horizon()}};
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : fitted.trained.epochs)
        epochs.push_back(epoch_json(e));
    const std::string run_id = new_run_id();
    // The first training window reads the close before its first input bar; the last one's targets end here.
    const std::int64_t first_train_input =
        table.times[split.train.front()] - static_cast<std::int64_t>(spec.window) * key.interval;
    const std::int64_t last_train_target = table.times[split.train.back()] + spec.max_horizon() * key.interval;
    nlohmann::json card = forecaster.describe();
    card.update(
        {{"btcml_version", BTCML_VERSION},
         {"run_id", run_id},
         {"created_at", format_iso8601(now_unix())},
         {"symbol", key.symbol},
         {"interval", format_interval(key.interval)},
         {"seed", args.options.seed},
         {"hyperparameters", args.options.to_json()},
         {"data",
          {{"from", format_iso8601(bars.front().time)},
           {"to", format_iso8601(bars.back().time)},
           {"bars", bars.size()},
           {"hash", features::hash_bars(bars)}}},
         {"training_range", {{"from", format_iso8601(first_train_input)}, {"to", format_iso8601(last_train_target)}}},
         {"splits", splits},
         {"epochs", epochs},
         {"best_epoch", fitted.trained.best_epoch},
         {"baselines", fitted.baselines.to_json()},
         {"metrics", metrics},
         {"champion_rule", "newest model serves until the registry decides (models/champion)"}});
    const int version = model::publish(ctx.config.home, card, forecaster.tensors());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    nlohmann::json out{{"run_id", run_id},
                       {"model_version", version},
                       {"promoted", true},
                       {"symbol", key.symbol},
                       {"interval", format_interval(key.interval)},
                       {"data_hash", card["data"]["hash"]},
                       {"splits", splits},
                       {"epochs", epochs},
                       {"best_epoch", fitted.trained.best_epoch},
                       {"metrics", metrics},
                       {"verdict", verdicts},
                       {"model_dir", (model::models_dir(ctx.config.home) / std::to_string(version)).string()},
                       {"seconds", seconds}};
    if (ctx.json) {
        print_json(out);
        return;
    }
    std::cout << fmt::format("trained model version {} (run {}) on {} {} in {:.1f}s; it is now the champion\n", version,
                             run_id, key.symbol, format_interval(key.interval), seconds);
    for (const char* part : {"train", "validation", "test"})
        std::cout << fmt::format("  {:<10} {} .. {}  {} windows\n", part, splits[part]["from"].get<std::string>(),
                                 splits[part]["to"].get<std::string>(), splits[part]["windows"].get<std::size_t>());
    std::cout << fmt::format("  best epoch {} of {}\n", fitted.trained.best_epoch, epochs.size());
    std::cout << "\nmetrics on the test part (log returns; mape of price):" << format_metrics_table(metrics, verdicts);
}

} // namespace

void setup_train(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<TrainArgs>();
    auto& o = args.options;
    auto* cmd = app.add_subcommand("train", "Train an LSTM forecaster on a stored series and publish it as a new model "
                                            "version, scored against naive, drift and linear baselines");
    cmd->add_option("--symbol", args.symbol, "Series symbol")->capture_default_str();
    cmd->add_option("--interval", args.interval, "Bar interval")->capture_default_str();
    cmd->add_option("--until", args.until, "Use bars up to this time (inclusive; default: all)");
    cmd->add_option("--window", args.window, "Input bars per window")->capture_default_str();
    cmd->add_option("--horizons", args.horizons, "Bars ahead to forecast, ascending")->capture_default_str();
    cmd->add_option("--hidden", o.hidden, "LSTM hidden units")->capture_default_str();
    cmd->add_option("--layers", o.layers, "Stacked LSTM layers")->capture_default_str();
    cmd->add_option("--dropout", o.dropout, "Dropout between LSTM layers")->capture_default_str();
    cmd->add_option("--batch-size", o.batch_size, "Windows per training step")->capture_default_str();
    cmd->add_option("--epochs", o.epochs, "Most epochs (early stopping may end sooner)")->capture_default_str();
    cmd->add_option("--samples-per-epoch", o.samples_per_epoch, "Training windows drawn at random per epoch (0: all)")
        ->capture_default_str();
    cmd->add_option("--lr", o.learning_rate, "Adam learning rate (halved when validation loss stalls)")
        ->capture_default_str();
    cmd->add_option("--patience", o.patience, "Epochs without validation improvement before stopping")
        ->capture_default_str();
    cmd->add_option("--seed", o.seed, "Seed of initialisation, sampling and dropout")->capture_default_str();
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_train(args, ctx); });
}

} // namespace btcml::cli
