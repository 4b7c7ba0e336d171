// btcml tracking runs|sync: the tracked runs, and sending to MLflow what it does not have yet.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <iostream>

namespace btcml::cli {
namespace {

struct TrackingArgs {
    std::optional<std::string> tracking_uri;
};

void run_runs(Context& ctx) {
    const auto store = ctx.open_store();
    tracking::sweep_abandoned_runs(*store);
    const auto pending = store->tracked_runs(true);
    nlohmann::json runs = nlohmann::json::array();
    std::string text =
        fmt::format("{:<32}  {:<24}  {:<8}  {:<20}  {}\n", "run", "experiment", "status", "started", "MLflow");
    for (const auto& r : store->tracked_runs(false)) {
        const bool synced = !r.tracking_uri.empty() &&
                            std::none_of(pending.begin(), pending.end(), [&](const auto& p) { return p.id == r.id; });
        const std::string state = r.tracking_uri.empty() ? "local only" : synced ? "synced" : "pending sync";
        runs.push_back({{"run_id", r.id},
                        {"experiment", r.experiment},
                        {"name", r.name},
                        {"status", r.status},
                        {"start_time", format_iso8601(r.start_ms / 1000)},
                        {"tracking_uri", r.tracking_uri},
                        {"mlflow_run_id", r.remote_id},
                        {"sync", state}});
        text += fmt::format("{:<32}  {:<24}  {:<8}  {:<20}  {}\n", r.id, r.experiment, r.status,
                            format_iso8601(r.start_ms / 1000), state);
    }
    if (ctx.json) return print_json({{"runs", runs}});
    std::cout << text;
}

void run_sync(const TrackingArgs& args, Context& ctx) {
    const auto store = ctx.open_store();
    const std::string only_uri = resolve_tracking_uri(ctx, args.tracking_uri); // empty: every server
    nlohmann::json synced = nlohmann::json::array(), failed = nlohmann::json::array();
    std::map<std::string, std::unique_ptr<tracking::MlflowClient>> clients; // one per server
    const auto client_for = [&](const std::string& uri) -> tracking::MlflowClient& {
        auto& c = clients[uri];
        if (!c) c = std::make_unique<tracking::MlflowClient>(uri);
        return *c;
    };
    for (const auto& run : store->tracked_runs(true)) {
        if (!only_uri.empty() && run.tracking_uri != only_uri) continue;
        try {
            tracking::Syncer(*store, client_for(run.tracking_uri)).sync_run(run.id);
            synced.push_back(run.id);
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::usage) throw; // not an MLflow server: every run would fail the same way
            failed.push_back({{"run_id", run.id}, {"error", e.what()}});
        }
    }
    if (!only_uri.empty()) client_for(only_uri);
    // Aliases moved by promote or rollback while a server was away.
    for (const auto& [uri, client] : clients)
        for (const auto& name : store->registered_models()) {
            try {
                tracking::Syncer(*store, *client).sync_aliases(name);
            } catch (const NotFound&) { // a registered model whose versions never reached this server
            }
        }
    nlohmann::json out{{"synced", synced}, {"failed", failed}};
    if (ctx.json) {
        print_json(out);
    } else {
        std::cout << fmt::format("synced {} run(s) to MLflow", synced.size());
        std::cout << (failed.empty() ? "\n" : fmt::format("; {} still pending:\n", failed.size()));
        for (const auto& f : failed)
            std::cout << fmt::format("  {}: {}\n", f["run_id"].get<std::string>(), f["error"].get<std::string>());
    }
    if (!failed.empty())
        throw Unavailable(fmt::format("{} run(s) could not be synced; they stay pending", failed.size()));
}

} // namespace

void setup_tracking(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<TrackingArgs>();
    auto* tracking = app.add_subcommand("tracking", "Tracked training runs and their replication to MLflow");
    tracking->require_subcommand(1);
    auto* runs = tracking->add_subcommand("runs", "Tracked runs, newest first, with their MLflow sync state");
    add_json_flag(*runs, ctx);
    runs->callback([&ctx] { run_runs(ctx); });
    auto* sync = tracking->add_subcommand("sync", "Send MLflow every run, metric, artifact, model version and alias "
                                                  "it does not have yet (nothing is sent twice)");
    add_tracking_uri_option(*sync, args.tracking_uri);
    add_json_flag(*sync, ctx);
    sync->callback([&args, &ctx] { run_sync(args, ctx); });
}

} // namespace btcml::cli
