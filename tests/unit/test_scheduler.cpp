// The scheduler's decisions (slots, missed ticks, backoff), the pipelines: config section, and the engine on a real
// SQLite store: a claimed run's tasks, a lease held elsewhere or kept by its holder between runs, released on stop or
// expired after its holder died, an abandoned run.
#include "core/config.hpp"
#include "core/error.hpp"
#include "pipeline/scheduler.hpp"
#include "store/store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <unistd.h>

namespace btcml::pipeline {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kHourMs = 3'600'000;

TEST(Schedule, SlotsAreAlignedToTheEpoch) {
    EXPECT_EQ(slot_start(10 * kHourMs + 1234, hours(1)), 10 * kHourMs);
    EXPECT_EQ(slot_start(10 * kHourMs, hours(1)), 10 * kHourMs);
    EXPECT_EQ(slot_start(10 * kHourMs - 1, hours(1)), 9 * kHourMs);
    EXPECT_EQ(slot_start(25 * kHourMs, hours(24)), 24 * kHourMs);
}

TEST(Schedule, DueOncePerSlotAndOnceAfterAPause) {
    const std::int64_t now = 100 * kHourMs + 60'000;
    EXPECT_TRUE(schedule_due(std::nullopt, now, hours(1)));   // never ran
    EXPECT_FALSE(schedule_due(100 * kHourMs, now, hours(1))); // ran in this slot
    EXPECT_FALSE(schedule_due(now, now, hours(1)));
    EXPECT_TRUE(schedule_due(100 * kHourMs - 1, now, hours(1))); // ran in the previous slot
    // After a pause of many slots: due now, and once queued now, not again until the next slot.
    EXPECT_TRUE(schedule_due(50 * kHourMs, now, hours(1)));
    EXPECT_FALSE(schedule_due(now, now + 1000, hours(1)));
    EXPECT_TRUE(schedule_due(now, 101 * kHourMs, hours(1)));
    EXPECT_FALSE(schedule_due(std::nullopt, now, seconds(0))); // `never`: triggers only
}

TEST(Schedule, RetriesBackOffExponentiallyUpToFiveMinutes) {
    EXPECT_EQ(retry_delay(2, milliseconds(1000)), milliseconds(1000));
    EXPECT_EQ(retry_delay(3, milliseconds(1000)), milliseconds(2000));
    EXPECT_EQ(retry_delay(4, milliseconds(1000)), milliseconds(4000));
    EXPECT_EQ(retry_delay(30, milliseconds(1000)), std::chrono::minutes(5));
}

class SchedulerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ =
            std::filesystem::temp_directory_path() / ("btcml-scheduler-" + std::to_string(::getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        config_.home = dir_;
        config_.config_file = dir_ / "config.yaml";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    void write(const std::string& yaml) { std::ofstream(config_.config_file) << yaml; }
    SchedulerOptions options(const std::string& owner) {
        SchedulerOptions o;
        o.home = dir_;
        o.owner = owner;
        o.schedule = false;
        o.low_priority = false;
        return o;
    }
    std::filesystem::path dir_;
    Config config_;
};

TEST_F(SchedulerTest, PipelinesSectionSetsEveryPipeline) {
    write("series:\n  - {symbol: ETHUSD, interval: 1h}\npipelines:\n  tick_every: 30s\n  retrain_every: never\n"
          "  attempts: 5\n  backoff: 2s\n  retrain_timeout: 10m\n  epochs: 3\n  lease: 6s\n");
    const auto pipelines = configured_pipelines(config_);
    ASSERT_EQ(pipelines.size(), 2U);
    EXPECT_EQ(pipelines[0].name, "tick-ETHUSD-1h");
    EXPECT_EQ(pipelines[0].every, seconds(30));
    EXPECT_EQ(pipelines[0].attempts, 5);
    EXPECT_EQ(pipelines[0].backoff, milliseconds(2000));
    EXPECT_EQ(pipelines[0].timeout, std::chrono::minutes(5));
    EXPECT_EQ(pipelines[1].every, seconds(0));
    EXPECT_EQ(pipelines[1].timeout, std::chrono::minutes(10));
    EXPECT_EQ(pipelines[1].epochs, 3);
    EXPECT_EQ(SchedulerOptions::from_config(config_, "").lease, seconds(6));
    write("series:\n  - {symbol: ETHUSD, interval: 1h}\n");
    EXPECT_EQ(SchedulerOptions::from_config(config_, "").lease, seconds(30));
}

TEST_F(SchedulerTest, PipelinesSectionRejectsWhatItDoesNotKnow) {
    for (const char* bad : {"pipelines:\n  attempts: 0\n", "pipelines:\n  backoff: soon\n",
                            "pipelines:\n  colour: red\n", "pipelines: [1]\n", "pipelines:\n  lease: 2s\n"}) {
        write(bad);
        EXPECT_THROW(configured_settings(config_), InvalidInput) << bad;
    }
}

TEST_F(SchedulerTest, AClaimedRunRecordsItsTasksAndReleasesTheLease) {
    write("series:\n  - {symbol: ETHUSD, interval: 1h}\n");
    const auto pipelines = configured_pipelines(config_);
    auto store = store::open_store("", dir_);
    EXPECT_THROW(enqueue(*store, pipelines, "tick-NOPE-1h", "cli", "x"), NotFound);
    const auto [run, created] = enqueue(*store, pipelines, "tick-ETHUSD-1h", "cli", "unit test");
    ASSERT_TRUE(created);
    {
        Scheduler scheduler(options("one"), pipelines);
        EXPECT_EQ(scheduler.poll_once(), std::vector<std::int64_t>{run.id});
        scheduler.wait_idle();
    }
    const auto done = store->pipeline_run(run.id);
    ASSERT_TRUE(done);
    EXPECT_EQ(done->status, "succeeded") << done->error;
    EXPECT_EQ(done->owner, "one");
    const auto tasks = store->pipeline_tasks(run.id);
    ASSERT_EQ(tasks.size(), 3U);
    for (const auto& t : tasks) // no source, no champion, no forecasts: nothing to do, nothing fails
        EXPECT_EQ(t.status, t.task == "score" ? "succeeded" : "skipped") << t.task;
    EXPECT_TRUE(store->acquire_lease("pipeline:tick-ETHUSD-1h", "other", 1, 2)); // released
}

TEST_F(SchedulerTest, ALeaseHeldElsewhereLeavesTheRunQueuedAndAnAbandonedRunIsFailed) {
    write("series:\n  - {symbol: ETHUSD, interval: 1h}\n");
    const auto pipelines = configured_pipelines(config_);
    auto store = store::open_store("", dir_);
    const auto [run, created] = enqueue(*store, pipelines, "tick-ETHUSD-1h", "cli", "x");
    const auto far = std::int64_t{1} << 50;
    ASSERT_TRUE(store->acquire_lease("pipeline:tick-ETHUSD-1h", "elsewhere", 0, far));
    ASSERT_TRUE(store->claim_pipeline_run("tick-ETHUSD-1h", "elsewhere", 1));
    Scheduler scheduler(options("one"), pipelines);
    EXPECT_TRUE(scheduler.poll_once().empty());
    EXPECT_EQ(store->pipeline_run(run.id)->status, "running");
    // Its holder died: once the lease is free, the next holder marks the run failed and a new one can be queued.
    store->release_lease("pipeline:tick-ETHUSD-1h", "elsewhere");
    EXPECT_TRUE(scheduler.poll_once().empty()); // nothing queued to run
    const auto abandoned = store->pipeline_run(run.id);
    EXPECT_EQ(abandoned->status, "failed");
    EXPECT_NE(abandoned->error.find("abandoned: its scheduler (elsewhere)"), std::string::npos) << abandoned->error;
    EXPECT_TRUE(enqueue(*store, pipelines, "tick-ETHUSD-1h", "cli", "y").second);
    scheduler.wait_idle();
}

TEST_F(SchedulerTest, TheHolderKeepsTheLeaseBetweenRunsAndHandsItOverWhenItStops) {
    write("series:\n  - {symbol: ETHUSD, interval: 1h}\n");
    const auto pipelines = configured_pipelines(config_);
    auto store = store::open_store("", dir_);
    auto one = std::make_unique<Scheduler>(options("one"), pipelines);
    Scheduler two(options("two"), pipelines);
    EXPECT_TRUE(one->poll_once().empty()); // nothing queued, but one now holds both pipelines
    const auto first = enqueue(*store, pipelines, "tick-ETHUSD-1h", "cli", "first").first;
    EXPECT_TRUE(two.poll_once().empty());
    EXPECT_EQ(one->poll_once(), std::vector<std::int64_t>{first.id});
    one->wait_idle();
    EXPECT_EQ(store->pipeline_run(first.id)->owner, "one");
    // The run is over and one still holds the pipeline: the next run waits for one, not for whoever polls first.
    const auto second = enqueue(*store, pipelines, "tick-ETHUSD-1h", "cli", "second").first;
    EXPECT_TRUE(two.poll_once().empty());
    EXPECT_EQ(store->pipeline_run(second.id)->status, "queued");
    // One stops: it releases its leases, and two takes over at its next poll, without waiting for them to expire.
    one.reset();
    EXPECT_EQ(two.poll_once(), std::vector<std::int64_t>{second.id});
    two.wait_idle();
    EXPECT_EQ(store->pipeline_run(second.id)->owner, "two");
    EXPECT_EQ(store->pipeline_run(second.id)->status, "succeeded");
}

TEST_F(SchedulerTest, ADeadHoldersLeaseIsTakenOverOnlyOnceItHasExpired) {
    write("series:\n  - {symbol: ETHUSD, interval: 1h}\n");
    const auto pipelines = configured_pipelines(config_);
    auto store = store::open_store("", dir_);
    auto dead_options = options("dead");
    dead_options.lease = milliseconds(600);
    Scheduler dead(dead_options, pipelines); // polls once, then never again: as if killed
    Scheduler survivor(options("survivor"), pipelines);
    const auto taken = std::chrono::steady_clock::now();
    EXPECT_TRUE(dead.poll_once().empty());
    const auto run = enqueue(*store, pipelines, "tick-ETHUSD-1h", "cli", "after the holder died").first;
    std::vector<std::int64_t> started;
    while ((started = survivor.poll_once()).empty()) {
        ASSERT_LT(std::chrono::steady_clock::now() - taken, seconds(30)) << "the survivor never took over";
        std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_GE(std::chrono::steady_clock::now() - taken, milliseconds(600));
    EXPECT_EQ(started, std::vector<std::int64_t>{run.id});
    survivor.wait_idle();
    EXPECT_EQ(store->pipeline_run(run.id)->owner, "survivor");
}

} // namespace
} // namespace btcml::pipeline
