// `synthetic[:SEED]`: a deterministic series that looks like Bitcoin (GARCH(1,1) volatility clustering,
// Student-t tails, a daily volume cycle), so the main job runs offline. Every bar's source is `synthetic:SEED`
// and its default symbol is BTCUSD-SYNTH, so it can never be mistaken for, or mixed with, market data.
#include "core/error.hpp"
#include "core/time.hpp"
#include "data/sources.hpp"

#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <numbers>

namespace btcml::data {
namespace {

constexpr std::int64_t kDefaultFrom = 1640995200; // 2022-01-01T00:00:00Z
constexpr std::int64_t kDefaultTo = 1704063600;   // 2023-12-31T23:00:00Z
constexpr std::int64_t kMaxBars = 50'000'000;
constexpr int kSubsteps = 12;

/// SplitMix64: the std distributions are implementation-defined, and the series must be identical everywhere.
class Rng {
  public:
    explicit Rng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double r = std::sqrt(-2.0 * std::log(uniform()));
        const double theta = 2.0 * std::numbers::pi * uniform();
        spare_ = r * std::sin(theta);
        has_spare_ = true;
        return r * std::cos(theta);
    }
    /// Student-t with `dof` degrees of freedom, scaled to unit variance.
    double student_t(int dof) {
        double chi2 = 0;
        for (int i = 0; i < dof; ++i) {
            const double z = normal();
            chi2 += z * z;
        }
        return normal() / std::sqrt(chi2 / dof) * std::sqrt((dof - 2.0) / dof);
    }

  private:
    std::uint64_t state_;
    double spare_ = 0;
    bool has_spare_ = false;
};

std::uint64_t parse_seed(std::string_view spec) {
    if (spec.empty()) return 42;
    std::uint64_t seed = 0;
    const auto [ptr, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), seed);
    if (ec != std::errc{} || ptr != spec.data() + spec.size())
        throw UsageError(fmt::format("synthetic:{}: the seed must be a non-negative integer", spec));
    return seed;
}

} // namespace

void read_synthetic(std::string_view spec, SourceContext& ctx) {
    const std::uint64_t seed = parse_seed(spec);
    const std::int64_t interval = ctx.options.interval.value_or(3600);
    const std::int64_t from = (ctx.options.from.value_or(kDefaultFrom) + interval - 1) / interval * interval;
    const std::int64_t to = ctx.options.to.value_or(kDefaultTo);
    if (to < from) throw UsageError("synthetic: --to is before --from");
    const std::int64_t count = (to - from) / interval + 1;
    if (count > kMaxBars)
        throw UsageError(fmt::format("synthetic: {} bars requested; the limit is {}", count, kMaxBars));
    ctx.format = "synthetic";

    Rng rng(seed);
    // Hourly volatility near Bitcoin's (~0.6% per hour, ~55% a year), scaled to the interval.
    const double scale = std::sqrt(static_cast<double>(interval) / 3600.0);
    const double mean_var = std::pow(0.006 * scale, 2);
    const double alpha = 0.06;
    const double beta = 0.92;
    const double omega = mean_var * (1 - alpha - beta);
    const double drift = 0.00002 * static_cast<double>(interval) / 3600.0;
    double variance = mean_var;
    double last_shock = 0;
    double price = 42000.0;
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t t = from + i * interval;
        variance = omega + alpha * last_shock * last_shock + beta * variance;
        const double sigma = std::sqrt(variance);
        const double open = price;
        double high = open;
        double low = open;
        double log_return = 0;
        for (int s = 0; s < kSubsteps; ++s) {
            const double step = drift / kSubsteps + sigma / std::sqrt(double{kSubsteps}) * rng.student_t(4);
            log_return += step;
            price *= std::exp(step);
            high = std::max(high, price);
            low = std::min(low, price);
        }
        last_shock = log_return - drift;
        const double hour = static_cast<double>((t % 86400) / 3600);
        const double daily_cycle = 1.0 + 0.35 * std::sin(2 * std::numbers::pi * (hour - 9) / 24);
        const double volume =
            450.0 * scale * scale * daily_cycle * (1.0 + 25.0 * std::abs(log_return)) * std::exp(0.3 * rng.normal());
        // Quoted like an exchange: cents and satoshis. Rounding is monotone, so high and low still bound the bar.
        const auto cents = [](double v) { return std::round(v * 100) / 100; };
        Candidate c;
        c.line = i + 1;
        c.time = t;
        c.open = cents(open);
        c.high = cents(high);
        c.low = cents(low);
        c.close = cents(price);
        c.volume = std::round(volume * 1e8) / 1e8;
        ctx.writer.add(c);
        if (i % 4096 == 0) ctx.progress(i, count);
    }
    ctx.progress(count, count);
}

} // namespace btcml::data
