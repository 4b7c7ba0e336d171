#pragma once
// Each command adds its subcommand, options and callback to the app. The table in app.cpp lists them all.
#include "cli/context.hpp"

namespace btcml::cli {

void setup_ingest(CLI::App& app, Context& ctx);
void setup_bars(CLI::App& app, Context& ctx);
void setup_series(CLI::App& app, Context& ctx);
void setup_train(CLI::App& app, Context& ctx);
void setup_evaluate(CLI::App& app, Context& ctx);
void setup_predict(CLI::App& app, Context& ctx);
void setup_models(CLI::App& app, Context& ctx);
void setup_tracking(CLI::App& app, Context& ctx);
void setup_serve(CLI::App& app, Context& ctx);
void setup_pipeline(CLI::App& app, Context& ctx);
void setup_scheduler(CLI::App& app, Context& ctx);
void setup_monitor(CLI::App& app, Context& ctx);
void setup_config(CLI::App& app, Context& ctx);
void setup_quality(CLI::App& app, Context& ctx);
void setup_report(CLI::App& app, Context& ctx);
void setup_api_guide(CLI::App& app, Context& ctx);

} // namespace btcml::cli
