#include "evaluate/baselines.hpp"

#include "core/error.hpp"

#include <Eigen/Dense>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace btcml::evaluate {

using features::feature_count;

namespace {

QuantileForecast with_band(double point, const ResidualBand& band) {
    return non_crossing({point + band.low, point, point + band.high});
}

ResidualBand band_of(std::vector<double> residuals) {
    return {empirical_quantile(residuals, quantile_levels.front()),
            empirical_quantile(residuals, quantile_levels.back())};
}

Eigen::VectorXd lag_features(const features::FeatureTable& table, const features::Scaler& scaler, std::size_t origin,
                             std::size_t lags) {
    std::vector<float> x(lags * feature_count);
    features::fill_window(table, scaler, origin, lags, x.data());
    return Eigen::Map<Eigen::VectorXf>(x.data(), static_cast<Eigen::Index>(x.size())).cast<double>();
}

Eigen::MatrixXd design(const features::FeatureTable& table, const features::Scaler& scaler,
                       std::span<const std::size_t> origins, std::size_t lags) {
    Eigen::MatrixXd x(static_cast<Eigen::Index>(origins.size()), static_cast<Eigen::Index>(lags * feature_count));
    for (std::size_t k = 0; k < origins.size(); ++k)
        x.row(static_cast<Eigen::Index>(k)) = lag_features(table, scaler, origins[k], lags).transpose();
    return x;
}

Eigen::VectorXd targets(const features::FeatureTable& table, std::span<const std::size_t> origins, int h) {
    Eigen::VectorXd y(static_cast<Eigen::Index>(origins.size()));
    for (std::size_t k = 0; k < origins.size(); ++k)
        y[static_cast<Eigen::Index>(k)] = table.log_return(origins[k], h);
    return y;
}

// The centred design and its Gram matrix, computed once for every horizon and penalty (they were most of the
// baselines' time in a walk-forward fold).
struct RidgeDesign {
    explicit RidgeDesign(const Eigen::MatrixXd& x)
        : mean(x.colwise().mean()), centred(x.rowwise() - mean), gram(centred.transpose() * centred) {}
    Eigen::RowVectorXd mean;
    Eigen::MatrixXd centred;
    Eigen::MatrixXd gram;
};

// Ridge on centred data, so the intercept is not penalised.
LinearModel fit_ridge(const RidgeDesign& x, const Eigen::VectorXd& y, std::size_t lags, double lambda) {
    const double y_mean = y.mean();
    Eigen::MatrixXd gram = x.gram;
    gram.diagonal().array() += lambda * static_cast<double>(x.centred.rows());
    const Eigen::VectorXd beta = gram.ldlt().solve(x.centred.transpose() * (y.array() - y_mean).matrix());
    LinearModel m;
    m.lags = lags;
    m.lambda = lambda;
    m.intercept = y_mean - x.mean.dot(beta);
    m.weights.assign(beta.data(), beta.data() + beta.size());
    return m;
}

Eigen::VectorXd predict_ridge(const LinearModel& m, const Eigen::MatrixXd& x) {
    const Eigen::Map<const Eigen::VectorXd> w(m.weights.data(), static_cast<Eigen::Index>(m.weights.size()));
    return (x * w).array() + m.intercept;
}

std::vector<double> to_vector(const Eigen::VectorXd& v) { return {v.data(), v.data() + v.size()}; }

// The standard normal distribution's 10% and 90% quantiles.
ResidualBand normal_band() { return {-1.2815515655446004, 1.2815515655446004}; }

} // namespace

std::vector<double> ewma_variance(const features::FeatureTable& table, double lambda) {
    std::vector<double> variance(table.size());
    double v = table.size() > 1 ? std::pow(std::log(table.close[1] / table.close[0]), 2) : 0;
    for (std::size_t i = 0; i < table.size(); ++i) {
        if (table.history(i) >= 1)
            v = lambda * v + (1 - lambda) * std::pow(std::log(table.close[i] / table.close[i - 1]), 2);
        variance[i] = v;
    }
    return variance;
}

QuantileForecast Baselines::ewma(std::span<const double> variance, std::size_t origin,
                                 std::size_t horizon_index) const {
    const double scale = std::sqrt(variance[origin] * horizons[horizon_index]);
    return non_crossing({ewma_z[horizon_index].low * scale, 0, ewma_z[horizon_index].high * scale});
}

QuantileForecast Baselines::rolling(const features::FeatureTable& table, std::size_t origin,
                                    std::size_t horizon_index) const {
    const int h = horizons[horizon_index];
    const auto bars = static_cast<std::size_t>(std::max<std::int64_t>(1, kRollingSeconds / table.interval));
    std::vector<double> returns;
    returns.reserve(bars);
    // The h-bar returns realised at the last `bars` bars up to the origin, none across a gap.
    for (std::size_t j = origin + 1 - std::min(bars, origin + 1); j <= origin; ++j)
        if (table.history(j) >= static_cast<std::size_t>(h)) returns.push_back(table.previous_return(j, h));
    if (returns.empty()) return {};
    return non_crossing(
        {empirical_quantile(returns, quantile_levels.front()), 0, empirical_quantile(returns, quantile_levels.back())});
}

QuantileForecast Baselines::naive(std::size_t horizon_index) const { return with_band(0, naive_band[horizon_index]); }

QuantileForecast Baselines::drift(std::size_t horizon_index) const {
    return with_band(drift_per_bar * horizons[horizon_index], drift_band[horizon_index]);
}

QuantileForecast Baselines::linear_forecast(const features::FeatureTable& table, const features::Scaler& scaler,
                                            std::size_t origin, std::size_t horizon_index) const {
    const LinearModel& m = linear[horizon_index];
    const Eigen::VectorXd x = lag_features(table, scaler, origin, m.lags);
    const Eigen::Map<const Eigen::VectorXd> w(m.weights.data(), static_cast<Eigen::Index>(m.weights.size()));
    return with_band(m.intercept + x.dot(w), m.band);
}

Baselines fit_baselines(const features::FeatureTable& table, const features::Scaler& scaler,
                        const features::DatasetSpec& spec, std::span<const std::size_t> train,
                        std::span<const std::size_t> validation) {
    if (train.empty()) throw InvalidInput("no training windows to fit the baselines on");
    Baselines b;
    b.horizons = spec.horizons;
    b.drift_per_bar = scaler.mean[0]; // the scaler's mean of feature 0 is the mean training 1-bar log return
    const std::size_t lags = std::min<std::size_t>(4, spec.window);
    const Eigen::MatrixXd x_train = design(table, scaler, train, lags);
    const RidgeDesign ridge_design(x_train);
    const Eigen::MatrixXd x_validation = design(table, scaler, validation, lags);
    const auto variance = ewma_variance(table);
    for (const int h : spec.horizons) {
        const Eigen::VectorXd y = targets(table, train, h);
        std::vector<double> standardised;
        for (std::size_t k = 0; k < train.size(); ++k)
            if (variance[train[k]] > 0)
                standardised.push_back(y[static_cast<Eigen::Index>(k)] / std::sqrt(variance[train[k]] * h));
        b.ewma_z.push_back(standardised.empty() ? normal_band() : band_of(std::move(standardised)));
        b.naive_band.push_back(band_of(to_vector(y)));
        b.drift_band.push_back(band_of(to_vector(y.array() - b.drift_per_bar * h)));
        LinearModel best = fit_ridge(ridge_design, y, lags, 1.0);
        if (!validation.empty()) {
            const Eigen::VectorXd y_validation = targets(table, validation, h);
            double best_mse = std::numeric_limits<double>::infinity();
            for (const double lambda : {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
                LinearModel m = fit_ridge(ridge_design, y, lags, lambda);
                const double mse = (predict_ridge(m, x_validation) - y_validation).squaredNorm();
                if (mse < best_mse) {
                    best_mse = mse;
                    best = std::move(m);
                }
            }
        }
        best.band = band_of(to_vector(y - predict_ridge(best, x_train)));
        b.linear.push_back(std::move(best));
    }
    return b;
}

namespace {

nlohmann::json band_json(const ResidualBand& band) { return {band.low, band.high}; }

ResidualBand band_from_json(const nlohmann::json& j) {
    const auto v = j.get<std::vector<double>>();
    if (v.size() != 2) throw nlohmann::json::other_error::create(501, "a residual band needs two numbers", &j);
    return {v[0], v[1]};
}

} // namespace

nlohmann::json Baselines::to_json() const {
    nlohmann::json j{{"horizons", horizons}, {"drift_per_bar", drift_per_bar}};
    for (std::size_t k = 0; k < horizons.size(); ++k) {
        j["naive_band"].push_back(band_json(naive_band[k]));
        j["drift_band"].push_back(band_json(drift_band[k]));
        j["ewma_z"].push_back(band_json(ewma_z[k]));
        const LinearModel& m = linear[k];
        j["linear"].push_back({{"lags", m.lags},
                               {"lambda", m.lambda},
                               {"intercept", m.intercept},
                               {"weights", m.weights},
                               {"band", band_json(m.band)}});
    }
    return j;
}

Baselines Baselines::from_json(const nlohmann::json& j, std::string_view what) {
    Baselines b;
    try {
        j.at("horizons").get_to(b.horizons);
        j.at("drift_per_bar").get_to(b.drift_per_bar);
        for (const auto& band : j.at("naive_band"))
            b.naive_band.push_back(band_from_json(band));
        for (const auto& band : j.at("drift_band"))
            b.drift_band.push_back(band_from_json(band));
        for (const auto& l : j.at("linear")) {
            LinearModel m;
            l.at("lags").get_to(m.lags);
            l.at("lambda").get_to(m.lambda);
            l.at("intercept").get_to(m.intercept);
            l.at("weights").get_to(m.weights);
            m.band = band_from_json(l.at("band"));
            if (m.lags == 0 || m.weights.size() != m.lags * feature_count)
                throw nlohmann::json::other_error::create(501, "linear weights do not match their lags", &l);
            b.linear.push_back(std::move(m));
        }
        if (j.contains("ewma_z"))
            for (const auto& band : j["ewma_z"])
                b.ewma_z.push_back(band_from_json(band));
        else
            b.ewma_z.assign(b.horizons.size(), normal_band());
    } catch (const nlohmann::json::exception& e) {
        throw InvalidInput(fmt::format("{}: malformed baselines: {}", what, e.what()));
    }
    const std::size_t n = b.horizons.size();
    if (b.naive_band.size() != n || b.drift_band.size() != n || b.linear.size() != n || b.ewma_z.size() != n)
        throw InvalidInput(fmt::format("{}: baselines do not cover their {} horizons", what, n));
    return b;
}

} // namespace btcml::evaluate
