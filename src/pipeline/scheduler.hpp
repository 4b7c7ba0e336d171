#pragma once
// The built-in scheduler: runs the configured pipelines (catalog.hpp) of every series, inside `btcml serve
// --scheduler` or alone as `btcml scheduler`. Triggers (the schedule, the API, the CLI, alerts) only queue runs in
// the store; a scheduler claims a queued run under the pipeline's lease, so that one run of a pipeline runs at a
// time across every process sharing the store. See src/pipeline/README.md.
#include "monitor/scoring.hpp"
#include "pipeline/catalog.hpp"
#include "pipeline/train.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace btcml::pipeline {

// ---- scheduling decisions (pure) ----------------------------------------------------------------------------------

/// The start of the schedule slot holding `now_ms`: slots are `every` long and aligned to the unix epoch (an
/// hourly tick's slot starts when an hourly bar closes).
std::int64_t slot_start(std::int64_t now_ms, std::chrono::seconds every);

/// Whether a scheduled run is due: none was queued in the current slot. After a pause (scheduler stopped, machine
/// asleep) this is true once, not once per missed slot: missed ticks are not caught up.
bool schedule_due(std::optional<std::int64_t> last_scheduled_ms, std::int64_t now_ms, std::chrono::seconds every);

/// The pause before attempt `attempt` (2 for the first retry): `backoff` doubled for each retry after the first,
/// at most 5 minutes.
std::chrono::milliseconds retry_delay(int attempt, std::chrono::milliseconds backoff);

// ---- the engine ---------------------------------------------------------------------------------------------------

struct SchedulerOptions {
    std::filesystem::path home;
    std::string db_url;
    std::string tracking_uri;
    std::string owner;                       // who claims runs: host:pid (default_owner())
    std::chrono::milliseconds poll{1000};    // how often queues and schedules are looked at
    std::chrono::milliseconds lease{30'000}; // a lease lasts this long; renewed every third of it while held
    bool schedule = true;                    // false: only run what is queued (btcml pipeline run)
    int train_threads = 0;                   // OpenMP threads of a retrain (0: every core)
    bool low_priority = true; // retrains run under SCHED_IDLE (else nice 19), so request threads come first
    /// Called after a retrain promoted a new champion of `key` (the in-process server reloads it); may be empty.
    std::function<void(const SeriesKey&)> on_promoted;
    /// Called after a tick scored the matured forecasts of `key` (the in-process /metrics exporter refreshes); may
    /// be empty.
    std::function<void(const SeriesKey&)> on_scored;
    monitor::MonitorOptions monitor; // live windows and drift bars of the tick's scoring

    /// The settings every scheduler reads from the configuration: home, store, tracking URI, lease, monitor options.
    static SchedulerOptions from_config(const Config& config, std::string tracking_uri);
};

/// `host:pid`.
std::string default_owner();

/// What a retrain trains: the champion's window, horizons and hyperparameters (the defaults of `btcml train` without
/// one), the pipeline's epochs when configured. The built-in scheduler and `btcml pipeline step` (Airflow) share it.
TrainRequest retrain_request(store::Store& store, const SchedulerOptions& options, const PipelineSpec& spec);

/// Runs one task of a pipeline as a run of it would (tick: ingest, forecast, score; retrain: train, whose detail is
/// `btcml train --json`'s report) and returns its detail; UsageError for another task. For orchestrators that run
/// each task as its own process (`btcml pipeline step`, Airflow).
nlohmann::json run_step(store::Store& store, const SchedulerOptions& options, const PipelineSpec& spec,
                        std::string_view task, std::stop_token stop);

/// Queues a run of the configured pipeline `name` (NotFound naming the configured ones otherwise); returns the
/// pipeline's active run and whether this call created it (false: it joined a queued or running one).
std::pair<store::PipelineRun, bool> enqueue(store::Store& store, const std::vector<PipelineSpec>& pipelines,
                                            const std::string& name, const std::string& trigger,
                                            const std::string& reason);

/// A run as JSON (with its task attempts when given): what the CLI and the API print.
nlohmann::json to_json(const store::PipelineRun& run, const std::vector<store::PipelineTask>* tasks = nullptr);

/// Every configured pipeline with its schedule, its newest run and when the schedule next queues one (null: on
/// triggers only): what `btcml pipeline list` and GET /api/v1/pipelines show.
nlohmann::json describe_pipelines(store::Store& store, const std::vector<PipelineSpec>& pipelines);

/// Runs pipelines until stopped. A scheduler holds the lease of each pipeline it gets for as long as it lives, renewing
/// it whether or not a run is in flight: the holder alone queues the pipeline's scheduled runs and claims its queued
/// ones, so that every run of a pipeline is recorded by one process until it stops (its leases are released) or dies
/// (they expire and another scheduler takes over). Thread-safe: run() on one thread; the destructor waits for runs in
/// flight, then releases the leases.
class Scheduler {
  public:
    Scheduler(SchedulerOptions options, std::vector<PipelineSpec> pipelines);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    /// Queues due scheduled runs and starts queued ones whose lease this process gets, each on its own thread,
    /// until `stop`; then asks runs in flight to stop and waits for them.
    void run(std::stop_token stop);
    /// One pass of run(): take or renew leases, mark runs abandoned by a dead holder failed, queue what is due, start
    /// what is claimable. Returns the runs started; Unavailable while the store cannot be reached (run() logs it and
    /// tries again at the next poll).
    std::vector<std::int64_t> poll_once();
    /// Waits for every run this scheduler started. For tests and `btcml pipeline run`.
    void wait_idle();

  private:
    struct Active;
    void execute(const PipelineSpec& spec, store::PipelineRun run, std::stop_token stop);
    void recover_abandoned(store::Store& store, const PipelineSpec& spec);
    bool hold_lease(const PipelineSpec& spec);
    void release_leases();

    SchedulerOptions options_;
    std::vector<PipelineSpec> pipelines_;
    std::unique_ptr<store::Store> store_; // the polling thread's connection, opened by poll_once
    std::mutex mutex_;
    std::map<std::string, std::shared_ptr<Active>> active_; // pipeline name -> run in flight here
    std::map<std::string, std::int64_t> held_;              // pipeline name -> when its lease was last taken or renewed
    std::stop_source stopping_;
};

} // namespace btcml::pipeline
