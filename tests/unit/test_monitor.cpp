// Live scoring, live metrics and feature drift on hand-made forecasts, scores and distributions.
#include "core/error.hpp"
#include "core/time.hpp"
#include "features/dataset.hpp"
#include "monitor/drift.hpp"
#include "monitor/exporter.hpp"
#include "monitor/scoring.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>
#include <unistd.h>

namespace btcml::monitor {
namespace {

const SeriesKey kKey{"BTCUSD", 3600};

store::MaturedPrediction matured(std::int64_t id, double price, double log_return, double lower, double upper,
                                 double realised, const std::string& provenance = "scheduled") {
    store::MaturedPrediction m;
    m.id = id;
    auto& p = m.prediction;
    p.model_version = 3;
    p.symbol = kKey.symbol;
    p.interval = kKey.interval;
    p.origin_time = 1'700'000'000;
    p.horizon = 1;
    p.target_time = p.origin_time + 3600;
    p.price = price;
    p.log_return = log_return;
    p.lower = lower;
    p.upper = upper;
    p.realised = realised;
    p.provenance = provenance;
    return m;
}

struct ScoreCase {
    const char* name;
    store::MaturedPrediction input;
    std::optional<evaluate::QuantileForecast> baseline;
    double realised_log_return, error, pinball;
    std::optional<double> baseline_pinball;
    bool inside;
    std::optional<bool> direction_hit;
};

// Origin close 100 in every case (price / exp(log_return)). Pinball losses by hand, y the realised log return:
// loss(q, tau) = tau (y − q) when y ≥ q, else (1 − tau)(q − y); the score is their mean over 0.1, 0.5, 0.9.
TEST(Scoring, ScoresEachForecastAgainstItsRealisedClose) {
    const ScoreCase cases[] = {
        // y = ln 1.05 = 0.048790; quantiles ln 0.95 = −0.051293, ln 1.1 = 0.095310, ln 1.2 = 0.182322:
        // 0.1·0.100083 + 0.5·0.046520 + 0.1·0.133532 = 0.046621 / 3 = 0.015540.
        // Baseline (−0.02, 0, 0.03): 0.1·0.068790 + 0.5·0.048790 + 0.9·0.018790 = 0.048185 / 3 = 0.016062.
        {"inside, direction hit", matured(1, 110, std::log(1.1), 95, 120, 105),
         evaluate::QuantileForecast{-0.02, 0, 0.03}, 0.04879016416943205, -0.046520015634892886, 0.015540497645198983,
         0.016061748751382693, true, true},
        // y = ln 0.9 = −0.105361 below every quantile (ln 0.97, ln 0.99, ln 1.01): losses 0.9·0.074902,
        // 0.5·0.095310, 0.1·0.115311 → 0.042199; the baseline 0.9·0.085361 + 0.5·0.105361 + 0.1·0.135361 → 0.047680.
        {"below the interval, direction hit", matured(2, 99, std::log(0.99), 97, 101, 90),
         evaluate::QuantileForecast{-0.02, 0, 0.03}, -0.10536051565782628, -0.09531017980432482, 0.042199117303022594,
         0.04768025782891314, false, true},
        // A zero median calls no direction; no card, no baseline.
        {"no direction, no baseline", matured(3, 100, 0, 98, 102, 100.5), std::nullopt, 0.004987541511038968,
         0.004987541511038968, 0.002164768072296468, std::nullopt, true, std::nullopt},
        // Up forecast, down outcome on the lower bound: a miss, and inside. Losses 0, 0.5·(ln 1.01 − ln 0.99),
        // 0.1·(ln 1.03 − ln 0.99) → 0.004654.
        {"on the bound, direction miss", matured(4, 101, std::log(1.01), 99, 103, 99), std::nullopt, std::log(0.99),
         std::log(0.99) - std::log(1.01), 0.004653749054279787, std::nullopt, true, false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto s = score_prediction(c.input, c.baseline, 42);
        EXPECT_EQ(s.prediction_id, c.input.id);
        EXPECT_EQ(s.scored_ms, 42);
        EXPECT_EQ(s.provenance, "scheduled");
        EXPECT_NEAR(s.realised_log_return, c.realised_log_return, 1e-12);
        EXPECT_NEAR(s.error, c.error, 1e-12);
        EXPECT_NEAR(s.pinball, c.pinball, 1e-12);
        ASSERT_EQ(s.baseline_pinball.has_value(), c.baseline_pinball.has_value());
        if (c.baseline_pinball) {
            EXPECT_NEAR(*s.baseline_pinball, *c.baseline_pinball, 1e-12);
        }
        EXPECT_EQ(s.inside, c.inside);
        EXPECT_EQ(s.direction_hit, c.direction_hit);
    }
}

TEST(Scoring, AForecastWithoutRealisedCloseIsRefused) {
    auto m = matured(7, 100, 0, 99, 101, 100);
    m.prediction.realised.reset();
    EXPECT_THROW(score_prediction(m, std::nullopt, 0), InvalidInput);
}

store::PredictionScore score_at(std::int64_t target_time, double error, double realised, bool inside,
                                std::optional<bool> hit, int horizon = 1, const std::string& provenance = "scheduled",
                                int version = 3) {
    store::PredictionScore s;
    s.series = kKey;
    s.model_version = version;
    s.horizon = horizon;
    s.provenance = provenance;
    s.target_time = target_time;
    s.realised_log_return = realised;
    s.error = error;
    s.pinball = std::abs(error);
    s.baseline_pinball = std::abs(realised);
    s.inside = inside;
    s.direction_hit = hit;
    return s;
}

const store::LiveMetric* find(const std::vector<store::LiveMetric>& metrics, int version, int horizon,
                              std::int64_t window) {
    for (const auto& m : metrics)
        if (m.model_version == version && m.horizon == horizon && m.window_s == window) return &m;
    return nullptr;
}

TEST(LiveMetrics, WindowsCountScheduledForecastsWhoseTargetBarClosedInThem) {
    const std::int64_t now_s = 1'700'000'000;
    // Target bars close one interval after their open time.
    const std::int64_t hour_ago = now_s - 2 * 3600;  // closed an hour ago: in 24 h, 7 d and 30 d
    const std::int64_t two_days = now_s - 49 * 3600; // closed 48 h ago: in 7 d and 30 d
    const std::int64_t ten_days = now_s - 241 * 3600;
    const std::vector<store::PredictionScore> scores{
        score_at(hour_ago, 0.01, 0.02, true, true),
        score_at(hour_ago, -0.03, -0.01, false, false),
        score_at(two_days, 0.02, -0.04, true, std::nullopt),
        score_at(ten_days, 0.05, 0.05, false, true),
        score_at(hour_ago, 0.5, 0.5, false, false, 1, "client"), // never counted
        score_at(hour_ago, 0.01, 0.01, true, true, 6),           // another horizon
        score_at(now_s, 0.07, 0.07, true, true),                 // its bar has not closed yet: a clock that went back
    };
    const std::vector<std::int64_t> windows{kDaySeconds, kWeekSeconds, 30 * kDaySeconds};
    const auto metrics = live_metrics(scores, kKey, windows, now_s * 1000);
    ASSERT_EQ(metrics.size(), 6U); // horizon 1 and 6, three windows each

    const auto* day = find(metrics, 3, 1, kDaySeconds);
    ASSERT_NE(day, nullptr);
    EXPECT_EQ(day->scored, 2);
    EXPECT_DOUBLE_EQ(day->mae, 0.02);        // (0.01 + 0.03) / 2
    EXPECT_DOUBLE_EQ(day->naive_mae, 0.015); // (0.02 + 0.01) / 2
    EXPECT_DOUBLE_EQ(day->pinball, 0.02);    // the test's pinball is |error|
    EXPECT_DOUBLE_EQ(*day->baseline_pinball, 0.015);
    EXPECT_DOUBLE_EQ(day->coverage_80, 0.5);
    EXPECT_DOUBLE_EQ(*day->direction_accuracy, 0.5);
    EXPECT_EQ(day->computed_ms, now_s * 1000);

    const auto* week = find(metrics, 3, 1, kWeekSeconds);
    ASSERT_NE(week, nullptr);
    EXPECT_EQ(week->scored, 3);
    EXPECT_DOUBLE_EQ(week->mae, 0.02);             // (0.01 + 0.03 + 0.02) / 3
    EXPECT_NEAR(week->naive_mae, 0.07 / 3, 1e-15); // (0.02 + 0.01 + 0.04) / 3
    EXPECT_NEAR(week->coverage_80, 2.0 / 3, 1e-15);
    EXPECT_DOUBLE_EQ(*week->direction_accuracy, 0.5); // the third calls no direction

    const auto* month = find(metrics, 3, 1, 30 * kDaySeconds);
    ASSERT_NE(month, nullptr);
    EXPECT_EQ(month->scored, 4);
    EXPECT_NEAR(*month->direction_accuracy, 2.0 / 3, 1e-15);

    const auto* other_horizon = find(metrics, 3, 6, kDaySeconds);
    ASSERT_NE(other_horizon, nullptr);
    EXPECT_EQ(other_horizon->scored, 1);
}

TEST(LiveMetrics, TheBaselineIsReportedOnlyWhenEveryForecastHasOne) {
    const std::int64_t now_s = 1'700'000'000;
    auto with = score_at(now_s - 7200, 0.01, 0.02, true, true);
    auto without = score_at(now_s - 7200, 0.01, 0.02, true, true);
    without.baseline_pinball.reset();
    const std::vector<std::int64_t> windows{kDaySeconds};
    const std::vector<store::PredictionScore> both{with, without};
    EXPECT_FALSE(live_metrics(both, kKey, windows, now_s * 1000).at(0).baseline_pinball);
    const std::vector<store::PredictionScore> one{with};
    EXPECT_TRUE(live_metrics(one, kKey, windows, now_s * 1000).at(0).baseline_pinball);
    EXPECT_TRUE(live_metrics({}, kKey, windows, now_s * 1000).empty());
}

TEST(MonitorOptions, WindowsAreSortedWithoutDuplicatesAndConfigIsChecked) {
    MonitorOptions o;
    EXPECT_EQ(o.windows(), (std::vector<std::int64_t>{kDaySeconds, kWeekSeconds, 30 * kDaySeconds}));
    o.live_window_s = kDaySeconds;
    EXPECT_EQ(o.windows(), (std::vector<std::int64_t>{kDaySeconds, kWeekSeconds}));

    Config config;
    config.file_values = {{"live_window", "3d"}, {"drift_bars", "200"}};
    const auto read = MonitorOptions::from_config(config);
    EXPECT_EQ(read.live_window_s, 3 * kDaySeconds);
    EXPECT_EQ(read.drift_bars, 200);
    config.file_values = {{"live_window", "soon"}};
    EXPECT_THROW(MonitorOptions::from_config(config), UsageError);
    config.file_values = {{"drift_bars", "5"}};
    EXPECT_THROW(MonitorOptions::from_config(config), UsageError);
}

TEST(Drift, BinSharesPutEdgeValuesInTheLowerBin) {
    const std::vector<double> edges{1, 2};
    const std::vector<double> values{0, 1, 1.5, 2, 3};
    EXPECT_EQ(bin_shares(edges, values), (std::vector<double>{0.4, 0.4, 0.2}));
    EXPECT_EQ(bin_shares(edges, {}), (std::vector<double>{0, 0, 0}));
}

TEST(Drift, PopulationStabilityIndexOfKnownDistributions) {
    const std::vector<double> half{0.5, 0.5};
    EXPECT_DOUBLE_EQ(population_stability_index(half, half), 0);
    // 0.4 ln(0.9/0.5) + (−0.4) ln(0.1/0.5) = 0.4 (ln 1.8 + ln 5) = 0.878890
    const std::vector<double> skewed{0.9, 0.1};
    EXPECT_NEAR(population_stability_index(half, skewed), 0.8788898309344878, 1e-12);
    // An empty bin is floored at 1e-4, not infinite: 0.5 ln(0.5/1e-4) + (0.5 − 1e-4) ln((1 − 1e-4)... finite.
    const std::vector<double> all_left{1.0, 0.0};
    const double psi = population_stability_index(half, all_left);
    EXPECT_TRUE(std::isfinite(psi));
    EXPECT_GT(psi, 0.25);
    const std::vector<double> three{0.2, 0.3, 0.5};
    EXPECT_THROW(population_stability_index(half, three), InvalidInput);
}

// A random walk with Gaussian log returns; `scale` multiplies their volatility from bar `shift_at` on.
std::vector<Bar> walk(std::size_t count, std::size_t shift_at, double scale) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> noise(0, 0.01);
    std::vector<Bar> bars;
    double close = 100;
    for (std::size_t i = 0; i < count; ++i) {
        const double r = noise(rng) * (i >= shift_at ? scale : 1.0);
        const double open = close;
        close = open * std::exp(r);
        bars.push_back({static_cast<std::int64_t>(i) * 3600, open, std::max(open, close) * 1.001,
                        std::min(open, close) * 0.999, close, 1000 + static_cast<double>(i % 7), true});
    }
    return bars;
}

TEST(Drift, TheProfileHasDecileBinsAndFlagsAVolatilityShift) {
    const auto calm = features::compute_features(walk(4000, 4000, 1), 3600);
    std::vector<std::size_t> train;
    for (std::size_t i = 1; i < 3000; ++i)
        train.push_back(i);
    const auto profile = feature_profile(calm, train);
    ASSERT_EQ(profile["features"].size(), features::feature_count);
    const auto& log_return = profile["features"][0];
    EXPECT_EQ(log_return["name"], "log_return");
    ASSERT_EQ(log_return["edges"].size(), kProfileBins - 1);
    for (const double share : log_return["shares"].get<std::vector<double>>())
        EXPECT_NEAR(share, 0.1, 0.002);
    const auto edges = log_return["edges"].get<std::vector<double>>();
    const auto expected = log_return["shares"].get<std::vector<double>>();

    auto live_shares = [&](const features::FeatureTable& table) {
        std::vector<double> values;
        for (std::size_t i = 3000; i < 3500; ++i)
            values.push_back(table.values(static_cast<Eigen::Index>(i), 0));
        return bin_shares(edges, values);
    };
    // Same process, later bars: stable. Volatility × 5: a significant shift.
    EXPECT_LT(population_stability_index(expected, live_shares(calm)), 0.1);
    const auto shifted = features::compute_features(walk(4000, 3000, 5), 3600);
    EXPECT_GT(population_stability_index(expected, live_shares(shifted)), 0.25);
    EXPECT_THROW(feature_profile(calm, {}), InvalidInput);
}

TEST(Exporter, RendersWhatTheStoreHoldsOnAPokeWithoutWaitingForThePoll) {
    const auto dir = std::filesystem::temp_directory_path() / ("btcml_exporter_test_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string url = "sqlite:" + (dir / "test.db").string();
    auto store = store::open_store(url, dir);
    Exporter exporter(url, dir, std::chrono::hours(1)); // a poll far beyond the test

    const std::int64_t last_open = now_unix() / 3600 * 3600 - 4 * 3600; // closed three hours ago: stale
    const std::vector<Bar> bars{{last_open, 1, 1, 1, 1, 1, true}};
    store->insert_bars(kKey, bars, "test");
    store->save_model_version({3, "btcml-BTCUSD-1h", "run", 0, "{}", ""});
    store->set_alias({"btcml-BTCUSD-1h", "champion", 3, std::nullopt, 0, "test"});
    store::LiveMetric m;
    m.computed_ms = 1;
    m.series = kKey;
    m.model_version = 3;
    m.horizon = 1;
    m.window_s = kDaySeconds;
    m.scored = 4;
    m.mae = 0.5;
    m.naive_mae = 0.25;
    m.pinball = 0.125;
    m.coverage_80 = 0.75;
    const std::vector<store::LiveMetric> rows{m};
    store->insert_live_metrics(rows);
    const std::vector<store::FeatureDrift> drift{{1, kKey, 3, "volume", 0.3, 500}};
    store->insert_feature_drift(drift);

    exporter.poke();
    const std::string labels = R"(symbol="BTCUSD",interval="1h",version="3",champion="true",horizon="1",window="24h")";
    std::string text;
    for (const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(5))) {
        text.clear();
        exporter.render(text);
        if (text.find("btcml_live_mae{") != std::string::npos) break;
    }
    EXPECT_NE(text.find("btcml_live_mae{" + labels + "} 0.5\n"), std::string::npos) << text;
    EXPECT_NE(text.find("btcml_live_mae_ratio{" + labels + "} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("btcml_live_scored_forecasts{" + labels + "} 4\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("btcml_live_pinball_ratio{"), std::string::npos) << "no baseline, no ratio";
    EXPECT_EQ(text.find("btcml_live_direction_accuracy{"), std::string::npos) << "no direction called";
    EXPECT_NE(text.find(R"(btcml_feature_psi{symbol="BTCUSD",interval="1h",version="3",feature="volume"} 0.3)"),
              std::string::npos);
    EXPECT_NE(text.find(R"(btcml_data_stale{symbol="BTCUSD",interval="1h"} 1)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(btcml_data_age_seconds{symbol="BTCUSD",interval="1h"} )"), std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST(Exporter, WindowLabelsReadAsHoursOrDays) {
    EXPECT_EQ(window_label(kDaySeconds), "24h");
    EXPECT_EQ(window_label(kWeekSeconds), "7d");
    EXPECT_EQ(window_label(30 * kDaySeconds), "30d");
    EXPECT_EQ(window_label(36 * 3600), "36h");
    EXPECT_EQ(window_label(90 * 60), "90m");
}

} // namespace
} // namespace btcml::monitor
