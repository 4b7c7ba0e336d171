#pragma once
// Drift of a model's input features: the training distribution of each feature as quantile bins (saved in
// model.json as `feature_profile`), compared with the latest bars by the population stability index (PSI).
#include "core/bar.hpp"
#include "features/dataset.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace btcml::monitor {

/// Bins per feature in a profile: deciles of the training values.
inline constexpr std::size_t kProfileBins = 10;

/// The `feature_profile` of a model card: per input feature (features::feature_names, in order) the 9 inner edges
/// of its training deciles and the share of training rows in each of the 10 bins (bin i holds values v with
/// edges[i-1] < v <= edges[i]). `rows` are the table's rows the model trained on (its training origins).
/// InvalidInput when `rows` is empty.
nlohmann::json feature_profile(const features::FeatureTable& table, std::span<const std::size_t> rows);

/// The share of `values` in each bin that `edges` (ascending inner edges) delimit, as feature_profile bins them.
std::vector<double> bin_shares(std::span<const double> edges, std::span<const double> values);

/// PSI = Σ (actual − expected) · ln(actual / expected) over the bins, with every share floored at 1e-4 so that an
/// empty bin counts as rare rather than infinite. Same length required. Below 0.1 stable, 0.1 to 0.25 moderate
/// shift, above 0.25 a significant shift (docs/monitoring.md).
double population_stability_index(std::span<const double> expected, std::span<const double> actual);

/// PSI per feature of the latest `bars` bars of `key` against the training profile of the series' champion
/// (alias `champion` of btcml-SYMBOL-INTERVAL, card read from store.home()). Empty when the series has no
/// champion, its card has no profile, or fewer than 2 usable rows are stored. Not thread-safe per Store.
std::vector<store::FeatureDrift> measure_drift(store::Store& store, const SeriesKey& key, std::int64_t bars,
                                               std::int64_t now_ms);

} // namespace btcml::monitor
