#include "model/forecaster.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace btcml::model {

using evaluate::quantile_levels;
using features::feature_count;

namespace {

constexpr int quantile_count = static_cast<int>(quantile_levels.size());
constexpr int forward_chunk = 1024; // windows per forward call: bounds memory on long evaluations

std::vector<float> quantiles_f() { return {quantile_levels.begin(), quantile_levels.end()}; }

// Inputs [batch][window][features] and unit-scaled targets [batch][horizons] of some origins.
void fill_batch(const features::FeatureTable& table, const features::Scaler& scaler, const features::DatasetSpec& spec,
                std::span<const std::size_t> origins, std::vector<float>& inputs, std::vector<float>* targets) {
    const std::size_t stride = spec.window * feature_count;
    inputs.resize(origins.size() * stride);
    if (targets) targets->resize(origins.size() * spec.horizons.size());
    for (std::size_t b = 0; b < origins.size(); ++b) {
        features::fill_window(table, scaler, origins[b], spec.window, inputs.data() + b * stride);
        if (!targets) continue;
        for (std::size_t k = 0; k < spec.horizons.size(); ++k)
            (*targets)[b * spec.horizons.size() + k] =
                static_cast<float>(table.log_return(origins[b], spec.horizons[k]) / scaler.target_stddev[k]);
    }
}

double validation_loss(const LstmNetwork& net, const features::FeatureTable& table, const features::Scaler& scaler,
                       const features::DatasetSpec& spec, std::span<const std::size_t> origins) {
    std::vector<float> inputs, targets, outputs;
    const auto quantiles = quantiles_f();
    const int horizons = static_cast<int>(spec.horizons.size());
    double weighted = 0;
    for (std::size_t start = 0; start < origins.size(); start += forward_chunk) {
        const auto chunk = origins.subspan(start, std::min<std::size_t>(forward_chunk, origins.size() - start));
        const int batch = static_cast<int>(chunk.size());
        fill_batch(table, scaler, spec, chunk, inputs, &targets);
        outputs.resize(chunk.size() * static_cast<std::size_t>(net.config().output_size));
        net.forward(inputs.data(), batch, static_cast<int>(spec.window), outputs.data());
        weighted += pinball_loss(outputs.data(), targets.data(), batch, horizons, quantiles) * batch;
    }
    return weighted / static_cast<double>(origins.size());
}

std::vector<int> shape_of(const TensorView& v) {
    return v.cols == 1 && v.name.find("bias") != std::string::npos ? std::vector<int>{v.rows}
                                                                   : std::vector<int>{v.rows, v.cols};
}

} // namespace

Forecaster::Forecaster(features::DatasetSpec spec, features::Scaler scaler, LstmNetwork network,
                       std::vector<double> interval_offsets)
    : spec_(std::move(spec)), scaler_(std::move(scaler)), network_(std::move(network)),
      interval_offsets_(std::move(interval_offsets)) {
    interval_offsets_.resize(spec_.horizons.size(), 0.0);
}

void Forecaster::calibrate(const features::FeatureTable& table, std::span<const std::size_t> origins) {
    if (origins.empty()) return;
    std::fill(interval_offsets_.begin(), interval_offsets_.end(), 0.0);
    const auto raw = forecast(table, origins);
    const double n = static_cast<double>(origins.size());
    const double level = std::min(1.0, (quantile_levels.back() - quantile_levels.front()) * (1 + 1 / n));
    for (std::size_t k = 0; k < spec_.horizons.size(); ++k) {
        // Conformity score: how far the outcome lies outside the interval (negative inside).
        std::vector<double> scores;
        for (std::size_t p = 0; p < origins.size(); ++p) {
            const double y = table.log_return(origins[p], spec_.horizons[k]);
            scores.push_back(std::max(raw[k][p].q10 - y, y - raw[k][p].q90));
        }
        interval_offsets_[k] = evaluate::empirical_quantile(std::move(scores), level);
    }
}

evaluate::ForecastTable Forecaster::forecast(const features::FeatureTable& table, std::span<const std::size_t> origins,
                                             bool with_offsets) const {
    const int horizons = static_cast<int>(spec_.horizons.size());
    evaluate::ForecastTable out(spec_.horizons.size());
    std::vector<float> inputs, outputs;
    for (std::size_t start = 0; start < origins.size(); start += forward_chunk) {
        const auto chunk = origins.subspan(start, std::min<std::size_t>(forward_chunk, origins.size() - start));
        const int batch = static_cast<int>(chunk.size());
        fill_batch(table, scaler_, spec_, chunk, inputs, nullptr);
        outputs.resize(chunk.size() * static_cast<std::size_t>(network_.config().output_size));
        network_.forward(inputs.data(), batch, static_cast<int>(spec_.window), outputs.data());
        sort_quantiles(outputs.data(), batch, horizons, quantile_count);
        for (int b = 0; b < batch; ++b)
            for (int k = 0; k < horizons; ++k) {
                const float* q = outputs.data() + (static_cast<std::size_t>(b) * horizons + k) * quantile_count;
                const auto h = static_cast<std::size_t>(k);
                const double scale = scaler_.target_stddev[h];
                const double offset = with_offsets ? interval_offsets_[h] : 0.0;
                out[h].push_back(evaluate::non_crossing({q[0] * scale - offset, q[1] * scale, q[2] * scale + offset}));
            }
    }
    return out;
}

nlohmann::json Forecaster::describe() const {
    const LstmConfig& c = network_.config();
    return {{"architecture",
             {{"type", "lstm"},
              {"input_size", c.input_size},
              {"hidden_size", c.hidden_size},
              {"num_layers", c.num_layers},
              {"output_size", c.output_size},
              {"dropout", c.dropout},
              {"output_layout", "[horizon][quantile]"}}},
            {"features", std::vector<std::string>(features::feature_names.begin(), features::feature_names.end())},
            {"window", spec_.window},
            {"horizons", spec_.horizons},
            {"quantiles", quantile_levels},
            {"target", "log(close[t+h] / close[t]) / scaler.target_stddev[h]"},
            {"scaler", scaler_.to_json()},
            {"calibration",
             {{"method", "conformalised quantile regression on the validation part"},
              {"interval_offsets", interval_offsets_},
              {"online", online_.to_json()}}}};
}

std::vector<Tensor> Forecaster::tensors() const {
    std::vector<Tensor> out;
    for (const TensorView& v : network_.tensors()) {
        const auto values = network_.tensor_values(v.name);
        Tensor t{v.name, {}, {values.begin(), values.end()}};
        for (const int d : shape_of(v))
            t.shape.push_back(static_cast<std::uint32_t>(d));
        out.push_back(std::move(t));
    }
    return out;
}

Forecaster Forecaster::from_artifact(const Artifact& artifact, const std::string& what) {
    const nlohmann::json& card = artifact.card;
    features::DatasetSpec spec;
    LstmConfig config;
    try {
        const auto& a = card.at("architecture");
        if (a.at("type") != "lstm")
            throw InvalidInput(fmt::format("{}: unknown architecture {}", what, a.at("type").dump()));
        config = {a.at("input_size").get<int>(), a.at("hidden_size").get<int>(), a.at("num_layers").get<int>(),
                  a.at("output_size").get<int>(), a.at("dropout").get<float>()};
        spec.window = card.at("window").get<std::size_t>();
        spec.horizons = card.at("horizons").get<std::vector<int>>();
        if (card.at("features").get<std::vector<std::string>>() !=
            std::vector<std::string>(features::feature_names.begin(), features::feature_names.end()))
            throw InvalidInput(
                fmt::format("{}: the model was trained on other features than this btcml computes", what));
        if (card.at("quantiles").get<std::vector<double>>() !=
            std::vector<double>(quantile_levels.begin(), quantile_levels.end()))
            throw InvalidInput(fmt::format("{}: the model forecasts other quantiles than 0.1/0.5/0.9", what));
    } catch (const nlohmann::json::exception& e) {
        throw InvalidInput(fmt::format("{}: malformed: {}", what, e.what()));
    }
    try {
        spec.validate();
        validate(config);
    } catch (const UsageError& e) {
        throw InvalidInput(fmt::format("{}: {}", what, e.what()));
    }
    if (config.input_size != static_cast<int>(feature_count) ||
        config.output_size != static_cast<int>(spec.horizons.size()) * quantile_count)
        throw InvalidInput(fmt::format("{}: the architecture does not match its features and horizons", what));
    features::Scaler scaler = features::Scaler::from_json(card.at("scaler"), what);
    std::vector<double> offsets;
    try {
        card.at("calibration").at("interval_offsets").get_to(offsets);
    } catch (const nlohmann::json::exception& e) {
        throw InvalidInput(fmt::format("{}: malformed calibration: {}", what, e.what()));
    }
    if (offsets.size() != spec.horizons.size() ||
        !std::all_of(offsets.begin(), offsets.end(), [](double x) { return std::isfinite(x); }))
        throw InvalidInput(fmt::format("{}: the calibration needs one finite offset per horizon", what));
    if (scaler.target_stddev.size() != spec.horizons.size())
        throw InvalidInput(fmt::format("{}: the scaler has {} target scales for {} horizons", what,
                                       scaler.target_stddev.size(), spec.horizons.size()));
    LstmNetwork network(config, 0);
    const auto& views = network.tensors();
    if (artifact.tensors.size() != views.size())
        throw InvalidInput(fmt::format("{}: weights.bin holds {} tensors, the architecture needs {}", what,
                                       artifact.tensors.size(), views.size()));
    for (std::size_t k = 0; k < views.size(); ++k) {
        const Tensor& t = artifact.tensors[k];
        const auto expected = shape_of(views[k]);
        if (t.name != views[k].name || t.shape != std::vector<std::uint32_t>(expected.begin(), expected.end()))
            throw InvalidInput(fmt::format("{}: weights.bin tensor {} ({}) does not match the architecture's {}", what,
                                           k, t.name, views[k].name));
        if (!std::all_of(t.data.begin(), t.data.end(), [](float x) { return std::isfinite(x); }))
            throw InvalidInput(fmt::format("{}: weights.bin tensor {} holds a non-finite value", what, t.name));
        network.set_tensor(t.name, t.data);
    }
    Forecaster forecaster(std::move(spec), std::move(scaler), std::move(network), std::move(offsets));
    forecaster.set_online(CalibrationSettings::from_card(card, what));
    return forecaster;
}

nlohmann::json TrainOptions::to_json() const {
    return {{"hidden", hidden}, {"layers", layers},    {"dropout", dropout},   {"batch_size", batch_size},
            {"epochs", epochs}, {"lr", learning_rate}, {"patience", patience}, {"samples_per_epoch", samples_per_epoch},
            {"seed", seed}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
    TrainOptions o;
    o.hidden = j.at("hidden").get<int>();
    o.layers = j.at("layers").get<int>();
    o.dropout = j.at("dropout").get<float>();
    o.batch_size = j.at("batch_size").get<int>();
    o.epochs = j.at("epochs").get<int>();
    o.learning_rate = j.at("lr").get<float>();
    o.patience = j.at("patience").get<int>();
    o.samples_per_epoch = j.at("samples_per_epoch").get<std::size_t>();
    o.seed = j.at("seed").get<std::uint64_t>();
    return o;
}

TrainedForecaster train_forecaster(const features::FeatureTable& table, const features::DatasetSpec& spec,
                                   const features::Scaler& scaler, std::span<const std::size_t> train,
                                   std::span<const std::size_t> validation, const TrainOptions& options,
                                   const EpochCallback& on_epoch, const LstmNetwork* start) {
    if (options.epochs < 1) throw UsageError("--epochs must be at least 1");
    if (options.batch_size < 1) throw UsageError("--batch-size must be at least 1");
    if (options.patience < 1) throw UsageError("--patience must be at least 1");
    if (!(options.learning_rate > 0)) throw UsageError("--lr must be positive");
    const int horizons = static_cast<int>(spec.horizons.size());
    const LstmConfig config{static_cast<int>(feature_count), options.hidden, options.layers, horizons * quantile_count,
                            options.dropout};
    LstmNetwork network(config, options.seed);
    if (start) network.set_parameters(start->parameters()); // throws when the architectures differ
    LstmTrainer trainer(network, {quantiles_f(), options.learning_rate, 1.0F, options.seed, 0});
    std::mt19937_64 rng(options.seed);
    std::vector<std::size_t> order(train.begin(), train.end());
    const std::size_t per_epoch =
        options.samples_per_epoch == 0 ? order.size() : std::min(options.samples_per_epoch, order.size());
    std::vector<float> inputs, targets;
    std::vector<EpochReport> epochs;
    int best_epoch = 0;
    double best =
        start ? validation_loss(network, table, scaler, spec, validation) : std::numeric_limits<double>::infinity();
    std::vector<float> best_params(network.parameters().begin(), network.parameters().end());
    int since_best = 0;
    for (int epoch = 1; epoch <= options.epochs; ++epoch) {
        const auto started = std::chrono::steady_clock::now();
        // A fresh random sample of the training windows each epoch, so long histories cost a bounded time.
        std::shuffle(order.begin(), order.end(), rng);
        double loss_sum = 0;
        for (std::size_t start = 0; start < per_epoch; start += static_cast<std::size_t>(options.batch_size)) {
            const std::size_t n =
                std::min<std::size_t>(static_cast<std::size_t>(options.batch_size), per_epoch - start);
            fill_batch(table, scaler, spec, std::span(order).subspan(start, n), inputs, &targets);
            loss_sum +=
                trainer.step(inputs.data(), targets.data(), static_cast<int>(n), static_cast<int>(spec.window)) *
                static_cast<double>(n);
        }
        EpochReport report;
        report.epoch = epoch;
        report.train_loss = loss_sum / static_cast<double>(per_epoch);
        report.validation_loss = validation_loss(network, table, scaler, spec, validation);
        report.learning_rate = trainer.learning_rate();
        report.improved = report.validation_loss < best;
        if (report.improved) {
            best = report.validation_loss;
            best_params.assign(network.parameters().begin(), network.parameters().end());
            best_epoch = epoch;
            since_best = 0;
        } else {
            ++since_best;
            // Halve on a plateau, down to a floor: with a large --patience repeated halving would reach 0 (a float
            // underflows after ~150 halvings) and stop training with an error instead of by patience.
            trainer.set_learning_rate(std::max(trainer.learning_rate() * 0.5F, options.learning_rate / 1024));
        }
        report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        epochs.push_back(report);
        if (on_epoch) on_epoch(report);
        if (since_best >= options.patience) break;
    }
    network.set_parameters(best_params);
    Forecaster forecaster(spec, scaler, std::move(network));
    forecaster.calibrate(table, validation);
    return {std::move(forecaster), std::move(epochs), best_epoch};
}

FittedModels fit_models(const features::FeatureTable& table, const features::DatasetSpec& spec,
                        std::span<const std::size_t> train, std::span<const std::size_t> validation,
                        const TrainOptions& options, const EpochCallback& on_epoch, const LstmNetwork* start) {
    features::Scaler scaler = features::fit_scaler(table, train, spec);
    evaluate::Baselines baselines = evaluate::fit_baselines(table, scaler, spec, train, validation);
    TrainedForecaster trained = train_forecaster(table, spec, scaler, train, validation, options, on_epoch, start);
    return {std::move(scaler), std::move(baselines), std::move(trained)};
}

LoadedModel load_model(const std::filesystem::path& home, const std::string& spec) {
    const int version = resolve_version(home, spec);
    Artifact artifact = load(home, version);
    const std::string what = (models_dir(home) / std::to_string(version) / "model.json").string();
    Forecaster forecaster = Forecaster::from_artifact(artifact, what);
    if (!artifact.card.contains("baselines")) throw InvalidInput(fmt::format("{}: no baselines", what));
    evaluate::Baselines baselines = evaluate::Baselines::from_json(artifact.card["baselines"], what);
    if (baselines.horizons != forecaster.spec().horizons)
        throw InvalidInput(fmt::format("{}: the baselines cover other horizons than the network", what));
    SeriesKey series;
    try {
        series.symbol = artifact.card.at("symbol").get<std::string>();
        const auto interval = parse_interval(artifact.card.at("interval").get<std::string>());
        if (!interval) throw InvalidInput(fmt::format("{}: malformed interval", what));
        series.interval = *interval;
    } catch (const nlohmann::json::exception& e) {
        throw InvalidInput(fmt::format("{}: malformed: {}", what, e.what()));
    }
    return {version, std::move(artifact.card), std::move(forecaster), std::move(baselines), std::move(series)};
}

Forecast forecast_latest(const Forecaster& forecaster, std::span<const Bar> bars, std::int64_t interval,
                         std::span<const IntervalState> states) {
    const auto& spec = forecaster.spec();
    if (bars.empty()) throw InvalidInput("no bars to forecast from");
    const features::FeatureTable table = features::compute_features(bars, interval);
    const std::size_t origin = table.size() - 1;
    if (!features::can_end_window(table, origin, spec.window))
        throw InvalidInput(fmt::format("the model needs {} consecutive {} bars ending at {} (a window of {} returns), "
                                       "but only {} precede it without a gap",
                                       spec.window + 1, format_interval(interval), format_iso8601(table.times[origin]),
                                       spec.window, table.history(origin)));
    const std::size_t origins[] = {origin};
    const auto table_forecasts = forecaster.forecast(table, origins);
    if (!states.empty() && states.size() != spec.horizons.size())
        throw Error(ErrorKind::internal, "forecast: calibration states do not match the horizons");
    Forecast f;
    f.as_of = table.times[origin];
    const double base = table.close[origin];
    for (std::size_t k = 0; k < spec.horizons.size(); ++k) {
        const auto q = states.empty() ? table_forecasts[k][0] : apply(states[k], table_forecasts[k][0]);
        const int h = spec.horizons[k];
        f.horizons.push_back(
            {h, f.as_of + h * interval, base * std::exp(q.q50), base * std::exp(q.q10), base * std::exp(q.q90), q.q50});
    }
    return f;
}

nlohmann::json to_json(const Forecast& forecast, int model_version, const std::string& symbol, std::int64_t interval) {
    nlohmann::json out{{"model_version", model_version},
                       {"as_of", format_iso8601(forecast.as_of)},
                       {"symbol", symbol},
                       {"interval", format_interval(interval)},
                       {"forecasts", nlohmann::json::array()}};
    for (const auto& h : forecast.horizons)
        out["forecasts"].push_back({{"horizon", h.horizon},
                                    {"target_time", format_iso8601(h.target_time)},
                                    {"price", h.price},
                                    {"lower", h.lower},
                                    {"upper", h.upper},
                                    {"log_return", h.log_return}});
    return out;
}

} // namespace btcml::model
