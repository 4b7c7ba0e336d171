#include "evaluate/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace btcml::evaluate {
namespace {

TEST(Metrics, WilsonIntervalMatchesHandComputation) {
    struct Case {
        std::size_t k, n;
        double low, high;
    };
    // p = k/n, c = (p + z²/2n) / (1 + z²/n), half = z/(1 + z²/n) * sqrt(p(1-p)/n + z²/4n²), z = 1.959964.
    const Case cases[] = {{8, 10, 0.4901625, 0.9433178}, {1, 3, 0.0614919, 0.7923404}, {0, 5, 0.0, 0.4344825}};
    for (const auto& c : cases) {
        const Interval ci = wilson_interval(c.k, c.n);
        EXPECT_NEAR(ci.low, c.low, 1e-6) << c.k << "/" << c.n;
        EXPECT_NEAR(ci.high, c.high, 1e-6) << c.k << "/" << c.n;
    }
}

TEST(Metrics, PinballLoss) {
    struct Case {
        double y, q, tau, expected;
    };
    const Case cases[] = {{1, 0, 0.1, 0.1}, {-1, 0, 0.1, 0.9}, {1, 0, 0.9, 0.9}, {-1, 0, 0.9, 0.1}, {2, 2, 0.5, 0}};
    for (const auto& c : cases)
        EXPECT_DOUBLE_EQ(pinball_loss(c.y, c.q, c.tau), c.expected);
}

TEST(Metrics, EmpiricalQuantileInterpolatesLikeRType7) {
    // Sorted {1,2,3,4}: position p*(n-1), so 0.1 -> 0.3 -> 1.3 and 0.9 -> 2.7 -> 3.7.
    const std::vector<double> v{4, 1, 3, 2};
    EXPECT_DOUBLE_EQ(empirical_quantile(v, 0.1), 1.3);
    EXPECT_DOUBLE_EQ(empirical_quantile(v, 0.5), 2.5);
    EXPECT_DOUBLE_EQ(empirical_quantile(v, 0.9), 3.7);
    EXPECT_DOUBLE_EQ(empirical_quantile({7}, 0.9), 7);
}

TEST(Metrics, StudentTCdf) {
    struct Case {
        double t, df, expected;
    };
    // df 1 is Cauchy: 1/2 + atan(t)/pi; df 3: 1/2 + (x/(1+x²) + atan x)/pi with x = t/sqrt 3.
    const double x = 1.5 / std::sqrt(3.0);
    const Case cases[] = {
        {0, 5, 0.5},
        {1, 1, 0.75},
        {-1, 1, 0.25},
        {12.706204736, 1, 0.975},
        {1.5, 3, 0.5 + (x / (1 + x * x) + std::atan(x)) / std::numbers::pi},
        {2.015048373, 5, 0.95},
        {1.959963985, 1e7, 0.975},
    };
    for (const auto& c : cases)
        EXPECT_NEAR(student_t_cdf(c.t, c.df), c.expected, 1e-7) << c.t << " df " << c.df;
    // Against SciPy 1.x (scipy.stats.t.cdf): fractional df, a far tail (relative error), t = 2, df 10, whose
    // two-sided p-value is the textbook 0.0734.
    const Case scipy[] = {
        {2.0, 10, 0.9633059826146297},   {1.0, 2, 0.7886751345948129},   {-2.5, 4, 0.03338327240599406},
        {3.0, 30, 0.997305017967174},    {0.5, 0.5, 0.6213409635352817}, {10, 3, 0.9989358004707929},
        {-40, 5, 9.205981085886476e-08}, {2.0, 1e6, 0.9772497330743404},
    };
    for (const auto& c : scipy)
        EXPECT_NEAR(student_t_cdf(c.t, c.df), c.expected, 1e-12 + 1e-10 * c.expected) << c.t << " df " << c.df;
    EXPECT_NEAR(2 * (1 - student_t_cdf(2.0, 10)), 0.0734, 5e-5);
}

TEST(Metrics, DieboldMarianoWithHacAndHarveyCorrection) {
    // d = a - b = {1, 3, 8, -1}, mean 2.75; gamma0 = 44.75/4, gamma1 = -18.8125/4.
    // h=1: DM = 2.75/sqrt(gamma0/4) = 1.644365, Harvey factor sqrt(3/4) -> 1.424055, p = 2(1 - T3) = 0.249626.
    // h=2: long-run variance gamma0 + 2 gamma1 = 1.78125, DM = 4.120978, factor sqrt(0.375) -> 2.523573, p = 0.085907.
    const std::vector<double> a{1, 4, 9, 0}, b{0, 1, 1, 1};
    struct Case {
        int h;
        double p;
    };
    for (const Case c : {Case{1, 0.2496255}, Case{2, 0.0859069}}) {
        const auto p = diebold_mariano_pvalue(a, b, c.h);
        ASSERT_TRUE(p.has_value());
        EXPECT_NEAR(*p, c.p, 1e-6) << "h=" << c.h;
    }
    EXPECT_EQ(diebold_mariano_pvalue(a, a, 1), 1.0);
    EXPECT_FALSE(diebold_mariano_pvalue(std::vector<double>{1}, std::vector<double>{2}, 1).has_value());
}

TEST(Metrics, ComputeMetricsMatchesHandComputation) {
    const std::vector<QuantileForecast> f{
        {-0.02, 0.01, 0.03}, {-0.03, -0.01, 0.01}, {-0.01, 0.005, 0.02}, {-0.02, 0.0, 0.02}};
    const std::vector<Outcome> o{{0.02, -0.01, 100}, {0.02, 0.03, 100}, {-0.01, 0.0, 100}, {-0.03, 0.01, 100}};
    const Metrics m = compute_metrics(f, o, 1, Reference::other);
    EXPECT_EQ(m.count, 4u);
    // errors 0.01, 0.03, -0.015, -0.03; naive errors are the outcomes 0.02, 0.02, -0.01, -0.03.
    EXPECT_NEAR(m.mae, 0.02125, 1e-12);
    EXPECT_NEAR(m.rmse, std::sqrt(2.125e-3 / 4), 1e-12);
    EXPECT_NEAR(m.mase, 0.02125 / 0.02, 1e-12);
    EXPECT_NEAR(m.u2, std::sqrt(2.125 / 1.8), 1e-12);
    // |exp(q50 - y) - 1|: 0.00995017, 0.0295545, 0.0151131, 0.0304545 -> mean 2.1268058 %.
    EXPECT_NEAR(m.mape, 2.1268058, 1e-6);
    // Directions: the zero forecast is not called; hit, miss, miss -> 1/3 with Wilson (0.0614919, 0.7923404).
    EXPECT_NEAR(*m.direction_accuracy, 1.0 / 3, 1e-12);
    EXPECT_NEAR(*m.direction_ci_low, 0.0614919, 1e-6);
    EXPECT_NEAR(*m.direction_ci_high, 0.7923404, 1e-6);
    // Inside [q10, q90]: yes, no, yes (on the edge), no.
    EXPECT_DOUBLE_EQ(m.coverage_80, 0.5);
    EXPECT_NEAR(m.interval_width, 0.04, 1e-12);
    // Pinball sums per point over 0.1/0.5/0.9: 0.010, 0.029, 0.0105, 0.029 -> 0.0785 / 12.
    EXPECT_NEAR(m.pinball, 0.0785 / 12, 1e-12);
    // previous = 0.01 - 2 * median: perfectly anti-correlated with the previous return, so not a lagged copy.
    EXPECT_NEAR(*m.lag_correlation, -1.0, 1e-12);
    EXPECT_NEAR(*m.target_correlation, -0.0796819, 1e-6);
    EXPECT_FALSE(m.tracks_previous);
    ASSERT_TRUE(m.dm_pvalue.has_value());
    // The calibration table: below q10 only the last; below q50 the third and last; below q90 all but the second.
    EXPECT_DOUBLE_EQ(m.below_q10, 0.25);
    EXPECT_DOUBLE_EQ(m.below_q50, 0.5);
    EXPECT_DOUBLE_EQ(m.below_q90, 0.75);
    const Interval ci = wilson_interval(2, 4);
    EXPECT_DOUBLE_EQ(m.coverage_ci_low, ci.low);
    EXPECT_DOUBLE_EQ(m.coverage_ci_high, ci.high);
    EXPECT_EQ(m.coverage_windows, 0u); // all at time 0: no whole 30-day window
    EXPECT_FALSE(m.coverage_windows_within.has_value());
}

TEST(Metrics, CoverageIsReportedPerWholeThirtyDayWindow) {
    // Hourly points over 75 days: two whole 30-day windows, the rest dropped. The first covers 80%, the second 50%.
    const std::int64_t hour = 3600, day = 86'400;
    std::vector<QuantileForecast> f;
    std::vector<Outcome> o;
    for (std::int64_t t = 0; t < 75 * day; t += hour) {
        const std::int64_t i = t / hour;
        const bool inside = t < 30 * day ? i % 5 != 0 : i % 2 == 0;
        f.push_back({-0.01, 0, 0.01});
        o.push_back({inside ? 0.0 : 0.05, 0, 100, t});
    }
    const Metrics m = compute_metrics(f, o, 1, Reference::other);
    EXPECT_EQ(m.coverage_windows, 2u);
    ASSERT_TRUE(m.coverage_windows_within.has_value());
    EXPECT_DOUBLE_EQ(*m.coverage_windows_within, 0.5);
    EXPECT_EQ(to_json(m)["coverage_windows_within"], 0.5);
}

TEST(Metrics, NaiveIsItsOwnReference) {
    const std::vector<QuantileForecast> f(3, QuantileForecast{-0.01, 0, 0.01});
    const std::vector<Outcome> o{{0.02, 0.01, 10}, {-0.005, 0.02, 10}, {0.001, -0.005, 10}};
    const Metrics m = compute_metrics(f, o, 6, Reference::naive);
    EXPECT_DOUBLE_EQ(m.mase, 1);
    EXPECT_DOUBLE_EQ(m.u2, 1);
    EXPECT_FALSE(m.direction_accuracy.has_value());
    EXPECT_FALSE(m.dm_pvalue.has_value());
    EXPECT_FALSE(m.lag_correlation.has_value());
    EXPECT_FALSE(m.tracks_previous);
    const auto j = to_json(m);
    EXPECT_TRUE(j["dm_pvalue"].is_null());
    EXPECT_TRUE(j["direction_accuracy"].is_null());
    for (const char* key :
         {"mae", "rmse", "mape", "mase", "u2", "direction_accuracy", "direction_ci_low", "direction_ci_high",
          "dm_pvalue", "coverage_80", "interval_width", "pinball", "lag_correlation", "tracks_previous"})
        EXPECT_TRUE(j.contains(key)) << key;
}

TEST(Metrics, FlagsALaggedCopy) {
    // Forecasting the return just realised: perfect correlation with the previous value, none with the next.
    const std::vector<Outcome> o{{0.01, 0.02, 1}, {-0.02, 0.01, 1}, {0.03, -0.02, 1}, {0.0, 0.03, 1}};
    std::vector<QuantileForecast> f;
    for (const auto& x : o)
        f.push_back({x.previous - 0.01, x.previous, x.previous + 0.01});
    const Metrics m = compute_metrics(f, o, 1, Reference::other);
    EXPECT_NEAR(*m.lag_correlation, 1.0, 1e-12);
    EXPECT_TRUE(m.tracks_previous);
}

TEST(Metrics, NonCrossingSortsQuantiles) {
    const QuantileForecast f = non_crossing({0.02, -0.01, 0.0});
    EXPECT_EQ(f.q10, -0.01);
    EXPECT_EQ(f.q50, 0.0);
    EXPECT_EQ(f.q90, 0.02);
}

} // namespace
} // namespace btcml::evaluate
