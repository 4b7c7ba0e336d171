// Micro-benchmark of online interval calibration: the cost one forecast adds, i.e. applying a horizon's state to its
// quantiles and, once its outcome is known, the update (model::apply + model::update). Prints one JSON object.
//
//   bench_calibration [--forecasts N]
#include "model/calibration.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

int main(int argc, char** argv) {
    std::size_t n = 10'000'000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--forecasts") == 0) n = std::strtoull(argv[i + 1], nullptr, 10);
    std::mt19937_64 rng(1);
    std::normal_distribution<double> z(0, 0.01);
    std::vector<double> outcomes(4096);
    for (double& y : outcomes)
        y = z(rng);
    btcml::model::IntervalState state;
    const btcml::evaluate::QuantileForecast raw{-0.0128, 0, 0.0128};
    double sink = 0;
    const auto started = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < n; ++i) {
        const auto served = btcml::model::apply(state, raw);
        const double y = outcomes[i & 4095];
        btcml::model::update(state, static_cast<std::int64_t>(i), y<served.q10, y> served.q90, 0.02);
        sink += served.q90;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << nlohmann::json{{"forecasts", n},
                                {"ns_per_forecast", seconds * 1e9 / static_cast<double>(n)},
                                {"coverage_state",
                                 {{"log_scale_low", state.log_scale_low}, {"log_scale_high", state.log_scale_high}}},
                                {"checksum", sink}}
                     .dump()
              << "\n";
}
