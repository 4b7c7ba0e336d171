#include "features/dataset.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace btcml::features {
namespace {

constexpr std::int64_t hour = 3600;

std::vector<Bar> hourly(const std::vector<double>& closes, std::int64_t start = 0) {
    std::vector<Bar> bars;
    for (std::size_t i = 0; i < closes.size(); ++i) {
        const double c = closes[i];
        bars.push_back({start + static_cast<std::int64_t>(i) * hour, c, c * 1.01, c * 0.99, c, 10});
    }
    return bars;
}

std::vector<Bar> without(std::vector<Bar> bars, std::size_t index) {
    bars.erase(bars.begin() + static_cast<std::ptrdiff_t>(index));
    return bars;
}

TEST(Features, ComputesEveryInputByHand) {
    // 1970-01-01 was a Thursday (weekday 3 with Monday 0); the second bar opens at 01:00.
    const std::vector<Bar> bars{{0, 100, 100, 100, 100, 0}, {hour, 100, 110, 90, 105, std::numbers::e - 1}};
    const FeatureTable t = compute_features(bars, hour);
    EXPECT_TRUE(std::isnan(t.values(0, 0))); // no previous close
    const double pi = std::numbers::pi;
    const double expected[feature_count] = {
        std::log(1.05),    std::log(110.0 / 90.0), std::log(1.05),       1.0,
        std::sin(pi / 12), std::cos(pi / 12),      std::sin(6 * pi / 7), std::cos(6 * pi / 7)};
    for (std::size_t f = 0; f < feature_count; ++f)
        EXPECT_NEAR(t.values(1, static_cast<Eigen::Index>(f)), expected[f], 1e-12) << feature_names[f];
}

TEST(Features, MarksGapsAsNewRuns) {
    const FeatureTable t = compute_features(without(hourly({1, 2, 3, 4, 5}), 2), hour);
    EXPECT_EQ(t.run_start, (std::vector<std::size_t>{0, 0, 2, 2}));
    EXPECT_EQ(t.history(3), 1u);
    EXPECT_TRUE(std::isnan(t.values(2, 0)));
}

TEST(Features, RejectsBadBarsNamingTheTime) {
    struct Case {
        double close, volume;
        const char* reason;
    };
    const Case cases[] = {{std::nan(""), 1, "non-finite price"},
                          {INFINITY, 1, "non-finite price"},
                          {-1, 1, "non-positive price"},
                          {1, std::nan(""), "non-finite volume"},
                          {1, -1, "negative volume"}};
    for (const auto& c : cases) {
        auto bars = hourly({1, 1, 1});
        bars[1].close = c.close;
        bars[1].volume = c.volume;
        try {
            compute_features(bars, hour);
            ADD_FAILURE() << c.reason;
        } catch (const InvalidInput& e) {
            EXPECT_NE(std::string(e.what()).find("1970-01-01T01:00:00Z"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(c.reason), std::string::npos) << e.what();
        }
    }
}

TEST(Features, OriginsNeverCrossAGap) {
    const DatasetSpec spec{2, {1, 2}};
    struct Case {
        std::vector<Bar> bars;
        std::vector<std::size_t> origins;
    };
    const std::vector<double> ten{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    // Origins need history >= max(window, max horizon) = 2 and bar i+2 in the same run.
    const Case cases[] = {
        {hourly(ten), {2, 3, 4, 5, 6, 7}},
        // Gap after the 6th bar: runs 0..5 and 6..8; the second run is too short.
        {without(hourly(ten), 6), {2, 3}},
    };
    for (const auto& c : cases)
        EXPECT_EQ(target_origins(compute_features(c.bars, hour), spec), c.origins);
}

TEST(Features, ExplainsWhyThereIsNoWindow) {
    struct Case {
        std::vector<Bar> bars;
        const char* message;
    };
    std::vector<Bar> gappy;
    for (int i = 0; i < 40; ++i)
        gappy.push_back({i * 3 * hour, 1, 1, 1, 1, 1}); // every other two bars missing
    const Case cases[] = {
        {hourly({1, 2, 3}), "too few bars"},
        {gappy, "gaps everywhere"},
    };
    for (const auto& c : cases) {
        const FeatureTable t = compute_features(c.bars, hour);
        try {
            require_target_origins(t, DatasetSpec{4, {1, 6}});
            ADD_FAILURE() << c.message;
        } catch (const InvalidInput& e) {
            EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
        }
    }
}

TEST(Features, SplitsChronologicallyWithEmbargo) {
    std::vector<double> closes(30, 1.0);
    const FeatureTable t = compute_features(hourly(closes), hour);
    std::vector<std::size_t> origins;
    for (std::size_t i = 0; i < 20; ++i)
        origins.push_back(i);
    // 14 train, 3 validation, 3 test by count; an embargo of 2 bars drops origin 14 (before 13 + 2) and 17.
    const Split s = split_chronological(t, origins, 2);
    EXPECT_EQ(s.train.size(), 14u);
    EXPECT_EQ(s.train.back(), 13u);
    EXPECT_EQ(s.validation, (std::vector<std::size_t>{15, 16}));
    EXPECT_EQ(s.test, (std::vector<std::size_t>{18, 19}));
    EXPECT_THROW(split_chronological(t, std::span(origins).first(4), 2), InvalidInput);
}

TEST(Features, ScalerUsesTrainingBarsOnly) {
    // Returns ln2, -ln2, ln2, -ln2. Window 2, horizon 1: origins 2 and 3 read rows 1..3.
    const FeatureTable t = compute_features(hourly({100, 200, 100, 200, 100}), hour);
    const DatasetSpec spec{2, {1}};
    const std::vector<std::size_t> train{2, 3};
    const Scaler s = fit_scaler(t, train, spec);
    const double ln2 = std::log(2.0);
    EXPECT_NEAR(s.mean[0], ln2 / 3, 1e-12);
    EXPECT_NEAR(s.stddev[0], ln2 * std::sqrt(4.0 / 3), 1e-12); // sample deviation of {ln2, -ln2, ln2}
    EXPECT_NEAR(s.stddev[1], 1.0, 1e-12);                      // constant high/low ratio: left unscaled
    EXPECT_NEAR(s.target_stddev[0], ln2 * std::sqrt(2.0), 1e-12);
    std::vector<float> w(2 * feature_count);
    fill_window(t, s, 3, 2, w.data());
    EXPECT_NEAR(w[0], (-ln2 - ln2 / 3) / (ln2 * std::sqrt(4.0 / 3)), 1e-6);            // row 2: return -ln2
    EXPECT_NEAR(w[feature_count], (ln2 - ln2 / 3) / (ln2 * std::sqrt(4.0 / 3)), 1e-6); // row 3: return ln2
    const Scaler back = Scaler::from_json(s.to_json(), "test");
    EXPECT_EQ(back.mean, s.mean);
    EXPECT_THROW(Scaler::from_json(nlohmann::json{{"mean", {1}}}, "test"), InvalidInput);
}

TEST(Features, HashIsSha256OfTheCanonicalBytes) {
    // Expected: python3 -c "import struct,hashlib; print(hashlib.sha256(struct.pack('<q5d', 3600, 1, 2, 0.5, 1.5,
    // 10) + struct.pack('<q5d', 7200, 1.5, 1.75, -0.0, 1e-300, 0)).hexdigest())"
    const std::vector<Bar> bars{{3600, 1, 2, 0.5, 1.5, 10}, {7200, 1.5, 1.75, -0.0, 1e-300, 0}};
    EXPECT_EQ(hash_bars(bars), "sha256:772a67eacfe884a6f3205ddcc8fd8479870fd3b416a774b20a469c6a5de10188");
}

TEST(Features, HashChangesWithTheData) {
    auto bars = hourly({1, 2, 3});
    const std::string h = hash_bars(bars);
    EXPECT_EQ(h, hash_bars(bars));
    bars[2].volume += 1;
    EXPECT_NE(h, hash_bars(bars));
}

} // namespace
} // namespace btcml::features
