#include "pipeline/quality.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <fmt/format.h>

namespace btcml::pipeline {
namespace {

// Ingest runs are listed newest first across every series; this many cover the latest run of any series that
// is ingested on a schedule.
constexpr std::int64_t runs_to_scan = 1000;

std::optional<store::IngestRun> latest_ingest(store::Store& store, const SeriesKey& key) {
    for (auto& run : store.list_ingest_runs(runs_to_scan))
        if (run.symbol == key.symbol && run.interval == key.interval && run.status == "succeeded") return run;
    return std::nullopt;
}

} // namespace

nlohmann::json check_quality(store::Store& store, const SeriesKey& key, const QualityLimits& limits, std::int64_t now) {
    const auto name = fmt::format("{} {}", key.symbol, format_interval(key.interval));
    const auto last = store.last_bar_time(key);
    if (!last) throw InvalidInput(fmt::format("data quality: no bars of {} are stored", name));
    nlohmann::json out{{"symbol", key.symbol},
                       {"interval", format_interval(key.interval)},
                       {"last_time", format_iso8601(*last)},
                       {"age_seconds", now - (*last + key.interval)},
                       {"ingest_run_id", nullptr},
                       {"rows_read", nullptr},
                       {"rows_rejected", nullptr},
                       {"rejected_fraction", nullptr}};
    if (const auto run = latest_ingest(store, key)) {
        const double fraction =
            run->rows_read > 0 ? static_cast<double>(run->rows_rejected) / static_cast<double>(run->rows_read) : 0.0;
        out["ingest_run_id"] = run->id;
        out["rows_read"] = run->rows_read;
        out["rows_rejected"] = run->rows_rejected;
        out["rejected_fraction"] = fraction;
        if (fraction > limits.max_rejected_fraction)
            throw InvalidInput(fmt::format("data quality: ingest run {} of {} rejected {} of {} rows ({:.1f}%), more "
                                           "than the {:.1f}% allowed; the reasons are in its rejected_rows",
                                           run->id, name, run->rows_rejected, run->rows_read, 100.0 * fraction,
                                           100.0 * limits.max_rejected_fraction));
    }
    const std::int64_t age = out["age_seconds"];
    if (limits.max_age && age > *limits.max_age)
        throw InvalidInput(fmt::format("data quality: the source of {} is stale: its newest bar ({}) closed {} ago, "
                                       "more than the {} allowed",
                                       name, format_iso8601(*last), format_interval(age),
                                       format_interval(*limits.max_age)));
    out["passed"] = true;
    return out;
}

} // namespace btcml::pipeline
