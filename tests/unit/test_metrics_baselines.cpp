#include "evaluate/baselines.hpp"
#include "evaluate/scoreboard.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace btcml::evaluate {
namespace {

using features::DatasetSpec;

// Closes alternate up and down by ln(1.1) and ln(1.2) in turn, with a slow drift, on an hourly grid.
std::vector<Bar> zigzag(std::size_t n) {
    std::vector<Bar> bars;
    double c = 100;
    for (std::size_t i = 0; i < n; ++i) {
        c *= i % 2 ? 1.1 : 1 / 1.09;
        bars.push_back({static_cast<std::int64_t>(i) * 3600, c, c * 1.01, c * 0.99, c, 5});
    }
    return bars;
}

struct Fixture {
    features::FeatureTable table = features::compute_features(zigzag(400), 3600);
    DatasetSpec spec{8, {1, 2}};
    std::vector<std::size_t> origins = features::require_target_origins(table, spec);
    features::Split split = features::split_chronological(table, origins, spec.max_horizon());
    features::Scaler scaler = features::fit_scaler(table, split.train, spec);
    Baselines baselines = fit_baselines(table, scaler, spec, split.train, split.validation);
};

TEST(Baselines, NaiveAndDriftUseTrainingReturns) {
    const Fixture f;
    std::vector<double> returns;
    for (const std::size_t o : f.split.train)
        returns.push_back(f.table.log_return(o, 1));
    const QuantileForecast naive = f.baselines.naive(0);
    EXPECT_EQ(naive.q50, 0);
    EXPECT_NEAR(naive.q10, empirical_quantile(returns, 0.1), 1e-12);
    EXPECT_NEAR(naive.q90, empirical_quantile(returns, 0.9), 1e-12);
    // Mean 1-bar return over the training rows: between the two steps, close to (ln 1.1 - ln 1.09) / 2.
    EXPECT_NEAR(f.baselines.drift_per_bar, (std::log(1.1) - std::log(1.09)) / 2, 1e-3);
    EXPECT_NEAR(f.baselines.drift(1).q50, 2 * f.baselines.drift_per_bar, 1e-15);
}

TEST(Baselines, EwmaAndRollingFollowRecentVolatility) {
    // Returns of 1% for 1,000 bars, then 4%, alternating in sign: the EWMA variance converges to each level.
    std::vector<Bar> bars;
    double close = 100;
    for (int i = 0; i < 1500; ++i) {
        const double r = (i % 2 == 0 ? 1 : -1) * (i < 1000 ? 0.01 : 0.04);
        const double open = close;
        close *= std::exp(r);
        bars.push_back({i * 3600, open, std::max(open, close), std::min(open, close), close, 1, true});
    }
    const auto table = features::compute_features(bars, 3600);
    const auto variance = ewma_variance(table);
    EXPECT_NEAR(variance[1], 0.01 * 0.01, 1e-12); // the first return's square, then the recursion at λ = 0.94
    EXPECT_NEAR(variance[2], 0.94 * 1e-4 + 0.06 * 1e-4, 1e-12);
    EXPECT_NEAR(variance[999], 1e-4, 1e-10);
    EXPECT_NEAR(variance[1000], 0.94 * 1e-4 + 0.06 * 16e-4, 1e-10); // bar 1000 is the first 4% return
    EXPECT_NEAR(variance[1499], 16e-4, 1e-9);
    Baselines b;
    b.horizons = {1, 2};
    b.ewma_z = {{-1, 1}, {-2, 2}};
    const auto calm = b.ewma(variance, 999, 1); // σ √2 × z
    EXPECT_NEAR(calm.q10, -2 * 0.01 * std::sqrt(2.0), 1e-9);
    EXPECT_EQ(calm.q50, 0);
    EXPECT_NEAR(b.ewma(variance, 1499, 0).q90, 0.04, 1e-9);
    // rolling: the last 720 bars' 1-bar returns. 100 bars after the jump 50 of them are +4%, under a tenth: the 90%
    // quantile is still 1%. 200 bars after it 100 are, over a tenth: it is 4%. 720 bars after, every return is ±4%.
    EXPECT_NEAR(b.rolling(table, 1099, 0).q90, 0.01, 1e-9);
    EXPECT_NEAR(b.rolling(table, 1199, 0).q90, 0.04, 1e-9);
    EXPECT_NEAR(b.rolling(table, 1499, 0).q90, 0.04, 1e-9);
    EXPECT_NEAR(b.rolling(table, 1499, 0).q10, -0.04, 1e-9);
    EXPECT_NEAR(b.rolling(table, 999, 1).q90, 0, 1e-9); // 2-bar returns of a zigzag: 0
}

TEST(Baselines, LinearModelLearnsTheZigzag) {
    const Fixture f;
    // The next return is a linear function of the last one here; ridge must get it nearly right out of sample.
    for (const std::size_t o : f.split.test) {
        const QuantileForecast q = f.baselines.linear_forecast(f.table, f.scaler, o, 0);
        EXPECT_NEAR(q.q50, f.table.log_return(o, 1), 2e-3);
        EXPECT_LE(q.q10, q.q50);
        EXPECT_LE(q.q50, q.q90);
    }
}

TEST(Baselines, JsonRoundTrip) {
    const Fixture f;
    const Baselines back = Baselines::from_json(f.baselines.to_json(), "model.json");
    EXPECT_EQ(back.to_json(), f.baselines.to_json());
    auto broken = f.baselines.to_json();
    broken["linear"][0]["weights"].erase(0);
    EXPECT_THROW(Baselines::from_json(broken, "model.json"), InvalidInput);
}

TEST(Scoreboard, ScoresEveryModelOnTheSamePoints) {
    const Fixture f;
    Scoreboard board(f.spec.horizons, true);
    ForecastTable model(2);
    for (std::size_t k = 0; k < 2; ++k)
        for (const std::size_t o : f.split.test)
            model[k].push_back(f.baselines.linear_forecast(f.table, f.scaler, o, k));
    board.add(f.table, f.scaler, f.baselines, f.split.test, &model);
    const auto m = board.metrics();
    ASSERT_TRUE(m.contains("h1") && m.contains("h2"));
    for (const char* name : {"model", "naive", "drift", "linear", "ewma", "rolling"})
        EXPECT_TRUE(m["h1"].contains(name)) << name;
    // The model is tested on pinball against every baseline; the calibration table is ordered.
    EXPECT_EQ(m["h1"]["model"]["dm_pinball_pvalue"].size(), baseline_names.size());
    EXPECT_EQ(m["h1"]["model"]["dm_pinball_pvalue"]["linear"], 1.0); // identical forecasts
    for (const char* name : baseline_names) {
        const auto& x = m["h2"][name];
        EXPECT_LE(x["below_q10"].get<double>(), x["below_q50"].get<double>()) << name;
        EXPECT_LE(x["below_q50"].get<double>(), x["below_q90"].get<double>()) << name;
        EXPECT_LE(x["coverage_ci_low"].get<double>(), x["coverage_80"].get<double>()) << name;
        EXPECT_GE(x["coverage_ci_high"].get<double>(), x["coverage_80"].get<double>()) << name;
    }
    EXPECT_EQ(m["h1"]["model"]["mae"], m["h1"]["linear"]["mae"]);
    EXPECT_DOUBLE_EQ(m["h1"]["naive"]["mase"].get<double>(), 1.0);
    EXPECT_TRUE(m["h1"]["naive"]["dm_pvalue"].is_null());
    EXPECT_LT(m["h1"]["model"]["mae"].get<double>(), m["h1"]["naive"]["mae"].get<double>());
    const auto v = Scoreboard::verdicts(m);
    EXPECT_NE(v["h1"].get<std::string>().find("beats naive on mae"), std::string::npos) << v;
    EXPECT_THROW(board.add(f.table, f.scaler, f.baselines, f.split.test, nullptr), Error);
}

TEST(Scoreboard, VerdictSaysWhatTheMetricsSay) {
    // Worse than naive on MAE, better on pinball, significant; then the reverse, not significant.
    const nlohmann::json metrics = {
        {"h1",
         {{"model", {{"mae", 2.0}, {"pinball", 0.5}, {"dm_pvalue", 0.01}}},
          {"naive", {{"mae", 1.0}, {"pinball", 0.7}, {"dm_pvalue", nullptr}}}}},
        {"h6", R"({"model": {"mae": 1.0, "pinball": 0.9, "dm_pvalue": 0.5,
                              "dm_pinball_pvalue": {"ewma": 0.02, "naive": 0.3, "drift": 0.5}},
                    "naive": {"mae": 1.5, "pinball": 0.7, "dm_pvalue": null},
                    "drift": {"mae": 1.5, "pinball": 0.95, "dm_pvalue": 0.4},
                    "ewma": {"mae": 1.5, "pinball": 0.6, "dm_pvalue": 0.4}})"_json},
    };
    const auto v = Scoreboard::verdicts(metrics);
    EXPECT_EQ(v["h1"], "model does NOT beat naive on mae (2 vs 1); beats naive on pinball (0.5 vs 0.7); "
                       "Diebold-Mariano p = 0.01 (the squared-error difference is significant at 5%); "
                       "beats every baseline on pinball");
    EXPECT_EQ(v["h6"], "model beats naive on mae (1 vs 1.5); does NOT beat naive on pinball (0.9 vs 0.7); "
                       "Diebold-Mariano p = 0.5 (no significant difference at 5%); a SIMPLE BASELINE BEATS THE MODEL "
                       "on pinball: naive (0.7 vs 0.9, DM p = 0.3), ewma (0.6 vs 0.9, DM p = 0.02)");
}

} // namespace
} // namespace btcml::evaluate
