#pragma once
// Reference forecasts every model is compared with on the same points: naive (persistence: zero log return),
// drift (mean training log return times h) and a ridge regression on the last few bars' features. Each forecast's
// median is its point forecast; its 10% and 90% quantiles add the quantiles of its training residuals, so naive
// is the random walk with unconditional quantiles. Two volatility baselines are random walks whose intervals follow
// recent volatility: ewma (RiskMetrics: an EWMA of squared 1-bar returns with lambda 0.94, times sqrt(h), times the
// 10%/90% quantiles of training h-bar returns standardised that way) and rolling (the empirical 10%/90% quantiles of
// the h-bar returns realised in the last 30 days).
#include "evaluate/metrics.hpp"
#include "features/dataset.hpp"

#include <nlohmann/json.hpp>

#include <span>
#include <string_view>
#include <vector>

namespace btcml::evaluate {

/// The 10% and 90% quantiles of a model's training residuals (actual minus point forecast).
struct ResidualBand {
    double low = 0, high = 0;
};

struct LinearModel {
    std::size_t lags = 4; // bars of scaled features read, the most recent last
    double lambda = 0;    // ridge penalty per training sample, chosen on the validation part
    double intercept = 0;
    std::vector<double> weights; // lags * feature_count, oldest bar first
    ResidualBand band;
};

/// RiskMetrics' decay of the EWMA variance for daily data, also used here for hourly bars.
inline constexpr double kEwmaLambda = 0.94;
/// The look-back of the rolling baseline.
inline constexpr std::int64_t kRollingSeconds = 30 * 86'400;

/// The EWMA variance of 1-bar log returns after each bar of the table (the return into bar i enters at i; a gap
/// carries the variance over it). Bar 0's is the first return's square.
std::vector<double> ewma_variance(const features::FeatureTable& table, double lambda = kEwmaLambda);

struct Baselines {
    std::vector<int> horizons;
    double drift_per_bar = 0; // mean 1-bar log return over the bars the training windows read
    std::vector<ResidualBand> naive_band, drift_band;
    std::vector<LinearModel> linear; // per horizon
    // Per horizon: the 10% and 90% quantiles of training h-bar returns / (sqrt(h) * EWMA volatility at the origin).
    // Cards from before the ewma baseline lack them: then the normal distribution's (±1.2816).
    std::vector<ResidualBand> ewma_z;

    [[nodiscard]] QuantileForecast naive(std::size_t horizon_index) const;
    [[nodiscard]] QuantileForecast drift(std::size_t horizon_index) const;
    [[nodiscard]] QuantileForecast linear_forecast(const features::FeatureTable& table, const features::Scaler& scaler,
                                                   std::size_t origin, std::size_t horizon_index) const;

    /// `variance`: ewma_variance() of the same table.
    [[nodiscard]] QuantileForecast ewma(std::span<const double> variance, std::size_t origin,
                                        std::size_t horizon_index) const;
    [[nodiscard]] QuantileForecast rolling(const features::FeatureTable& table, std::size_t origin,
                                           std::size_t horizon_index) const;

    [[nodiscard]] nlohmann::json to_json() const;
    /// Throws InvalidInput naming `what` when the object is malformed.
    static Baselines from_json(const nlohmann::json& j, std::string_view what);
};

/// Fits all of them on the training origins; the ridge penalty is picked by mean squared error on the validation
/// origins (a fixed penalty when there are none).
Baselines fit_baselines(const features::FeatureTable& table, const features::Scaler& scaler,
                        const features::DatasetSpec& spec, std::span<const std::size_t> train,
                        std::span<const std::size_t> validation);

} // namespace btcml::evaluate
