// btcml train: fit the LSTM forecaster and its baselines on a stored series, score them on the held-out test part,
// publish the model as the next version, track the run (locally, and in MLflow when configured) and let the
// promotion gate decide whether it becomes the champion.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "export/mlflow_model.hpp"
#include "model/artifact.hpp"
#include "model/forecaster.hpp"
#include "monitor/drift.hpp"
#include "tracking/registry.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <chrono>
#include <csignal>
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
};

volatile std::sig_atomic_t interrupted = 0;

// While training, Ctrl-C (or SIGTERM) asks to stop after the current epoch, so the run can end as KILLED.
class InterruptGuard {
  public:
    InterruptGuard() : old_int_(std::signal(SIGINT, on_signal)), old_term_(std::signal(SIGTERM, on_signal)) {}
    ~InterruptGuard() {
        std::signal(SIGINT, old_int_);
        std::signal(SIGTERM, old_term_);
    }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

  private:
    static void on_signal(int) { interrupted = 1; }
    void (*old_int_)(int);
    void (*old_term_)(int);
};

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Every finite number of the test metrics as test.<horizon>.<model>.<metric>.
std::vector<store::RunMetric> test_metrics(const nlohmann::json& metrics, std::int64_t timestamp_ms) {
    std::vector<store::RunMetric> out;
    for (const auto& [horizon, models] : metrics.items())
        for (const auto& [name, values] : models.items())
            for (const auto& [key, value] : values.items())
                if (value.is_number())
                    out.push_back(
                        {fmt::format("test.{}.{}.{}", horizon, name, key), value.get<double>(), timestamp_ms, 0, 0});
    return out;
}

store::KeyValues run_params(const TrainArgs& args, const features::DatasetSpec& spec, const nlohmann::json& data) {
    store::KeyValues params{{"symbol", args.symbol},
                            {"interval", args.interval},
                            {"until", args.until.empty() ? "all" : args.until},
                            {"window", std::to_string(spec.window)},
                            {"horizons", args.horizons},
                            {"data_hash", data["hash"].get<std::string>()},
                            {"data_from", data["from"].get<std::string>()},
                            {"data_to", data["to"].get<std::string>()},
                            {"data_bars", data["bars"].dump()}};
    const nlohmann::json hyperparameters = args.options.to_json(); // items() must not outlive it
    for (const auto& [key, value] : hyperparameters.items())
        params.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
    return params;
}

nlohmann::json part_json(const features::FeatureTable& table, const std::vector<std::size_t>& origins) {
    return {{"from", format_iso8601(table.times[origins.front()])},
            {"to", format_iso8601(table.times[origins.back()])},
            {"windows", origins.size()}};
}

nlohmann::json epoch_json(const model::EpochReport& e) {
    return {{"epoch", e.epoch},      {"train_loss", e.train_loss}, {"validation_loss", e.validation_loss},
            {"lr", e.learning_rate}, {"seconds", e.seconds},       {"improved", e.improved}};
}

struct TrainReport {
    nlohmann::json json;
    std::string text;
};

// Training inside an open run: everything but the run's start and end.
TrainReport train_tracked(const TrainArgs& args, Context& ctx, store::Store& store, tracking::Tracker& tracker,
                          std::span<const Bar> bars, const features::FeatureTable& table, const features::Split& split,
                          const features::DatasetSpec& spec, const nlohmann::json& data,
                          std::chrono::steady_clock::time_point started) {
    const SeriesKey key{args.symbol, table.interval};
    const std::string model_name = tracking::series_model_name(key.symbol, format_interval(key.interval));
    const std::string& run_id = tracker.run_id();

    const bool progress = ctx.interactive();
    const auto on_epoch = [&](const model::EpochReport& e) {
        const std::int64_t t = now_ms();
        store::RunData logged;
        logged.metrics = {{"train_loss", e.train_loss, t, e.epoch, 0},
                          {"validation_loss", e.validation_loss, t, e.epoch, 0},
                          {"lr", e.learning_rate, t, e.epoch, 0},
                          {"epoch_seconds", e.seconds, t, e.epoch, 0}};
        tracker.log(std::move(logged));
        if (interrupted)
            throw Conflict(fmt::format("training interrupted after epoch {}: the run ends as KILLED", e.epoch));
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
         {"data", data},
         {"training_range", {{"from", format_iso8601(first_train_input)}, {"to", format_iso8601(last_train_target)}}},
         {"splits", splits},
         {"epochs", epochs},
         {"best_epoch", fitted.trained.best_epoch},
         {"baselines", fitted.baselines.to_json()},
         {"feature_profile", monitor::feature_profile(table, split.train)},
         {"metrics", metrics},
         {"registered_model", model_name}});
    const int version = model::publish(ctx.config.home, card, forecaster.tensors());
    const auto model_dir = model::models_dir(ctx.config.home) / std::to_string(version);

    // The gate runs against the champion of this series, if there is one that still loads.
    tracking::Registry registry(store, ctx.config.home, tracker.summary().value("uri", ""));
    std::optional<model::LoadedModel> champion;
    if (const auto aliases = store.aliases(model_name); aliases.contains("champion"))
        champion = model::load_model(ctx.config.home, std::to_string(aliases.at("champion")));
    const auto gate = tracking::promotion_gate(table, fitted, split.test, champion, args.force_promote);
    store::RunData outcome;
    outcome.metrics = test_metrics(metrics, now_ms());
    outcome.tags = {{"btcml.model_version", std::to_string(version)},
                    {"btcml.gate.decision", gate.promote ? "champion" : "challenger"}};
    outcome.artifacts = {{"btcml/model.json", (model_dir / "model.json").string()},
                         {"btcml/weights.bin", (model_dir / "weights.bin").string()}};
    // The MLflow model (ONNX + MLmodel) becomes the run's `model` artifact, the source of its registry version.
    const auto mlflow_dir = model_dir / "mlflow-model";
    for (const auto& file : exporting::write_mlflow_model(ctx.config.home, version, mlflow_dir, run_id, bars))
        outcome.artifacts.push_back({"model/" + file, (mlflow_dir / file).string()});
    tracker.log(std::move(outcome));
    store::ModelVersionRecord record;
    record.version = version;
    record.model_name = model_name;
    record.run_id = run_id;
    record.created_ms = now_ms();
    registry.add_version(record, gate);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    nlohmann::json out{{"run_id", run_id},
                       {"model_version", version},
                       {"promoted", gate.promote},
                       {"registry", {{"name", model_name}, {"aliases", store.aliases(model_name)}}},
                       {"gate", gate.to_json()},
                       {"symbol", key.symbol},
                       {"interval", format_interval(key.interval)},
                       {"data_hash", card["data"]["hash"]},
                       {"splits", splits},
                       {"epochs", epochs},
                       {"best_epoch", fitted.trained.best_epoch},
                       {"metrics", metrics},
                       {"verdict", verdicts},
                       {"model_dir", model_dir.string()},
                       {"seconds", seconds}};
    std::string text = fmt::format("trained model version {} (run {}) on {} {} in {:.1f}s; {} of {}: {}\n", version,
                                   run_id, key.symbol, format_interval(key.interval), seconds,
                                   gate.promote ? (gate.forced ? "champion (forced)" : "champion") : "challenger",
                                   model_name, gate.reason);
    for (const char* part : {"train", "validation", "test"})
        text += fmt::format("  {:<10} {} .. {}  {} windows\n", part, splits[part]["from"].get<std::string>(),
                            splits[part]["to"].get<std::string>(), splits[part]["windows"].get<std::size_t>());
    text += fmt::format("  best epoch {} of {}\n", fitted.trained.best_epoch, epochs.size());
    text += "\nmetrics on the test part (log returns; mape of price):" + format_metrics_table(metrics, verdicts);
    return {std::move(out), std::move(text)};
}

void run_train(const TrainArgs& args, Context& ctx) {
    const auto started = std::chrono::steady_clock::now();
    const SeriesKey key{args.symbol, parse_interval_arg(args.interval, "--interval")};
    features::DatasetSpec spec{args.window, parse_horizons(args.horizons)};
    spec.validate();
    std::optional<std::int64_t> until;
    if (!args.until.empty()) until = parse_time_arg(args.until, "--until");

    const auto store = ctx.open_store();
    const auto bars = load_series(*store, key, std::nullopt, until);
    const auto table = features::compute_features(bars, key.interval);
    const auto origins = features::require_target_origins(table, spec);
    const auto split = features::split_chronological(table, origins, spec.max_horizon());
    const nlohmann::json data{{"from", format_iso8601(bars.front().time)},
                              {"to", format_iso8601(bars.back().time)},
                              {"bars", bars.size()},
                              {"hash", features::hash_bars(bars)}};

    const std::string model_name = tracking::series_model_name(key.symbol, format_interval(key.interval));
    const std::string run_id = new_run_id();
    const std::string run_name = fmt::format("train-{}-{}", key.symbol, format_iso8601(now_unix()));
    tracking::Tracker tracker(*store, resolve_tracking_uri(ctx, args.tracking_uri));
    store::TrackedRun run;
    run.id = run_id;
    run.experiment = model_name;
    run.name = run_name;
    run.start_ms = now_ms();
    store::RunData initial;
    initial.params = run_params(args, spec, data);
    initial.tags = tracking::standard_tags(run_id, run_name, "btcml train");
    tracker.start_run(std::move(run), initial);
    InterruptGuard guard;
    interrupted = 0;
    TrainReport report;
    try {
        report = train_tracked(args, ctx, *store, tracker, bars, table, split, spec, data, started);
        tracker.end_run(tracking::RunStatus::finished);
    } catch (...) {
        tracker.end_run(interrupted ? tracking::RunStatus::killed : tracking::RunStatus::failed);
        throw;
    }
    report.json["tracking"] = tracker.summary();
    if (ctx.json) {
        print_json(report.json);
        return;
    }
    std::cout << report.text;
    if (const auto& t = report.json["tracking"]; t.value("backend", "") == "mlflow")
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
    add_tracking_uri_option(*cmd, args.tracking_uri);
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_train(args, ctx); });
}

} // namespace btcml::cli
