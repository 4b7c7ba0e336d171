#pragma once
// Online interval calibration: adaptive conformal inference (Gibbs & Candès 2021) in the quantile-tracking form of
// conformal PID control (Angelopoulos, Candès & Tibshirani 2023), on volatility-normalised scores. Each side of a
// horizon's 80% interval keeps a log scale factor of its half-width (the distance from the median); after every
// outcome it grows by rate * (1 - 0.1) when the outcome fell outside that side and shrinks by rate * 0.1 when it did
// not. Whatever the market does, the long-run share of outcomes below the 10% (above the 90%) quantile then differs
// from 10% by at most (|final - initial log scale|) / (rate * forecasts). Scaling the model's own half-width makes the
// score relative to the volatility the model already forecasts. The same update serves evaluate's walk-forward
// replay and live scoring (src/monitor/scoring.cpp), so both give the same intervals for the same outcomes.
#include "evaluate/metrics.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace btcml::model {

/// none: the network's raw quantiles; static_offsets: plus the conformal offsets fitted once on the validation
/// part; adaptive: static offsets, then scaled online by the outcomes as they arrive.
enum class CalibrationMode { none, static_offsets, adaptive };

/// The adaptation rate used unless one is given (see docs/forecasting.md for how it was chosen).
inline constexpr double kDefaultCalibrationRate = 0.02;
/// Bound of a log scale factor: a half-width is never scaled by more than e^10 either way.
inline constexpr double kMaxLogScale = 10;

struct CalibrationSettings {
    CalibrationMode mode = CalibrationMode::adaptive;
    double rate = kDefaultCalibrationRate;

    /// {"mode": "adaptive", "rate": 0.02}
    [[nodiscard]] nlohmann::json to_json() const;
    /// Reads a model card's `calibration.online`; a card without one (made before online calibration) is static.
    /// InvalidInput naming `what` when malformed.
    static CalibrationSettings from_card(const nlohmann::json& card, std::string_view what);
};

/// `none`, `static` or `adaptive`; UsageError naming `option` otherwise.
CalibrationMode parse_calibration_mode(std::string_view text, std::string_view option);
std::string_view to_string(CalibrationMode mode);
/// A rate in (0, 1]; UsageError naming `option` otherwise.
void validate_calibration_rate(double rate, std::string_view option);

/// The online state of one horizon's interval. Plain value; not thread-safe.
struct IntervalState {
    double log_scale_low = 0, log_scale_high = 0; // of the half-widths below and above the median
    std::int64_t updates = 0;
    std::int64_t last_target_time = 0; // of the newest outcome applied (live scoring applies each once)

    friend bool operator==(const IntervalState&, const IntervalState&) = default;
};

/// The forecast with the state applied: each side's distance from the median times e^(its log scale).
[[nodiscard]] evaluate::QuantileForecast apply(const IntervalState& state, const evaluate::QuantileForecast& forecast);

/// The one update, after the outcome of a forecast served with `state` applied whose target bar opened at
/// `target_time`: `below` when the outcome fell under the served 10% quantile, `above` when over the served 90% one.
void update(IntervalState& state, std::int64_t target_time, bool below, bool above, double rate);

/// Walk-forward replay of one horizon over forecasts at ascending origin times (open times of the origin bars):
/// each forecast gets the state holding every outcome whose target bar opened before its origin bar, which is what
/// live scoring has applied when the scheduler's tick forecasts from that bar (it forecasts, then scores the
/// forecasts ending on the new bar). Rewrites `forecasts` to what was served and leaves in `state` what holds after
/// the outcomes known by the last origin, or by `known_before` when later (the outcomes whose target bar opened
/// before it: a successor's first origin, see handed_on). `target_offset`: horizon * interval, in seconds.
void replay(IntervalState& state, std::span<evaluate::QuantileForecast> forecasts,
            std::span<const std::int64_t> origin_times, std::span<const double> actuals, std::int64_t target_offset,
            double rate, std::int64_t known_before = 0);

/// The state a newly published version of a series starts from: its predecessor's scales (the market's recent
/// miscalibration outlives a refit), with its own count of outcomes starting at zero.
[[nodiscard]] IntervalState handed_on(const IntervalState& predecessor);

} // namespace btcml::model
