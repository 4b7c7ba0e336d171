#pragma once
// How a served forecast is made (the model plus its online calibration) and how it becomes stored predictions: the one
// mapping shared by the scheduler's forecast task (provenance `scheduled`) and the server's POST /api/v1/predict
// (provenance `client`).
#include "core/bar.hpp"
#include "model/forecaster.hpp"
#include "store/store.hpp"

#include <span>
#include <string>
#include <vector>

namespace btcml::pipeline {

/// The online calibration state of `loaded`'s horizons as stored (zero where never updated); empty unless the
/// model's calibration is adaptive. Not thread-safe per Store.
std::vector<model::IntervalState> interval_states(store::Store& store, const model::LoadedModel& loaded);

/// The forecast the model serves from `bars`: model::forecast_latest with the stored online calibration applied.
/// What the scheduler's tick, the API and `btcml predict` use. Not thread-safe per Store.
model::Forecast served_forecast(store::Store& store, const model::LoadedModel& loaded, std::span<const Bar> bars);

/// One row per horizon of `forecast`, made by model `version` from `bars` (its input window, whose SHA-256 keys
/// identical requests), created now by the process clock. Thread-safe.
std::vector<store::Prediction> prediction_rows(int version, const SeriesKey& key, const model::Forecast& forecast,
                                               std::span<const Bar> bars, const std::string& provenance);

} // namespace btcml::pipeline
