#pragma once
// The forecaster: features + scaler + LSTM network + quantile post-processing, and how it is trained (mini-batch
// Adam on the pinball loss of unit-scaled log-return targets, learning-rate halving on a plateau, early stopping
// on the validation loss with the best weights restored).
#include "core/bar.hpp"
#include "evaluate/scoreboard.hpp"
#include "features/dataset.hpp"
#include "model/artifact.hpp"
#include "model/calibration.hpp"
#include "model/lstm.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace btcml::model {

class Forecaster {
  public:
    /// `interval_offsets`: per horizon, how far (log return) to move the 10% and 90% quantiles outwards; none
    /// means zero.
    Forecaster(features::DatasetSpec spec, features::Scaler scaler, LstmNetwork network,
               std::vector<double> interval_offsets = {});

    /// Conformalised quantile regression: sets each horizon's interval offset so that the 10-90% interval covers
    /// 80% of the given outcomes (the validation part), correcting a network whose quantiles are too narrow or wide.
    void calibrate(const features::FeatureTable& table, std::span<const std::size_t> origins);

    /// Quantile forecasts of log returns at each origin: [horizon index][origin], non-crossing; without the
    /// interval offsets when `with_offsets` is false (calibration `none`).
    [[nodiscard]] evaluate::ForecastTable
    forecast(const features::FeatureTable& table, std::span<const std::size_t> origins, bool with_offsets = true) const;

    [[nodiscard]] const features::DatasetSpec& spec() const { return spec_; }
    [[nodiscard]] const features::Scaler& scaler() const { return scaler_; }
    [[nodiscard]] const LstmNetwork& network() const { return network_; }

    [[nodiscard]] const std::vector<double>& interval_offsets() const { return interval_offsets_; }
    /// How its intervals adapt online once served (model.json `calibration.online`).
    [[nodiscard]] const CalibrationSettings& online() const { return online_; }
    void set_online(const CalibrationSettings& online) { online_ = online; }

    /// The model.json fields that describe how to rebuild it: architecture, features, window, horizons,
    /// quantiles, scaler, calibration.
    [[nodiscard]] nlohmann::json describe() const;
    /// The network's tensors, named like PyTorch's nn.LSTM (see lstm.hpp).
    [[nodiscard]] std::vector<Tensor> tensors() const;
    /// Rebuilds a stored forecaster; throws InvalidInput naming the file when model.json and weights.bin do not
    /// describe the same network.
    static Forecaster from_artifact(const Artifact& artifact, const std::string& what);

  private:
    features::DatasetSpec spec_;
    features::Scaler scaler_;
    LstmNetwork network_;
    std::vector<double> interval_offsets_;
    CalibrationSettings online_;
};

struct TrainOptions {
    int hidden = 64;
    int layers = 2;
    float dropout = 0.1F;
    int batch_size = 64;
    int epochs = 8;
    float learning_rate = 1e-3F;
    int patience = 3;
    std::size_t samples_per_epoch = 4096; // training windows drawn per epoch; 0: all of them
    std::uint64_t seed = 42;

    [[nodiscard]] nlohmann::json to_json() const;
    static TrainOptions from_json(const nlohmann::json& j);
};

struct EpochReport {
    int epoch = 0;
    double train_loss = 0, validation_loss = 0; // pinball loss of unit-scaled targets
    double learning_rate = 0;
    double seconds = 0;
    bool improved = false;
};

using EpochCallback = std::function<void(const EpochReport&)>;

struct TrainedForecaster {
    Forecaster forecaster;
    std::vector<EpochReport> epochs;
    int best_epoch = 0;
};

/// Trains on the training origins, stopping early on the validation origins' loss, then calibrates the intervals
/// on the validation origins. From `start`'s weights when given (a warm refit: its architecture must be the
/// options'), which count as epoch 0: training keeps them unless an epoch improves the validation loss.
TrainedForecaster train_forecaster(const features::FeatureTable& table, const features::DatasetSpec& spec,
                                   const features::Scaler& scaler, std::span<const std::size_t> train,
                                   std::span<const std::size_t> validation, const TrainOptions& options,
                                   const EpochCallback& on_epoch = {}, const LstmNetwork* start = nullptr);

/// Everything fitted on one training part: the scaler, the baselines and the network.
struct FittedModels {
    features::Scaler scaler;
    evaluate::Baselines baselines;
    TrainedForecaster trained;
};

/// Fits the scaler on the training origins, then the baselines and the network (validation picks the ridge
/// penalty and stops training); the network from `start`'s weights when given (see train_forecaster).
FittedModels fit_models(const features::FeatureTable& table, const features::DatasetSpec& spec,
                        std::span<const std::size_t> train, std::span<const std::size_t> validation,
                        const TrainOptions& options, const EpochCallback& on_epoch = {},
                        const LstmNetwork* start = nullptr);

/// A stored model ready to forecast.
struct LoadedModel {
    int version = 0;
    nlohmann::json card;
    Forecaster forecaster;
    evaluate::Baselines baselines;
    SeriesKey series;
};

/// Loads `spec` (a version number) from `<home>/models`; NotFound for an unknown version, InvalidInput
/// naming the file for a corrupt one.
LoadedModel load_model(const std::filesystem::path& home, const std::string& spec);

/// One forecast from the latest bars: what predict prints and the API serves.
struct HorizonForecast {
    int horizon = 0;
    std::int64_t target_time = 0;           // open time of the bar whose close is forecast
    double price = 0, lower = 0, upper = 0; // median and 80% interval
    double log_return = 0;                  // median
};

struct Forecast {
    std::int64_t as_of = 0; // open time of the last input bar
    std::vector<HorizonForecast> horizons;
};

/// Forecasts from the last bar of `bars` (ascending, one series); throws InvalidInput when the last `window`
/// bars (plus the one before, for the first return) are not gap-free. `states`, when not empty (one per horizon),
/// is the online calibration applied to the intervals.
Forecast forecast_latest(const Forecaster& forecaster, std::span<const Bar> bars, std::int64_t interval,
                         std::span<const IntervalState> states = {});

/// {"model_version", "as_of", "symbol", "interval", "forecasts": [{"horizon", "target_time", "price", "lower",
/// "upper", "log_return"}]}
nlohmann::json to_json(const Forecast& forecast, int model_version, const std::string& symbol, std::int64_t interval);

} // namespace btcml::model
