#pragma once
// The data-quality gate a retrain passes before training (`btcml quality`, Airflow's quality task): the series'
// latest ingest must not have rejected too many rows, and its newest bar must not be too old. See docs/airflow.md.
#include "core/bar.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>

namespace btcml::pipeline {

struct QualityLimits {
    double max_rejected_fraction = 0.05; // of the rows the latest ingest run of the series read
    std::optional<std::int64_t> max_age; // seconds from the newest bar's close to now; none: not checked
};

/// Checks the series against the limits at `now` (unix seconds, the process clock). Returns the summary
/// (`passed`, `ingest_run_id`, `rows_read`, `rows_rejected`, `rejected_fraction`, `last_time`, `age_seconds`).
/// Throws InvalidInput naming the limit broken (too many rejects, a stale source, no bars at all): a retry of the
/// same data fails the same way. A series whose bars arrived without an ingest run has no reject count to check.
nlohmann::json check_quality(store::Store& store, const SeriesKey& key, const QualityLimits& limits, std::int64_t now);

} // namespace btcml::pipeline
