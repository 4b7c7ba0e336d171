// The OpenAPI document against the route table, and the pieces of the server that need no socket.
#include "serve/api.hpp"
#include "serve/assets.hpp"
#include "serve/http_server.hpp"
#include "serve/service.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace btcml::serve {
namespace {

nlohmann::json openapi() {
    const auto text = asset("openapi.json");
    EXPECT_TRUE(text.has_value());
    return nlohmann::json::parse(text.value_or("{}"));
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

TEST(ServeApi, EveryRegisteredRouteIsDocumentedWithResponsesAndExamples) {
    const auto doc = openapi();
    ASSERT_EQ(doc["openapi"], "3.1.0");
    for (const auto& route : route_specs()) {
        const std::string where = std::string(route.method) + " " + std::string(route.pattern);
        const auto& paths = doc["paths"];
        ASSERT_TRUE(paths.contains(std::string(route.pattern))) << where << " is missing from openapi.json";
        const auto& ops = paths[std::string(route.pattern)];
        ASSERT_TRUE(ops.contains(lower(route.method))) << where << " is missing from openapi.json";
        const auto& op = ops[lower(route.method)];
        ASSERT_TRUE(op.contains("responses") && !op["responses"].empty()) << where;
        if (route.access == Access::write || route.access == Access::alert) {
            EXPECT_TRUE(op.contains("security") && !op["security"].empty()) << where << " needs a key: say so";
            EXPECT_TRUE(op["responses"].contains("401")) << where;
        }
        if (op["responses"].contains("401")) {
            EXPECT_TRUE(op["responses"].contains("429")) << where << " checks keys: document the limit on wrong ones";
        }
        if (route.work == Work::pool) {
            EXPECT_TRUE(op["responses"].contains("503")) << where << " runs on the worker pool: document a full queue";
        }
        for (const auto& [status, response] : op["responses"].items()) {
            if (!response.contains("content")) continue;
            if (status == "200" && (route.pattern == "/openapi.json" || route.pattern == "/docs/{file}")) continue;
            bool example = false;
            for (const auto& [type, media] : response["content"].items())
                example |= media.contains("example");
            EXPECT_TRUE(example) << where << " " << status << " has no example";
        }
        if (op.contains("requestBody")) {
            EXPECT_TRUE(op["responses"].contains("413")) << where << " takes a body: document 413";
            EXPECT_TRUE(op["responses"].contains("422")) << where << " takes a body: document 422";
        }
    }
}

TEST(ServeApi, EveryDocumentedOperationIsRegistered) {
    std::set<std::string> registered;
    for (const auto& route : route_specs())
        registered.insert(lower(route.method) + " " + std::string(route.pattern));
    const auto doc = openapi();
    for (const auto& [path, ops] : doc["paths"].items())
        for (const auto& [method, op] : ops.items())
            EXPECT_TRUE(registered.contains(method + " " + path)) << method << " " << path << " is not a route";
}

TEST(ServeApi, KeysCompareWholly) {
    const std::vector<std::string> keys{"alpha", "beta-key"};
    EXPECT_TRUE(key_matches("alpha", keys));
    EXPECT_TRUE(key_matches("beta-key", keys));
    EXPECT_FALSE(key_matches("alph", keys));
    EXPECT_FALSE(key_matches("alphaa", keys));
    EXPECT_FALSE(key_matches("", keys));
    EXPECT_FALSE(key_matches("", {""}));
    EXPECT_FALSE(key_matches("alpha", {}));
}

TEST(ServeApi, ProblemRepliesFollowRfc9457) {
    const auto r =
        problem_response(422, "bad close", nlohmann::json::array({{{"field", "bars[0].close"}, {"detail", "x"}}}));
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.content_type, "application/problem+json");
    const auto body = nlohmann::json::parse(r.body);
    EXPECT_EQ(body["status"], 422);
    EXPECT_EQ(body["title"], "Unprocessable Content");
    EXPECT_EQ(body["type"], "urn:btcml:problem:unprocessable-content");
    EXPECT_EQ(body["errors"][0]["field"], "bars[0].close");
}

TEST(ServeApi, FailureLimiterAllowsABurstThenOneAttemptPerPeriod) {
    FailureLimiter limiter(3, 100);
    const FailureLimiter::Clock::time_point t0{};
    const std::string client = "192.0.2.1";
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(limiter.retry_after(client, t0), 0) << i;
        limiter.failed(client, t0);
    }
    EXPECT_EQ(limiter.retry_after(client, t0), 20); // 3 a minute: one token every 20 s
    EXPECT_EQ(limiter.retry_after("192.0.2.2", t0), 0) << "another address has its own bucket";
    EXPECT_EQ(limiter.retry_after(client, t0 + std::chrono::seconds(15)), 5);
    EXPECT_EQ(limiter.retry_after(client, t0 + std::chrono::seconds(20)), 0);
    limiter.failed(client, t0 + std::chrono::seconds(20));
    EXPECT_EQ(limiter.retry_after(client, t0 + std::chrono::seconds(20)), 20);
}

TEST(ServeApi, FailureLimiterMemoryIsBounded) {
    FailureLimiter limiter(2, 4);
    const FailureLimiter::Clock::time_point t0{};
    for (int i = 0; i < 1000; ++i) {
        const auto now = t0 + std::chrono::milliseconds(i);
        limiter.failed("198.51.100." + std::to_string(i), now);
        limiter.failed("198.51.100." + std::to_string(i), now);
        EXPECT_LE(limiter.size(), 4U);
    }
    // The most recent offenders are the ones kept, still blocked.
    EXPECT_GT(limiter.retry_after("198.51.100.999", t0 + std::chrono::milliseconds(999)), 0);
    // Refilled buckets are forgotten first when room is needed.
    limiter.failed("203.0.113.1", t0 + std::chrono::hours(1));
    EXPECT_EQ(limiter.size(), 1U);
}

TEST(ServeStorePool, ReplacesAConnectionWhoseDatabaseFileWasReplaced) {
    const auto dir = std::filesystem::temp_directory_path() / fmt::format("btcml_pool_test_{}", getpid());
    std::filesystem::create_directories(dir);
    const auto db = dir / "btcml.db";
    {
        StorePool pool("sqlite:" + db.string(), dir);
        const std::vector<Bar> bars{{3600, 1, 2, 0.5, 1.5, 10}};
        pool.acquire()->insert_bars({"BTCUSD", 3600}, bars, "test");
        for (const char* suffix : {"", "-wal", "-shm"})
            std::filesystem::remove(db.string() + suffix);
        // The pooled connection still reads the removed file; the pool opens the new one instead.
        EXPECT_TRUE(pool.acquire()->list_series().empty());
        EXPECT_TRUE(std::filesystem::exists(db));
    }
    std::filesystem::remove_all(dir);
}

TEST(ServeSlidingWindowLimit, AdmitsUpToTheLimitInAnyPeriod) {
    using std::chrono::seconds;
    SlidingWindowLimit limit(2, seconds(10));
    const std::chrono::steady_clock::time_point t0{seconds(1000)};
    EXPECT_TRUE(limit.admit(t0));
    EXPECT_TRUE(limit.admit(t0 + seconds(1)));
    EXPECT_FALSE(limit.admit(t0 + seconds(9)));
    EXPECT_TRUE(limit.admit(t0 + seconds(10))); // the first has left the window
    EXPECT_FALSE(limit.admit(t0 + seconds(10)));
    EXPECT_TRUE(limit.admit(t0 + seconds(11)));
    SlidingWindowLimit none(0, seconds(10));
    EXPECT_FALSE(none.admit(t0));
}

} // namespace
} // namespace btcml::serve
