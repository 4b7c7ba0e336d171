// btcml models list|show|promote|rollback|export: the model registry (local, mirrored to MLflow when configured).
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "export/mlflow_model.hpp"
#include "model/artifact.hpp"
#include "tracking/registry.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>

namespace btcml::cli {
namespace {

struct ModelsArgs {
    std::string name; // registered model; empty: the one --symbol/--interval name
    SeriesOptions series;
    std::string version; // a version number, champion, challenger or @alias
    std::string reason = "promoted by hand (btcml models promote)";
    std::string out;
    std::optional<std::string> tracking_uri;
};

nlohmann::json version_json(const store::ModelVersionRecord& v, const std::map<std::string, int>& aliases) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [alias, version] : aliases)
        if (version == v.version) names.push_back(alias);
    const auto gate = nlohmann::json::parse(v.gate_json, nullptr, false);
    nlohmann::json out{{"version", v.version}, {"registered_model", v.model_name},
                       {"run_id", v.run_id},   {"created_at", format_iso8601(v.created_ms / 1000)},
                       {"aliases", names},     {"gate", gate.is_discarded() ? nlohmann::json() : gate}};
    if (!v.remote_version.empty()) out["mlflow_version"] = v.remote_version;
    return out;
}

// A number, or an alias of the registered model --name or --symbol/--interval name.
int resolve_version(store::Store& store, const Context& ctx, const ModelsArgs& args) {
    if (args.name.empty()) return resolve_model_spec(store, ctx, args.version, args.series);
    if (args.series.symbol || args.series.interval)
        throw UsageError("--name and --symbol/--interval name the same thing: give one or the other");
    return tracking::Registry(store, ctx.config.home, "").resolve(args.name, args.version);
}

void run_list(const ModelsArgs& args, Context& ctx) {
    const auto store = ctx.open_store();
    const bool all = args.name.empty() && !args.series.symbol && !args.series.interval;
    const std::string only = all ? "" : series_model_name(*store, args.series, args.name);
    nlohmann::json models = nlohmann::json::array();
    std::string text;
    for (const auto& name : store->registered_models()) {
        if (!all && name != only) continue;
        const auto aliases = store->aliases(name);
        nlohmann::json versions = nlohmann::json::array();
        text += fmt::format("{}\n  {:>7}  {:<20}  {:<20}  {}\n", name, "version", "created", "aliases", "gate");
        for (const auto& v : store->model_versions(name)) {
            auto j = version_json(v, aliases);
            text += fmt::format("  {:>7}  {:<20}  {:<20}  {}\n", v.version, j["created_at"].get<std::string>(),
                                fmt::format("{}", fmt::join(j["aliases"].get<std::vector<std::string>>(), ",")),
                                j["gate"].is_object() ? j["gate"].value("decision", "") : "");
            versions.push_back(std::move(j));
        }
        models.push_back({{"name", name}, {"aliases", aliases}, {"versions", versions}});
    }
    if (ctx.json) return print_json({{"models", models}});
    std::cout << (text.empty() ? "no registered models yet: run btcml train\n" : text);
}

void run_show(const ModelsArgs& args, Context& ctx) {
    const auto store = ctx.open_store();
    tracking::Registry registry(*store, ctx.config.home, "");
    const int version = resolve_version(*store, ctx, args);
    const auto record = registry.version(version);
    auto out = version_json(record, store->aliases(record.model_name));
    const auto artifact = model::load(ctx.config.home, version);
    for (const char* key : {"symbol", "interval", "window", "horizons", "architecture", "hyperparameters", "data",
                            "training_range", "metrics"})
        if (artifact.card.contains(key)) out[key] = artifact.card[key];
    if (ctx.json) return print_json(out);
    std::cout << fmt::format("model version {} of {} (run {}), created {}\n", version, record.model_name, record.run_id,
                             out["created_at"].get<std::string>());
    std::cout << fmt::format("  aliases: {}\n", out["aliases"].empty() ? "none" : out["aliases"].dump());
    if (out["gate"].is_object())
        std::cout << fmt::format("  promotion gate: {}{}: {}\n", out["gate"].value("decision", ""),
                                 out["gate"].value("forced", false) ? " (forced)" : "",
                                 out["gate"].value("reason", ""));
    if (out.contains("training_range"))
        std::cout << fmt::format("  trained on {} .. {}\n", out["training_range"].value("from", ""),
                                 out["training_range"].value("to", ""));
    if (out.contains("mlflow_version"))
        std::cout << fmt::format("  MLflow: {} version {}\n", record.model_name,
                                 out["mlflow_version"].get<std::string>());
}

// Prints the outcome of an alias change, with the MLflow mirror's state.
void report_champion(Context& ctx, tracking::Registry& registry, const std::string& model_name, int version,
                     std::optional<int> previous, const char* action) {
    const std::string mirror_error = registry.mirror_aliases(model_name);
    nlohmann::json out{{"registered_model", model_name}, {"champion", version}, {"previous", nullptr}};
    if (previous) out["previous"] = *previous;
    if (!mirror_error.empty()) out["mlflow_error"] = mirror_error;
    if (ctx.json) return print_json(out);
    std::cout << fmt::format("{}: version {} is now the champion of {}{}\n", action, version, model_name,
                             previous ? fmt::format(" (was {})", *previous) : "");
    if (!mirror_error.empty())
        std::cout << "MLflow's aliases were not updated; run `btcml tracking sync` when the server is back\n";
}

void run_promote(const ModelsArgs& args, Context& ctx) {
    const auto store = ctx.open_store();
    tracking::Registry registry(*store, ctx.config.home, resolve_tracking_uri(ctx, args.tracking_uri));
    const int version = resolve_version(*store, ctx, args);
    const auto previous = registry.promote(version, args.reason);
    report_champion(ctx, registry, registry.version(version).model_name, version, previous, "promoted");
}

void run_rollback(const ModelsArgs& args, Context& ctx) {
    const auto store = ctx.open_store();
    tracking::Registry registry(*store, ctx.config.home, resolve_tracking_uri(ctx, args.tracking_uri));
    const std::string name = series_model_name(*store, args.series, args.name);
    const auto [version, previous] = registry.rollback(name);
    report_champion(ctx, registry, name, version, previous, "rolled back");
}

void run_export(const ModelsArgs& args, Context& ctx) {
    const int version = resolve_version(*ctx.open_store(), ctx, args);
    const std::filesystem::path out =
        args.out.empty() ? model::models_dir(ctx.config.home) / std::to_string(version) / "mlflow-model"
                         : std::filesystem::path(args.out);
    // The input example: the bars `btcml predict` would read, the latest of the model's series.
    const auto loaded = model::load_model(ctx.config.home, std::to_string(version));
    const std::int64_t span = static_cast<std::int64_t>(loaded.forecaster.spec().window + 1) * loaded.series.interval;
    const auto store = ctx.open_store();
    const auto last = store->last_bar_time(loaded.series);
    const auto bars = load_series(*store, loaded.series, last ? std::optional(*last - span) : std::nullopt, last);
    const auto files = exporting::write_mlflow_model(ctx.config.home, version, out, "", bars);
    nlohmann::json j{{"model_version", version}, {"path", out.string()}, {"files", files}};
    if (ctx.json) return print_json(j);
    std::cout << fmt::format("exported model version {} as an MLflow model (ONNX, python_function) to {}\n", version,
                             out.string());
}

} // namespace

void setup_models(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<ModelsArgs>();
    auto* models = app.add_subcommand("models", "The model registry: versions, aliases champion/challenger, export");
    models->require_subcommand(1);
    const auto name_option = [&](CLI::App* cmd) {
        cmd->add_option("--name", args.name,
                        "Registered model, e.g. btcml-BTCUSD-1h (default: the one of --symbol/--interval)");
        add_series_options(*cmd, args.series);
    };
    auto* list = models->add_subcommand("list", "Registered models, their versions, aliases and gate decisions");
    name_option(list);
    add_json_flag(*list, ctx);
    list->callback([&args, &ctx] { run_list(args, ctx); });

    auto* show = models->add_subcommand("show", "One version: aliases, the promotion gate's decision and why");
    show->add_option("version", args.version, "Version number, champion, challenger or @alias")->required();
    name_option(show);
    add_json_flag(*show, ctx);
    show->callback([&args, &ctx] { run_show(args, ctx); });

    auto* promote = models->add_subcommand("promote", "Make a version the champion of its registered model");
    promote->add_option("version", args.version, "Version number or @alias")->required();
    promote->add_option("--reason", args.reason, "Recorded in the alias history")->capture_default_str();
    name_option(promote);
    add_tracking_uri_option(*promote, args.tracking_uri);
    add_json_flag(*promote, ctx);
    promote->callback([&args, &ctx] { run_promote(args, ctx); });

    auto* rollback = models->add_subcommand("rollback", "Give the champion alias back to the previous champion");
    name_option(rollback);
    add_tracking_uri_option(*rollback, args.tracking_uri);
    add_json_flag(*rollback, ctx);
    rollback->callback([&args, &ctx] { run_rollback(args, ctx); });

    auto* exp = models->add_subcommand("export", "Write a version as an MLflow model directory: ONNX graph of the "
                                                 "whole forecaster, MLmodel (onnx, python_function) and signature");
    exp->add_option("version", args.version, "Version number, champion, challenger or @alias")->required();
    name_option(exp);
    exp->add_option("--out", args.out, "Directory to write (default: HOME/models/VERSION/mlflow-model)");
    add_json_flag(*exp, ctx);
    exp->callback([&args, &ctx] { run_export(args, ctx); });
}

} // namespace btcml::cli
