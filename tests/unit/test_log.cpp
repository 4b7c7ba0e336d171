#include "core/error.hpp"
#include "core/log.hpp"
#include "monitor/log_sink.hpp"

#include <chrono>
#include <cstdlib>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <regex>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace btcml {
namespace {

nlohmann::json parse(const std::string& document) { return nlohmann::json::parse(document); }

TEST(EcsLog, CarriesTheEcsBaseFieldsAndPutsOurOwnUnderBtcml) {
    const auto doc = parse(log::ecs_document(LogLevel::warn, "said \"hi\"\n",
                                             {{"http.response.status_code", 404},
                                              {"error.message", "boom"},
                                              {"model.version", 3},
                                              {"pipeline", "x"},
                                              {"btcml.run_id", 7},
                                              {"service.name", "spoofed"}}));
    EXPECT_EQ(doc["message"], "said \"hi\"\n");
    EXPECT_EQ(doc["log.level"], "warn");
    EXPECT_TRUE(std::regex_match(doc["@timestamp"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    EXPECT_EQ(doc["service.name"], "btcml");
    EXPECT_EQ(doc["service.version"], BTCML_VERSION);
    EXPECT_EQ(doc["ecs.version"], "8.11.0");
    EXPECT_EQ(doc["process.pid"], getpid());
    EXPECT_EQ(doc["event.dataset"], "btcml.log");
    EXPECT_EQ(doc["http.response.status_code"], 404);
    EXPECT_EQ(doc["error.message"], "boom");
    EXPECT_EQ(doc["btcml.model.version"], 3);
    EXPECT_EQ(doc["btcml.pipeline"], "x");
    EXPECT_EQ(doc["btcml.run_id"], 7);
    EXPECT_FALSE(doc.contains("model.version"));
    EXPECT_FALSE(doc.contains("trace.id"));
}

TEST(EcsLog, ATraceScopeTagsEveryEventOfItsThreadAndScopesNest) {
    const auto outer_id = log::new_trace_id();
    const auto inner_id = log::new_trace_id();
    EXPECT_TRUE(std::regex_match(outer_id, std::regex("[0-9a-f]{32}")));
    EXPECT_NE(outer_id, inner_id);
    {
        const log::TraceScope outer(outer_id);
        {
            const log::TraceScope inner(inner_id);
            EXPECT_EQ(parse(log::ecs_document(LogLevel::info, "m", {}))["trace.id"], inner_id);
        }
        EXPECT_EQ(parse(log::ecs_document(LogLevel::info, "m", {}))["trace.id"], outer_id);
        // Another thread is not in the scope.
        std::thread([] {
            EXPECT_FALSE(parse(log::ecs_document(LogLevel::info, "m", {})).contains("trace.id"));
        }).join();
        // A field given explicitly wins and is not written twice.
        const auto doc = log::ecs_document(LogLevel::info, "m", {{"trace.id", "given"}});
        EXPECT_EQ(parse(doc)["trace.id"], "given");
        EXPECT_EQ(doc.find("trace.id"), doc.rfind("trace.id"));
    }
    EXPECT_FALSE(parse(log::ecs_document(LogLevel::info, "m", {})).contains("trace.id"));
}

TEST(EcsLog, TheForwarderGetsEventsAboveTheThresholdButNotLocalOnlyOnes) {
    std::vector<std::string> forwarded;
    log::configure(LogFormat::text, LogLevel::info);
    log::forward_to([&forwarded](std::string document) { forwarded.push_back(std::move(document)); });
    log::debug("below the threshold");
    log::info("shipped", {{"rows", 5}});
    {
        const log::LocalOnly local;
        log::warn("stays local");
    }
    log::forward_to({});
    log::info("after the forwarder went");
    ASSERT_EQ(forwarded.size(), 1U);
    EXPECT_EQ(parse(forwarded[0])["message"], "shipped");
    EXPECT_EQ(parse(forwarded[0])["btcml.rows"], 5);
}

class LogSinkOptionsTest : public ::testing::Test {
  protected:
    static constexpr const char* kVars[] = {
        "BTCML_LOG_SINK",      "BTCML_LOG_SINK_INDEX",    "BTCML_LOG_SINK_QUEUE",  "BTCML_LOG_SINK_FLUSH_MS",
        "BTCML_LOG_SINK_USER", "BTCML_LOG_SINK_PASSWORD", "BTCML_LOG_SINK_API_KEY"};
    void SetUp() override {
        for (const char* v : kVars)
            unsetenv(v);
    }
    void TearDown() override { SetUp(); }
};

TEST_F(LogSinkOptionsTest, UnsetMeansNoShippingAndCredentialsComeFromTheEnvironment) {
    Config config;
    EXPECT_FALSE(monitor::log_sink_options(config));
    config.file_values["log_sink"] = "http://127.0.0.1:9200/";
    config.file_values["log_sink_queue"] = "50";
    setenv("BTCML_LOG_SINK_USER", "shipper", 1);
    setenv("BTCML_LOG_SINK_PASSWORD", "secret", 1);
    const auto options = monitor::log_sink_options(config);
    ASSERT_TRUE(options);
    EXPECT_EQ(options->url, "http://127.0.0.1:9200");
    EXPECT_EQ(options->index, "btcml-logs");
    EXPECT_EQ(options->queue_limit, 50U);
    ASSERT_TRUE(options->auth);
    EXPECT_EQ(options->auth->user, "shipper");
    EXPECT_EQ(options->auth->password, "secret");
}

TEST_F(LogSinkOptionsTest, MalformedValuesAreUsageErrorsNamingTheSetting) {
    Config config;
    for (const auto& [key, value, named] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"log_sink", "localhost:9200", "log_sink"},
             {"log_sink_queue", "0", "log_sink_queue"},
             {"log_sink_flush_ms", "1s", "log_sink_flush_ms"},
             {"log_sink_index", "a/b", "log_sink_index"}}) {
        config.file_values = {{"log_sink", "http://127.0.0.1:9200"}};
        config.file_values[key] = value;
        try {
            (void)monitor::log_sink_options(config);
            ADD_FAILURE() << key << "=" << value << " was accepted";
        } catch (const UsageError& e) {
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    }
}

std::uint16_t closed_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    bind(fd, reinterpret_cast<sockaddr*>(&address), length);
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    close(fd);
    return ntohs(address.sin_port);
}

TEST(LogSink, AnUnreachableStoreNeverBlocksEnqueueAndOverflowIsCounted) {
    monitor::LogSinkOptions options;
    options.url = "http://127.0.0.1:" + std::to_string(closed_port());
    options.queue_limit = 10;
    options.batch_size = 5;
    options.flush_interval = std::chrono::milliseconds(20);
    options.shutdown_grace = std::chrono::milliseconds(200);
    const auto started = std::chrono::steady_clock::now();
    {
        monitor::LogSink sink(options);
        for (int i = 0; i < 1000; ++i)
            sink.enqueue(R"({"message":"x"})");
        // A thousand events take no network time on this thread.
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (sink.stats().failed_requests == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const auto stats = sink.stats();
        EXPECT_GE(stats.failed_requests, 1U);
        EXPECT_GE(stats.dropped_queue_full, 985U); // at most the queue and one batch got in
        EXPECT_EQ(stats.shipped, 0U);
        std::string metrics;
        sink.render(metrics);
        EXPECT_NE(metrics.find("btcml_log_events_dropped_total{reason=\"queue_full\"} " +
                               std::to_string(stats.dropped_queue_full)),
                  std::string::npos)
            << metrics;
    }
    // Stopping gives up on an unreachable store instead of waiting for it.
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

} // namespace
} // namespace btcml
