#pragma once
// Features and datasets: per-bar inputs of one series, windows that never cross a gap, chronological splits with
// an embargo, and a scaler fitted on the training part only. Targets are log returns, never price levels.
#include "core/bar.hpp"

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace btcml::features {

inline constexpr std::size_t feature_count = 8;

/// Column names of the per-bar inputs, in order; recorded in model.json.
extern const std::array<std::string_view, feature_count> feature_names;

using FeatureRows = Eigen::Matrix<double, Eigen::Dynamic, static_cast<int>(feature_count), Eigen::RowMajor>;

/// Per-bar inputs of one series, unscaled. Row i belongs to bar i. The first bar of each gap-free run has no
/// previous close, so its row is never used as an input; it only serves as the base of the next return.
struct FeatureTable {
    std::int64_t interval = 0;
    std::vector<std::int64_t> times;
    std::vector<double> close;
    std::vector<std::size_t> run_start; // index of the first bar of the gap-free run holding bar i
    FeatureRows values;

    [[nodiscard]] std::size_t size() const { return times.size(); }
    /// Bars before i reachable without crossing a gap.
    [[nodiscard]] std::size_t history(std::size_t i) const { return i - run_start[i]; }
    /// log(close[i+h] / close[i]); the caller guarantees that bar i+h is in the same run.
    [[nodiscard]] double log_return(std::size_t i, int h) const;
    /// log(close[i] / close[i-h]), the h-bar return realised at i; the caller guarantees history(i) >= h.
    [[nodiscard]] double previous_return(std::size_t i, int h) const;
};

/// Computes the inputs of ascending bars of one series (a missing bar shows as a time step != interval).
/// Non-finite or non-positive prices and negative or non-finite volumes throw InvalidInput naming the bar's time.
FeatureTable compute_features(std::span<const Bar> bars, std::int64_t interval);

struct DatasetSpec {
    std::size_t window = 48;             // input bars per window
    std::vector<int> horizons{1, 6, 24}; // bars ahead, ascending
    [[nodiscard]] int max_horizon() const { return horizons.back(); }
    /// Throws UsageError for a zero window or empty, non-positive or unsorted horizons.
    void validate() const;
};

/// Bar indices usable as forecast origins with known targets: a full window of inputs, the previous h-bar return
/// for every horizon (the lag diagnostic) and every target, all without crossing a gap. Ascending.
std::vector<std::size_t> target_origins(const FeatureTable& table, const DatasetSpec& spec);

/// As target_origins, but throws InvalidInput with the reason when there is none (too few bars, a horizon
/// longer than the data, gaps everywhere).
std::vector<std::size_t> require_target_origins(const FeatureTable& table, const DatasetSpec& spec);

/// Whether bar i can end an input window (for forecasting, where no target is known yet).
[[nodiscard]] bool can_end_window(const FeatureTable& table, std::size_t i, std::size_t window);

struct SplitFractions {
    double train = 0.70;
    double validation = 0.15; // the test part gets the rest
};

/// Window origins of the three chronological parts. Between parts, an embargo of max(horizon) bars drops the
/// windows whose targets would overlap the targets of the part before: the first origin of a part is at or
/// after the last target time of the part before, so nothing of a later part is learnt earlier.
struct Split {
    std::vector<std::size_t> train, validation, test;
};

/// Splits ascending origins by count; throws InvalidInput when a part would be empty (the test part may be empty
/// only when the fractions leave nothing for it, as when refitting inside a walk-forward evaluation).
Split split_chronological(const FeatureTable& table, std::span<const std::size_t> origins, int embargo_bars,
                          SplitFractions fractions = {});

/// Mean and standard deviation per input feature over the bars that the training windows read, and the standard
/// deviation of the training targets per horizon (networks learn better on unit-scale targets).
struct Scaler {
    std::vector<double> mean, stddev;
    std::vector<double> target_stddev;

    [[nodiscard]] nlohmann::json to_json() const;
    /// Throws InvalidInput naming `what` when the object is malformed.
    static Scaler from_json(const nlohmann::json& j, std::string_view what);
};

Scaler fit_scaler(const FeatureTable& table, std::span<const std::size_t> train_origins, const DatasetSpec& spec);

/// Writes the scaled inputs of the window ending at `origin`: `window` rows (oldest first) of feature_count floats.
void fill_window(const FeatureTable& table, const Scaler& scaler, std::size_t origin, std::size_t window, float* out);

/// SHA-256 of the bars' times and OHLCV (`sha256:` and 64 hex digits): identifies the exact data a model was trained
/// on and the input of a stored prediction; collision-resistant, so no crafted input can pass for another.
std::string hash_bars(std::span<const Bar> bars);

} // namespace btcml::features
