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

/// --symbol/--interval: the series whose registered model (btcml-SYMBOL-INTERVAL) an alias such as `champion`
/// refers to. Without them: the only registered model, else BTCUSD 1h (tracking::choose_series).
struct SeriesOptions {
    std::optional<std::string> symbol;
    std::optional<std::string> interval;
};
void add_series_options(CLI::App& command, SeriesOptions& series);
/// The registered model the options name (`name`, from --name, wins when given).
std::string series_model_name(store::Store& store, const SeriesOptions& series, const std::string& name = {});
/// The version `spec` names: a number, or an alias (champion, challenger, @alias) of the series' registered model.
int resolve_model_spec(store::Store& store, const Context& ctx, const std::string& spec, const SeriesOptions& series);

/// --model, the series options, --from and --to: the model and period that evaluate and report score.
struct PeriodOptions {
    std::string model = "champion";
    SeriesOptions series;
    std::string from;
    std::string to;
};
void add_period_options(CLI::App& command, PeriodOptions& period);
/// The evaluation request the options name; a malformed time or interval is a UsageError naming its flag.
pipeline::EvaluateRequest period_request(const PeriodOptions& period);

/// --calibration none|static|adaptive and --calibration-rate: how a model's 80% intervals are calibrated.
void add_calibration_options(CLI::App& command, std::string& mode, double& rate);

} // namespace btcml::cli
