// Benchmark of the LSTM forecaster (the shapes of the product's default model): training throughput over an epoch
// (forward + backward + clipping + Adam), single-window inference latency, batched forward throughput.
// Prints one JSON object, the same fields as bench/lstm_torch.py. See docs/benchmarks-lstm.md.
//
//   bench_lstm [--windows N] [--threads N] [--latency-calls N] [--kernels generic|avx2|avx512]
#include "model/lstm.hpp"
#include "model/lstm_kernels.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int features = 8;
constexpr int hidden = 64;
constexpr int layers = 2;
constexpr int steps = 48;
constexpr int batch = 64;
constexpr int horizons = 3;
constexpr int outputs = 9;

// FLOPs of the GEMMs of one window's forward pass (2 per multiply-add); backward does twice that.
double gemm_flops() {
    double per_step = 0.0;
    for (int k = 0; k < layers; ++k)
        per_step += 2.0 * 4 * hidden * ((k == 0 ? features : hidden) + hidden);
    return steps * per_step + 2.0 * hidden * outputs;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Rounded for printing: the JSON should read like the Python baseline's.
double round_to(double v, int decimals) { return std::stod(fmt::format("{:.{}f}", v, decimals)); }

} // namespace

int main(int argc, char** argv) {
    int windows = 20000;
    int threads = 2;
    int latency_calls = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const int value = std::atoi(argv[i + 1]);
        if (flag == "--kernels") {
            const std::string name = argv[i + 1];
            btcml::model::use_kernels(name == "generic" ? btcml::model::KernelIsa::generic
                                      : name == "avx2"  ? btcml::model::KernelIsa::avx2
                                                        : btcml::model::KernelIsa::avx512);
        } else if (flag == "--windows")
            windows = value;
        else if (flag == "--threads")
            threads = value;
        else if (flag == "--latency-calls")
            latency_calls = value;
        else {
            std::cerr << "usage: bench_lstm [--windows N] [--threads N] [--latency-calls N] [--kernels ISA]\n";
            return 2;
        }
    }
    omp_set_num_threads(threads);
    const btcml::model::LstmConfig config{
        .input_size = features, .hidden_size = hidden, .num_layers = layers, .output_size = outputs, .dropout = 0.1F};
    btcml::model::LstmNetwork net(config, 1);
    btcml::model::LstmTrainer trainer(net, {.learning_rate = 1e-3F, .clip_norm = 1.0F, .seed = 1, .threads = threads});

    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0F, 1.0F);
    std::vector<float> x(static_cast<std::size_t>(windows) * steps * features);
    std::vector<float> y(static_cast<std::size_t>(windows) * horizons);
    for (float& v : x)
        v = normal(rng);
    for (float& v : y)
        v = 0.1F * normal(rng);
    const auto window_floats = static_cast<std::size_t>(steps) * features;

    for (int s = 0; s < 5; ++s)
        trainer.step(x.data(), y.data(), batch, steps);
    const int train_steps = windows / batch;
    auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < train_steps; ++s)
        trainer.step(x.data() + s * batch * window_floats, y.data() + static_cast<std::size_t>(s) * batch * horizons,
                     batch, steps);
    const double train_wps = train_steps * batch / seconds_since(start);

    std::vector<float> out(static_cast<std::size_t>(windows) * outputs);
    for (int i = 0; i < 50; ++i)
        net.forward(x.data(), 1, steps, out.data());
    std::vector<double> latency(latency_calls);
    for (int i = 0; i < latency_calls; ++i) {
        const auto t = std::chrono::steady_clock::now();
        net.forward(x.data() + (i % windows) * window_floats, 1, steps, out.data());
        latency[i] = seconds_since(t);
    }
    std::sort(latency.begin(), latency.end());
    const double median = latency[latency.size() / 2];
    const double p99 = latency[static_cast<std::size_t>(0.99 * static_cast<double>(latency.size() - 1))];

    constexpr int eval_chunk = 256;
    net.forward(x.data(), std::min(eval_chunk, windows), steps, out.data());
    start = std::chrono::steady_clock::now();
    for (int s = 0; s < windows; s += eval_chunk)
        net.forward(x.data() + s * window_floats, std::min(eval_chunk, windows - s), steps,
                    out.data() + static_cast<std::size_t>(s) * outputs);
    const double eval_wps = windows / seconds_since(start);

    const double flops = gemm_flops();
    const nlohmann::json result{
        {"impl", "btcml"},
        {"kernels", std::string(btcml::model::to_string(btcml::model::active_kernels()))},
        {"threads", threads},
        {"shape",
         {{"features", features},
          {"hidden", hidden},
          {"layers", layers},
          {"steps", steps},
          {"batch", batch},
          {"outputs", outputs}}},
        {"train_windows_per_s", round_to(train_wps, 1)},
        {"train_gflops", round_to(train_wps * 3 * flops / 1e9, 2)},
        {"infer_latency_us_median", round_to(median * 1e6, 1)},
        {"infer_latency_us_p99", round_to(p99 * 1e6, 1)},
        {"infer_gflops", round_to(flops / median / 1e9, 2)},
        {"batched_windows_per_s", round_to(eval_wps, 1)},
        {"batched_gflops", round_to(eval_wps * flops / 1e9, 2)},
    };
    std::cout << result.dump() << "\n";
    return 0;
}
