// Finite-difference proof of the hand-written LSTM backward pass: every entry of every tensor (all layers and the
// head) is compared with a central difference of the loss. float32 differences are noisy, so the loss is taken
// in double from float outputs, the step is large enough to dwarf rounding, and the tolerance is relative plus a
// small absolute floor; the test also shows the check is sharp by catching a slightly wrong gradient.
#include "model/lstm.hpp"
#include "model/lstm_kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace btcml::model {
namespace {

constexpr int batch = 3;
constexpr int steps = 5;
constexpr int horizons = 2;
const std::vector<float> quantiles{0.1F, 0.5F, 0.9F};

struct Problem {
    LstmNetwork network{{.input_size = 3, .hidden_size = 4, .num_layers = 2, .output_size = 6, .dropout = 0.0F}, 7};
    std::vector<float> inputs;
    std::vector<float> targets;

    Problem() {
        std::mt19937 rng(3);
        std::normal_distribution<float> normal(0.0F, 1.0F);
        for (int i = 0; i < batch * steps * 3; ++i)
            inputs.push_back(normal(rng));
        // Targets far from the outputs (which stay within about +-1), so no pinball kink lies within a step.
        for (int i = 0; i < batch * horizons; ++i)
            targets.push_back(i % 2 == 0 ? 3.0F + 0.1F * i : -3.0F - 0.1F * i);
        // Larger weights than the default init put the gates away from their linear regions.
        std::vector<float> params(network.parameters().begin(), network.parameters().end());
        for (float& p : params)
            p *= 2.0F;
        network.set_parameters(params);
    }

    double loss() const {
        std::vector<float> out(static_cast<std::size_t>(batch) * horizons * quantiles.size());
        network.forward(inputs.data(), batch, steps, out.data());
        return pinball_loss(out.data(), targets.data(), batch, horizons, quantiles);
    }
};

struct Mismatch {
    std::string tensor;
    std::size_t index;
    double analytic;
    double numeric;
};

// Compares `gradient` with central differences; returns the entries outside atol + rtol * |numeric|.
std::vector<Mismatch> check(Problem& p, const std::vector<float>& gradient, double eps, double atol, double rtol) {
    std::vector<Mismatch> bad;
    std::vector<float> params(p.network.parameters().begin(), p.network.parameters().end());
    for (const auto& t : p.network.tensors())
        for (std::size_t i = t.offset; i < t.offset + t.size(); ++i) {
            const float saved = params[i];
            params[i] = saved + static_cast<float>(eps);
            p.network.set_parameters(params);
            const double up = p.loss();
            params[i] = saved - static_cast<float>(eps);
            p.network.set_parameters(params);
            const double down = p.loss();
            params[i] = saved;
            p.network.set_parameters(params);
            const double numeric = (up - down) / (2.0 * eps);
            if (std::abs(numeric - gradient[i]) > atol + rtol * std::abs(numeric))
                bad.push_back({t.name, i - t.offset, gradient[i], numeric});
        }
    return bad;
}

constexpr double eps = 1e-2;
constexpr double atol = 2e-5;
constexpr double rtol = 2e-3;

std::vector<float> analytic_gradient(Problem& p) {
    LstmTrainer trainer(p.network, {.quantiles = quantiles, .threads = 2});
    const double loss = trainer.compute_gradient(p.inputs.data(), p.targets.data(), batch, steps);
    EXPECT_NEAR(loss, p.loss(), 1e-6);
    return {trainer.gradient().begin(), trainer.gradient().end()};
}

// Runs under every kernel set the CPU supports.
class LstmGradcheck : public ::testing::TestWithParam<KernelIsa> {
  protected:
    void SetUp() override {
        saved_ = active_kernels();
        if (!kernels_supported(GetParam())) GTEST_SKIP() << "this CPU lacks " << to_string(GetParam());
        use_kernels(GetParam());
    }
    void TearDown() override { use_kernels(saved_); }

  private:
    KernelIsa saved_ = KernelIsa::generic;
};

INSTANTIATE_TEST_SUITE_P(Kernels, LstmGradcheck,
                         ::testing::Values(KernelIsa::generic, KernelIsa::avx2, KernelIsa::avx512),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST_P(LstmGradcheck, EveryTensorMatchesFiniteDifferences) {
    Problem p;
    const auto gradient = analytic_gradient(p);
    for (const auto& t : p.network.tensors()) {
        double largest = 0.0;
        for (std::size_t i = t.offset; i < t.offset + t.size(); ++i)
            largest = std::max(largest, double{std::abs(gradient[i])});
        // Guards against a vacuous check: each tensor's gradient must be well above the absolute tolerance.
        EXPECT_GT(largest, 50 * atol) << t.name;
    }
    for (const auto& m : check(p, gradient, eps, atol, rtol))
        ADD_FAILURE() << m.tensor << "[" << m.index << "]: analytic " << m.analytic << ", numeric " << m.numeric;
}

TEST_P(LstmGradcheck, CatchesASlightlyWrongGradient) {
    Problem p;
    const auto gradient = analytic_gradient(p);
    for (const auto& t : p.network.tensors()) {
        // Spoil the largest entry of this tensor by 5%: the check must name exactly that entry.
        std::size_t worst = t.offset;
        for (std::size_t i = t.offset; i < t.offset + t.size(); ++i)
            if (std::abs(gradient[i]) > std::abs(gradient[worst])) worst = i;
        auto spoiled = gradient;
        spoiled[worst] *= 1.05F;
        const auto bad = check(p, spoiled, eps, atol, rtol);
        ASSERT_EQ(bad.size(), 1U) << t.name;
        EXPECT_EQ(bad[0].tensor, t.name);
        EXPECT_EQ(bad[0].index, worst - t.offset);
    }
}

} // namespace
} // namespace btcml::model
