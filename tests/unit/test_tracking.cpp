// MLflow's limits, checked before anything is sent.
#include "core/error.hpp"
#include "tracking/mlflow_client.hpp"

#include <gtest/gtest.h>

#include <string>

namespace btcml::tracking {
namespace {

TEST(MlflowLimits, BatchesSplitAtMlflowsLimits) {
    store::RunData data;
    for (int i = 0; i < 250; ++i)
        data.params.emplace_back("p" + std::to_string(i), "v");
    for (int i = 0; i < 2500; ++i)
        data.metrics.push_back({"loss", 1.0, 0, i, i + 1});
    const auto batches = split_batches(data);
    std::size_t params = 0, metrics = 0;
    for (const auto& b : batches) {
        EXPECT_LE(b.params.size(), max_params_tags_per_batch);
        EXPECT_LE(b.metrics.size(), max_metrics_per_batch);
        EXPECT_LE(b.params.size() + b.tags.size() + b.metrics.size(), max_entities_per_batch);
        params += b.params.size();
        metrics += b.metrics.size();
    }
    EXPECT_EQ(params, 250U);
    EXPECT_EQ(metrics, 2500U);
    EXPECT_EQ(batches.back().metrics.back().step, 2499); // logging order is kept
    EXPECT_TRUE(split_batches({}).empty());
}

TEST(MlflowLimits, KeysAndValuesAreCheckedBeforeSending) {
    EXPECT_NO_THROW(check_key("test.h1/model mae:x-y_z", "metric"));
    EXPECT_THROW(check_key("", "metric"), InvalidInput);
    EXPECT_THROW(check_key(std::string(251, 'k'), "metric"), InvalidInput);
    EXPECT_THROW(check_key("bad*key", "metric"), InvalidInput);
    EXPECT_THROW(check_key("a//b", "metric"), InvalidInput);
    EXPECT_THROW(check_key("../up", "metric"), InvalidInput);
    EXPECT_THROW(check_key("/abs", "metric"), InvalidInput);
    EXPECT_THROW(check_param("p", std::string(6001, 'v')), InvalidInput);
    EXPECT_NO_THROW(check_param("p", std::string(6000, 'v')));
    EXPECT_THROW(check_tag("t", std::string(8001, 'v')), InvalidInput);
    store::RunData bad;
    bad.tags = {{"fine", "x"}, {"not fine!", "y"}};
    EXPECT_THROW(split_batches(bad), InvalidInput);
}

TEST(MlflowClient, RefusesUrisThatAreNotHttp) {
    EXPECT_THROW(MlflowClient("databricks"), UsageError);
    EXPECT_THROW(MlflowClient("file:///tmp/mlruns"), UsageError);
    EXPECT_NO_THROW(MlflowClient("http://127.0.0.1:5000/"));
}

} // namespace
} // namespace btcml::tracking
