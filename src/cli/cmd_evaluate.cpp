// btcml evaluate: parses the options of pipeline::evaluate (src/pipeline/train.hpp) and prints its report.
#include "cli/commands.hpp"
#include "cli/forecast_common.hpp"
#include "core/error.hpp"
#include "pipeline/train.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

namespace btcml::cli {
namespace {

struct EvaluateArgs {
    PeriodOptions period;
    std::int64_t retrain_every = 0;
    std::string calibration;     // empty: the model's own
    double calibration_rate = 0; // 0: the model's own
    std::optional<std::string> refit;
    std::optional<int> refit_epochs;
};

void run_evaluate(const EvaluateArgs& args, Context& ctx) {
    auto request = period_request(args.period);
    request.retrain_every = args.retrain_every;
    if (!args.calibration.empty())
        request.calibration = model::parse_calibration_mode(args.calibration, "--calibration");
    if (args.calibration_rate != 0) request.calibration_rate = args.calibration_rate;
    if ((args.refit || args.refit_epochs) && args.retrain_every == 0)
        throw UsageError("--refit and --refit-epochs need --retrain-every N (a refit every N bars)");
    if (args.refit) request.refit = pipeline::parse_refit(*args.refit, "--refit");
    if (args.refit_epochs) request.refit_epochs = *args.refit_epochs;
    std::function<void(std::size_t, std::size_t, std::size_t)> on_fold;
    if (ctx.interactive())
        on_fold = [](std::size_t fold, std::size_t train, std::size_t forecasts) {
            std::fprintf(stderr, "fold %zu: refitted on %zu windows, forecast %zu\n", fold, train, forecasts);
        };
    StopOnSignal stop;
    const auto out = pipeline::evaluate(*ctx.open_store(), ctx.config.home, request, stop.token(), on_fold);
    if (ctx.json) {
        print_json(out);
        return;
    }
    std::cout << fmt::format("walk-forward evaluation of model {} on {} {}: origins {} .. {}, {} fold(s), {} "
                             "calibration (rate {}){}\n",
                             out["model_version"].get<int>(), out["symbol"].get<std::string>(),
                             out["interval"].get<std::string>(), out["from"].get<std::string>(),
                             out["to"].get<std::string>(), out["folds"].get<std::size_t>(),
                             out["calibration"]["mode"].get<std::string>(), out["calibration"]["rate"].get<double>(),
                             out["overlaps_training"].get<bool>() ? " (WARNING: overlaps the training data)" : "")
              << format_metrics_table(out["metrics"], out["verdict"]);
}

} // namespace

void setup_evaluate(CLI::App& app, Context& ctx) {
    auto& args = ctx.keep<EvaluateArgs>();
    auto* cmd = app.add_subcommand("evaluate", "Walk-forward evaluation of a model and the baselines on a stored "
                                               "period");
    add_period_options(*cmd, args.period);
    cmd->add_option("--retrain-every", args.retrain_every,
                    "Refit model and baselines on all earlier data every N bars (0: use the stored model)")
        ->capture_default_str();
    cmd->add_option("--refit", args.refit,
                    fmt::format("With --retrain-every: cold (train each fold's network from scratch) or warm (continue "
                                "from the previous fold's weights; default {})",
                                pipeline::to_string(pipeline::kDefaultRefit)));
    cmd->add_option(
        "--refit-epochs", args.refit_epochs,
        fmt::format("With --refit warm: epochs per refit, at least 1 (default {})", pipeline::kDefaultRefitEpochs));
    cmd->add_option("--calibration", args.calibration,
                    "Intervals: none, static or adaptive (default: the model's own, model.json calibration.online)");
    cmd->add_option("--calibration-rate", args.calibration_rate,
                    "Adaptation rate of adaptive calibration, in (0, 1] (default: the model's own)");
    add_json_flag(*cmd, ctx);
    cmd->callback([&args, &ctx] { run_evaluate(args, ctx); });
}

} // namespace btcml::cli
