#include "model/calibration.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace btcml::model {

using evaluate::quantile_levels;

nlohmann::json CalibrationSettings::to_json() const { return {{"mode", to_string(mode)}, {"rate", rate}}; }

CalibrationSettings CalibrationSettings::from_card(const nlohmann::json& card, std::string_view what) {
    const auto pointer = "/calibration/online"_json_pointer;
    if (!card.contains(pointer)) return {CalibrationMode::static_offsets, kDefaultCalibrationRate};
    CalibrationSettings s;
    try {
        const auto& online = card.at(pointer);
        s.mode = parse_calibration_mode(online.at("mode").get<std::string>(), "calibration.online.mode");
        s.rate = online.at("rate").get<double>();
        validate_calibration_rate(s.rate, "calibration.online.rate");
    } catch (const nlohmann::json::exception& e) {
        throw InvalidInput(fmt::format("{}: malformed online calibration: {}", what, e.what()));
    } catch (const UsageError& e) {
        throw InvalidInput(fmt::format("{}: {}", what, e.what()));
    }
    return s;
}

CalibrationMode parse_calibration_mode(std::string_view text, std::string_view option) {
    if (text == "none") return CalibrationMode::none;
    if (text == "static") return CalibrationMode::static_offsets;
    if (text == "adaptive") return CalibrationMode::adaptive;
    throw UsageError(fmt::format("{}: '{}' is not a calibration (none, static or adaptive)", option, text));
}

std::string_view to_string(CalibrationMode mode) {
    switch (mode) {
    case CalibrationMode::none: return "none";
    case CalibrationMode::static_offsets: return "static";
    case CalibrationMode::adaptive: return "adaptive";
    }
    return "adaptive";
}

void validate_calibration_rate(double rate, std::string_view option) {
    if (!(rate > 0 && rate <= 1)) throw UsageError(fmt::format("{}: the rate must be in (0, 1], got {}", option, rate));
}

evaluate::QuantileForecast apply(const IntervalState& state, const evaluate::QuantileForecast& f) {
    return {f.q50 - std::exp(state.log_scale_low) * (f.q50 - f.q10), f.q50,
            f.q50 + std::exp(state.log_scale_high) * (f.q90 - f.q50)};
}

void update(IntervalState& state, std::int64_t target_time, bool below, bool above, double rate) {
    const double alpha = quantile_levels.front(); // each side's miss rate: 10%
    const auto step = [&](double& log_scale, bool missed) {
        log_scale = std::clamp(log_scale + rate * ((missed ? 1.0 : 0.0) - alpha), -kMaxLogScale, kMaxLogScale);
    };
    step(state.log_scale_low, below);
    step(state.log_scale_high, above);
    ++state.updates;
    state.last_target_time = target_time;
}

void replay(IntervalState& state, std::span<evaluate::QuantileForecast> forecasts,
            std::span<const std::int64_t> origin_times, std::span<const double> actuals, std::int64_t target_offset,
            double rate, std::int64_t known_before) {
    if (origin_times.size() != forecasts.size() || actuals.size() != forecasts.size())
        throw Error(ErrorKind::internal, "calibration replay: forecasts, origins and outcomes differ in length");
    std::size_t next = 0; // the oldest forecast whose outcome is not applied yet
    // Applies the outcomes of forecasts [next, end) whose target bar opened before `time`.
    const auto apply_known = [&](std::size_t end, std::int64_t time) {
        for (; next < end && origin_times[next] + target_offset < time; ++next) {
            const auto& served = forecasts[next];
            update(state, origin_times[next] + target_offset, actuals[next]<served.q10, actuals[next]> served.q90,
                   rate);
        }
    };
    for (std::size_t i = 0; i < forecasts.size(); ++i) {
        apply_known(i, origin_times[i]);
        forecasts[i] = apply(state, forecasts[i]);
    }
    if (!forecasts.empty()) apply_known(forecasts.size(), std::max(known_before, origin_times.back()));
}

IntervalState handed_on(const IntervalState& predecessor) {
    return {predecessor.log_scale_low, predecessor.log_scale_high, 0, 0};
}

} // namespace btcml::model
