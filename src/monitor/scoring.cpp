#include "monitor/scoring.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "evaluate/baselines.hpp"
#include "model/calibration.hpp"
#include "monitor/drift.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

namespace btcml::monitor {
namespace {

// Bounds one pass's work: a backlog (a store that collected forecasts while nothing scored) drains over a few passes.
constexpr std::int64_t kScoreBatch = 10'000;

/// What scoring reads from a version's card: its baselines and its online calibration.
struct CardFacts {
    std::optional<evaluate::Baselines> baselines;
    std::optional<model::CalibrationSettings> online;
};

/// The cards of the versions scored: the unconditional-quantile forecast of each horizon from the naive baseline
/// (the random walk with the training data's h-step log-return quantiles; nothing for a horizon when the card is
/// missing or lacks it) and how the version's intervals adapt.
class CardCache {
  public:
    explicit CardCache(std::filesystem::path home) : home_(std::move(home)) {}

    std::optional<evaluate::QuantileForecast> get(int version, int horizon) {
        const auto& baselines = facts(version).baselines;
        if (!baselines) return std::nullopt;
        const auto& h = baselines->horizons;
        const auto pos = std::find(h.begin(), h.end(), horizon);
        if (pos == h.end()) return std::nullopt;
        return baselines->naive(static_cast<std::size_t>(pos - h.begin()));
    }

    const CardFacts& facts(int version) {
        auto it = cards_.find(version);
        if (it == cards_.end()) it = cards_.emplace(version, load(version)).first;
        return it->second;
    }

  private:
    CardFacts load(int version) const {
        const auto path = home_ / "models" / std::to_string(version) / "model.json";
        std::ifstream in(path);
        if (!in) return {};
        // A model whose card cannot be read is still scored; only its baseline comparison and calibration are not.
        CardFacts facts;
        try {
            const auto card = nlohmann::json::parse(in);
            if (card.contains("baselines"))
                facts.baselines = evaluate::Baselines::from_json(card["baselines"], path.string());
            facts.online = model::CalibrationSettings::from_card(card, path.string());
        } catch (const std::exception&) {
        }
        return facts;
    }

    std::filesystem::path home_;
    std::map<int, CardFacts> cards_;
};

// The live half of online calibration: each scored scheduled forecast of an adaptive version moves its horizon's
// state, through the same model::update as evaluate's replay. Outcomes at or before a state's last target were
// applied before (by an earlier pass or another process) and are skipped.
void update_calibration(store::Store& store, std::span<const store::MaturedPrediction> matured, CardCache& cards,
                        std::int64_t now_ms) {
    std::map<std::pair<int, int>, store::CalibrationStateRow> states; // (version, horizon)
    std::map<int, bool> loaded;
    std::set<std::pair<int, int>> changed;
    for (const auto& m : matured) {
        const auto& p = m.prediction;
        if (p.provenance != "scheduled") continue;
        const auto& online = cards.facts(p.model_version).online;
        if (!online || online->mode != model::CalibrationMode::adaptive) continue;
        if (!loaded[p.model_version])
            for (const auto& row : store.calibration_states(p.model_version))
                states[{row.model_version, row.horizon}] = row;
        loaded[p.model_version] = true;
        auto& row =
            states.try_emplace({p.model_version, p.horizon}, store::CalibrationStateRow{p.model_version, p.horizon})
                .first->second;
        if (row.updates > 0 && p.target_time <= row.last_target_time) continue;
        model::IntervalState state{row.log_scale_low, row.log_scale_high, row.updates, row.last_target_time};
        model::update(state, p.target_time, *p.realised<p.lower, *p.realised> p.upper, online->rate);
        row = {p.model_version,        p.horizon, state.log_scale_low, state.log_scale_high, state.updates,
               state.last_target_time, now_ms};
        changed.insert({p.model_version, p.horizon});
    }
    std::vector<store::CalibrationStateRow> rows;
    for (const auto& key : changed)
        rows.push_back(states.at(key));
    if (!rows.empty()) store.save_calibration_states(rows);
}

double mean_pinball(double actual, const evaluate::QuantileForecast& f) {
    const auto& q = evaluate::quantile_levels;
    return (evaluate::pinball_loss(actual, f.q10, q[0]) + evaluate::pinball_loss(actual, f.q50, q[1]) +
            evaluate::pinball_loss(actual, f.q90, q[2])) /
           static_cast<double>(q.size());
}

} // namespace

std::vector<std::int64_t> MonitorOptions::windows() const {
    std::vector<std::int64_t> w{kDaySeconds, kWeekSeconds, live_window_s};
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
    return w;
}

MonitorOptions MonitorOptions::from_config(const Config& config) {
    MonitorOptions options;
    options.live_window_s = parse_interval_arg(config.value(Setting::live_window), "config live_window");
    const auto text = config.value(Setting::drift_bars);
    std::int64_t n = 0;
    const auto res = std::from_chars(text.data(), text.data() + text.size(), n);
    if (res.ec != std::errc{} || res.ptr != text.data() + text.size() || n < 10 || n > 1'000'000)
        throw UsageError(fmt::format("config drift_bars: '{}' is not a bar count from 10 to 1000000", text));
    options.drift_bars = n;
    return options;
}

store::PredictionScore score_prediction(const store::MaturedPrediction& matured,
                                        const std::optional<evaluate::QuantileForecast>& baseline,
                                        std::int64_t scored_ms) {
    const store::Prediction& p = matured.prediction;
    if (!p.realised) throw InvalidInput(fmt::format("prediction {} has no realised close", matured.id));
    const double origin = p.price / std::exp(p.log_return);
    const evaluate::QuantileForecast forecast{std::log(p.lower / origin), p.log_return, std::log(p.upper / origin)};
    store::PredictionScore s;
    s.prediction_id = matured.id;
    s.series = {p.symbol, p.interval};
    s.model_version = p.model_version;
    s.horizon = p.horizon;
    s.provenance = p.provenance;
    s.target_time = p.target_time;
    s.realised_log_return = std::log(*p.realised / origin);
    s.error = s.realised_log_return - p.log_return;
    s.inside = *p.realised >= p.lower && *p.realised <= p.upper;
    s.pinball = mean_pinball(s.realised_log_return, forecast);
    if (baseline) s.baseline_pinball = mean_pinball(s.realised_log_return, *baseline);
    // As in evaluate: a direction is called only when both the forecast and the outcome have one.
    if (p.log_return != 0 && s.realised_log_return != 0)
        s.direction_hit = (p.log_return > 0) == (s.realised_log_return > 0);
    s.scored_ms = scored_ms;
    return s;
}

std::vector<store::LiveMetric> live_metrics(std::span<const store::PredictionScore> scores, const SeriesKey& key,
                                            std::span<const std::int64_t> windows, std::int64_t now_ms) {
    struct Sums {
        std::int64_t n = 0, baseline_n = 0, inside = 0, direction_n = 0, direction_hits = 0;
        double abs_error = 0, naive_abs_error = 0, pinball = 0, baseline_pinball = 0;
    };
    const std::int64_t now_s = now_ms / 1000;
    std::map<std::tuple<int, int, std::int64_t>, Sums> groups; // (version, horizon, window)
    for (const auto& s : scores) {
        if (s.provenance != "scheduled") continue;
        const std::int64_t closed = s.target_time + key.interval;
        if (closed > now_s) continue; // only a clock running backwards (a replay restarted) gets here
        for (const std::int64_t window : windows) {
            if (closed <= now_s - window) continue;
            Sums& g = groups[{s.model_version, s.horizon, window}];
            ++g.n;
            g.abs_error += std::abs(s.error);
            g.naive_abs_error += std::abs(s.realised_log_return);
            g.pinball += s.pinball;
            if (s.baseline_pinball) {
                ++g.baseline_n;
                g.baseline_pinball += *s.baseline_pinball;
            }
            g.inside += s.inside ? 1 : 0;
            if (s.direction_hit) {
                ++g.direction_n;
                g.direction_hits += *s.direction_hit ? 1 : 0;
            }
        }
    }
    std::vector<store::LiveMetric> out;
    out.reserve(groups.size());
    for (const auto& [group, g] : groups) {
        const auto& [version, horizon, window] = group;
        const double n = static_cast<double>(g.n);
        store::LiveMetric m;
        m.computed_ms = now_ms;
        m.series = key;
        m.model_version = version;
        m.horizon = horizon;
        m.window_s = window;
        m.scored = g.n;
        m.mae = g.abs_error / n;
        m.naive_mae = g.naive_abs_error / n;
        m.pinball = g.pinball / n;
        if (g.baseline_n == g.n) m.baseline_pinball = g.baseline_pinball / n;
        m.coverage_80 = static_cast<double>(g.inside) / n;
        if (g.direction_n > 0)
            m.direction_accuracy = static_cast<double>(g.direction_hits) / static_cast<double>(g.direction_n);
        out.push_back(m);
    }
    return out;
}

ScoreSummary score_matured(store::Store& store, const SeriesKey& key, std::int64_t now_ms,
                           const MonitorOptions& options) {
    ScoreSummary summary;
    CardCache cards(store.home());
    const auto matured = store.unscored_predictions(key, kScoreBatch);
    std::vector<store::PredictionScore> scores;
    scores.reserve(matured.size());
    for (const auto& m : matured)
        scores.push_back(score_prediction(m, cards.get(m.prediction.model_version, m.prediction.horizon), now_ms));
    summary.scored = store.insert_prediction_scores(scores);
    update_calibration(store, matured, cards, now_ms);

    const auto windows = options.windows();
    const std::int64_t from = now_ms / 1000 - windows.back() - key.interval;
    const auto recent = store.prediction_scores(key, "scheduled", from);
    summary.metrics = live_metrics(recent, key, windows, now_ms);
    if (!summary.metrics.empty()) store.insert_live_metrics(summary.metrics);

    summary.drift = measure_drift(store, key, options.drift_bars, now_ms);
    if (!summary.drift.empty()) store.insert_feature_drift(summary.drift);
    return summary;
}

ScoreSummary score_matured(store::Store& store, const SeriesKey& key, std::int64_t now_ms) {
    return score_matured(store, key, now_ms, MonitorOptions{});
}

} // namespace btcml::monitor
