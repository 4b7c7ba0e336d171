#include "cli/forecast_common.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "evaluate/scoreboard.hpp"
#include "features/dataset.hpp"
#include "model/artifact.hpp"
#include "tracking/registry.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace btcml::cli {

std::string format_metrics_table(const nlohmann::json& metrics, const nlohmann::json& verdicts) {
    const auto cell = [](const nlohmann::json& v, const char* spec) {
        return v.is_number() ? fmt::format(fmt::runtime(spec), v.get<double>()) : std::string("-");
    };
    // JSON objects come back sorted by name: print horizons by bar count and the model before its references.
    std::vector<std::string> horizons;
    for (const auto& [horizon, models] : metrics.items())
        horizons.push_back(horizon);
    std::sort(horizons.begin(), horizons.end(), [](const std::string& a, const std::string& b) {
        return std::stoi(a.substr(1)) < std::stoi(b.substr(1));
    });
    std::string out;
    for (const auto& horizon : horizons) {
        const auto& models = metrics[horizon];
        out += fmt::format("\n{} ({} points)\n", horizon, models.begin()->value("count", 0));
        out += fmt::format("  {:<7} {:>10} {:>10} {:>8} {:>7} {:>7} {:>15} {:>8} {:>10} {:>19} {:>8} {:>17} {:>9}\n",
                           "model", "mae", "rmse", "mape%", "mase", "u2", "direction [95%]", "dm_p", "pinball",
                           "cov80 [95%]", "width", "<q10 <q50 <q90", "30d_ok");
        std::vector<std::string> names{"model"};
        names.insert(names.end(), evaluate::baseline_names.begin(), evaluate::baseline_names.end());
        for (const auto& name : names) {
            if (!models.contains(name)) continue;
            const auto& m = models[name];
            const std::string direction =
                m["direction_accuracy"].is_number()
                    ? fmt::format("{:.3f} [{:.2f},{:.2f}]", m["direction_accuracy"].get<double>(),
                                  m["direction_ci_low"].get<double>(), m["direction_ci_high"].get<double>())
                    : "-";
            const std::string coverage =
                fmt::format("{} [{},{}]", cell(m["coverage_80"], "{:.3f}"), cell(m["coverage_ci_low"], "{:.3f}"),
                            cell(m["coverage_ci_high"], "{:.3f}"));
            const std::string below = fmt::format("{} {} {}", cell(m["below_q10"], "{:.3f}"),
                                                  cell(m["below_q50"], "{:.3f}"), cell(m["below_q90"], "{:.3f}"));
            out +=
                fmt::format("  {:<7} {:>10} {:>10} {:>8} {:>7} {:>7} {:>15} {:>8} {:>10} {:>19} {:>8} {:>17} {:>9}{}\n",
                            name, cell(m["mae"], "{:.6f}"), cell(m["rmse"], "{:.6f}"), cell(m["mape"], "{:.3f}"),
                            cell(m["mase"], "{:.3f}"), cell(m["u2"], "{:.3f}"), direction,
                            cell(m["dm_pvalue"], "{:.3f}"), cell(m["pinball"], "{:.6f}"), coverage,
                            cell(m["interval_width"], "{:.4f}"), below, cell(m["coverage_windows_within"], "{:.3f}"),
                            m.value("tracks_previous", false) ? "  (tracks the previous value!)" : "");
        }
        if (verdicts.contains(horizon)) out += fmt::format("  verdict: {}\n", verdicts[horizon].get<std::string>());
    }
    return out;
}

void add_calibration_options(CLI::App& command, std::string& mode, double& rate) {
    command
        .add_option("--calibration", mode,
                    "Intervals: none (the network's quantiles), static (conformal offsets fitted on the validation "
                    "part) or adaptive (static, then adapted online as outcomes arrive)")
        ->capture_default_str();
    command.add_option("--calibration-rate", rate, "Adaptation rate of adaptive calibration, in (0, 1]")
        ->capture_default_str();
}

void add_tracking_uri_option(CLI::App& command, std::optional<std::string>& uri) {
    command.add_option("--tracking-uri", uri, flag_help(Setting::tracking_uri) + "; without one: local tracking only");
}

void add_series_options(CLI::App& command, SeriesOptions& series) {
    command.add_option("--symbol", series.symbol,
                       "Series of the registered model an alias refers to (default: the only registered model, "
                       "else BTCUSD)");
    command.add_option("--interval", series.interval,
                       "Bar interval of that series, e.g. 1h (default: the only registered model, else 1h)");
}

void add_period_options(CLI::App& command, PeriodOptions& period) {
    command.add_option("--model", period.model, "Model version, or 'champion' (or another alias) of the series below")
        ->capture_default_str();
    add_series_options(command, period.series);
    command.add_option("--from", period.from, "First forecast origin (ISO 8601 or unix seconds)")->required();
    command.add_option("--to", period.to, "End of the period: the last target bar (inclusive)")->required();
}

pipeline::EvaluateRequest period_request(const PeriodOptions& period) {
    pipeline::EvaluateRequest request;
    request.model = period.model;
    request.symbol = period.series.symbol;
    if (period.series.interval) request.interval = parse_interval_arg(*period.series.interval, "--interval");
    request.from = parse_time_arg(period.from, "--from");
    request.to = parse_time_arg(period.to, "--to");
    return request;
}

std::string series_model_name(store::Store& store, const SeriesOptions& series, const std::string& name) {
    tracking::Registry registry(store, {}, "");
    if (!name.empty()) {
        if (series.symbol || series.interval)
            throw UsageError("--name and --symbol/--interval name the same thing: "
                             "give one or the other");
        return registry.model_name_or_only(name);
    }
    std::optional<std::int64_t> interval;
    if (series.interval) interval = parse_interval_arg(*series.interval, "--interval");
    return registry.series_model(series.symbol, interval);
}

int resolve_model_spec(store::Store& store, const Context& ctx, const std::string& spec, const SeriesOptions& series) {
    tracking::Registry registry(store, ctx.config.home, "");
    if (!spec.empty() && std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return model::resolve_version(ctx.config.home, spec); // a number needs no registry (nor a series)
    return registry.resolve(series_model_name(store, series), spec);
}

std::string resolve_tracking_uri(const Context& ctx, const std::optional<std::string>& flag) {
    return ctx.config.value(Setting::tracking_uri, flag);
}

} // namespace btcml::cli
