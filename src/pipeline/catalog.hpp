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

/// How every pipeline runs: the `pipelines:` section of the config file (docs/configuration.md).
struct PipelineSettings {
    std::optional<std::chrono::seconds> tick_every;              // default: the series' interval
    std::chrono::seconds retrain_every{std::chrono::hours(24)};  // 0 (`never`): on triggers only
    int attempts = 3;                                            // per task, the first included
    std::chrono::milliseconds backoff{1000};                     // before the second attempt; doubled for each next one
    std::chrono::seconds tick_timeout{std::chrono::minutes(5)};  // per task of a tick
    std::chrono::seconds retrain_timeout{std::chrono::hours(1)}; // per task of a retrain
    int epochs = 0;                          // retrain epochs; 0: the champion's (else train's default)
    std::chrono::milliseconds lease{30'000}; // a scheduler's hold on a pipeline, renewed every third of it
};

/// One pipeline of one series.
struct PipelineSpec {
    std::string name;
    PipelineKind kind = PipelineKind::tick;
    SeriesConfig series;
    std::chrono::seconds every{
        0}; // how often the schedule runs it (tick: the series' interval; retrain: daily); 0: never
    int attempts = 3;
    std::chrono::milliseconds backoff{1000};
    std::chrono::seconds timeout{0}; // per task
    int epochs = 0;                  // retrain only
};

/// `tick-BTCUSD-1h`, `retrain-BTCUSD-1h`.
std::string pipeline_name(PipelineKind kind, const SeriesKey& key);

/// The `series:` section of the config file (a list of {symbol, interval, source}); empty without one.
/// InvalidInput naming the entry and field when it is malformed.
std::vector<SeriesConfig> configured_series(const Config& config);

/// The `pipelines:` section of the config file; defaults without one. InvalidInput naming the key when malformed.
PipelineSettings configured_settings(const Config& config);

/// Every pipeline of every configured series, in configuration order.
std::vector<PipelineSpec> configured_pipelines(const Config& config);

/// The pipeline named `name`, if configured.
std::optional<PipelineSpec> find_pipeline(const std::vector<PipelineSpec>& pipelines, std::string_view name);

} // namespace btcml::pipeline
