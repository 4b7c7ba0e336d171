#include "pipeline/scheduler.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "data/ingest.hpp"
#include "features/dataset.hpp"
#include "model/forecaster.hpp"
#include "monitor/scoring.hpp"
#include "pipeline/forecast.hpp"
#include "pipeline/train.hpp"
#include "tracking/registry.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>

namespace btcml::pipeline {
namespace {

// The schedule's "now": the process clock (seconds), which a replay clock may drive.

// When tasks start and end: wall time with milliseconds, for durations.
std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Sleeps up to `delay`; returns early (false) when `stop` is requested.
bool pause(std::chrono::milliseconds delay, std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any cv;
    std::unique_lock lock(mutex);
    cv.wait_for(lock, stop, delay, [] { return false; });
    return !stop.stop_requested();
}

using TaskFn = std::function<nlohmann::json(std::stop_token)>;

// Runs one task with retries, exponential backoff and a timeout per attempt, recording every attempt. A detail with
// "skipped" marks the task skipped (nothing to do). Returns the detail of the attempt that succeeded, or nothing.
std::optional<nlohmann::json> run_task(store::Store& store, const PipelineSpec& spec, std::int64_t run_id,
                                       const std::string& name, std::stop_token stop, const TaskFn& fn) {
    for (int attempt = 1; attempt <= spec.attempts; ++attempt) {
        if (attempt > 1 && !pause(retry_delay(attempt, spec.backoff), stop)) break;
        store::PipelineTask task{run_id, name, attempt, "running", "", wall_ms(), 0, "{}"};
        store.save_pipeline_task(task);
        std::stop_source task_stop;
        std::stop_callback forward(stop, [&task_stop] { task_stop.request_stop(); });
        std::atomic<bool> timed_out = false;
        std::optional<nlohmann::json> detail;
        {
            // The timeout asks the task to stop (training stops after its epoch); the attempt then counts as failed.
            std::jthread watchdog([&](std::stop_token done) {
                std::mutex mutex;
                std::condition_variable_any cv;
                std::unique_lock lock(mutex);
                cv.wait_for(lock, done, spec.timeout, [] { return false; });
                if (!done.stop_requested()) {
                    timed_out = true;
                    task_stop.request_stop();
                }
            });
            try {
                detail = fn(task_stop.get_token());
                if (timed_out) throw Unavailable("it ended after its timeout");
            } catch (const std::exception& e) {
                task.error = timed_out ? fmt::format("timed out after {}s ({})", spec.timeout.count(), e.what())
                                       : std::string(e.what());
                detail.reset();
            }
        }
        task.finished_ms = wall_ms();
        if (detail) {
            task.status = detail->contains("skipped") ? "skipped" : "succeeded";
            task.detail_json = detail->dump();
        } else {
            task.status = "failed";
            log::warn("pipeline task failed", {{"pipeline.name", spec.name},
                                               {"pipeline.run_id", run_id},
                                               {"task", name},
                                               {"attempt", attempt},
                                               {"of", spec.attempts},
                                               {"error.message", task.error}});
        }
        store.save_pipeline_task(task);
        if (detail) return detail;
        if (stop.stop_requested()) break;
    }
    return std::nullopt;
}

nlohmann::json ingest_task(store::Store& store, const SchedulerOptions& options, const SeriesConfig& series) {
    if (series.source.empty()) return {{"skipped", "the series has no source: bars arrive another way"}};
    data::IngestOptions ingest;
    ingest.symbol = series.key.symbol;
    ingest.interval = series.key.interval;
    ingest.home = options.home;
    const auto summary = data::ingest(store, series.source, ingest);
    return {{"ingest_run_id", summary.run_id},
            {"rows_inserted", summary.rows_inserted},
            {"rows_rejected", summary.rows_rejected}};
}

std::string model_name_of(const SeriesKey& key) {
    return tracking::series_model_name(key.symbol, format_interval(key.interval));
}

std::optional<int> champion_of(store::Store& store, const SeriesKey& key) {
    const auto aliases = store.aliases(model_name_of(key));
    const auto it = aliases.find("champion");
    if (it == aliases.end()) return std::nullopt;
    return it->second;
}

// The champion's forecast from the latest stored bars, stored as a scheduled (champion) prediction.
nlohmann::json forecast_task(store::Store& store, const SchedulerOptions& options, const SeriesKey& key) {
    const auto version = champion_of(store, key);
    if (!version) return {{"skipped", fmt::format("{} has no champion yet", model_name_of(key))}};
    const auto loaded = model::load_model(options.home, std::to_string(*version));
    const auto newest = store.last_bar_time(key);
    if (!newest) return {{"skipped", "no bars stored yet"}};
    const std::int64_t span = static_cast<std::int64_t>(loaded.forecaster.spec().window) * key.interval;
    const auto bars = store.load_bars({key, *newest - span, *newest, {}});
    const auto forecast = served_forecast(store, loaded, bars);
    const auto rows = prediction_rows(*version, key, forecast, bars, "scheduled");
    const auto stored = store.insert_predictions(rows);
    return {{"model_version", *version}, {"as_of", format_iso8601(forecast.as_of)}, {"stored", stored}};
}

// A retrain shares the machine with request threads: it runs under SCHED_IDLE (a request thread that wakes up
// preempts it at once, where nice 19 would first let it finish its slice), else at nice 19, on at most `threads`
// cores. All are per thread on Linux, and OpenMP's workers inherit them from the thread that starts them.
void lower_priority(const SchedulerOptions& options) {
    if (options.low_priority) {
        const sched_param param{};
        if (sched_setscheduler(0, SCHED_IDLE, &param) != 0 &&
            setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19) != 0)
            log::warn("could not lower the retrain thread's priority", {{"error.message", std::strerror(errno)}});
    }
    if (options.train_threads > 0) omp_set_num_threads(options.train_threads);
}

} // namespace

SchedulerOptions SchedulerOptions::from_config(const Config& config, std::string tracking_uri) {
    SchedulerOptions options;
    options.home = config.home;
    options.db_url = config.db_url;
    options.tracking_uri = std::move(tracking_uri);
    options.lease = configured_settings(config).lease;
    options.monitor = monitor::MonitorOptions::from_config(config);
    return options;
}

std::int64_t slot_start(std::int64_t now_ms, std::chrono::seconds every) {
    const std::int64_t span = std::max<std::int64_t>(1, every.count()) * 1000;
    return now_ms - ((now_ms % span) + span) % span;
}

bool schedule_due(std::optional<std::int64_t> last_scheduled_ms, std::int64_t now_ms, std::chrono::seconds every) {
    if (every.count() <= 0) return false; // on triggers only
    return !last_scheduled_ms || *last_scheduled_ms < slot_start(now_ms, every);
}

std::chrono::milliseconds retry_delay(int attempt, std::chrono::milliseconds backoff) {
    constexpr std::chrono::milliseconds cap = std::chrono::minutes(5);
    auto delay = backoff;
    for (int i = 2; i < attempt && delay < cap; ++i)
        delay *= 2;
    return std::min(delay, cap);
}

TrainRequest retrain_request(store::Store& store, const SchedulerOptions& options, const PipelineSpec& spec) {
    TrainRequest request;
    request.key = spec.series.key;
    request.tracking_uri = options.tracking_uri;
    request.source = "btcml scheduler";
    if (const auto version = champion_of(store, spec.series.key)) {
        const auto card = model::load_model(options.home, std::to_string(*version)).card;
        request.options = model::TrainOptions::from_json(card.at("hyperparameters"));
        request.spec = {card.at("window").get<std::size_t>(), card.at("horizons").get<std::vector<int>>()};
    }
    if (spec.epochs > 0) request.options.epochs = spec.epochs;
    return request;
}

nlohmann::json run_step(store::Store& store, const SchedulerOptions& options, const PipelineSpec& spec,
                        std::string_view task, std::stop_token stop) {
    const auto& key = spec.series.key;
    if (spec.kind == PipelineKind::tick && task == "ingest") return ingest_task(store, options, spec.series);
    if (spec.kind == PipelineKind::tick && task == "forecast") return forecast_task(store, options, key);
    if (spec.kind == PipelineKind::tick && task == "score") {
        const auto summary = monitor::score_matured(store, key, now_ms(), options.monitor);
        if (options.on_scored) options.on_scored(key);
        return {{"scored", summary.scored}};
    }
    if (spec.kind == PipelineKind::retrain && task == "train")
        return pipeline::train(store, options.home, retrain_request(store, options, spec), stop).json;
    throw UsageError(fmt::format("pipeline {} has no task '{}' to run alone (tick: ingest, forecast, score; retrain: "
                                 "train)",
                                 spec.name, task));
}

std::string default_owner() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
    return fmt::format("{}:{}", host, getpid());
}

std::pair<store::PipelineRun, bool> enqueue(store::Store& store, const std::vector<PipelineSpec>& pipelines,
                                            const std::string& name, const std::string& trigger,
                                            const std::string& reason) {
    if (!find_pipeline(pipelines, name)) {
        std::string known;
        for (const auto& p : pipelines)
            known += fmt::format("{}{}", known.empty() ? "" : ", ", p.name);
        throw NotFound(fmt::format("no pipeline '{}' is configured (configured: {})", name,
                                   known.empty() ? "none: add a series: section to the config file" : known));
    }
    store::PipelineRun run;
    run.pipeline = name;
    run.trigger = trigger;
    run.reason = reason;
    run.queued_ms = wall_ms();
    run.clock_ms = now_ms();
    return store.enqueue_pipeline_run(run);
}

nlohmann::json to_json(const store::PipelineRun& run, const std::vector<store::PipelineTask>* tasks) {
    const auto time = [](std::int64_t ms) -> nlohmann::json {
        return ms == 0 ? nlohmann::json(nullptr) : nlohmann::json(format_iso8601_ms(ms));
    };
    nlohmann::json out{{"id", run.id},
                       {"pipeline", run.pipeline},
                       {"trigger", run.trigger},
                       {"reason", run.reason},
                       {"status", run.status},
                       {"error", run.error},
                       {"owner", run.owner},
                       {"queued_at", time(run.queued_ms)},
                       {"started_at", time(run.started_ms)},
                       {"finished_at", time(run.finished_ms)},
                       {"seconds", run.finished_ms && run.started_ms
                                       ? nlohmann::json((run.finished_ms - run.started_ms) / 1000.0)
                                       : nlohmann::json(nullptr)},
                       {"result", nlohmann::json::parse(run.result_json, nullptr, false)}};
    if (tasks) {
        auto& list = out["tasks"] = nlohmann::json::array();
        for (const auto& t : *tasks)
            list.push_back({{"task", t.task},
                            {"attempt", t.attempt},
                            {"status", t.status},
                            {"error", t.error},
                            {"started_at", time(t.started_ms)},
                            {"finished_at", time(t.finished_ms)},
                            {"seconds", t.finished_ms ? nlohmann::json((t.finished_ms - t.started_ms) / 1000.0)
                                                      : nlohmann::json(nullptr)},
                            {"detail", nlohmann::json::parse(t.detail_json, nullptr, false)}});
    }
    return out;
}

nlohmann::json describe_pipelines(store::Store& store, const std::vector<PipelineSpec>& pipelines) {
    const std::int64_t now = now_ms();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& spec : pipelines) {
        const auto newest = store.pipeline_runs(spec.name, 1);
        nlohmann::json next = nullptr;
        if (spec.every.count() > 0) {
            const std::int64_t slot = slot_start(now, spec.every);
            const bool ran = !newest.empty() && newest.front().clock_ms >= slot;
            next = format_iso8601((ran ? slot + spec.every.count() * 1000 : now) / 1000);
        }
        out.push_back({{"name", spec.name},
                       {"kind", spec.kind == PipelineKind::tick ? "tick" : "retrain"},
                       {"symbol", spec.series.key.symbol},
                       {"interval", format_interval(spec.series.key.interval)},
                       {"source", spec.series.source},
                       {"every", spec.every.count() > 0 ? nlohmann::json(format_interval(spec.every.count()))
                                                        : nlohmann::json("never")},
                       {"tasks", spec.kind == PipelineKind::tick ? nlohmann::json{"ingest", "forecast", "score"}
                                                                 : nlohmann::json{"train", "gate", "reload"}},
                       {"attempts", spec.attempts},
                       {"timeout_seconds", spec.timeout.count()},
                       {"last_run", newest.empty() ? nlohmann::json(nullptr) : to_json(newest.front())},
                       {"next_due", next}});
    }
    return out;
}

struct Scheduler::Active {
    std::int64_t run_id = 0;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
    std::jthread thread;
};

Scheduler::Scheduler(SchedulerOptions options, std::vector<PipelineSpec> pipelines)
    : options_(std::move(options)), pipelines_(std::move(pipelines)) {
    if (options_.owner.empty()) options_.owner = default_owner();
}

Scheduler::~Scheduler() {
    stopping_.request_stop();
    wait_idle();
    release_leases();
}

void Scheduler::run(std::stop_token stop) {
    std::stop_callback forward(stop, [this] { stopping_.request_stop(); });
    log::info("scheduler started", {{"owner", options_.owner}, {"pipelines", pipelines_.size()}});
    while (!stop.stop_requested()) {
        try {
            poll_once();
        } catch (const std::exception& e) {
            // The store may be restarting: the next poll tries again.
            log::warn("scheduler poll failed", {{"error.message", e.what()}});
        }
        pause(options_.poll, stop);
    }
    stopping_.request_stop();
    wait_idle();
    release_leases(); // another scheduler takes over at its next poll, not after the leases expire
    log::info("scheduler stopped", {{"owner", options_.owner}});
}

void Scheduler::recover_abandoned(store::Store& store, const PipelineSpec& spec) {
    for (auto run : store.pipeline_runs(spec.name, 5)) {
        if (run.status != "running") continue;
        run.status = "failed";
        run.error = fmt::format("abandoned: its scheduler ({}) died or lost the store before the run ended", run.owner);
        run.finished_ms = wall_ms();
        if (!store.finish_pipeline_run(run)) continue; // its scheduler recorded the end after all
        log::warn("pipeline run abandoned",
                  {{"pipeline.name", spec.name}, {"pipeline.run_id", run.id}, {"pipeline.owner", run.owner}});
    }
}

bool Scheduler::hold_lease(const PipelineSpec& spec) {
    const std::int64_t t = wall_ms();
    const auto held = held_.find(spec.name);
    if (held != held_.end() && t - held->second < options_.lease.count() / 3) return true;
    if (!store_->acquire_lease("pipeline:" + spec.name, options_.owner, t, t + options_.lease.count())) {
        // Another scheduler holds it; or took it over because this one did not renew it in time (a stalled poll).
        if (held != held_.end()) {
            held_.erase(held);
            log::warn("pipeline lease lost", {{"pipeline.name", spec.name}, {"pipeline.owner", options_.owner}});
        }
        return false;
    }
    if (held == held_.end())
        log::info("pipeline lease taken", {{"pipeline.name", spec.name},
                                           {"pipeline.owner", options_.owner},
                                           {"pipeline.lease_seconds", options_.lease.count() / 1000.0}});
    held_[spec.name] = t;
    return true;
}

void Scheduler::release_leases() {
    std::lock_guard lock(mutex_);
    try {
        if (store_)
            for (const auto& [name, renewed] : held_)
                store_->release_lease("pipeline:" + name, options_.owner);
    } catch (const std::exception& e) {
        log::warn("could not release the pipeline leases: they expire by themselves", {{"error.message", e.what()}});
    }
    held_.clear();
}

std::vector<std::int64_t> Scheduler::poll_once() {
    std::vector<std::int64_t> started;
    std::lock_guard lock(mutex_);
    // Opened here, not at construction, and replaced when the database restarted: a scheduler outlives outages.
    if (!store_ || !store_->healthy()) {
        store_.reset();
        store_ = store::open_store(options_.db_url, options_.home);
    }
    for (auto it = active_.begin(); it != active_.end();)
        it = *it->second->done ? active_.erase(it) : std::next(it); // the jthread joins as it goes
    const std::int64_t now = now_ms();
    for (const auto& spec : pipelines_) {
        if (!hold_lease(spec) || active_.contains(spec.name)) continue;
        auto newest = store_->pipeline_runs(spec.name, 1);
        // Holding the lease with nothing in flight here: a run still marked running lost its scheduler.
        if (!newest.empty() && newest.front().status == "running") {
            recover_abandoned(*store_, spec);
            newest = store_->pipeline_runs(spec.name, 1);
        }
        const std::optional<std::int64_t> last = newest.empty() ? std::nullopt : std::optional(newest.front().clock_ms);
        if (options_.schedule && schedule_due(last, now, spec.every))
            newest = {enqueue(*store_, pipelines_, spec.name, "schedule",
                              fmt::format("schedule: every {}, slot {}", format_interval(spec.every.count()),
                                          format_iso8601(slot_start(now, spec.every) / 1000)))
                          .first};
        if (newest.empty() || newest.front().status != "queued") continue;
        auto run = store_->claim_pipeline_run(spec.name, options_.owner, wall_ms());
        if (!run) continue;
        auto active = std::make_shared<Active>();
        active->run_id = run->id;
        // Every event of the run, in any task, carries one trace id: the run's events are found by it.
        auto trace_id = log::new_trace_id();
        // The thread holds only the flag: were it to hold `active`, it could end up destroying (joining) itself.
        active->thread =
            std::jthread([this, spec, run = *run, done = active->done, stop = stopping_.get_token(), trace_id] {
                const log::TraceScope trace(trace_id);
                execute(spec, run, stop);
                *done = true;
            });
        active_[spec.name] = active;
        started.push_back(run->id);
        log::info("pipeline run started", {{"pipeline.name", spec.name},
                                           {"pipeline.run_id", run->id},
                                           {"pipeline.trigger", run->trigger},
                                           {"event.dataset", "btcml.pipeline"},
                                           {"event.action", "pipeline-run-started"},
                                           {"event.reason", run->reason},
                                           {"trace.id", trace_id}});
    }
    return started;
}

void Scheduler::wait_idle() {
    std::map<std::string, std::shared_ptr<Active>> running;
    {
        std::lock_guard lock(mutex_);
        running.swap(active_);
    }
    for (auto& [name, active] : running)
        if (active->thread.joinable()) active->thread.join();
}

void Scheduler::execute(const PipelineSpec& spec, store::PipelineRun run, std::stop_token stop) {
    std::unique_ptr<store::Store> store;
    nlohmann::json result = nlohmann::json::object();
    std::string failed_task;
    try {
        store = store::open_store(options_.db_url, options_.home);
        const auto step = [&](const std::string& name, const TaskFn& fn) {
            if (!failed_task.empty()) return false;
            const auto detail = run_task(*store, spec, run.id, name, stop, fn);
            if (!detail)
                failed_task = name;
            else
                result[name] = *detail;
            return detail.has_value();
        };
        const auto& key = spec.series.key;
        if (spec.kind == PipelineKind::tick) {
            for (const char* name : {"ingest", "forecast", "score"})
                step(name,
                     [&](std::stop_token task_stop) { return run_step(*store, options_, spec, name, task_stop); });
        } else {
            lower_priority(options_);
            std::optional<TrainResult> trained;
            step("train", [&](std::stop_token task_stop) {
                trained = pipeline::train(*store, options_.home, retrain_request(*store, options_, spec), task_stop);
                return nlohmann::json{{"model_version", trained->version},
                                      {"tracked_run_id", trained->json["run_id"]},
                                      {"seconds", trained->json["seconds"]}};
            });
            // The gate ran inside training (the registry records its decision); this task records its verdict.
            step("gate", [&](std::stop_token) {
                return nlohmann::json{{"model_version", trained->version},
                                      {"promoted", trained->promoted},
                                      {"gate", trained->json["gate"]}};
            });
            step("reload", [&](std::stop_token) {
                if (!trained->promoted) return nlohmann::json{{"skipped", "the gate kept the champion"}};
                if (!options_.on_promoted)
                    return nlohmann::json{{"skipped", "no server in this process: a running btcml serve reloads the "
                                                      "new champion by itself"}};
                options_.on_promoted(key);
                return nlohmann::json{{"model_version", trained->version}};
            });
        }
        run.status = failed_task.empty() ? "succeeded" : "failed";
        if (!failed_task.empty()) {
            const auto tasks = store->pipeline_tasks(run.id);
            const auto last = std::find_if(tasks.rbegin(), tasks.rend(),
                                           [&](const store::PipelineTask& t) { return t.task == failed_task; });
            run.error = fmt::format("task {} failed after {} attempt(s): {}", failed_task,
                                    last == tasks.rend() ? 0 : last->attempt, last == tasks.rend() ? "" : last->error);
        }
    } catch (const std::exception& e) {
        run.status = "failed";
        run.error = e.what();
    }
    if (stop.stop_requested() && run.status == "failed") {
        run.status = "cancelled";
        run.error = "the scheduler stopped: " + run.error;
    }
    run.finished_ms = wall_ms();
    run.result_json = result.dump();
    try {
        if (!store) store = store::open_store(options_.db_url, options_.home);
        if (!store->finish_pipeline_run(run))
            log::warn("a pipeline run ended after another scheduler had marked it abandoned; its end is not recorded",
                      {{"pipeline.name", spec.name}, {"pipeline.run_id", run.id}, {"pipeline.owner", run.owner}});
    } catch (const std::exception& e) {
        // The run stays marked running: the lease holder (this scheduler, or the next one) marks it abandoned.
        log::error("could not record the end of a pipeline run",
                   {{"pipeline.name", spec.name}, {"pipeline.run_id", run.id}, {"error.message", e.what()}});
    }
    nlohmann::json fields{{"pipeline.name", spec.name},
                          {"pipeline.run_id", run.id},
                          {"pipeline.status", run.status},
                          {"pipeline.trigger", run.trigger},
                          {"event.dataset", "btcml.pipeline"},
                          {"event.action", "pipeline-run-finished"},
                          {"event.outcome", run.status == "succeeded" ? "success" : "failure"},
                          {"event.reason", run.reason}};
    if (!run.error.empty()) fields["error.message"] = run.error;
    log::write(run.status == "succeeded" ? LogLevel::info : LogLevel::warn, "pipeline run finished", fields);
}

} // namespace btcml::pipeline
