#include "pipeline/train.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "evaluate/scoreboard.hpp"
#include "export/mlflow_model.hpp"
#include "model/artifact.hpp"
#include "monitor/drift.hpp"
#include "pipeline/forecast.hpp"
#include "tracking/registry.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <random>
#include <sstream>

namespace btcml::pipeline {
namespace {

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

std::string horizons_text(const std::vector<int>& horizons) { return fmt::format("{}", fmt::join(horizons, ",")); }

store::KeyValues run_params(const TrainRequest& request, const nlohmann::json& data) {
    store::KeyValues params{{"symbol", request.key.symbol},
                            {"interval", format_interval(request.key.interval)},
                            {"until", request.until ? format_iso8601(*request.until) : "all"},
                            {"window", std::to_string(request.spec.window)},
                            {"horizons", horizons_text(request.spec.horizons)},
                            {"data_hash", data["hash"].get<std::string>()},
                            {"data_from", data["from"].get<std::string>()},
                            {"data_to", data["to"].get<std::string>()},
                            {"data_bars", data["bars"].dump()}};
    const nlohmann::json hyperparameters = request.options.to_json(); // items() must not outlive it
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

// A new version's online calibration starts from the series' champion's state (model::handed_on), per horizon
// they share; evaluate --retrain-every replays the same hand-on between folds.
void hand_on_calibration(store::Store& store, const model::LoadedModel& predecessor, int version,
                         const std::vector<int>& horizons) {
    const auto states = interval_states(store, predecessor); // empty unless the predecessor is adaptive
    const auto& predecessor_horizons = predecessor.forecaster.spec().horizons;
    std::vector<store::CalibrationStateRow> rows;
    for (std::size_t k = 0; k < states.size(); ++k) {
        const int horizon = predecessor_horizons[k];
        const auto start = model::handed_on(states[k]);
        if (start == model::IntervalState{} || std::find(horizons.begin(), horizons.end(), horizon) == horizons.end())
            continue;
        rows.push_back({version, horizon, start.log_scale_low, start.log_scale_high, start.updates,
                        start.last_target_time, now_ms()});
    }
    if (!rows.empty()) store.save_calibration_states(rows);
}

// Training inside an open run: everything but the run's start and end.
TrainResult train_tracked(const TrainRequest& request, const std::filesystem::path& home, store::Store& store,
                          tracking::Tracker& tracker, std::span<const Bar> bars, const features::FeatureTable& table,
                          const features::Split& split, const nlohmann::json& data, std::stop_token stop,
                          const TrainObserver& observer, std::chrono::steady_clock::time_point started) {
    const auto& key = request.key;
    const auto& spec = request.spec;
    const auto& options = request.options;
    const std::string model_name = tracking::series_model_name(key.symbol, format_interval(key.interval));
    const std::string& run_id = tracker.run_id();

    const auto on_epoch = [&](const model::EpochReport& e) {
        const std::int64_t t = now_ms();
        store::RunData logged;
        logged.metrics = {{"train_loss", e.train_loss, t, e.epoch, 0},
                          {"validation_loss", e.validation_loss, t, e.epoch, 0},
                          {"lr", e.learning_rate, t, e.epoch, 0},
                          {"epoch_seconds", e.seconds, t, e.epoch, 0}};
        tracker.log(std::move(logged));
        if (stop.stop_requested())
            throw Conflict(fmt::format("training interrupted after epoch {}: the run ends as KILLED", e.epoch));
        if (observer.on_epoch) observer.on_epoch(e);
    };
    if (observer.on_start)
        observer.on_start(split.train.size(),
                          options.samples_per_epoch ? std::min(options.samples_per_epoch, split.train.size())
                                                    : split.train.size(),
                          split.validation.size());
    auto fitted = model::fit_models(table, spec, split.train, split.validation, options, on_epoch);
    fitted.trained.forecaster.set_online(request.calibration);
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
         {"seed", options.seed},
         {"hyperparameters", options.to_json()},
         {"data", data},
         {"training_range", {{"from", format_iso8601(first_train_input)}, {"to", format_iso8601(last_train_target)}}},
         {"splits", splits},
         {"epochs", epochs},
         {"best_epoch", fitted.trained.best_epoch},
         {"baselines", fitted.baselines.to_json()},
         {"feature_profile", monitor::feature_profile(table, split.train)},
         {"metrics", metrics},
         {"registered_model", model_name}});
    const int version = model::publish(home, card, forecaster.tensors());
    const auto model_dir = model::models_dir(home) / std::to_string(version);

    // The gate runs against the champion of this series, if there is one that still loads.
    tracking::Registry registry(store, home, tracker.summary().value("uri", ""));
    std::optional<model::LoadedModel> champion;
    if (const auto aliases = store.aliases(model_name); aliases.contains("champion"))
        champion = model::load_model(home, std::to_string(aliases.at("champion")));
    const auto gate = tracking::promotion_gate(table, fitted, split.test, champion, request.force_promote);
    store::RunData outcome;
    outcome.metrics = test_metrics(metrics, now_ms());
    outcome.tags = {{"btcml.model_version", std::to_string(version)},
                    {"btcml.gate.decision", gate.promote ? "champion" : "challenger"}};
    outcome.artifacts = {{"btcml/model.json", (model_dir / "model.json").string()},
                         {"btcml/weights.bin", (model_dir / "weights.bin").string()}};
    // The MLflow model (ONNX + MLmodel) becomes the run's `model` artifact, the source of its registry version.
    const auto mlflow_dir = model_dir / "mlflow-model";
    for (const auto& file : exporting::write_mlflow_model(home, version, mlflow_dir, run_id, bars))
        outcome.artifacts.push_back({"model/" + file, (mlflow_dir / file).string()});
    tracker.log(std::move(outcome));
    store::ModelVersionRecord record;
    record.version = version;
    record.model_name = model_name;
    record.run_id = run_id;
    record.created_ms = now_ms();
    registry.add_version(record, gate);
    if (champion && request.calibration.mode == model::CalibrationMode::adaptive)
        hand_on_calibration(store, *champion, version, spec.horizons);
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
    return {std::move(out), std::move(text), version, gate.promote};
}

} // namespace

std::vector<Bar> load_series(store::Store& store, const SeriesKey& key, std::optional<std::int64_t> from,
                             std::optional<std::int64_t> to) {
    auto bars = store.load_bars({key, from, to, {}});
    if (!bars.empty()) return bars;
    std::string stored;
    for (const auto& s : store.list_series())
        stored += fmt::format("{}{} {}", stored.empty() ? "" : ", ", s.key.symbol, format_interval(s.key.interval));
    throw NotFound(fmt::format("no {} {} bars stored{}; stored series: {}", key.symbol, format_interval(key.interval),
                               from || to ? " in the requested period" : "",
                               stored.empty() ? "none (run btcml ingest first)" : stored));
}

std::vector<int> parse_horizons(const std::string& text) {
    std::vector<int> horizons;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        int h = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), h);
        if (ec != std::errc{} || end != item.data() + item.size())
            throw UsageError(fmt::format("--horizons: '{}' is not a bar count (expected e.g. 1,6,24)", item));
        horizons.push_back(h);
    }
    features::DatasetSpec{1, horizons}.validate();
    return horizons;
}

std::string new_run_id() {
    std::random_device device;
    std::mt19937_64 rng((static_cast<std::uint64_t>(device()) << 32) ^ device() ^
                        static_cast<std::uint64_t>(now_unix()));
    return fmt::format("{:016x}{:016x}", rng(), rng());
}

TrainResult train(store::Store& store, const std::filesystem::path& home, const TrainRequest& request,
                  std::stop_token stop, const TrainObserver& observer) {
    const auto started = std::chrono::steady_clock::now();
    const auto& key = request.key;
    request.spec.validate();
    const auto bars = load_series(store, key, std::nullopt, request.until);
    const auto table = features::compute_features(bars, key.interval);
    const auto origins = features::require_target_origins(table, request.spec);
    const auto split = features::split_chronological(table, origins, request.spec.max_horizon());
    const nlohmann::json data{{"from", format_iso8601(bars.front().time)},
                              {"to", format_iso8601(bars.back().time)},
                              {"bars", bars.size()},
                              {"hash", features::hash_bars(bars)}};

    const std::string model_name = tracking::series_model_name(key.symbol, format_interval(key.interval));
    const std::string run_id = new_run_id();
    const std::string run_name = fmt::format("train-{}-{}", key.symbol, format_iso8601(now_unix()));
    tracking::Tracker tracker(store, request.tracking_uri);
    store::TrackedRun run;
    run.id = run_id;
    run.experiment = model_name;
    run.name = run_name;
    run.start_ms = now_ms();
    store::RunData initial;
    initial.params = run_params(request, data);
    initial.tags = tracking::standard_tags(run_id, run_name, request.source);
    tracker.start_run(std::move(run), initial);
    TrainResult result;
    try {
        result = train_tracked(request, home, store, tracker, bars, table, split, data, stop, observer, started);
        tracker.end_run(tracking::RunStatus::finished);
    } catch (...) {
        tracker.end_run(stop.stop_requested() ? tracking::RunStatus::killed : tracking::RunStatus::failed);
        throw;
    }
    result.json["tracking"] = tracker.summary();
    return result;
}

Refit parse_refit(std::string_view text, std::string_view option) {
    if (text == "cold") return Refit::cold;
    if (text == "warm") return Refit::warm;
    throw UsageError(fmt::format("{}: '{}' is not a refit (cold or warm)", option, text));
}

std::string_view to_string(Refit refit) { return refit == Refit::cold ? "cold" : "warm"; }

nlohmann::json evaluate(store::Store& store, const std::filesystem::path& home, const EvaluateRequest& request,
                        std::stop_token stop,
                        const std::function<void(std::size_t, std::size_t, std::size_t)>& on_fold) {
    const auto started = std::chrono::steady_clock::now();
    const std::int64_t from = request.from;
    const std::int64_t to = request.to;
    if (to <= from) throw UsageError("--to must be after --from");
    if (request.retrain_every < 0) throw UsageError("--retrain-every must be a positive bar count (0: never)");
    if (request.refit_epochs < 1) throw UsageError("--refit-epochs must be at least 1");
    // A version number loads as is; `champion` (or another alias) is the series' registered model's alias.
    std::string version = request.model;
    if (version.empty() ||
        !std::all_of(version.begin(), version.end(), [](unsigned char c) { return std::isdigit(c); })) {
        tracking::Registry registry(store, home, "");
        version =
            std::to_string(registry.resolve(registry.series_model(request.symbol, request.interval), request.model));
    }
    const model::LoadedModel loaded = model::load_model(home, version);
    const auto& spec = loaded.forecaster.spec();
    const std::int64_t interval = loaded.series.interval;
    const std::int64_t reach = spec.max_horizon() * interval;

    const auto bars = load_series(store, loaded.series, std::nullopt, to);
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

    model::CalibrationSettings calibration = loaded.forecaster.online();
    if (request.calibration) calibration.mode = *request.calibration;
    if (request.calibration_rate) calibration.rate = *request.calibration_rate;
    model::validate_calibration_rate(calibration.rate, "--calibration-rate");
    std::vector<model::IntervalState> states(spec.horizons.size());
    // The intervals serving would have given: the model's forecasts, calibrated as requested, from the state the
    // previous fold handed on (fresh for the first). `known_before`: the next fold's first origin, if any.
    const auto served = [&](const model::Forecaster& forecaster, std::span<const std::size_t> points,
                            std::int64_t known_before) {
        auto forecasts = forecaster.forecast(table, points, calibration.mode != model::CalibrationMode::none);
        if (calibration.mode != model::CalibrationMode::adaptive) return forecasts;
        std::vector<std::int64_t> times;
        for (const std::size_t o : points)
            times.push_back(table.times[o]);
        for (std::size_t k = 0; k < spec.horizons.size(); ++k) {
            std::vector<double> actuals;
            for (const std::size_t o : points)
                actuals.push_back(table.log_return(o, spec.horizons[k]));
            states[k] = model::handed_on(states[k]);
            model::replay(states[k], forecasts[k], times, actuals, spec.horizons[k] * interval, calibration.rate,
                          known_before);
        }
        return forecasts;
    };
    evaluate::Scoreboard board(spec.horizons, true);
    std::size_t folds = 0;
    bool overlaps_training = false;
    const auto trained_to = parse_time(loaded.card.value("/training_range/to"_json_pointer, std::string()));
    nlohmann::json refit_json;
    if (request.retrain_every == 0) {
        const auto forecasts = served(loaded.forecaster, origins, 0);
        board.add(table, loaded.forecaster.scaler(), loaded.baselines, origins, &forecasts);
        folds = 1;
        overlaps_training = trained_to && from < *trained_to;
    } else {
        auto options = model::TrainOptions::from_json(loaded.card.at("hyperparameters"));
        const bool warm = request.refit == Refit::warm;
        if (warm) options.epochs = request.refit_epochs;
        refit_json = {{"mode", to_string(request.refit)}, {"epochs", options.epochs}};
        // A warm first fold continues from the stored network: optimistic when that saw the fold's targets.
        overlaps_training = warm && trained_to && table.times[origins.front()] < *trained_to;
        std::optional<model::LstmNetwork> previous;
        if (warm) previous = loaded.forecaster.network();
        const std::int64_t fold_span = request.retrain_every * interval;
        for (auto begin = origins.begin(); begin != origins.end();) {
            if (stop.stop_requested()) throw Conflict(fmt::format("evaluation stopped after {} fold(s)", folds));
            const std::int64_t fold_start = table.times[*begin];
            const auto end = std::find_if(begin, origins.end(),
                                          [&](std::size_t o) { return table.times[o] >= fold_start + fold_span; });
            std::vector<std::size_t> known; // targets realised by the fold's first origin
            for (const std::size_t o : all)
                if (table.times[o] + reach <= fold_start) known.push_back(o);
            const auto split = features::split_chronological(table, known, spec.max_horizon(), {0.85, 0.15});
            const auto fitted = model::fit_models(table, spec, split.train, split.validation, options, {},
                                                  previous ? &*previous : nullptr);
            if (warm) previous = fitted.trained.forecaster.network();
            const std::vector<std::size_t> fold(begin, end);
            const auto forecasts =
                served(fitted.trained.forecaster, fold, end == origins.end() ? 0 : table.times[*end]);
            board.add(table, fitted.scaler, fitted.baselines, fold, &forecasts);
            ++folds;
            if (on_fold) on_fold(folds, split.train.size(), fold.size());
            begin = end;
        }
    }
    if (overlaps_training)
        log::warn("the evaluated period overlaps the model's training data: these numbers are optimistic",
                  {{"model.version", loaded.version}});
    const auto metrics = board.metrics();
    nlohmann::json calibration_json = calibration.to_json();
    if (calibration.mode == model::CalibrationMode::adaptive)
        for (std::size_t k = 0; k < spec.horizons.size(); ++k)
            calibration_json["final_state"][fmt::format("h{}", spec.horizons[k])] = {
                {"log_scale_low", states[k].log_scale_low},
                {"log_scale_high", states[k].log_scale_high},
                {"updates", states[k].updates},
                {"last_target_time", states[k].last_target_time}};
    nlohmann::json out{{"model_version", loaded.version},
                       {"symbol", loaded.series.symbol},
                       {"interval", format_interval(interval)},
                       {"from", format_iso8601(table.times[origins.front()])},
                       {"to", format_iso8601(table.times[origins.back()])},
                       {"retrain_every", request.retrain_every},
                       {"refit", refit_json},
                       {"calibration", calibration_json},
                       {"folds", folds},
                       {"points", board.points()},
                       {"overlaps_training", overlaps_training},
                       {"metrics", metrics},
                       {"verdict", evaluate::Scoreboard::verdicts(metrics)},
                       {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
    if (request.with_points) out["per_point"] = board.model_points();
    return out;
}

} // namespace btcml::pipeline
