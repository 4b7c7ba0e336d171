#pragma once
// The pipelines btcml knows: per configured series, `tick-SYMBOL-INTERVAL` (every new bar: ingest → forecast →
// score) and `retrain-SYMBOL-INTERVAL` (on a schedule or a trigger: train → evaluate → gate → reload). Read from
// the `series:` section of the config file; see docs/closed-loop.md.
#include "core/bar.hpp"
#include "core/config.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::pipeline {

enum class PipelineKind { tick, retrain };

/// A series the scheduler keeps current.
struct SeriesConfig {
    SeriesKey key;
    std::string source; // an ingest SOURCE (e.g. binance:BTCUSDT, replay:PATH); empty: bars arrive another way
};

/// One pipeline of one series.
struct PipelineSpec {
    std::string name;
    PipelineKind kind = PipelineKind::tick;
    SeriesConfig series;
    std::chrono::seconds every{0}; // how often the schedule runs it: tick, the series' interval; retrain, daily
};

/// `tick-BTCUSD-1h`, `retrain-BTCUSD-1h`.
std::string pipeline_name(PipelineKind kind, const SeriesKey& key);

/// The `series:` section of the config file (a list of {symbol, interval, source}); empty without one.
/// InvalidInput naming the entry and field when it is malformed.
std::vector<SeriesConfig> configured_series(const Config& config);

/// Every pipeline of every configured series, in configuration order.
std::vector<PipelineSpec> configured_pipelines(const Config& config);

/// The pipeline named `name`, if configured.
std::optional<PipelineSpec> find_pipeline(const std::vector<PipelineSpec>& pipelines, std::string_view name);

} // namespace btcml::pipeline
