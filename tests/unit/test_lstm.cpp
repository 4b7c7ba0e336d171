#include "core/error.hpp"
#include "model/lstm.hpp"
#include "model/lstm_kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace btcml::model {
namespace {

const LstmConfig small{.input_size = 4, .hidden_size = 16, .num_layers = 2, .output_size = 6, .dropout = 0.2F};

std::vector<float> random_values(std::size_t n, unsigned seed, float sd = 1.0F) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0F, sd);
    std::vector<float> v(n);
    for (float& x : v)
        x = normal(rng);
    return v;
}

TEST(Lstm, TensorsAreNamedAndLaidOutLikePytorch) {
    const LstmNetwork net(small, 1);
    const auto& t = net.tensors();
    ASSERT_EQ(t.size(), 10U);
    EXPECT_EQ(t[0].name, "weight_ih_l0");
    EXPECT_EQ(t[0].rows, 64);
    EXPECT_EQ(t[0].cols, 4);
    EXPECT_EQ(t[1].name, "weight_hh_l0");
    EXPECT_EQ(t[4].name, "weight_ih_l1");
    EXPECT_EQ(t[4].cols, 16);
    EXPECT_EQ(t[8].name, "head.weight");
    EXPECT_EQ(t[9].name, "head.bias");
    EXPECT_EQ(t[9].offset + t[9].size(), net.parameter_count());
    const float bound = 0.25F; // 1 / sqrt(16)
    for (float p : net.parameters())
        EXPECT_LE(std::abs(p), bound);
    EXPECT_THROW((void)net.tensor("weight_ih_l2"), InvalidInput);
}

TEST(Lstm, RejectsBadShapes) {
    EXPECT_THROW(LstmNetwork({.input_size = 0, .hidden_size = 4, .num_layers = 1, .output_size = 3}, 1), UsageError);
    EXPECT_THROW(
        LstmNetwork({.input_size = 2, .hidden_size = 4, .num_layers = 1, .output_size = 3, .dropout = 1.0F}, 1),
        UsageError);
    LstmNetwork net(small, 1);
    EXPECT_THROW(net.set_tensor("head.bias", std::vector<float>(5)), InvalidInput);
    EXPECT_THROW(net.set_parameters(std::vector<float>(3)), InvalidInput);
    EXPECT_THROW(LstmTrainer(net, {.quantiles = {0.1F, 0.5F, 0.9F, 0.95F}}), UsageError); // 6 outputs
    EXPECT_THROW(LstmTrainer(net, {.quantiles = {0.9F, 0.1F, 0.5F}}), UsageError);
}

TEST(Lstm, ForwardIsTheSameForEveryBatchSplit) {
    const LstmNetwork net(small, 2);
    constexpr int batch = 150; // several forward slices, run in parallel
    constexpr int steps = 9;
    const auto x = random_values(static_cast<std::size_t>(batch) * steps * small.input_size, 1);
    std::vector<float> all(static_cast<std::size_t>(batch) * small.output_size);
    net.forward(x.data(), batch, steps, all.data());
    std::vector<float> one(small.output_size);
    for (int b = 0; b < batch; b += 37) {
        net.forward(x.data() + static_cast<std::size_t>(b) * steps * small.input_size, 1, steps, one.data());
        for (int o = 0; o < small.output_size; ++o)
            EXPECT_NEAR(one[o], all[static_cast<std::size_t>(b) * small.output_size + o], 1e-6F);
    }
}

TEST(Lstm, ForwardIsSafeForConcurrentCallers) {
    const LstmNetwork net(small, 3);
    constexpr int steps = 12;
    constexpr int callers = 4;
    const auto x = random_values(static_cast<std::size_t>(callers) * 70 * steps * small.input_size, 6);
    auto run = [&](int caller, int batch) {
        std::vector<float> out(static_cast<std::size_t>(batch) * small.output_size);
        net.forward(x.data() + static_cast<std::size_t>(caller) * 70 * steps * small.input_size, batch, steps,
                    out.data());
        return out;
    };
    std::vector<std::vector<float>> expected;
    for (int c = 0; c < callers; ++c)
        expected.push_back(run(c, c % 2 == 0 ? 1 : 70));
    std::vector<std::vector<float>> got(callers);
    std::vector<std::thread> threads;
    for (int c = 0; c < callers; ++c)
        threads.emplace_back([&, c] {
            for (int i = 0; i < 20; ++i)
                got[c] = run(c, c % 2 == 0 ? 1 : 70);
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(got, expected);
}

std::vector<float> train(int threads, int iterations) {
    LstmNetwork net(small, 5);
    LstmTrainer trainer(net, {.learning_rate = 3e-3F, .seed = 9, .threads = threads});
    constexpr int batch = 24;
    constexpr int steps = 10;
    const auto x = random_values(static_cast<std::size_t>(batch) * steps * small.input_size, 2);
    const auto y = random_values(static_cast<std::size_t>(batch) * trainer.horizons(), 3);
    for (int i = 0; i < iterations; ++i)
        trainer.step(x.data(), y.data(), batch, steps);
    return {net.parameters().begin(), net.parameters().end()};
}

TEST(Lstm, TrainingIsBitIdenticalForASeedAndThreadCount) {
    for (int threads : {1, 2, 3}) {
        const auto a = train(threads, 20);
        const auto b = train(threads, 20);
        EXPECT_EQ(a, b) << threads << " threads";
    }
    // Different thread counts only change the order of sums (dropout masks do not depend on the split).
    const auto one = train(1, 5);
    const auto two = train(2, 5);
    for (std::size_t i = 0; i < one.size(); ++i)
        ASSERT_NEAR(one[i], two[i], 1e-4F);
}

TEST(Lstm, EveryKernelSetAgreesWithTheGenericOne) {
    const KernelIsa saved = active_kernels();
    // Odd sizes exercise every row and column tail of the GEMM and the scalar tail of the cell.
    const LstmConfig cfg{.input_size = 5, .hidden_size = 21, .num_layers = 3, .output_size = 6, .dropout = 0.3F};
    constexpr int batch = 11;
    constexpr int steps = 7;
    const auto x = random_values(static_cast<std::size_t>(batch) * steps * cfg.input_size, 4);
    const auto y = random_values(static_cast<std::size_t>(batch) * 2, 5);
    auto run = [&](KernelIsa isa, int windows) {
        use_kernels(isa);
        LstmNetwork net(cfg, 8);
        LstmTrainer trainer(net, {.seed = 2, .threads = 2});
        std::vector<float> result(static_cast<std::size_t>(windows) * cfg.output_size);
        net.forward(x.data(), windows, steps, result.data());
        trainer.compute_gradient(x.data(), y.data(), windows, steps, true);
        result.insert(result.end(), trainer.gradient().begin(), trainer.gradient().end());
        return result;
    };
    for (KernelIsa isa : {KernelIsa::avx2, KernelIsa::avx512}) {
        if (!kernels_supported(isa)) continue;
        for (int windows : {1, 2, batch}) {
            const auto generic = run(KernelIsa::generic, windows);
            const auto simd = run(isa, windows);
            ASSERT_EQ(generic.size(), simd.size());
            for (std::size_t i = 0; i < generic.size(); ++i)
                ASSERT_NEAR(generic[i], simd[i], 1e-5F) << to_string(isa) << ", " << windows << " windows, " << i;
        }
    }
    use_kernels(saved);
}

TEST(Lstm, SortQuantilesMakesThemNonCrossing) {
    std::vector<float> out{0.3F, 0.1F, 0.2F, /* next horizon */ -1.0F, 0.0F, -2.0F, /* next window */ 1, 2, 3, 3, 2, 1};
    sort_quantiles(out.data(), 2, 2, 3);
    EXPECT_EQ(out, (std::vector<float>{0.1F, 0.2F, 0.3F, -2.0F, -1.0F, 0.0F, 1, 2, 3, 1, 2, 3}));
}

TEST(Lstm, PinballLossMatchesItsDefinition) {
    const std::vector<float> q{0.1F, 0.9F};
    const std::vector<float> out{1.0F, 1.0F}; // one window, one horizon
    const std::vector<float> y{3.0F};
    // diff = 2: q 0.1 -> 0.2, q 0.9 -> 1.8; mean 1.0.
    EXPECT_NEAR(pinball_loss(out.data(), y.data(), 1, 1, q), 1.0, 1e-7);
    const std::vector<float> y_low{0.0F};
    // diff = -1: q 0.1 -> 0.9, q 0.9 -> 0.1; mean 0.5.
    EXPECT_NEAR(pinball_loss(out.data(), y_low.data(), 1, 1, q), 0.5, 1e-7);
}

TEST(Lstm, LearnsASimpleSignal) {
    // Targets are linear in the inputs at the last steps: the loss must fall well below that of the untrained net.
    const LstmConfig cfg{.input_size = 2, .hidden_size = 16, .num_layers = 2, .output_size = 6, .dropout = 0.1F};
    LstmNetwork net(cfg, 11);
    LstmTrainer trainer(net, {.learning_rate = 1e-2F, .seed = 4});
    constexpr int batch = 32;
    constexpr int steps = 8;
    std::mt19937 rng(6);
    std::normal_distribution<float> normal(0.0F, 1.0F);
    std::vector<float> x(static_cast<std::size_t>(batch) * steps * 2);
    std::vector<float> y(static_cast<std::size_t>(batch) * 2);
    auto draw = [&] {
        for (float& v : x)
            v = normal(rng);
        for (int b = 0; b < batch; ++b) {
            const float* w = x.data() + static_cast<std::size_t>(b) * steps * 2;
            y[b * 2] = 0.5F * w[(steps - 1) * 2] - 0.3F * w[(steps - 2) * 2 + 1];
            y[b * 2 + 1] = 0.4F * w[(steps - 1) * 2 + 1];
        }
    };
    draw();
    const double initial = trainer.compute_gradient(x.data(), y.data(), batch, steps);
    double recent = 0.0;
    for (int i = 0; i < 400; ++i) {
        draw();
        const double loss = trainer.step(x.data(), y.data(), batch, steps);
        if (i >= 350) recent += loss / 50;
    }
    EXPECT_EQ(trainer.steps_taken(), 400);
    EXPECT_LT(recent, 0.5 * initial) << "initial " << initial;
}

} // namespace
} // namespace btcml::model
