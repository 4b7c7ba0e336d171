#pragma once
// Collects the forecasts of the model and of every baseline at the same points (one or many walk-forward folds)
// and turns them into the `metrics` object of train and evaluate.
#include "evaluate/baselines.hpp"
#include "evaluate/metrics.hpp"
#include "features/dataset.hpp"

#include <nlohmann/json.hpp>

#include <span>
#include <string>
#include <vector>

namespace btcml::evaluate {

/// Forecasts of one model: [horizon index][point].
using ForecastTable = std::vector<std::vector<QuantileForecast>>;

class Scoreboard {
  public:
    /// `with_model`: whether each add() brings the forecasts of a model besides the baselines.
    Scoreboard(std::vector<int> horizons, bool with_model);

    /// Adds the outcomes at `origins`, the baselines' forecasts there and the model's forecasts for the same
    /// origins (nullptr exactly when the scoreboard has no model).
    void add(const features::FeatureTable& table, const features::Scaler& scaler, const Baselines& baselines,
             std::span<const std::size_t> origins, const ForecastTable* model);

    [[nodiscard]] std::size_t points() const { return outcomes_.empty() ? 0 : outcomes_.front().size(); }

    /// {"h1": {"model": {…}, "naive": {…}, "drift": {…}, "linear": {…}}, "h6": …}; "model" only when one was added.
    [[nodiscard]] nlohmann::json metrics() const;

    /// Per horizon, a plain sentence on whether the model beats naive on pinball loss and on MAE, e.g.
    /// {"h1": "does NOT beat naive on MAE (…), beats naive on pinball (…)"}.
    [[nodiscard]] static nlohmann::json verdicts(const nlohmann::json& metrics);

  private:
    std::vector<int> horizons_;
    std::vector<std::vector<Outcome>> outcomes_; // [horizon index][point]
    bool with_model_;
    std::vector<std::pair<std::string, ForecastTable>> models_; // [model,] naive, drift, linear
};

} // namespace btcml::evaluate
