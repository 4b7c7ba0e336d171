#pragma once
// How a forecast becomes stored predictions: the one mapping shared by the scheduler's forecast task (provenance
// `scheduled`) and the server's POST /api/v1/predict (provenance `client`).
#include "core/bar.hpp"
#include "model/forecaster.hpp"
#include "store/store.hpp"

#include <span>
#include <string>
#include <vector>

namespace btcml::pipeline {

/// One row per horizon of `forecast`, made by model `version` from `bars` (its input window, whose SHA-256 keys
/// identical requests), created now by the process clock. Thread-safe.
std::vector<store::Prediction> prediction_rows(int version, const SeriesKey& key, const model::Forecast& forecast,
                                               std::span<const Bar> bars, const std::string& provenance);

} // namespace btcml::pipeline
