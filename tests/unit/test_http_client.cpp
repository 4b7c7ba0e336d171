#include "core/error.hpp"
#include "loopback_server.hpp"
#include "net/http_client.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

namespace btcml::net {
namespace {

using std::chrono_literals::operator""ms;
using test_support::LoopbackServer;
using test_support::Reply;
using test_support::Seen;

ClientOptions fast_options(int attempts = 4) {
    ClientOptions options;
    options.retry.max_attempts = attempts;
    options.retry.initial_delay = 1ms;
    options.retry.max_delay = 5ms;
    options.retry.seed = 42;
    return options;
}

TEST(HttpClient, GetReturnsStatusBodyAndHeadersAndSendsOurs) {
    LoopbackServer server([](const Seen&) { return Reply{200, "X-Thing: yes\r\n", "hello", 0ms}; });
    HttpClient client(fast_options());
    const auto response = client.get(server.url("/a?b=1"), {{"X-Custom", "42"}});
    EXPECT_EQ(response.status, 200);
    EXPECT_TRUE(response.ok());
    EXPECT_EQ(response.body, "hello");
    EXPECT_EQ(response.header("x-thing"), "yes");
    EXPECT_EQ(response.attempts, 1);
    const auto seen = server.seen();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_EQ(seen[0].method, "GET");
    EXPECT_EQ(seen[0].target, "/a?b=1");
    EXPECT_TRUE(seen[0].has_header("X-Custom: 42"));
    EXPECT_TRUE(seen[0].has_header("User-Agent: btcml/"));
}

TEST(HttpClient, PostAndPutSendTheirBodies) {
    LoopbackServer server([](const Seen& seen) { return Reply{201, "", seen.method + ":" + seen.body, 0ms}; });
    HttpClient client(fast_options());
    EXPECT_EQ(client.post(server.url("/p"), R"({"x":1})", {{"Content-Type", "application/json"}}).body,
              R"(POST:{"x":1})");
    EXPECT_EQ(client.put(server.url("/p"), "data").body, "PUT:data");
    EXPECT_TRUE(server.seen()[0].has_header("Content-Type: application/json"));
}

TEST(HttpClient, RetriesOnlyTransientStatuses) {
    struct Case {
        int status;
        int expected_attempts;
    };
    for (const auto& c : {Case{500, 3}, Case{502, 3}, Case{503, 3}, Case{408, 3}, Case{429, 3}, Case{400, 1},
                          Case{401, 1}, Case{403, 1}, Case{404, 1}}) {
        LoopbackServer server([&](const Seen&) { return Reply{c.status, "", "no", 0ms}; });
        HttpClient client(fast_options(3));
        const auto response = client.get(server.url("/"));
        EXPECT_EQ(response.status, c.status);
        EXPECT_EQ(response.attempts, c.expected_attempts) << c.status;
        EXPECT_EQ(server.seen().size(), static_cast<std::size_t>(c.expected_attempts)) << c.status;
    }
}

TEST(HttpClient, SucceedsAfterAServerError) {
    std::atomic<int> calls = 0;
    LoopbackServer server([&](const Seen&) {
        return ++calls == 1 ? Reply{500, "", "oops", 0ms} : Reply{200, "", "ok"};
    });
    HttpClient client(fast_options());
    const auto response = client.get(server.url("/"));
    EXPECT_EQ(response.body, "ok");
    EXPECT_EQ(response.attempts, 2);
}

TEST(HttpClient, HonoursRetryAfter) {
    std::atomic<int> calls = 0;
    LoopbackServer server([&](const Seen&) {
        return ++calls == 1 ? Reply{429, "Retry-After: 1\r\n", "slow down", 0ms} : Reply{200, "", "ok"};
    });
    HttpClient client(fast_options());
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(client.get(server.url("/")).body, "ok");
    EXPECT_GE(std::chrono::steady_clock::now() - started, 950ms);
}

TEST(HttpClient, DoesNotWaitForAnAbsurdRetryAfter) {
    LoopbackServer server([&](const Seen&) { return Reply{503, "Retry-After: 3600\r\n", "maintenance", 0ms}; });
    HttpClient client(fast_options());
    const auto response = client.get(server.url("/"));
    EXPECT_EQ(response.status, 503);
    EXPECT_EQ(response.attempts, 1);
}

TEST(HttpClient, ConnectionFailureThrowsUnavailableNamingTheHost) {
    int port = 0;
    { // a port that was free a moment ago: nothing listens there now
        LoopbackServer server([](const Seen&) { return Reply{}; });
        port = std::stoi(server.url("").substr(std::string("http://127.0.0.1:").size()));
    }
    HttpClient client(fast_options(2));
    try {
        client.get("http://127.0.0.1:" + std::to_string(port) + "/");
        FAIL() << "no exception";
    } catch (const Unavailable& e) {
        EXPECT_NE(std::string(e.what()).find("cannot reach 127.0.0.1"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("after 2 attempts"), std::string::npos) << e.what();
    }
}

TEST(HttpClient, TimesOutASilentServer) {
    LoopbackServer server([](const Seen&) { return Reply{200, "", "late", 400ms}; });
    auto options = fast_options(1);
    options.timeout = 100ms;
    HttpClient client(options);
    EXPECT_THROW(client.get(server.url("/")), Unavailable);
}

TEST(HttpClient, FollowsRedirectsButKeepsCredentialsOnTheFirstHost) {
    std::string elsewhere;
    LoopbackServer server([&](const Seen& seen) {
        if (seen.target == "/start") return Reply{302, "Location: /same\r\n", "", 0ms};
        if (seen.target == "/same") return Reply{302, "Location: " + elsewhere + "\r\n", "", 0ms};
        return Reply{200, "", "landed", 0ms};
    });
    elsewhere = server.url("/elsewhere", "localhost"); // same server, another host name
    HttpClient client(fast_options());
    const auto response = client.send({.method = "GET",
                                       .url = server.url("/start"),
                                       .headers = {},
                                       .body = {},
                                       .auth = BasicAuth{"alice", "secret"}});
    EXPECT_EQ(response.body, "landed");
    EXPECT_EQ(response.url, server.url("/elsewhere", "localhost"));
    const auto seen = server.seen();
    ASSERT_EQ(seen.size(), 3U);
    EXPECT_TRUE(seen[0].has_header("Authorization: Basic YWxpY2U6c2VjcmV0")); // alice:secret
    EXPECT_TRUE(seen[1].has_header("Authorization: Basic"));                  // same host: still ours
    EXPECT_FALSE(seen[2].has_header("Authorization"));                        // another host: never
}

TEST(HttpClient, DownloadsToAFileWithProgress) {
    const std::string payload(200000, 'x');
    LoopbackServer server([&](const Seen& seen) {
        return seen.target == "/missing" ? Reply{404, "", R"({"code":404,"message":"Not found"})", 0ms}
                                         : Reply{200, "", payload, 0ms};
    });
    const auto path = std::filesystem::temp_directory_path() / ("btcml-http-test-" + std::to_string(getpid()));
    HttpClient client(fast_options());
    std::int64_t last_done = 0;
    std::int64_t last_total = 0;
    const auto response =
        client.download({.method = "GET", .url = server.url("/file"), .headers = {}, .body = {}, .auth = {}}, path,
                        [&](std::int64_t done, std::int64_t total) {
                            last_done = done;
                            last_total = total;
                        });
    EXPECT_TRUE(response.ok());
    EXPECT_TRUE(response.body.empty());
    EXPECT_EQ(std::filesystem::file_size(path), payload.size());
    EXPECT_EQ(last_done, static_cast<std::int64_t>(payload.size()));
    EXPECT_EQ(last_total, static_cast<std::int64_t>(payload.size()));

    const auto missing =
        client.download({.method = "GET", .url = server.url("/missing"), .headers = {}, .body = {}, .auth = {}}, path);
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(error_gist(missing.body), "Not found");
    EXPECT_EQ(std::filesystem::file_size(path), 0U);
    std::filesystem::remove(path);
}

TEST(HttpClient, ParsesRetryAfter) {
    const std::int64_t now = 1445412480; // Wed, 21 Oct 2015 07:28:00 GMT
    EXPECT_EQ(parse_retry_after("5", now), std::chrono::milliseconds(5000));
    EXPECT_EQ(parse_retry_after(" 0 ", now), std::chrono::milliseconds(0));
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), std::chrono::milliseconds(30000));
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), std::chrono::milliseconds(0));
    EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("", now), std::nullopt);
    EXPECT_EQ(parse_retry_after("-3", now), std::nullopt);
}

TEST(HttpClient, SummarisesErrorBodies) {
    struct Case {
        const char* body;
        const char* gist;
    };
    for (const auto& c :
         {Case{R"({"code": -1121, "msg": "Invalid symbol."})", "Invalid symbol."},
          Case{R"({"status": "error", "reason": "Invalid pair", "code": "API0001"})", "Invalid pair"},
          Case{R"({"errors": [{"field": "x"}]})", R"([{"field":"x"}])"},
          Case{"<html><body>Bad gateway</body></html>", ""}, Case{"", ""}, Case{"plain\ntext", "plain text"}}) {
        EXPECT_EQ(error_gist(c.body), c.gist) << c.body;
    }
}

TEST(HttpClient, EscapesAndFindsHosts) {
    EXPECT_EQ(url_escape("btc usd/1?&"), "btc%20usd%2F1%3F%26");
    EXPECT_EQ(url_escape("Az09-._~"), "Az09-._~");
    EXPECT_EQ(url_host("https://api.binance.com/api/v3/klines?x=1"), "api.binance.com");
    EXPECT_EQ(url_host("http://127.0.0.1:8080/"), "127.0.0.1");
}

} // namespace
} // namespace btcml::net
