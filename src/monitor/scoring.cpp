#include "monitor/scoring.hpp"

namespace btcml::monitor {

// Placeholder of the lead's skeleton commit, replaced by the monitor work of this issue before it lands.
ScoreSummary score_matured(store::Store& /*store*/, const SeriesKey& /*key*/, std::int64_t /*now_ms*/) { return {}; }

} // namespace btcml::monitor
