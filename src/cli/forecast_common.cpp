#include "cli/forecast_common.hpp"

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
        out += fmt::format("  {:<7} {:>10} {:>10} {:>8} {:>7} {:>7} {:>15} {:>8} {:>10} {:>7} {:>8}\n", "model", "mae",
                           "rmse", "mape%", "mase", "u2", "direction [95%]", "dm_p", "pinball", "cov80", "width");
        for (const char* name : {"model", "naive", "drift", "linear"}) {
            if (!models.contains(name)) continue;
            const auto& m = models[name];
            const std::string direction =
                m["direction_accuracy"].is_number()
                    ? fmt::format("{:.3f} [{:.2f},{:.2f}]", m["direction_accuracy"].get<double>(),
                                  m["direction_ci_low"].get<double>(), m["direction_ci_high"].get<double>())
                    : "-";
            out += fmt::format("  {:<7} {:>10} {:>10} {:>8} {:>7} {:>7} {:>15} {:>8} {:>10} {:>7} {:>8}{}\n", name,
                               cell(m["mae"], "{:.6f}"), cell(m["rmse"], "{:.6f}"), cell(m["mape"], "{:.3f}"),
                               cell(m["mase"], "{:.3f}"), cell(m["u2"], "{:.3f}"), direction,
                               cell(m["dm_pvalue"], "{:.3f}"), cell(m["pinball"], "{:.6f}"),
                               cell(m["coverage_80"], "{:.3f}"), cell(m["interval_width"], "{:.4f}"),
                               m.value("tracks_previous", false) ? "  (tracks the previous value!)" : "");
        }
        if (verdicts.contains(horizon)) out += fmt::format("  verdict: {}\n", verdicts[horizon].get<std::string>());
    }
    return out;
}

void add_tracking_uri_option(CLI::App& command, std::optional<std::string>& uri) {
    command.add_option("--tracking-uri", uri,
                       "MLflow tracking server, http://HOST:PORT (env BTCML_TRACKING_URI; default: local tracking "
                       "in the btcml store)");
}

std::string resolve_tracking_uri(const Context& ctx, const std::optional<std::string>& flag) {
    return ctx.config.setting(flag, "BTCML_TRACKING_URI", "tracking_uri", "");
}

} // namespace btcml::cli
