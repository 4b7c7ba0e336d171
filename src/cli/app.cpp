#include "cli/app.hpp"

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fmt/format.h>

namespace btcml::cli {
namespace {

using SetupFn = void (*)(CLI::App&, Context&);

// The route table of the CLI: one line per command.
constexpr SetupFn kCommands[] = {
    setup_ingest,  setup_bars,   setup_series,   setup_train, setup_evaluate,
    setup_predict, setup_models, setup_tracking, setup_serve,
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

} // namespace

int run(int argc, char** argv) {
    CLI::App app{"btcml: Bitcoin price forecasting, end to end (ingest, store, train, evaluate, serve)"};
    app.set_version_flag("--version", BTCML_VERSION);
    app.require_subcommand(1);
    app.fallthrough();
    Context ctx;
    app.add_option("--db", ctx.flags.db, "Store URL: sqlite:PATH or postgresql://USER@HOST:PORT/DB (env BTCML_DB)");
    app.add_option("--home", ctx.flags.home,
                   "Home folder for the default SQLite file, models and artifacts (env "
                   "BTCML_HOME, default ~/.btcml)");
    app.add_option("--config", ctx.flags.config_file, "YAML config file (env BTCML_CONFIG, default HOME/config.yaml)");
    app.add_option("--log-format", ctx.flags.log_format, "text or json (env BTCML_LOG_FORMAT)");
    app.add_option("--log-level", ctx.flags.log_level, "debug, info, warn or error (env BTCML_LOG_LEVEL)");
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
        return fail(ErrorKind::usage, fmt::format("{} (see btcml --help)", e.what()));
    } catch (const Error& e) {
        log::debug("command failed", {{"error.kind", to_string(e.kind())}, {"error.message", e.what()}});
        return fail(e.kind(), e.what());
    } catch (const std::exception& e) {
        return fail(ErrorKind::internal, fmt::format("internal error: {}", e.what()));
    }
    return 0;
}

} // namespace btcml::cli
