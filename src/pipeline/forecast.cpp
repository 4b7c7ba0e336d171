#include "pipeline/forecast.hpp"

#include "core/time.hpp"
#include "features/dataset.hpp"

#include <algorithm>

namespace btcml::pipeline {

std::vector<model::IntervalState> interval_states(store::Store& store, const model::LoadedModel& loaded) {
    if (loaded.forecaster.online().mode != model::CalibrationMode::adaptive) return {};
    const auto& horizons = loaded.forecaster.spec().horizons;
    std::vector<model::IntervalState> states(horizons.size());
    for (const auto& row : store.calibration_states(loaded.version)) {
        const auto pos = std::find(horizons.begin(), horizons.end(), row.horizon);
        if (pos != horizons.end())
            states[static_cast<std::size_t>(pos - horizons.begin())] = {row.log_scale_low, row.log_scale_high,
                                                                        row.updates, row.last_target_time};
    }
    return states;
}

model::Forecast served_forecast(store::Store& store, const model::LoadedModel& loaded, std::span<const Bar> bars) {
    return model::forecast_latest(loaded.forecaster, bars, loaded.series.interval, interval_states(store, loaded));
}

std::vector<store::Prediction> prediction_rows(int version, const SeriesKey& key, const model::Forecast& forecast,
                                               std::span<const Bar> bars, const std::string& provenance) {
    const std::string hash = features::hash_bars(bars);
    const std::int64_t now = now_unix();
    std::vector<store::Prediction> rows;
    rows.reserve(forecast.horizons.size());
    for (const auto& h : forecast.horizons)
        rows.push_back({version, key.symbol, key.interval, forecast.as_of, h.horizon, h.target_time, h.price, h.lower,
                        h.upper, h.log_return, hash, now, provenance, std::nullopt});
    return rows;
}

} // namespace btcml::pipeline
