#include "pipeline/forecast.hpp"

#include "core/time.hpp"
#include "features/dataset.hpp"

namespace btcml::pipeline {

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
