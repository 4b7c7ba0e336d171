// btcml train: parses the options of pipeline::train (src/pipeline/train.hpp) and prints its report.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/time.hpp"
#include "model/artifact.hpp"
#include "pipeline/train.hpp"

#include <fmt/format.h>

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
    std::optional<std::string> tracking_uri;
    bool force_promote = false;
    std::string calibration = "adaptive";
    double calibration_rate = model::kDefaultCalibrationRate;
};

void run_train(const TrainArgs& args, Context& ctx) {
    pipeline::TrainRequest request;
    request.key = {args.symbol, parse_interval_arg(args.interval, "--interval")};
    request.spec = {args.window, pipeline::parse_horizons(args.horizons)};
    if (!args.until.empty()) request.until = parse_time_arg(args.until, "--until");
    request.options = args.options;
    request.tracking_uri = resolve_tracking_uri(ctx, args.tracking_uri);
    request.force_promote = args.force_promote;
    request.calibration = {model::parse_calibration_mode(args.calibration, "--calibration"), args.calibration_rate};
    model::validate_calibration_rate(args.calibration_rate, "--calibration-rate");

    pipeline::TrainObserver observer;
    if (ctx.interactive()) {
        observer.on_start = [](std::size_t train, std::size_t per_epoch, std::size_t validation) {
            std::fprintf(stderr, "training on %zu windows (%zu per epoch), validating on %zu\n", train, per_epoch,
                         validation);
        };
        observer.on_epoch = [epochs = args.options.epochs](const model::EpochReport& e) {
            const double eta = e.seconds * (epochs - e.epoch);
            std::fprintf(stderr, "epoch %d/%d  train %.4f  validation %.4f%s  lr %.2g  %.1fs  ETA <= %.0fs\n", e.epoch,
                         epochs, e.train_loss, e.validation_loss, e.improved ? " *" : "  ", e.learning_rate, e.seconds,
                         eta);
        };
    }
    // Ctrl-C (or SIGTERM) asks to stop after the current epoch, so the run can end as KILLED.
    StopOnSignal stop;
    const auto result = pipeline::train(*ctx.open_store(), ctx.config.home, request, stop.token(), observer);
    if (ctx.json) {
        print_json(result.json);
        return;
    }
    std::cout << result.text << "\nmetrics on the test part (log returns; mape of price):"
              << format_metrics_table(result.json["metrics"], result.json["verdict"]);
    if (const auto& t = result.json["tracking"]; t.value("backend", "") == "mlflow")
        std::cout << (t.value("synced", false)
                          ? fmt::format("\ntracked in MLflow at {} (run {})\n", t["uri"].get<std::string>(),
                                        t["remote_run_id"].get<std::string>())
                          : fmt::format("\nMLflow at {} did not get the whole run ({}); it is kept locally: run "
                                        "`btcml tracking sync` later\n",
                                        t["uri"].get<std::string>(), t.value("error", "")));
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
    // The bounds a stored model card may hold (model::validate_card): a model trained here must load.
    cmd->add_option("--window", args.window, "Input bars per window")
        ->check(CLI::Range(std::size_t{1}, static_cast<std::size_t>(model::max_window)))
        ->capture_default_str();
    cmd->add_option("--horizons", args.horizons, "Bars ahead to forecast, ascending")->capture_default_str();
    cmd->add_option("--hidden", o.hidden, "LSTM hidden units")
        ->check(CLI::Range(1, static_cast<int>(model::max_hidden)))
        ->capture_default_str();
    cmd->add_option("--layers", o.layers, "Stacked LSTM layers")
        ->check(CLI::Range(1, static_cast<int>(model::max_layers)))
        ->capture_default_str();
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
    cmd->add_flag("--force-promote", args.force_promote, "Make the new version champion whatever the gate says");
    add_calibration_options(*cmd, args.calibration, args.calibration_rate);
    add_tracking_uri_option(*cmd, args.tracking_uri);
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_train(args, ctx); });
}

} // namespace btcml::cli
