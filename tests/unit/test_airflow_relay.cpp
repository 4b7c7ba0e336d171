// The Airflow relay against a loopback server speaking Airflow's API: the token is cached and renewed on 401, a
// run Airflow already has (409) counts as triggered, and every other refusal is Unavailable (Alertmanager retries).
#include "core/error.hpp"
#include "loopback_server.hpp"
#include "pipeline/airflow_relay.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <regex>

namespace btcml::pipeline {
namespace {

using test_support::LoopbackServer;
using test_support::Reply;
using test_support::Seen;

net::ClientOptions fast() {
    net::ClientOptions options;
    options.retry.max_attempts = 2;
    options.retry.initial_delay = std::chrono::milliseconds(1);
    options.retry.max_delay = std::chrono::milliseconds(2);
    return options;
}

AirflowSettings settings_for(const LoopbackServer& server) {
    return {server.url(""), "btcml", "secret", "btcml_retrain"};
}

/// Airflow's two endpoints: tokens t1, t2, … in turn; dag runs answered with `run_status` unless the bearer is
/// `expired`.
struct FakeAirflow {
    std::atomic<int> tokens = 0;
    std::string expired; // a token the API now refuses with 401
    int run_status = 200;

    Reply operator()(const Seen& request) {
        if (request.target == "/auth/token") {
            const auto body = nlohmann::json::parse(request.body);
            if (body["username"] != "btcml" || body["password"] != "secret") return {401, "", R"({"detail":"no"})"};
            return {201, "", nlohmann::json{{"access_token", "t" + std::to_string(++tokens)}}.dump()};
        }
        if (!expired.empty() && request.has_header("Authorization: Bearer " + expired))
            return {401, "", R"({"detail":"Token expired"})"};
        return {run_status, "", R"({"detail":"answered"})"};
    }
};

TEST(AirflowRelay, TriggersWithACachedTokenAndLogicalDateNull) {
    FakeAirflow airflow;
    LoopbackServer server([&](const Seen& s) { return airflow(s); });
    AirflowRelay relay(settings_for(server), fast());
    const nlohmann::json conf{{"reason", "alert X"}, {"series", {{{"symbol", "BTCUSD"}, {"interval", "1h"}}}}};
    EXPECT_TRUE(relay.trigger("run-1", conf).created);
    EXPECT_TRUE(relay.trigger("run-2", conf).created);
    const auto seen = server.seen();
    ASSERT_EQ(seen.size(), 3U); // one token for both runs
    EXPECT_EQ(seen[0].target, "/auth/token");
    EXPECT_EQ(seen[1].target, "/api/v2/dags/btcml_retrain/dagRuns");
    EXPECT_TRUE(seen[1].has_header("Authorization: Bearer t1"));
    const auto body = nlohmann::json::parse(seen[1].body);
    EXPECT_EQ(body["dag_run_id"], "run-1");
    EXPECT_TRUE(body.contains("logical_date") && body["logical_date"].is_null());
    EXPECT_EQ(body["conf"], conf);
}

TEST(AirflowRelay, RenewsTheTokenOnceOn401) {
    FakeAirflow airflow;
    LoopbackServer server([&](const Seen& s) { return airflow(s); });
    AirflowRelay relay(settings_for(server), fast());
    EXPECT_TRUE(relay.trigger("run-1", {}).created);
    airflow.expired = "t1";
    EXPECT_TRUE(relay.trigger("run-2", {}).created);
    const auto seen = server.seen();
    ASSERT_EQ(seen.size(), 5U); // token, run, run refused, new token, run
    EXPECT_EQ(seen[3].target, "/auth/token");
    EXPECT_TRUE(seen[4].has_header("Authorization: Bearer t2"));
}

TEST(AirflowRelay, AnExistingRunIsNotASecondOne) {
    FakeAirflow airflow;
    airflow.run_status = 409;
    LoopbackServer server([&](const Seen& s) { return airflow(s); });
    AirflowRelay relay(settings_for(server), fast());
    const auto triggered = relay.trigger("run-1", {});
    EXPECT_FALSE(triggered.created);
    EXPECT_EQ(triggered.dag_run_id, "run-1");
}

TEST(AirflowRelay, RefusalsAreUnavailableNamingStatusAndReason) {
    FakeAirflow airflow;
    airflow.run_status = 404;
    LoopbackServer server([&](const Seen& s) { return airflow(s); });
    AirflowRelay relay(settings_for(server), fast());
    try {
        relay.trigger("run-1", {});
        FAIL() << "expected Unavailable";
    } catch (const Unavailable& e) {
        EXPECT_NE(std::string(e.what()).find("HTTP 404: answered"), std::string::npos) << e.what();
    }
    AirflowRelay wrong({server.url(""), "btcml", "wrong", "btcml_retrain"}, fast());
    try {
        wrong.trigger("run-1", {});
        FAIL() << "expected Unavailable";
    } catch (const Unavailable& e) {
        EXPECT_NE(std::string(e.what()).find("a token for user 'btcml': HTTP 401"), std::string::npos) << e.what();
    }
}

TEST(AirflowRelay, RunIdsAreStablePerAlertAndWithinAirflowsPattern) {
    const std::string key = R"({}/{action="retrain"}:{interval="1h", symbol="BTCUSD"})";
    const auto id = alert_dag_run_id(key, "2026-11-30T01:02:03.456Z", "BTCUSD", "1h");
    EXPECT_EQ(id, alert_dag_run_id(key, "2026-11-30T01:02:03.456Z", "BTCUSD", "1h"));
    EXPECT_NE(id, alert_dag_run_id(key, "2026-11-30T05:00:00Z", "BTCUSD", "1h"));
    EXPECT_NE(id, alert_dag_run_id(key + "x", "2026-11-30T01:02:03.456Z", "BTCUSD", "1h"));
    EXPECT_TRUE(id.starts_with("alert__BTCUSD-1h__2026-11-30T01:02:03.456Z__")) << id;
    EXPECT_TRUE(std::regex_match(id, std::regex("^[A-Za-z0-9_.~:+-]+$"))) << id;
    EXPECT_TRUE(std::regex_match(alert_dag_run_id(key, "t", "BTC/USD 1", "1h"), std::regex("^[A-Za-z0-9_.~:+-]+$")));
}

} // namespace
} // namespace btcml::pipeline
