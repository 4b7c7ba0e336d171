#pragma once
// Training and walk-forward evaluation as library calls: what `btcml train` / `btcml evaluate` print, what the
// scheduler's retrain pipeline runs and what the API triggers. Cancellation is a std::stop_token, checked after
// every epoch (and every evaluation fold): a stopped training ends its tracked run as KILLED.
#include "core/bar.hpp"
#include "features/dataset.hpp"
#include "model/forecaster.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::pipeline {

/// The stored bars of a series between from and to (inclusive, either open); NotFound naming the stored series
/// when there are none.
std::vector<Bar> load_series(store::Store& store, const SeriesKey& key, std::optional<std::int64_t> from,
                             std::optional<std::int64_t> to);

/// Parses `1,6,24` into ascending horizons; UsageError otherwise.
std::vector<int> parse_horizons(const std::string& text);

/// A fresh random run id: 32 hex digits, like MLflow's.
std::string new_run_id();

struct TrainRequest {
    SeriesKey key{"BTCUSD", 3600};
    std::optional<std::int64_t> until; // last bar used (inclusive); all when absent
    features::DatasetSpec spec{48, {1, 6, 24}};
    model::TrainOptions options;
    std::string tracking_uri; // empty: local tracking only
    bool force_promote = false;
    model::CalibrationSettings calibration; // how the served intervals adapt online (stored in model.json)
    std::string source = "btcml train";     // the run's mlflow.source.name tag: who trained it
};

/// Called once the data is split (windows to train on, per epoch, to validate on) and after every epoch.
struct TrainObserver {
    std::function<void(std::size_t train, std::size_t per_epoch, std::size_t validation)> on_start;
    model::EpochCallback on_epoch;
};

struct TrainResult {
    nlohmann::json json; // what `btcml train --json` prints
    std::string text;    // the human-readable report
    int version = 0;
    bool promoted = false;
};

/// Trains on the stored bars of the request's series, scores against the baselines on the held-out test part,
/// publishes the next model version, tracks the run (locally, and in MLflow when tracking_uri is set) and lets the
/// promotion gate decide about the series' champion. A stop requested through `stop` ends training after the
/// current epoch: Conflict, with the run tracked as KILLED. Not thread-safe per Store.
TrainResult train(store::Store& store, const std::filesystem::path& home, const TrainRequest& request,
                  std::stop_token stop = {}, const TrainObserver& observer = {});

/// How `evaluate --retrain-every` refits the network before each fold: cold trains it from scratch with the stored
/// model's hyperparameters; warm continues from the previous fold's weights (the stored model's for the first fold)
/// for a few epochs, as a monthly retrain that fine-tunes the champion would.
enum class Refit { cold, warm };
/// `cold` or `warm`; UsageError naming `option` otherwise.
Refit parse_refit(std::string_view text, std::string_view option);
std::string_view to_string(Refit refit);
/// The defaults, chosen by measurement (docs/forecasting.md, "Walk-forward with monthly refits").
inline constexpr Refit kDefaultRefit = Refit::warm;
inline constexpr int kDefaultRefitEpochs = 2;

struct EvaluateRequest {
    std::string model = "champion"; // a version, or an alias (champion, …) of the series below
    // The series whose registered model the alias belongs to (tracking::Registry::series_model: the only registered
    // model, else BTCUSD 1h, with what is given filled in).
    std::optional<std::string> symbol;
    std::optional<std::int64_t> interval;
    std::int64_t from = 0;          // first forecast origin
    std::int64_t to = 0;            // last target bar (inclusive)
    std::int64_t retrain_every = 0; // bars; 0: the stored model throughout
    Refit refit = kDefaultRefit;
    int refit_epochs = kDefaultRefitEpochs; // at most, per warm refit (cold refits train the stored epochs)
    // How the model's intervals are calibrated; the model's own (model.json calibration.online) when absent.
    std::optional<model::CalibrationMode> calibration;
    std::optional<double> calibration_rate;
    // Adds "per_point" (evaluate::Scoreboard::model_points) for the report's charts; `evaluate --json` leaves it out.
    bool with_points = false;
};

/// Walk-forward scoring of a stored model and the baselines over a period: every forecast reads only bars up to
/// its origin; with retrain_every N everything is refitted on an expanding window every N bars, using only targets
/// known at the fold's start (the network cold or warm, see Refit). With adaptive calibration the model's intervals
/// are replayed walk-forward through the same update as live scoring (model::replay); each fold starts from the
/// state the previous fold handed on (model::handed_on), as a newly published version starts from its
/// predecessor's.
/// Returns what `btcml evaluate --json` prints. A stop ends it between folds
/// (Conflict). `on_fold` hears (fold, training windows, forecasts). Not thread-safe per Store.
nlohmann::json evaluate(store::Store& store, const std::filesystem::path& home, const EvaluateRequest& request,
                        std::stop_token stop = {},
                        const std::function<void(std::size_t, std::size_t, std::size_t)>& on_fold = {});

} // namespace btcml::pipeline
