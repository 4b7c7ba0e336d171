#include "evaluate/scoreboard.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <iterator>

namespace btcml::evaluate {

Scoreboard::Scoreboard(std::vector<int> horizons, bool with_model)
    : horizons_(std::move(horizons)), outcomes_(horizons_.size()), with_model_(with_model) {
    if (with_model_) models_.emplace_back("model", ForecastTable(horizons_.size()));
    for (const char* name : baseline_names)
        models_.emplace_back(name, ForecastTable(horizons_.size()));
}

void Scoreboard::add(const features::FeatureTable& table, const features::Scaler& scaler, const Baselines& baselines,
                     std::span<const std::size_t> origins, const ForecastTable* model) {
    if (with_model_ != (model != nullptr))
        throw Error(ErrorKind::internal,
                    "scoreboard: model forecasts given to a scoreboard without a model or missing");
    const auto variance = ewma_variance(table);
    for (std::size_t k = 0; k < horizons_.size(); ++k) {
        const int h = horizons_[k];
        if (model && (*model)[k].size() != origins.size())
            throw Error(ErrorKind::internal, "scoreboard: model forecasts do not match the origins");
        for (std::size_t p = 0; p < origins.size(); ++p) {
            const std::size_t o = origins[p];
            outcomes_[k].push_back(
                {table.log_return(o, h), table.previous_return(o, h), table.close[o], table.times[o]});
            auto model_it = models_.begin();
            if (model) (model_it++)->second[k].push_back((*model)[k][p]);
            (model_it++)->second[k].push_back(baselines.naive(k));
            (model_it++)->second[k].push_back(baselines.drift(k));
            (model_it++)->second[k].push_back(baselines.linear_forecast(table, scaler, o, k));
            (model_it++)->second[k].push_back(baselines.ewma(variance, o, k));
            model_it->second[k].push_back(baselines.rolling(table, o, k));
        }
    }
}

nlohmann::json Scoreboard::metrics() const {
    if (points() == 0) throw InvalidInput("no forecast points to score");
    nlohmann::json out = nlohmann::json::object();
    for (std::size_t k = 0; k < horizons_.size(); ++k) {
        nlohmann::json per_model = nlohmann::json::object();
        for (const auto& [name, forecasts] : models_) {
            const Reference ref = name == "naive" ? Reference::naive : Reference::other;
            per_model[name] = to_json(compute_metrics(forecasts[k], outcomes_[k], horizons_[k], ref));
        }
        if (with_model_) {
            // Diebold–Mariano on the mean pinball loss of the model against each baseline.
            const auto model_loss = pinball_losses(models_.front().second[k], outcomes_[k]);
            auto& p = per_model["model"]["dm_pinball_pvalue"];
            p = nlohmann::json::object();
            for (auto it = std::next(models_.begin()); it != models_.end(); ++it) {
                const auto loss = pinball_losses(it->second[k], outcomes_[k]);
                const auto value = diebold_mariano_pvalue(model_loss, loss, horizons_[k]);
                p[it->first] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
            }
        }
        out[fmt::format("h{}", horizons_[k])] = std::move(per_model);
    }
    return out;
}

nlohmann::json Scoreboard::model_points() const {
    if (!with_model_) throw Error(ErrorKind::internal, "scoreboard: model_points without a model");
    nlohmann::json out = nlohmann::json::object();
    for (std::size_t k = 0; k < horizons_.size(); ++k) {
        nlohmann::json columns{{"time", nlohmann::json::array()},   {"base_price", nlohmann::json::array()},
                               {"actual", nlohmann::json::array()}, {"q10", nlohmann::json::array()},
                               {"q50", nlohmann::json::array()},    {"q90", nlohmann::json::array()}};
        const auto& forecasts = models_.front().second[k];
        for (std::size_t i = 0; i < outcomes_[k].size(); ++i) {
            const Outcome& o = outcomes_[k][i];
            columns["time"].push_back(o.time);
            columns["base_price"].push_back(o.base_price);
            columns["actual"].push_back(o.actual);
            columns["q10"].push_back(forecasts[i].q10);
            columns["q50"].push_back(forecasts[i].q50);
            columns["q90"].push_back(forecasts[i].q90);
        }
        out[fmt::format("h{}", horizons_[k])] = std::move(columns);
    }
    return out;
}

nlohmann::json Scoreboard::verdicts(const nlohmann::json& metrics) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, per_model] : metrics.items()) {
        if (!per_model.contains("model")) continue;
        const auto& model = per_model["model"];
        const auto& naive = per_model["naive"];
        const auto compare = [&](const char* metric) {
            const double m = model[metric].get<double>();
            const double n = naive[metric].get<double>();
            return fmt::format("{} naive on {} ({:.6g} vs {:.6g})", m < n ? "beats" : "does NOT beat", metric, m, n);
        };
        std::string text = fmt::format("model {}; {}", compare("mae"), compare("pinball"));
        const auto& p = model["dm_pvalue"];
        if (p.is_number())
            text += fmt::format("; Diebold-Mariano p = {:.3g} ({})", p.get<double>(),
                                p.get<double>() < 0.05 ? "the squared-error difference is significant at 5%"
                                                       : "no significant difference at 5%");
        // Plainly: every baseline whose pinball loss is lower than the model's.
        std::string beaten_by;
        const double model_pinball = model["pinball"].get<double>();
        for (const char* name : baseline_names) {
            if (!per_model.contains(name)) continue;
            const double b = per_model[name]["pinball"].get<double>();
            if (b >= model_pinball) continue;
            const auto dm = model.value("/dm_pinball_pvalue"_json_pointer / name, nlohmann::json());
            beaten_by += fmt::format("{}{} ({:.6g} vs {:.6g}{})", beaten_by.empty() ? "" : ", ", name, b, model_pinball,
                                     dm.is_number() ? fmt::format(", DM p = {:.3g}", dm.get<double>()) : "");
        }
        text += beaten_by.empty() ? "; beats every baseline on pinball"
                                  : "; a SIMPLE BASELINE BEATS THE MODEL on pinball: " + beaten_by;
        out[key] = text;
    }
    return out;
}

} // namespace btcml::evaluate
