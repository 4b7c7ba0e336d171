#pragma once
// Live scoring of stored forecasts once their target bar is stored (see src/monitor/README.md).
#include "core/bar.hpp"
#include "store/store.hpp"

#include <cstdint>

namespace btcml::monitor {

/// What one scoring pass did.
struct ScoreSummary {
    std::int64_t scored = 0; // forecasts scored by this pass
};

/// Scores every stored forecast of `key` whose target bar is now stored and that was not scored before, and
/// brings the rolling live metrics of the series up to date as of `now_ms`. Not thread-safe per Store.
ScoreSummary score_matured(store::Store& store, const SeriesKey& key, std::int64_t now_ms);

} // namespace btcml::monitor
