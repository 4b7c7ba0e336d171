#include "cli/app.hpp"

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <optional>
#include <string>
#include <vector>

namespace btcml::cli {
namespace {

using SetupFn = void (*)(CLI::App&, Context&);

// The route table of the CLI: one line per command.
constexpr SetupFn kCommands[] = {
    setup_ingest, setup_bars,     setup_series, setup_train,    setup_evaluate,  setup_predict, setup_models,
    setup_tracking, setup_serve, setup_pipeline, setup_scheduler, setup_monitor, setup_config,
    setup_quality,  setup_report,   setup_api_guide,
};

std::string one_line(std::string text) {
    for (char& c : text)
        if (c == '\n' || c == '\r') c = ' ';
    return text;
}

int fail(ErrorKind kind, const std::string& message) {
    std::fprintf(stderr, "btcml: error: %s\n", one_line(message).c_str());
    return exit_code(kind);
}

// The deepest command the parser entered (the app itself when none).
const CLI::App& innermost(const CLI::App& app) {
    const CLI::App* current = &app;
    for (auto parsed = current->get_subcommands(); !parsed.empty(); parsed = current->get_subcommands())
        current = parsed.back();
    return *current;
}

// CLI11 answers a missing or unknown command with "A subcommand is required"; say which word was not a command
// and what the commands are, so that a typo can be fixed without --help. Nothing when `error` is another error.
std::optional<std::string> command_error(const CLI::App& app, const CLI::ParseError& error) {
    const CLI::App& parent = innermost(app);
    if (dynamic_cast<const CLI::RequiredError*>(&error) == nullptr || parent.get_require_subcommand_min() == 0)
        return std::nullopt;
    std::vector<std::string> names;
    for (const CLI::App* sub : parent.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); }))
        names.push_back(sub->get_name());
    const std::string path = parent.get_parent() == nullptr ? "" : parent.get_name() + " ";
    const auto unmatched = app.remaining(true); // every level's: unmatched words fall through to the top (fallthrough)
    const auto word = std::find_if(unmatched.begin(), unmatched.end(),
                                   [](const std::string& w) { return !w.empty() && w.front() != '-'; });
    const std::string list = fmt::format("{}commands: {}", path, fmt::join(names, ", "));
    if (word == unmatched.end()) {
        const std::string extra =
            unmatched.empty() ? "" : fmt::format(" ('{}' is not an option here)", fmt::join(unmatched, " "));
        return fmt::format("a {}command is required{}; {}", path, extra, list);
    }
    return fmt::format("unknown {}command '{}'; {}", path, *word, list);
}

} // namespace

int run(int argc, char** argv) {
    CLI::App app{"btcml: Bitcoin price forecasting, end to end (ingest, store, train, evaluate, serve)"};
    app.set_version_flag("--version", BTCML_VERSION);
    app.require_subcommand(1);
    app.fallthrough();
    Context ctx;
    app.add_option("--db", ctx.flags.db, flag_help(Setting::db));
    app.add_option("--home", ctx.flags.home, flag_help(Setting::home));
    app.add_option("--config", ctx.flags.config_file, flag_help(Setting::config));
    app.add_option("--log-format", ctx.flags.log_format, flag_help(Setting::log_format));
    app.add_option("--log-level", ctx.flags.log_level, flag_help(Setting::log_level));
    app.add_option("--replay-speed", ctx.flags.replay_speed, flag_help(Setting::replay_speed));
    app.add_option("--replay-start", ctx.flags.replay_start, flag_help(Setting::replay_start));
    // Settings resolve before any command's callback runs.
    app.parse_complete_callback([&ctx] { ctx.resolve(); });
    for (const SetupFn setup : kCommands)
        setup(app, ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        const auto message = command_error(app, e).value_or(e.what());
        return fail(ErrorKind::usage, fmt::format("{} (see btcml --help)", message));
    } catch (const Error& e) {
        log::debug("command failed", {{"error.type", to_string(e.kind())}, {"error.message", e.what()}});
        return fail(e.kind(), e.what());
    } catch (const std::exception& e) {
        return fail(ErrorKind::internal, fmt::format("internal error: {}", e.what()));
    }
    return 0;
}

} // namespace btcml::cli
