#include "evaluate/metrics.hpp"

#include "core/error.hpp"

#include <boost/math/distributions/students_t.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace btcml::evaluate {

QuantileForecast non_crossing(QuantileForecast f) {
    std::array<double, 3> q{f.q10, f.q50, f.q90};
    std::sort(q.begin(), q.end());
    return {q[0], q[1], q[2]};
}

Interval wilson_interval(std::size_t successes, std::size_t trials, double z) {
    if (trials == 0) return {0, 1};
    const double n = static_cast<double>(trials);
    const double p = static_cast<double>(successes) / n;
    const double z2 = z * z;
    const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
    const double half = z / (1 + z2 / n) * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double pinball_loss(double y, double q, double tau) {
    const double u = y - q;
    return u >= 0 ? tau * u : (tau - 1) * u;
}

std::vector<double> pinball_losses(std::span<const QuantileForecast> forecasts, std::span<const Outcome> outcomes) {
    std::vector<double> out(forecasts.size());
    for (std::size_t i = 0; i < forecasts.size(); ++i) {
        const double y = outcomes[i].actual;
        out[i] = (pinball_loss(y, forecasts[i].q10, quantile_levels[0]) +
                  pinball_loss(y, forecasts[i].q50, quantile_levels[1]) +
                  pinball_loss(y, forecasts[i].q90, quantile_levels[2])) /
                 static_cast<double>(quantile_levels.size());
    }
    return out;
}

double empirical_quantile(std::vector<double> values, double p) {
    if (values.empty()) throw InvalidInput("empirical quantile of no values");
    std::sort(values.begin(), values.end());
    const double pos = p * static_cast<double>(values.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

namespace {

double mean(std::span<const double> x) {
    double s = 0;
    for (const double v : x)
        s += v;
    return s / static_cast<double>(x.size());
}

} // namespace

double student_t_cdf(double t, double df) { return boost::math::cdf(boost::math::students_t(df), t); }

std::optional<double> diebold_mariano_pvalue(std::span<const double> loss_a, std::span<const double> loss_b,
                                             int horizon) {
    const std::size_t n = loss_a.size();
    if (n < 2 || loss_b.size() != n) return std::nullopt;
    std::vector<double> d(n);
    for (std::size_t i = 0; i < n; ++i)
        d[i] = loss_a[i] - loss_b[i];
    const double d_mean = mean(d);
    const auto autocovariance = [&](std::size_t lag) {
        double s = 0;
        for (std::size_t i = lag; i < n; ++i)
            s += (d[i] - d_mean) * (d[i - lag] - d_mean);
        return s / static_cast<double>(n);
    };
    const double gamma0 = autocovariance(0);
    if (gamma0 <= 0) return 1.0; // identical losses: no evidence of any difference
    double long_run = gamma0;
    const auto lags = static_cast<std::size_t>(std::max(horizon - 1, 0));
    for (std::size_t k = 1; k <= lags && k < n; ++k)
        long_run += 2 * autocovariance(k);
    // Unweighted autocovariances can sum to a negative variance; fall back to the lag-0 variance then.
    if (long_run <= 0) long_run = gamma0;
    const double nd = static_cast<double>(n);
    const double h = horizon;
    const double dm = d_mean / std::sqrt(long_run / nd);
    const double correction = (nd + 1 - 2 * h + h * (h - 1) / nd) / nd;
    const double statistic = dm * std::sqrt(std::max(correction, 0.0));
    return 2 * (1 - student_t_cdf(std::abs(statistic), nd - 1));
}

std::optional<double> correlation(std::span<const double> x, std::span<const double> y) {
    const std::size_t n = x.size();
    if (n < 2 || y.size() != n) return std::nullopt;
    const double mx = mean(x), my = mean(y);
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < n; ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    // Tolerance relative to the scale: a forecast that is constant up to rounding has no correlation.
    if (sxx <= 1e-24 * (1 + mx * mx) * static_cast<double>(n) || syy <= 1e-24 * (1 + my * my) * static_cast<double>(n))
        return std::nullopt;
    return sxy / std::sqrt(sxx * syy);
}

Metrics compute_metrics(std::span<const QuantileForecast> forecasts, std::span<const Outcome> outcomes, int horizon,
                        Reference reference) {
    const std::size_t n = forecasts.size();
    if (n == 0 || outcomes.size() != n)
        throw InvalidInput("metrics need the same, non-zero number of forecasts and outcomes");
    Metrics m;
    m.count = n;
    std::vector<double> median(n), actual(n), previous(n), loss(n), naive_loss(n);
    double abs_sum = 0, naive_abs_sum = 0, sq_sum = 0, naive_sq_sum = 0, ape_sum = 0, covered = 0, width = 0,
           pinball = 0, below_q10 = 0, below_q50 = 0, below_q90 = 0;
    std::size_t window_points = 0, window_covered = 0, windows_within = 0;
    std::int64_t window_start = outcomes.front().time;
    const std::int64_t last_time = outcomes.back().time;
    const auto close_window = [&] {
        if (window_points == 0) return;
        ++m.coverage_windows;
        const double c = static_cast<double>(window_covered) / static_cast<double>(window_points);
        if (c >= 0.70 && c <= 0.90) ++windows_within;
        window_points = window_covered = 0;
    };
    std::size_t direction_trials = 0, direction_hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const QuantileForecast& f = forecasts[i];
        const Outcome& o = outcomes[i];
        const double e = o.actual - f.q50;
        median[i] = f.q50;
        actual[i] = o.actual;
        previous[i] = o.previous;
        loss[i] = e * e;
        naive_loss[i] = o.actual * o.actual;
        abs_sum += std::abs(e);
        naive_abs_sum += std::abs(o.actual);
        sq_sum += loss[i];
        naive_sq_sum += naive_loss[i];
        // |P - A| / A with P = B exp(q50) and A = B exp(y): the base price cancels.
        ape_sum += std::abs(std::exp(f.q50 - o.actual) - 1);
        const bool inside = o.actual >= f.q10 && o.actual <= f.q90;
        if (inside) ++covered;
        below_q10 += o.actual < f.q10 ? 1 : 0;
        below_q50 += o.actual < f.q50 ? 1 : 0;
        below_q90 += o.actual < f.q90 ? 1 : 0;
        // Origins ascend: close each whole window as the first origin after it arrives.
        while (o.time >= window_start + kCoverageWindowSeconds) {
            close_window();
            window_start += kCoverageWindowSeconds;
        }
        if (window_start + kCoverageWindowSeconds <= last_time + 1) {
            ++window_points;
            window_covered += inside ? 1 : 0;
        }
        width += f.q90 - f.q10;
        pinball += pinball_loss(o.actual, f.q10, quantile_levels[0]) +
                   pinball_loss(o.actual, f.q50, quantile_levels[1]) +
                   pinball_loss(o.actual, f.q90, quantile_levels[2]);
        // A direction is called only when both the forecast and the outcome have one.
        if (f.q50 != 0 && o.actual != 0) {
            ++direction_trials;
            if ((f.q50 > 0) == (o.actual > 0)) ++direction_hits;
        }
    }
    close_window(); // a whole window that ends with the last origin
    const double nd = static_cast<double>(n);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    m.mae = abs_sum / nd;
    m.rmse = std::sqrt(sq_sum / nd);
    m.mape = 100 * ape_sum / nd;
    m.mase = naive_abs_sum > 0 ? abs_sum / naive_abs_sum : nan;
    m.u2 = naive_sq_sum > 0 ? std::sqrt(sq_sum / naive_sq_sum) : nan;
    if (direction_trials > 0) {
        m.direction_accuracy = static_cast<double>(direction_hits) / static_cast<double>(direction_trials);
        const Interval ci = wilson_interval(direction_hits, direction_trials);
        m.direction_ci_low = ci.low;
        m.direction_ci_high = ci.high;
    }
    if (reference == Reference::other) m.dm_pvalue = diebold_mariano_pvalue(loss, naive_loss, horizon);
    m.coverage_80 = covered / nd;
    const Interval coverage_ci = wilson_interval(static_cast<std::size_t>(covered), n);
    m.coverage_ci_low = coverage_ci.low;
    m.coverage_ci_high = coverage_ci.high;
    m.below_q10 = below_q10 / nd;
    m.below_q50 = below_q50 / nd;
    m.below_q90 = below_q90 / nd;
    if (m.coverage_windows > 0)
        m.coverage_windows_within = static_cast<double>(windows_within) / static_cast<double>(m.coverage_windows);
    m.interval_width = width / nd;
    m.pinball = pinball / (nd * static_cast<double>(quantile_levels.size()));
    m.lag_correlation = correlation(median, previous);
    m.target_correlation = correlation(median, actual);
    // A lagged copy: forecasts follow the return just realised far more than the one to come.
    m.tracks_previous =
        m.lag_correlation && *m.lag_correlation >= 0.5 && *m.lag_correlation > m.target_correlation.value_or(0.0);
    return m;
}

nlohmann::json to_json(const Metrics& m) {
    const auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    const auto optional = [&](const std::optional<double>& v) { return v ? number(*v) : nlohmann::json(nullptr); };
    return {{"count", m.count},
            {"mae", number(m.mae)},
            {"rmse", number(m.rmse)},
            {"mape", number(m.mape)},
            {"mase", number(m.mase)},
            {"u2", number(m.u2)},
            {"direction_accuracy", optional(m.direction_accuracy)},
            {"direction_ci_low", optional(m.direction_ci_low)},
            {"direction_ci_high", optional(m.direction_ci_high)},
            {"dm_pvalue", optional(m.dm_pvalue)},
            {"coverage_80", number(m.coverage_80)},
            {"coverage_ci_low", number(m.coverage_ci_low)},
            {"coverage_ci_high", number(m.coverage_ci_high)},
            {"below_q10", number(m.below_q10)},
            {"below_q50", number(m.below_q50)},
            {"below_q90", number(m.below_q90)},
            {"coverage_windows", m.coverage_windows},
            {"coverage_windows_within", optional(m.coverage_windows_within)},
            {"interval_width", number(m.interval_width)},
            {"pinball", number(m.pinball)},
            {"lag_correlation", optional(m.lag_correlation)},
            {"target_correlation", optional(m.target_correlation)},
            {"tracks_previous", m.tracks_previous}};
}

} // namespace btcml::evaluate
