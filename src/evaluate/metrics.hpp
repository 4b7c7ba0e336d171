#pragma once
// Forecast metrics: point error against the naive forecast, direction with a confidence interval, the
// Diebold–Mariano test, quantile (pinball) loss, interval coverage and a lagged-copy diagnostic.
#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace btcml::evaluate {

/// The quantile levels every model forecasts.
inline constexpr std::array<double, 3> quantile_levels{0.1, 0.5, 0.9};

/// One forecast of an h-bar log return: the 10%, 50% and 90% quantiles (never crossing).
struct QuantileForecast {
    double q10 = 0, q50 = 0, q90 = 0;
};

/// Sorts the three quantiles so that they never cross.
QuantileForecast non_crossing(QuantileForecast f);

/// What happened at one forecast point.
struct Outcome {
    double actual = 0;     // realised h-bar log return, log(close[t+h] / close[t])
    double previous = 0;   // the h-bar log return realised at the origin, log(close[t] / close[t-h])
    double base_price = 0; // close[t]
    std::int64_t time = 0; // open time of the origin bar t
};

/// The length of the windows whose 80% coverage is reported separately (Metrics::coverage_windows).
inline constexpr std::int64_t kCoverageWindowSeconds = 30 * 86'400;

struct Metrics {
    std::size_t count = 0;
    double mae = 0, rmse = 0; // of the median's log return
    double mape = 0;          // of the median's price, in percent
    double mase = 0;          // MAE / naive MAE on the same points
    double u2 = 0;            // Theil's U2: RMSE / naive RMSE
    std::optional<double> direction_accuracy, direction_ci_low, direction_ci_high;
    std::optional<double> dm_pvalue; // Diebold–Mariano against naive; absent for naive itself
    double coverage_80 = 0, interval_width = 0, pinball = 0;
    double coverage_ci_low = 0, coverage_ci_high = 0; // Wilson 95% interval of coverage_80
    // The calibration table: the share of outcomes below each quantile (each should be near its level).
    double below_q10 = 0, below_q50 = 0, below_q90 = 0;
    // Consecutive 30-day windows of origins from the first one (only whole windows), and the share of them whose
    // 80% coverage lies within [0.70, 0.90]; absent without a whole window.
    std::size_t coverage_windows = 0;
    std::optional<double> coverage_windows_within;
    std::optional<double> lag_correlation, target_correlation;
    bool tracks_previous = false;
};

enum class Reference { naive, other };

/// Scores forecasts of horizon `horizon` bars against outcomes (same length, at least one point). `reference`
/// says whether these are the naive forecasts themselves, which have no Diebold–Mariano test against naive.
Metrics compute_metrics(std::span<const QuantileForecast> forecasts, std::span<const Outcome> outcomes, int horizon,
                        Reference reference);

/// Keys exactly as in the `metrics` object of train and evaluate; missing values are null.
nlohmann::json to_json(const Metrics& m);

// Building blocks, exposed for tests.

struct Interval {
    double low = 0, high = 0;
};
/// Wilson score interval of a binomial proportion (95% by default).
Interval wilson_interval(std::size_t successes, std::size_t trials, double z = 1.959963984540054);

/// Pinball (quantile) loss of quantile forecast q at level tau for outcome y.
double pinball_loss(double y, double q, double tau);

/// The mean pinball loss of the three quantiles of each forecast (same length as outcomes).
std::vector<double> pinball_losses(std::span<const QuantileForecast> forecasts, std::span<const Outcome> outcomes);

/// Empirical quantile with linear interpolation between order statistics (R type 7); values need not be sorted.
double empirical_quantile(std::vector<double> values, double p);

/// CDF of Student's t distribution with df > 0 degrees of freedom (Boost.Math).
double student_t_cdf(double t, double df);

/// Two-sided p-value of the Diebold–Mariano test that two loss series have equal mean, with the Newey–West
/// variance over horizon-1 lags and the Harvey–Leybourne–Newbold small-sample correction (t with n-1 df).
/// Nothing when there are fewer than two points. Identical losses give 1.
std::optional<double> diebold_mariano_pvalue(std::span<const double> loss_a, std::span<const double> loss_b,
                                             int horizon);

/// Pearson correlation; nothing when either series is constant or there are fewer than two points.
std::optional<double> correlation(std::span<const double> x, std::span<const double> y);

} // namespace btcml::evaluate
