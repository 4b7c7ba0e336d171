// Online interval calibration: the update on known sequences, coverage on a simulated GARCH(1,1) series whose
// volatility jumps, and evaluate's walk-forward replay against the live loop (forecast, store, score) on a real
// SQLite store: the same outcomes must leave the same state, also across a newly published version. And the warm
// refits of evaluate --retrain-every: deterministic, never worse on validation than the weights they start from.
#include "core/error.hpp"
#include "core/time.hpp"
#include "model/calibration.hpp"
#include "model/forecaster.hpp"
#include "monitor/scoring.hpp"
#include "pipeline/forecast.hpp"
#include "pipeline/train.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <random>
#include <unistd.h>

namespace btcml::model {
namespace {

using evaluate::QuantileForecast;

TEST(Calibration, UpdateMovesEachSideByRateTimesMissMinusTenPercent) {
    IntervalState s;
    update(s, 100, true, false, 0.1); // below: low side + 0.1 * 0.9, high side - 0.1 * 0.1
    EXPECT_DOUBLE_EQ(s.log_scale_low, 0.09);
    EXPECT_DOUBLE_EQ(s.log_scale_high, -0.01);
    EXPECT_EQ(s.updates, 1);
    EXPECT_EQ(s.last_target_time, 100);
    for (int i = 0; i < 9; ++i)
        update(s, 101 + i, false, false, 0.1);
    // One miss in ten on the low side: back where it started; none on the high side: ten steps down.
    EXPECT_NEAR(s.log_scale_low, 0.0, 1e-15);
    EXPECT_NEAR(s.log_scale_high, -0.1, 1e-15);
    EXPECT_EQ(s.updates, 10);
    EXPECT_EQ(s.last_target_time, 109);
    // Bounded, so that a degenerate interval cannot drive a scale to infinity.
    IntervalState far;
    for (int i = 0; i < 100; ++i)
        update(far, i, true, true, 1);
    EXPECT_DOUBLE_EQ(far.log_scale_low, kMaxLogScale);
}

TEST(Calibration, ApplyScalesEachHalfWidthAroundTheMedian) {
    const IntervalState s{std::log(2.0), std::log(0.5), 3, 0};
    const auto f = apply(s, {-0.01, 0.002, 0.012});
    EXPECT_DOUBLE_EQ(f.q10, 0.002 - 2 * 0.012);
    EXPECT_DOUBLE_EQ(f.q50, 0.002);
    EXPECT_DOUBLE_EQ(f.q90, 0.002 + 0.5 * 0.01);
    EXPECT_EQ(apply(IntervalState{}, f).q10, f.q10);
}

TEST(Calibration, ReplayAppliesOnlyOutcomesWhoseTargetOpenedBeforeTheOrigin) {
    // Origins every bar (interval 1), horizon 2: the outcome of origin t is known from origin t + 3 on.
    std::vector<QuantileForecast> f(5, QuantileForecast{-1, 0, 1});
    const std::vector<std::int64_t> times{0, 1, 2, 3, 4};
    const std::vector<double> actual{-2, 0, 0, 0, 0}; // the first falls below its interval
    IntervalState s;
    replay(s, f, times, actual, 2, 0.5);
    EXPECT_DOUBLE_EQ(f[2].q10, -1);              // nothing known yet
    EXPECT_DOUBLE_EQ(f[3].q10, -std::exp(0.45)); // origin 0's miss: low side + 0.5 * 0.9
    EXPECT_DOUBLE_EQ(f[3].q90, std::exp(-0.05));
    EXPECT_DOUBLE_EQ(f[4].q10, -std::exp(0.45 - 0.05)); // then origin 1's hit
    EXPECT_EQ(s.updates, 2);
    EXPECT_EQ(s.last_target_time, 3);
    const std::vector<double> short_actuals{0};
    EXPECT_THROW(replay(s, f, times, short_actuals, 2, 0.5), Error);
}

TEST(Calibration, ReplayHandsOnWhatIsKnownBeforeTheSuccessorsFirstOrigin) {
    std::vector<QuantileForecast> f(5, QuantileForecast{-1, 0, 1});
    const std::vector<std::int64_t> times{0, 1, 2, 3, 4};
    const std::vector<double> actual{-2, 0, 0, 3, 0};
    IntervalState s;
    // A successor's first origin at 6: the outcomes with targets 2 … 5 (origins 0 … 3) are known by then.
    replay(s, f, times, actual, 2, 0.5, 6);
    EXPECT_EQ(s.updates, 4);
    EXPECT_EQ(s.last_target_time, 5);
    EXPECT_DOUBLE_EQ(s.log_scale_low, 0.45 - 3 * 0.05);
    EXPECT_DOUBLE_EQ(s.log_scale_high, 0.45 - 3 * 0.05); // origin 3's outcome 3 lay above its interval
    EXPECT_DOUBLE_EQ(f[4].q10, -std::exp(0.45 - 0.05));  // the forecasts themselves are as before
    // The successor keeps the scales and counts its own outcomes.
    const IntervalState next = handed_on(s);
    EXPECT_EQ(next, (IntervalState{s.log_scale_low, s.log_scale_high, 0, 0}));
}

TEST(Calibration, SettingsParseAndOldCardsAreStatic) {
    EXPECT_EQ(parse_calibration_mode("adaptive", "--calibration"), CalibrationMode::adaptive);
    EXPECT_EQ(parse_calibration_mode("static", "--calibration"), CalibrationMode::static_offsets);
    EXPECT_EQ(parse_calibration_mode("none", "--calibration"), CalibrationMode::none);
    EXPECT_THROW(parse_calibration_mode("aci", "--calibration"), UsageError);
    EXPECT_THROW(validate_calibration_rate(0, "--calibration-rate"), UsageError);
    EXPECT_THROW(validate_calibration_rate(1.5, "--calibration-rate"), UsageError);
    const nlohmann::json old_card{{"calibration", {{"interval_offsets", {0.1}}}}};
    EXPECT_EQ(CalibrationSettings::from_card(old_card, "m").mode, CalibrationMode::static_offsets);
    const nlohmann::json card{{"calibration", {{"online", {{"mode", "adaptive"}, {"rate", 0.03}}}}}};
    const auto s = CalibrationSettings::from_card(card, "m");
    EXPECT_EQ(s.mode, CalibrationMode::adaptive);
    EXPECT_DOUBLE_EQ(s.rate, 0.03);
    const nlohmann::json bad{{"calibration", {{"online", {{"mode", "adaptive"}, {"rate", -1}}}}}};
    EXPECT_THROW(CalibrationSettings::from_card(bad, "m"), InvalidInput);
}

// Coverage of the 10-90% interval and the share below each side over a GARCH(1,1) series whose volatility level
// triples halfway; the forecast is the Gaussian interval of the first regime's unconditional volatility.
struct Coverage {
    double inside = 0, below = 0, above = 0;
};

Coverage garch_coverage(bool adaptive, std::size_t from, std::size_t to) {
    std::mt19937_64 rng(11);
    std::normal_distribution<double> z(0, 1);
    const double omega = 1e-6, a = 0.08, b = 0.9;
    const double calm_sigma = std::sqrt(omega / (1 - a - b));
    double variance = calm_sigma * calm_sigma, r = 0;
    const std::size_t n = 40'000;
    std::vector<double> returns(n);
    for (std::size_t t = 0; t < n; ++t) {
        const double level = t < n / 2 ? 1 : 9; // the unconditional variance jumps ninefold
        variance = level * omega + a * r * r + b * variance;
        r = std::sqrt(variance) * z(rng);
        returns[t] = r;
    }
    std::vector<QuantileForecast> f(n, QuantileForecast{-1.2816 * calm_sigma, 0, 1.2816 * calm_sigma});
    std::vector<std::int64_t> times(n);
    for (std::size_t t = 0; t < n; ++t)
        times[t] = static_cast<std::int64_t>(t);
    IntervalState s;
    if (adaptive) replay(s, f, times, returns, 1, 0.02);
    Coverage c;
    for (std::size_t t = from; t < to; ++t) {
        c.below += returns[t] < f[t].q10 ? 1 : 0;
        c.above += returns[t] > f[t].q90 ? 1 : 0;
    }
    const auto count = static_cast<double>(to - from);
    c.below /= count;
    c.above /= count;
    c.inside = 1 - c.below - c.above;
    return c;
}

TEST(Calibration, AdaptiveIntervalsKeepTheirCoverageThroughAGarchVolatilityJump) {
    // Static intervals fitted on the calm half cover far less than 80% once volatility triples.
    const auto fixed = garch_coverage(false, 20'000, 40'000);
    EXPECT_LT(fixed.inside, 0.55);
    // Adaptive ones stay near 80% after the jump, each side near 10%; in the 1,000 bars right after it they are
    // still catching up (rate 0.02 needs ~60 misses to widen threefold) but far above the static ones.
    const auto after = garch_coverage(true, 20'000, 40'000);
    EXPECT_NEAR(after.inside, 0.80, 0.015);
    EXPECT_NEAR(after.below, 0.10, 0.01);
    EXPECT_NEAR(after.above, 0.10, 0.01);
    const auto soon_after = garch_coverage(true, 20'000, 21'000);
    EXPECT_GT(soon_after.inside, 0.65);
    EXPECT_GT(soon_after.inside, fixed.inside + 0.15);
    const auto before = garch_coverage(true, 1'000, 20'000);
    EXPECT_NEAR(before.inside, 0.80, 0.015);
}

// A random walk with Gaussian log returns whose volatility triples from bar `shift_at` on.
std::vector<Bar> walk(std::size_t count, std::size_t shift_at) {
    std::mt19937_64 rng(5);
    std::normal_distribution<double> noise(0, 0.01);
    std::vector<Bar> bars;
    double close = 100;
    for (std::size_t i = 0; i < count; ++i) {
        const double r = noise(rng) * (i >= shift_at ? 3.0 : 1.0);
        const double open = close;
        close = open * std::exp(r);
        bars.push_back({1'600'000'000 / 3600 * 3600 + static_cast<std::int64_t>(i) * 3600, open,
                        std::max(open, close) * 1.001, std::min(open, close) * 0.999, close, 1000 + double(i % 7),
                        true});
    }
    return bars;
}

// An empty folder for a test's home, named after the test and this process.
std::filesystem::path empty_home(const std::string& prefix) {
    const auto home = std::filesystem::temp_directory_path() / (prefix + std::to_string(getpid()));
    std::filesystem::remove_all(home);
    std::filesystem::create_directories(home);
    return home;
}

// A tiny adaptive-calibrated model (window 24, horizons 1 and 3), trained on the bars up to `until`.
pipeline::TrainRequest tiny_adaptive_request(const SeriesKey& key, std::int64_t until) {
    pipeline::TrainRequest request;
    request.key = key;
    request.until = until;
    request.spec = {24, {1, 3}};
    request.options.hidden = 8;
    request.options.layers = 1;
    request.options.epochs = 1;
    request.options.samples_per_epoch = 128;
    request.calibration = {CalibrationMode::adaptive, 0.05};
    return request;
}

TEST(Calibration, EvaluateReplaysExactlyWhatTheLiveLoopDid) {
    const auto home = empty_home("btcml_calibration_test_");
    auto store = store::open_store("sqlite:" + (home / "btcml.db").string(), home);
    const SeriesKey key{"BTCUSD", 3600};
    const std::size_t trained = 1200, live_to = 1400;
    const auto bars = walk(live_to, trained);
    store->insert_bars(key, std::span(bars).first(trained), "test");

    auto request = tiny_adaptive_request(key, bars[trained - 1].time);
    const int version = pipeline::train(*store, home, request).version;
    const auto loaded = load_model(home, std::to_string(version));

    // The live loop as the scheduler's tick runs it: a new bar, the champion's forecast from it, then scoring.
    const std::size_t last_origin = live_to - 1 - 3; // the last origin whose every target is inside the period
    std::vector<IntervalState> live_at_last_origin;
    for (std::size_t i = trained; i < live_to; ++i) {
        store->insert_bars(key, std::span(bars).subspan(i, 1), "test");
        const auto window = std::span(bars).subspan(i - 24, 25);
        if (i == last_origin) live_at_last_origin = pipeline::interval_states(*store, loaded);
        const auto rows = pipeline::prediction_rows(version, key, pipeline::served_forecast(*store, loaded, window),
                                                    window, "scheduled");
        store->insert_predictions(rows);
        monitor::score_matured(*store, key, (bars[i].time + 3600) * 1000);
    }

    pipeline::EvaluateRequest eval;
    eval.model = std::to_string(version);
    eval.from = bars[trained].time;
    eval.to = bars[live_to - 1].time;
    const auto out = pipeline::evaluate(*store, home, eval);
    EXPECT_EQ(out["calibration"]["mode"], "adaptive");
    EXPECT_EQ(out["to"], format_iso8601(bars[last_origin].time));
    ASSERT_EQ(live_at_last_origin.size(), 2U);
    for (std::size_t k = 0; k < 2; ++k) {
        const auto& replayed = out["calibration"]["final_state"][k == 0 ? "h1" : "h3"];
        const auto& live = live_at_last_origin[k];
        SCOPED_TRACE(k);
        // The volatility tripled: the intervals had to widen, over many updates.
        EXPECT_GT(live.updates, 150);
        EXPECT_GT(live.log_scale_low + live.log_scale_high, 0.5);
        EXPECT_EQ(replayed["updates"].get<std::int64_t>(), live.updates);
        EXPECT_EQ(replayed["last_target_time"].get<std::int64_t>(), live.last_target_time);
        EXPECT_DOUBLE_EQ(replayed["log_scale_low"].get<double>(), live.log_scale_low);
        EXPECT_DOUBLE_EQ(replayed["log_scale_high"].get<double>(), live.log_scale_high);
    }
    store.reset();
    std::filesystem::remove_all(home);
}

TEST(Calibration, WarmRefitsAreDeterministicAndNeverEndWorseThanTheirStart) {
    const auto bars = walk(1500, 1500);
    const auto table = features::compute_features(bars, 3600);
    const features::DatasetSpec spec{24, {1, 3}};
    const auto origins = features::require_target_origins(table, spec);
    const auto split = features::split_chronological(table, origins, spec.max_horizon(), {0.85, 0.15});
    const auto scaler = features::fit_scaler(table, split.train, spec);
    TrainOptions options;
    options.hidden = 8;
    options.layers = 1;
    options.epochs = 2;
    options.samples_per_epoch = 256;
    const auto start = train_forecaster(table, spec, scaler, split.train, split.validation, options);
    const auto& start_params = start.forecaster.network().parameters();

    options.epochs = 1;
    const auto refit = [&](const TrainOptions& o) {
        return train_forecaster(table, spec, scaler, split.train, split.validation, o, {}, &start.forecaster.network());
    };
    const auto warm = refit(options);
    const auto again = refit(options);
    const auto params = [](const TrainedForecaster& t) {
        const auto p = t.forecaster.network().parameters();
        return std::vector<float>(p.begin(), p.end());
    };
    EXPECT_EQ(params(warm), params(again)); // bit-identical for a seed and thread count
    ASSERT_EQ(warm.epochs.size(), 1U);
    // The start counts as epoch 0: an epoch that does not beat it on validation is discarded.
    EXPECT_EQ(warm.best_epoch, warm.epochs[0].improved ? 1 : 0);
    EXPECT_EQ(params(warm) == std::vector<float>(start_params.begin(), start_params.end()), !warm.epochs[0].improved);
    // A learning rate that wrecks the network cannot make the refit worse than its start.
    TrainOptions wild = options;
    wild.learning_rate = 50;
    const auto wrecked = refit(wild);
    EXPECT_FALSE(wrecked.epochs[0].improved);
    EXPECT_EQ(wrecked.best_epoch, 0);
    EXPECT_EQ(params(wrecked), std::vector<float>(start_params.begin(), start_params.end()));
    // The start must have the options' architecture.
    TrainOptions wider = options;
    wider.hidden = 16;
    EXPECT_THROW(refit(wider), InvalidInput);
}

TEST(Calibration, ANewVersionStartsLiveFromItsPredecessorsStateAsEvaluateHandsItOn) {
    const auto home = empty_home("btcml_handon_test_");
    auto store = store::open_store("sqlite:" + (home / "btcml.db").string(), home);
    const SeriesKey key{"BTCUSD", 3600};
    const std::size_t trained = 1200, switch_at = 1350, live_to = 1500;
    const auto bars = walk(live_to, trained);
    store->insert_bars(key, std::span(bars).first(trained), "test");
    auto request = tiny_adaptive_request(key, bars[trained - 1].time);
    const auto first = load_model(home, std::to_string(pipeline::train(*store, home, request).version));

    // The tick's loop: the first version serves until switch_at, when a retrain (after the tick's scoring of the
    // previous bar) publishes the second, which serves from then on.
    std::optional<LoadedModel> second;
    for (std::size_t i = trained; i < live_to; ++i) {
        if (i == switch_at) {
            request.until = bars[i - 1].time;
            second = load_model(home, std::to_string(pipeline::train(*store, home, request).version));
            const auto seeded = pipeline::interval_states(*store, *second);
            ASSERT_EQ(seeded.size(), 2U);
            EXPECT_EQ(seeded[0], handed_on(pipeline::interval_states(*store, first)[0]));
            EXPECT_NE(seeded[0], IntervalState{}); // the first version had learnt something to hand on
        }
        store->insert_bars(key, std::span(bars).subspan(i, 1), "test");
        const auto& serving = second ? *second : first;
        const auto window = std::span(bars).subspan(i - 24, 25);
        store->insert_predictions(pipeline::prediction_rows(
            serving.version, key, pipeline::served_forecast(*store, serving, window), window, "scheduled"));
        monitor::score_matured(*store, key, (bars[i].time + 3600) * 1000);
    }

    // What evaluate --retrain-every does between folds (pipeline::evaluate's `served`): replay the first version's
    // forecasts up to the switch, hand on, replay the second's.
    const auto table = features::compute_features(bars, 3600);
    const auto live = pipeline::interval_states(*store, *second);
    for (std::size_t k = 0; k < 2; ++k) {
        SCOPED_TRACE(k);
        const int h = request.spec.horizons[k];
        IntervalState state;
        for (const bool successor : {false, true}) {
            const auto& version = successor ? *second : first;
            std::vector<std::size_t> origins; // bar i is origin i: the window the tick read ends there
            std::vector<std::int64_t> times;
            std::vector<double> actuals;
            for (std::size_t o = successor ? switch_at : trained; o < (successor ? live_to : switch_at); ++o)
                if (o + static_cast<std::size_t>(h) < live_to) {
                    origins.push_back(o);
                    times.push_back(table.times[o]);
                    actuals.push_back(table.log_return(o, h));
                }
            auto forecasts = version.forecaster.forecast(table, origins)[k];
            state = handed_on(state);
            // Known by the successor's first origin; for the successor, by the end of the last bar.
            replay(state, forecasts, times, actuals, h * 3600, 0.05,
                   successor ? table.times[live_to - 1] + 1 : table.times[switch_at]);
        }
        // Live scoring has applied every outcome of the second version that matured by the last bar.
        EXPECT_GT(live[k].updates, 100);
        EXPECT_EQ(state.updates, live[k].updates);
        EXPECT_EQ(state.last_target_time, live[k].last_target_time);
        EXPECT_DOUBLE_EQ(state.log_scale_low, live[k].log_scale_low);
        EXPECT_DOUBLE_EQ(state.log_scale_high, live[k].log_scale_high);
    }
    store.reset();
    std::filesystem::remove_all(home);
}

} // namespace
} // namespace btcml::model
