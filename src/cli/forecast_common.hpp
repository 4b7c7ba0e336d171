#pragma once
// What train, evaluate and predict share: loading a series' bars (pipeline::load_series), printing the metrics
// table, the tracking URI and stopping on a signal.
#include "cli/context.hpp"
#include "cli/stop_signal.hpp"
#include "core/bar.hpp"
#include "pipeline/train.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace btcml::cli {

using pipeline::load_series;

/// The human-readable form of a `metrics` object (and its verdicts), one block per horizon.
std::string format_metrics_table(const nlohmann::json& metrics, const nlohmann::json& verdicts);

/// Adds `--tracking-uri URI` (an MLflow server; env BTCML_TRACKING_URI, config key tracking_uri).
void add_tracking_uri_option(CLI::App& command, std::optional<std::string>& uri);
/// The tracking URI in force: the flag, else BTCML_TRACKING_URI, else the config file; empty: local tracking.
std::string resolve_tracking_uri(const Context& ctx, const std::optional<std::string>& flag);

} // namespace btcml::cli
