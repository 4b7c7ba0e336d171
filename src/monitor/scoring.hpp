#pragma once
// Live scoring of stored forecasts once their target bar is stored, and the rolling live metrics computed from the
// scores (see src/monitor/README.md and docs/monitoring.md).
#include "core/bar.hpp"
#include "core/config.hpp"
#include "evaluate/metrics.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace btcml::monitor {

/// The fixed windows of the live metrics: 24 h and 7 d; a third one is configurable (`live_window`).
inline constexpr std::int64_t kDaySeconds = 86'400;
inline constexpr std::int64_t kWeekSeconds = 7 * kDaySeconds;
/// How many latest bars the drift of the input features is measured over by default (`drift_bars`).
inline constexpr std::int64_t kDefaultDriftBars = 500;

/// Settings of the monitor: config keys `live_window` (an interval such as 30d; default 30d) and `drift_bars`
/// (default 500).
struct MonitorOptions {
    std::int64_t live_window_s = 30 * kDaySeconds;
    std::int64_t drift_bars = kDefaultDriftBars;

    /// The windows live metrics are computed over, ascending, without duplicates.
    [[nodiscard]] std::vector<std::int64_t> windows() const;
    /// Reads the config keys; UsageError naming the key when one is malformed.
    static MonitorOptions from_config(const Config& config);
};

/// What one scoring pass did.
struct ScoreSummary {
    std::int64_t scored = 0;                // forecasts scored by this pass
    std::vector<store::LiveMetric> metrics; // the live metrics it appended (scheduled forecasts only)
    std::vector<store::FeatureDrift> drift; // the champion's feature drift it appended (empty: no profile)
};

/// Scores one matured forecast (its `realised` set). In log returns from the origin close (price / exp(log_return)):
/// realised = log(realised / origin), error = realised − median, pinball = the mean of the pinball losses of the
/// 0.1/0.5/0.9 quantiles (lower, median, upper), inside = lower ≤ realised close ≤ upper, direction hit = the signs
/// agree (absent when either is 0). `baseline`, the unconditional-quantile forecast of the model's horizon, gives
/// baseline_pinball.
store::PredictionScore score_prediction(const store::MaturedPrediction& matured,
                                        const std::optional<evaluate::QuantileForecast>& baseline,
                                        std::int64_t scored_ms);

/// Live metrics of `key` over each window as of `now_ms`, per model version and horizon, from scores of scheduled
/// forecasts: a score counts in a window when its target bar closed within it (target time + interval in
/// (now − window, now]). Groups without scores are left out.
std::vector<store::LiveMetric> live_metrics(std::span<const store::PredictionScore> scores, const SeriesKey& key,
                                            std::span<const std::int64_t> windows, std::int64_t now_ms);

/// Scores every stored forecast of `key` whose target bar is now stored and that was not scored before (scheduled
/// and client ones alike), appends the live metrics of the scheduled ones and the drift of the series' champion's
/// input features as of `now_ms` to their history tables. Idempotent: forecasts are scored once, also across
/// processes. Reads model cards from `store.home()`. Not thread-safe per Store.
ScoreSummary score_matured(store::Store& store, const SeriesKey& key, std::int64_t now_ms,
                           const MonitorOptions& options);
/// The same with the default options.
ScoreSummary score_matured(store::Store& store, const SeriesKey& key, std::int64_t now_ms);

} // namespace btcml::monitor
