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
    for (const char* name : {"model", "naive", "drift", "linear"})
        EXPECT_TRUE(m["h1"].contains(name)) << name;
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
        {"h6",
         {{"model", {{"mae", 1.0}, {"pinball", 0.9}, {"dm_pvalue", 0.5}}},
          {"naive", {{"mae", 1.5}, {"pinball", 0.7}, {"dm_pvalue", nullptr}}}}},
    };
    const auto v = Scoreboard::verdicts(metrics);
    EXPECT_EQ(v["h1"], "model does NOT beat naive on mae (2 vs 1); beats naive on pinball (0.5 vs 0.7); "
                       "Diebold-Mariano p = 0.01 (the squared-error difference is significant at 5%)");
    EXPECT_EQ(v["h6"], "model beats naive on mae (1 vs 1.5); does NOT beat naive on pinball (0.9 vs 0.7); "
                       "Diebold-Mariano p = 0.5 (no significant difference at 5%)");
}

} // namespace
} // namespace btcml::evaluate
