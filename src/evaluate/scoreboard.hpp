#pragma once
// Collects the forecasts of the model and of every baseline at the same points (one or many walk-forward folds)
// and turns them into the `metrics` object of train and evaluate.
#include "evaluate/baselines.hpp"
#include "evaluate/metrics.hpp"
#include "features/dataset.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <span>
#include <string>
#include <vector>

namespace btcml::evaluate {

/// The baselines of every scoreboard, in the order of its metrics.
inline constexpr std::array<const char*, 5> baseline_names{"naive", "drift", "linear", "ewma", "rolling"};

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

    /// {"h1": {"model": {…}, "naive": {…}, "drift": {…}, "linear": {…}, "ewma": {…}, "rolling": {…}}, "h6": …};
    /// "model" only when one was added, with "dm_pinball_pvalue": {baseline: p} (Diebold–Mariano on the mean
    /// pinball loss against each baseline).
    [[nodiscard]] nlohmann::json metrics() const;

    /// Per horizon, a plain sentence on whether the model beats naive on pinball loss and on MAE and which
    /// baselines beat it on pinball, e.g. {"h1": "model does NOT beat naive on mae (…); beats naive on pinball (…);
    /// a SIMPLE BASELINE BEATS THE MODEL on pinball: ewma (…)"}.
    [[nodiscard]] static nlohmann::json verdicts(const nlohmann::json& metrics);

    /// Per horizon, every point with the model's forecast there, as columns: {"h1": {"time": […], "base_price": […],
    /// "actual": […], "q10": […], "q50": […], "q90": […]}} (log returns); for the report's charts. Needs a model.
    [[nodiscard]] nlohmann::json model_points() const;

  private:
    std::vector<int> horizons_;
    std::vector<std::vector<Outcome>> outcomes_; // [horizon index][point]
    bool with_model_;
    std::vector<std::pair<std::string, ForecastTable>> models_; // [model,] then baseline_names
};

} // namespace btcml::evaluate
