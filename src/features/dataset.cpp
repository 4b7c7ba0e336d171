#include "features/dataset.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>

namespace btcml::features {

const std::array<std::string_view, feature_count> feature_names{"log_return",   "log_high_low", "log_close_open",
                                                                "log1p_volume", "hour_sin",     "hour_cos",
                                                                "weekday_sin",  "weekday_cos"};

double FeatureTable::log_return(std::size_t i, int h) const {
    return std::log(close[i + static_cast<std::size_t>(h)] / close[i]);
}

double FeatureTable::previous_return(std::size_t i, int h) const {
    return std::log(close[i] / close[i - static_cast<std::size_t>(h)]);
}

namespace {

void check_bar(const Bar& bar) {
    const auto bad = [&](const char* what) {
        return InvalidInput(fmt::format("bar at {} has {}", format_iso8601(bar.time), what));
    };
    for (const double price : {bar.open, bar.high, bar.low, bar.close}) {
        if (!std::isfinite(price)) throw bad("a non-finite price (NaN or inf)");
        if (price <= 0) throw bad("a non-positive price");
    }
    if (!std::isfinite(bar.volume)) throw bad("a non-finite volume (NaN or inf)");
    if (bar.volume < 0) throw bad("a negative volume");
}

} // namespace

FeatureTable compute_features(std::span<const Bar> bars, std::int64_t interval) {
    if (interval <= 0) throw UsageError("the interval must be positive");
    FeatureTable t;
    t.interval = interval;
    const std::size_t n = bars.size();
    t.times.resize(n);
    t.close.resize(n);
    t.run_start.resize(n);
    t.values.setConstant(static_cast<Eigen::Index>(n), feature_count, std::nan(""));
    constexpr double two_pi = 2 * std::numbers::pi;
    for (std::size_t i = 0; i < n; ++i) {
        const Bar& b = bars[i];
        check_bar(b);
        if (i > 0 && b.time <= bars[i - 1].time)
            throw InvalidInput(fmt::format("bars are not in ascending time order at {}", format_iso8601(b.time)));
        t.times[i] = b.time;
        t.close[i] = b.close;
        const bool continues = i > 0 && b.time - bars[i - 1].time == interval;
        t.run_start[i] = continues ? t.run_start[i - 1] : i;
        if (!continues) continue;
        const auto row = static_cast<Eigen::Index>(i);
        const std::int64_t second_of_day = ((b.time % 86400) + 86400) % 86400;
        const std::int64_t day = (b.time - second_of_day) / 86400;
        const std::int64_t weekday = ((day + 3) % 7 + 7) % 7; // 1970-01-01 was a Thursday; Monday is 0
        const double hour_angle = two_pi * static_cast<double>(second_of_day) / 86400.0;
        const double weekday_angle = two_pi * static_cast<double>(weekday) / 7.0;
        t.values.row(row) << std::log(b.close / bars[i - 1].close), std::log(b.high / b.low),
            std::log(b.close / b.open), std::log1p(b.volume), std::sin(hour_angle), std::cos(hour_angle),
            std::sin(weekday_angle), std::cos(weekday_angle);
    }
    return t;
}

void DatasetSpec::validate() const {
    if (window == 0) throw UsageError("--window must be at least 1");
    if (horizons.empty()) throw UsageError("--horizons needs at least one horizon");
    for (std::size_t k = 0; k < horizons.size(); ++k) {
        if (horizons[k] <= 0) throw UsageError(fmt::format("--horizons: {} is not a positive bar count", horizons[k]));
        if (k > 0 && horizons[k] <= horizons[k - 1])
            throw UsageError("--horizons must be distinct and ascending, e.g. 1,6,24");
    }
}

namespace {

std::size_t needed_history(const DatasetSpec& spec) {
    return std::max(spec.window, static_cast<std::size_t>(spec.max_horizon()));
}

} // namespace

bool can_end_window(const FeatureTable& table, std::size_t i, std::size_t window) {
    return i < table.size() && table.history(i) >= window;
}

std::vector<std::size_t> target_origins(const FeatureTable& table, const DatasetSpec& spec) {
    const std::size_t back = needed_history(spec);
    const auto ahead = static_cast<std::size_t>(spec.max_horizon());
    std::vector<std::size_t> origins;
    for (std::size_t i = back; i + ahead < table.size(); ++i)
        if (table.history(i) >= back && table.run_start[i + ahead] == table.run_start[i]) origins.push_back(i);
    return origins;
}

std::vector<std::size_t> require_target_origins(const FeatureTable& table, const DatasetSpec& spec) {
    auto origins = target_origins(table, spec);
    if (!origins.empty()) return origins;
    const std::size_t need = needed_history(spec) + static_cast<std::size_t>(spec.max_horizon()) + 1;
    if (table.size() < need)
        throw InvalidInput(fmt::format(
            "too few bars: one window of {} inputs with horizon {} needs {} consecutive bars, the data has {}",
            spec.window, spec.max_horizon(), need, table.size()));
    std::size_t longest = 0;
    for (std::size_t i = 0; i < table.size(); ++i)
        longest = std::max(longest, table.history(i) + 1);
    throw InvalidInput(fmt::format("the series has gaps everywhere: one window of {} inputs with horizon {} needs {} "
                                   "consecutive bars, the longest gap-free run has {}",
                                   spec.window, spec.max_horizon(), need, longest));
}

Split split_chronological(const FeatureTable& table, std::span<const std::size_t> origins, int embargo_bars,
                          SplitFractions fractions) {
    const std::size_t n = origins.size();
    const auto n_train = static_cast<std::size_t>(std::floor(static_cast<double>(n) * fractions.train));
    const auto n_validation = static_cast<std::size_t>(std::floor(static_cast<double>(n) * fractions.validation));
    const std::int64_t embargo = embargo_bars * table.interval;
    Split split;
    // Each part starts at the first origin at or after the previous part's last origin plus the embargo.
    std::size_t k = 0;
    for (; k < n_train; ++k)
        split.train.push_back(origins[k]);
    const auto skip_embargo = [&](std::size_t last_origin) {
        while (k < n && table.times[origins[k]] < table.times[last_origin] + embargo)
            ++k;
    };
    if (!split.train.empty()) skip_embargo(split.train.back());
    for (const std::size_t end = n_train + n_validation; k < end && k < n; ++k)
        split.validation.push_back(origins[k]);
    if (!split.validation.empty()) skip_embargo(split.validation.back());
    for (; k < n; ++k)
        split.test.push_back(origins[k]);
    const bool wants_test = fractions.train + fractions.validation < 1;
    if (split.train.empty() || split.validation.empty() || (wants_test && split.test.empty()))
        throw InvalidInput(fmt::format("too few windows to split: {} windows give {} train, {} validation and {} test "
                                       "after an embargo of {} bars; store more bars or shorten --window/--horizons",
                                       n, split.train.size(), split.validation.size(), split.test.size(),
                                       embargo_bars));
    return split;
}

nlohmann::json Scaler::to_json() const {
    return {{"mean", mean}, {"stddev", stddev}, {"target_stddev", target_stddev}};
}

Scaler Scaler::from_json(const nlohmann::json& j, std::string_view what) {
    Scaler s;
    try {
        j.at("mean").get_to(s.mean);
        j.at("stddev").get_to(s.stddev);
        j.at("target_stddev").get_to(s.target_stddev);
    } catch (const nlohmann::json::exception& e) {
        throw InvalidInput(fmt::format("{}: malformed scaler: {}", what, e.what()));
    }
    if (s.mean.size() != feature_count || s.stddev.size() != feature_count)
        throw InvalidInput(fmt::format("{}: the scaler has {} means and {} deviations, expected {}", what,
                                       s.mean.size(), s.stddev.size(), feature_count));
    for (const double d : s.stddev)
        if (!(d > 0)) throw InvalidInput(fmt::format("{}: the scaler has a non-positive deviation", what));
    return s;
}

Scaler fit_scaler(const FeatureTable& table, std::span<const std::size_t> train_origins, const DatasetSpec& spec) {
    // Every bar read by some training window counts once.
    std::vector<char> used(table.size(), 0);
    for (const std::size_t o : train_origins)
        std::fill(used.begin() + static_cast<std::ptrdiff_t>(o + 1 - spec.window),
                  used.begin() + static_cast<std::ptrdiff_t>(o + 1), 1);
    const auto deviation_or_one = [](double sum, double sum_sq, double count) {
        const double var = count > 1 ? (sum_sq - sum * sum / count) / (count - 1) : 0;
        // A constant input (e.g. the hour of daily bars) carries no information: leave it unscaled, not inf.
        return var > 1e-24 ? std::sqrt(var) : 1.0;
    };
    Scaler s;
    s.mean.assign(feature_count, 0);
    s.stddev.assign(feature_count, 1);
    for (std::size_t f = 0; f < feature_count; ++f) {
        double sum = 0, sum_sq = 0, count = 0;
        for (std::size_t i = 0; i < table.size(); ++i) {
            if (!used[i]) continue;
            const double v = table.values(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(f));
            sum += v;
            sum_sq += v * v;
            ++count;
        }
        if (count > 0) s.mean[f] = sum / count;
        s.stddev[f] = deviation_or_one(sum, sum_sq, count);
    }
    for (const int h : spec.horizons) {
        double sum = 0, sum_sq = 0;
        for (const std::size_t o : train_origins) {
            const double y = table.log_return(o, h);
            sum += y;
            sum_sq += y * y;
        }
        s.target_stddev.push_back(deviation_or_one(sum, sum_sq, static_cast<double>(train_origins.size())));
    }
    return s;
}

void fill_window(const FeatureTable& table, const Scaler& scaler, std::size_t origin, std::size_t window, float* out) {
    for (std::size_t r = 0; r < window; ++r) {
        const auto row = static_cast<Eigen::Index>(origin + 1 - window + r);
        for (std::size_t f = 0; f < feature_count; ++f)
            *out++ = static_cast<float>((table.values(row, static_cast<Eigen::Index>(f)) - scaler.mean[f]) /
                                        scaler.stddev[f]);
    }
}

std::string hash_bars(std::span<const Bar> bars) {
    // The canonical input: per bar its time as a little-endian int64, then open, high, low, close and volume as
    // little-endian IEEE 754 doubles (40 + 8 bytes), so that the same bars hash alike on every machine.
    std::vector<unsigned char> bytes;
    bytes.reserve(bars.size() * 48);
    const auto put = [&](std::uint64_t value) {
        for (int i = 0; i < 8; ++i)
            bytes.push_back(static_cast<unsigned char>(value >> (8 * i)));
    };
    for (const Bar& b : bars) {
        put(static_cast<std::uint64_t>(b.time));
        for (const double v : {b.open, b.high, b.low, b.close, b.volume})
            put(std::bit_cast<std::uint64_t>(v));
    }
    std::array<unsigned char, 32> digest{};
    if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), nullptr, EVP_sha256(), nullptr) != 1)
        throw Error(ErrorKind::internal, "SHA-256 failed (libcrypto)");
    return fmt::format("sha256:{:02x}", fmt::join(digest, ""));
}

} // namespace btcml::features
