// btcml config: the resolved settings and where each came from; the settings reference of docs/configuration.md.
#include "cli/commands.hpp"
#include "core/settings.hpp"

#include <fmt/format.h>

#include <iostream>

namespace btcml::cli {
namespace {

const char* source_name(Config::Source source) {
    switch (source) {
    case Config::Source::flag:
        return "flag";
    case Config::Source::env:
        return "env";
    case Config::Source::file:
        return "file";
    case Config::Source::fallback:
        return "default";
    }
    return "default";
}

// The global flags are the only ones `config show` can know of; a command's own flags apply to that command.
std::optional<std::string> global_flag(const GlobalFlags& flags, Setting setting) {
    switch (setting) {
    case Setting::home:
        return flags.home;
    case Setting::db:
        return flags.db;
    case Setting::config:
        return flags.config_file;
    case Setting::log_format:
        return flags.log_format;
    case Setting::log_level:
        return flags.log_level;
    case Setting::replay_speed:
        return flags.replay_speed;
    case Setting::replay_start:
        return flags.replay_start;
    default:
        return std::nullopt;
    }
}

void run_show(Context& ctx) {
    nlohmann::json settings = nlohmann::json::array();
    for (const auto& s : all_settings()) {
        if (s.key.find('.') != std::string_view::npos || s.id == Setting::series) continue; // `btcml pipeline list`
        auto resolved = ctx.config.resolve(s.id, global_flag(ctx.flags, s.id));
        // The values resolve_config computed itself (the default home, the config file found under it).
        if (s.id == Setting::home) resolved.value = ctx.config.home.string();
        if (s.id == Setting::config && resolved.source == Config::Source::fallback)
            resolved.value = ctx.config.config_file.string();
        const bool set = !resolved.value.empty();
        settings.push_back({{"key", s.key.empty() ? nlohmann::json() : nlohmann::json(s.key)},
                            {"env", s.env.empty() ? nlohmann::json() : nlohmann::json(s.env)},
                            {"value", !set ? nlohmann::json() : s.secret ? nlohmann::json("(set)") : nlohmann::json(resolved.value)},
                            {"source", source_name(resolved.source)}});
    }
    const nlohmann::json out = {{"config_file", ctx.config.config_file.empty()
                                                    ? nlohmann::json()
                                                    : nlohmann::json(ctx.config.config_file.string())},
                                {"settings", settings}};
    if (ctx.json) {
        print_json(out);
        return;
    }
    std::cout << fmt::format("config file: {}\n", ctx.config.config_file.empty() ? "none" : ctx.config.config_file.string());
    for (const auto& s : settings)
        std::cout << fmt::format("{:<20} {:<24} {:<8} {}\n", s["key"].is_null() ? "-" : s["key"].get<std::string>(),
                                 s["env"].is_null() ? "-" : s["env"].get<std::string>(), s["source"].get<std::string>(),
                                 s["value"].is_null() ? "" : s["value"].get<std::string>());
}

} // namespace

void setup_config(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("config", "The settings: their resolved values and sources, and their reference");
    cmd->require_subcommand(1);
    auto* show = cmd->add_subcommand("show", "Each setting's value and where it came from (flag, env, file, default); "
                                             "secrets show as (set)");
    add_json_flag(*show, ctx);
    show->callback([&ctx] { run_show(ctx); });
    auto* reference = cmd->add_subcommand(
        "reference", "The settings reference as a Markdown table (docs/configuration.md is generated from it)");
    reference->callback([] { std::cout << settings_reference_markdown(); });
}

} // namespace btcml::cli
