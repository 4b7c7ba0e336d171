// btcml serve: the HTTP API (forecasts, predictions, bars, models, metrics, OpenAPI docs) until SIGTERM.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "monitor/exporter.hpp"
#include "pipeline/airflow_relay.hpp"
#include "pipeline/catalog.hpp"
#include "pipeline/scheduler.hpp"
#include "serve/api.hpp"
#include "serve/http_server.hpp"
#include "serve/service.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <thread>

namespace btcml::cli {
namespace {

struct ServeArgs {
    serve::ServerOptions server;
    std::vector<std::string> api_keys;
    std::optional<std::string> alert_token;
    double request_timeout = 10;
    double write_timeout = 30;
    int poll_ms = 1000;
    int anonymous_predictions = serve::ServiceOptions{}.anonymous_predictions_per_hour;
    bool scheduler = false, no_scheduler = false; // neither: BTCML_SCHEDULER, else the config key
    int train_threads = -1; // -1: half the cores, so a retrain leaves the rest to request threads
};

/// Keys from --api-key, else from BTCML_API_KEY (comma-separated).
std::vector<std::string> resolve_keys(const std::vector<std::string>& flags) {
    std::vector<std::string> keys;
    std::vector<std::string> sources = flags;
    if (sources.empty())
        if (const auto env = env_value(Setting::api_key)) sources.push_back(*env);
    for (const auto& source : sources) {
        std::stringstream in(source);
        for (std::string key; std::getline(in, key, ',');)
            if (!key.empty()) keys.push_back(key);
    }
    return keys;
}

void run_serve(ServeArgs& args, Context& ctx) {
    auto options = args.server;
    options.api_keys = resolve_keys(args.api_keys);
    if (args.request_timeout <= 0) throw UsageError("--request-timeout must be positive");
    if (args.write_timeout <= 0) throw UsageError("--write-timeout must be positive");
    options.read_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args.request_timeout * 1000));
    options.write_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args.write_timeout * 1000));
    if (options.threads < 1) options.threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    if (options.require_key_for_reads && options.api_keys.empty())
        throw UsageError("--require-key-for-reads needs at least one --api-key (or BTCML_API_KEY)");
    if (const auto token = ctx.config.value(Setting::alert_token, args.alert_token); !token.empty())
        options.alert_tokens.push_back(token);

    const bool scheduling =
        args.scheduler ||
        (!args.no_scheduler && ctx.config.value(Setting::scheduler) == "true");
    auto pipelines = pipeline::configured_pipelines(ctx.config);
    serve::Service service({ctx.config.home, ctx.config.db_url, resolve_tracking_uri(ctx, std::nullopt),
                            std::chrono::milliseconds(args.poll_ms), args.anonymous_predictions, pipelines,
                            pipeline::airflow_relay_from_config(ctx.config)});
    serve::HttpServer server(options, serve::make_routes(service), [&service](const serve::Exchange& e) {
        service.metrics().observe(e);
        // Access log: the route pattern, never the query string, headers or body (keys and data stay out of logs).
        log::info("request", {{"http.request.method", e.method},
                              {"url.path", e.route},
                              {"http.response.status_code", e.status},
                              {"http.response.body.bytes", e.bytes},
                              {"event.duration", static_cast<std::int64_t>(e.seconds * 1e9)},
                              {"event.dataset", "btcml.access"},
                              {"event.kind", "event"},
                              {"event.category", "web"},
                              {"event.outcome", e.status < 400 ? "success" : "failure"},
                              {"trace.id", e.trace_id}});
    });
    service.metrics().count_in_flight_with([&server] { return server.in_flight(); });
    service.metrics().count_server_with([&server] { return server.stats(); });
    monitor::Exporter exporter(ctx.config.db_url, ctx.config.home, std::chrono::milliseconds(args.poll_ms));
    service.metrics().append_with([&exporter, sink = ctx.log_sink.get()](std::string& out) {
        exporter.render(out);
        if (sink != nullptr) sink->render(out);
    });
    const auto url = fmt::format("http://{}:{}", options.host, server.port());
    log::info("listening", {{"url.full", url},
                            {"server.port", server.port()},
                            {"threads", options.threads},
                            {"workers", options.workers},
                            {"api_keys", options.api_keys.size()}});
    // The one line on stdout: scripts (and tests started with --port 0) read the address from it.
    std::printf("btcml serving on %s (API docs: %s/docs)\n", url.c_str(), url.c_str());
    std::fflush(stdout);
    // The scheduler runs beside the server; a promotion it makes is picked up at once. Stopped (and its runs asked
    // to stop) before the service goes away.
    std::optional<pipeline::Scheduler> scheduler;
    std::jthread scheduler_thread;
    if (scheduling) {
        auto so = pipeline::SchedulerOptions::from_config(ctx.config, resolve_tracking_uri(ctx, std::nullopt));
        so.train_threads = args.train_threads >= 0
                               ? args.train_threads
                               : static_cast<int>(std::max(1U, std::thread::hardware_concurrency() / 2));
        so.on_promoted = [&service](const SeriesKey&) { service.poke(); };
        so.on_scored = [&exporter](const SeriesKey&) { exporter.poke(); };
        so.poll = std::chrono::milliseconds(args.poll_ms);
        scheduler.emplace(so, std::move(pipelines));
        scheduler_thread = std::jthread([&scheduler](std::stop_token stop) { scheduler->run(stop); });
    }
    server.run();
    scheduler_thread = {};
    scheduler.reset();
    service.predictions().flush();
    log::info("stopped");
}

} // namespace

void setup_serve(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<ServeArgs>();
    auto* cmd = app.add_subcommand("serve", "Serve the HTTP API: forecasts, predictions, bars, models, /metrics, "
                                            "/openapi.json and /docs");
    cmd->add_option("--host", args.server.host, "Address to listen on")->capture_default_str();
    cmd->add_option("--port", args.server.port, "Port to listen on (0: any free port)")->capture_default_str();
    cmd->add_option("--threads", args.server.threads, "Event-loop threads (0: one per core)")->capture_default_str();
    cmd->add_option("--workers", args.server.workers,
                    "Threads for the routes that touch the store, the disk or a model (a slow store stalls only them)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--queue-limit", args.server.queue_limit,
                    "Requests that may wait for a worker beyond those running (more: 503 with Retry-After)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1'000'000));
    cmd->add_option("--api-key", args.api_keys,
                    flag_help(Setting::api_key) + ". Repeatable. Clients send it as X-API-Key or Authorization: Bearer");
    cmd->add_option("--alert-token", args.alert_token, flag_help(Setting::alert_token));
    cmd->add_flag("--require-key-for-reads", args.server.require_key_for_reads,
                  "Require an API key on the read routes of /api/v1 too");
    cmd->add_option("--body-limit", args.server.body_limit, "Largest request body in bytes (larger: 413)")
        ->capture_default_str();
    cmd->add_option("--request-timeout", args.request_timeout,
                    "Seconds a request may take to arrive, from its first byte (slower: 408)")
        ->capture_default_str();
    cmd->add_option("--write-timeout", args.write_timeout,
                    "Seconds a client may take to receive a response (slower: the connection is closed)")
        ->capture_default_str();
    cmd->add_option("--auth-failures-per-minute", args.server.auth_failures_per_minute,
                    "Wrong API keys one client address may send a minute (and at once); then 429 with Retry-After")
        ->capture_default_str()
        ->check(CLI::Range(1, 1'000'000));
    cmd->add_option("--poll-ms", args.poll_ms,
                    "How often to look for a new champion of any series, new bars, live metrics and (with --scheduler) due or "
                    "queued pipeline runs, in milliseconds")
        ->capture_default_str()
        ->check(CLI::Range(50, 3'600'000));
    cmd->add_option("--anonymous-predictions", args.anonymous_predictions,
                    "Distinct POST /api/v1/predict forecasts stored per hour for requests without an API key "
                    "(more are answered, not stored)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1'000'000));
    cmd->add_flag("--scheduler", args.scheduler, flag_help(Setting::scheduler));
    cmd->add_flag("--no-scheduler", args.no_scheduler, "Do not run the scheduler, whatever env or config say")
        ->excludes("--scheduler");
    cmd->add_option("--train-threads", args.train_threads,
                    "Cores a scheduled retrain may use (default: half of them, so requests keep the rest)")
        ->check(CLI::Range(0, 1024));
    cmd->callback([&args, &ctx] { run_serve(args, ctx); });
}

} // namespace btcml::cli
