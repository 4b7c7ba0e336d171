// btcml pipeline list|run|show and btcml scheduler: the pipelines of src/pipeline (scheduler.hpp), by hand and on
// their schedule.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "pipeline/scheduler.hpp"

#include <fmt/format.h>

#include <iostream>
#include <thread>

namespace btcml::cli {
namespace {

struct PipelineArgs {
    std::string name;
    std::string reason;
    std::string task;
    bool wait = false;
    std::int64_t run_id = 0;
    int poll_ms = 1000;
    int train_threads = 0;
};

pipeline::SchedulerOptions scheduler_options(const Context& ctx, const PipelineArgs& args) {
    auto options = pipeline::SchedulerOptions::from_config(ctx.config, resolve_tracking_uri(ctx, std::nullopt));
    options.poll = std::chrono::milliseconds(args.poll_ms);
    options.train_threads = args.train_threads;
    return options;
}

void print_run(const nlohmann::json& run) {
    const auto owner = run["owner"].get<std::string>(); // the scheduler that claimed it (host:pid), once claimed
    std::cout << fmt::format("run {} of {} ({}: {}): {}{}{}\n", run["id"].get<std::int64_t>(),
                             run["pipeline"].get<std::string>(), run["trigger"].get<std::string>(),
                             run["reason"].get<std::string>(), run["status"].get<std::string>(),
                             owner.empty() ? "" : " by " + owner,
                             run["error"].get<std::string>().empty() ? "" : " - " + run["error"].get<std::string>());
    for (const auto& t : run.value("tasks", nlohmann::json::array()))
        std::cout << fmt::format("  {:<9} attempt {}  {:<9} {}{}\n", t["task"].get<std::string>(),
                                 t["attempt"].get<int>(), t["status"].get<std::string>(),
                                 t["seconds"].is_number() ? fmt::format("{:.2f}s", t["seconds"].get<double>()) : "-",
                                 t["error"].get<std::string>().empty() ? "" : "  " + t["error"].get<std::string>());
}

nlohmann::json run_with_tasks(store::Store& store, std::int64_t id) {
    const auto run = store.pipeline_run(id);
    if (!run) throw NotFound(fmt::format("no pipeline run {}", id));
    const auto tasks = store.pipeline_tasks(id);
    return pipeline::to_json(*run, &tasks);
}

void run_list(Context& ctx) {
    const auto listed = pipeline::describe_pipelines(*ctx.open_store(), pipeline::configured_pipelines(ctx.config));
    if (ctx.json) {
        print_json({{"pipelines", listed}});
        return;
    }
    if (listed.empty()) std::cout << "no pipelines: the config file has no series: section\n";
    for (const auto& p : listed) {
        const auto& last = p["last_run"];
        std::cout << fmt::format(
            "{:<24} every {:<6} next {:<21} last {}\n", p["name"].get<std::string>(), p["every"].get<std::string>(),
            p["next_due"].is_string() ? p["next_due"].get<std::string>() : "on trigger",
            last.is_null() ? "never"
                           : fmt::format("#{} {}", last["id"].get<std::int64_t>(), last["status"].get<std::string>()));
    }
}

void run_run(const PipelineArgs& args, Context& ctx) {
    if (args.reason.empty()) throw UsageError("--reason must say why the run is wanted");
    const auto pipelines = pipeline::configured_pipelines(ctx.config);
    auto store = ctx.open_store();
    const auto [run, created] = pipeline::enqueue(*store, pipelines, args.name, "cli", args.reason);
    if (!args.wait) {
        if (ctx.json)
            print_json({{"run", pipeline::to_json(run)}, {"created", created}});
        else
            std::cout << fmt::format("{} run {} of {}\n", created ? "queued" : "joined the active", run.id, args.name);
        return;
    }
    // Runs it here unless another process (a scheduler) holds the pipeline's lease: then waits for that one.
    auto options = scheduler_options(ctx, args);
    options.schedule = false;
    pipeline::Scheduler scheduler(options, {*pipeline::find_pipeline(pipelines, args.name)});
    StopOnSignal stop;
    while (!stop.token().stop_requested()) {
        scheduler.poll_once();
        const auto current = store->pipeline_run(run.id);
        if (current && current->status != "queued" && current->status != "running") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    scheduler.wait_idle();
    const auto out = run_with_tasks(*store, run.id);
    if (ctx.json)
        print_json({{"run", out}, {"created", created}});
    else
        print_run(out);
    if (out["status"] != "succeeded")
        throw Conflict(fmt::format("pipeline run {} {}", run.id, out["status"].get<std::string>()));
}

// One task of a pipeline on its own, for orchestrators that run each task as a process (Airflow): the same code as
// the built-in scheduler's, so both produce the same results from the same bars.
void run_pipeline_step(const PipelineArgs& args, Context& ctx) {
    const auto pipelines = pipeline::configured_pipelines(ctx.config);
    const auto spec = pipeline::find_pipeline(pipelines, args.name);
    if (!spec) throw NotFound(fmt::format("no pipeline '{}' is configured (see btcml pipeline list)", args.name));
    StopOnSignal stop;
    const auto out =
        pipeline::run_step(*ctx.open_store(), scheduler_options(ctx, args), *spec, args.task, stop.token());
    if (ctx.json)
        print_json(out);
    else
        std::cout << out.dump(2) << "\n";
}

void run_show(const PipelineArgs& args, Context& ctx) {
    const auto out = run_with_tasks(*ctx.open_store(), args.run_id);
    if (ctx.json)
        print_json(out);
    else
        print_run(out);
}

void run_scheduler(const PipelineArgs& args, Context& ctx) {
    auto pipelines = pipeline::configured_pipelines(ctx.config);
    if (pipelines.empty())
        throw UsageError("nothing to schedule: the config file has no series: section (see docs/configuration.md)");
    pipeline::Scheduler scheduler(scheduler_options(ctx, args), std::move(pipelines));
    StopOnSignal stop;
    scheduler.run(stop.token());
}

} // namespace

void setup_pipeline(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<PipelineArgs>();
    auto* cmd = app.add_subcommand("pipeline", "The configured pipelines (tick, retrain) and their runs");
    cmd->require_subcommand(1);
    auto* list = cmd->add_subcommand("list", "Each configured pipeline, its schedule, last run and next due time");
    add_json_flag(*list, ctx);
    list->callback([&ctx] { run_list(ctx); });
    auto* run = cmd->add_subcommand("run", "Queue a run of a pipeline (joins the one queued or running, if any)");
    run->add_option("name", args.name, "Pipeline, e.g. retrain-BTCUSD-1h")->required();
    run->add_option("--reason", args.reason, "Why: recorded with the run")->required();
    run->add_flag("--wait", args.wait,
                  "Run it here and print its tasks (or wait for the scheduler that holds its lease); exit 5 unless "
                  "it succeeds");
    run->add_option("--train-threads", args.train_threads, "Cores a retrain may use (0: all)")
        ->check(CLI::Range(0, 1024));
    add_json_flag(*run, ctx);
    run->callback([&args, &ctx] { run_run(args, ctx); });
    auto* step = cmd->add_subcommand("step", "Run one task of a pipeline here, as its run would (tick: ingest, "
                                             "forecast, score; retrain: train), and print its detail: for Airflow");
    step->add_option("name", args.name, "Pipeline, e.g. tick-BTCUSD-1h")->required();
    step->add_option("task", args.task, "Task: ingest, forecast, score (tick) or train (retrain)")->required();
    add_json_flag(*step, ctx);
    step->callback([&args, &ctx] { run_pipeline_step(args, ctx); });
    auto* show = cmd->add_subcommand("show", "One run with its task attempts");
    show->add_option("run_id", args.run_id, "Run id")->required();
    add_json_flag(*show, ctx);
    show->callback([&args, &ctx] { run_show(args, ctx); });
}

void setup_scheduler(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<PipelineArgs>();
    auto* cmd = app.add_subcommand("scheduler", "Run the configured pipelines on their schedules and queued runs "
                                                "until SIGTERM (also inside btcml serve --scheduler)");
    cmd->add_option("--poll-ms", args.poll_ms, "How often to look at schedules and queued runs, in milliseconds")
        ->capture_default_str()
        ->check(CLI::Range(50, 3'600'000));
    cmd->add_option("--train-threads", args.train_threads, "Cores a retrain may use (0: all)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    cmd->callback([&args, &ctx] { run_scheduler(args, ctx); });
}

} // namespace btcml::cli
