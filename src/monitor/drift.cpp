#include "monitor/drift.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "evaluate/metrics.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace btcml::monitor {
namespace {

constexpr double kShareFloor = 1e-4;

std::vector<double> column(const features::FeatureTable& table, std::span<const std::size_t> rows, std::size_t f) {
    std::vector<double> values;
    values.reserve(rows.size());
    for (const std::size_t r : rows)
        values.push_back(table.values(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(f)));
    return values;
}

std::optional<nlohmann::json> champion_card(store::Store& store, const SeriesKey& key, int& version) {
    const auto aliases = store.aliases(tracking::series_model_name(key.symbol, format_interval(key.interval)));
    const auto it = aliases.find("champion");
    if (it == aliases.end()) return std::nullopt;
    version = it->second;
    const auto path = store.home() / "models" / std::to_string(version) / "model.json";
    std::ifstream in(path);
    if (!in) return std::nullopt;
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        log::warn("drift: the champion's model card cannot be read",
                  {{"path", path.string()}, {"error.message", e.what()}});
        return std::nullopt;
    }
}

} // namespace

nlohmann::json feature_profile(const features::FeatureTable& table, std::span<const std::size_t> rows) {
    if (rows.empty()) throw InvalidInput("feature profile: no training rows");
    nlohmann::json features = nlohmann::json::array();
    for (std::size_t f = 0; f < features::feature_count; ++f) {
        const auto values = column(table, rows, f);
        std::vector<double> edges;
        for (std::size_t i = 1; i < kProfileBins; ++i)
            edges.push_back(evaluate::empirical_quantile(values, static_cast<double>(i) / kProfileBins));
        features.push_back(
            {{"name", features::feature_names[f]}, {"edges", edges}, {"shares", bin_shares(edges, values)}});
    }
    return {{"bins", kProfileBins}, {"rows", rows.size()}, {"features", features}};
}

std::vector<double> bin_shares(std::span<const double> edges, std::span<const double> values) {
    std::vector<double> shares(edges.size() + 1, 0.0);
    if (values.empty()) return shares;
    for (const double v : values)
        shares[static_cast<std::size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin())] += 1;
    for (double& s : shares)
        s /= static_cast<double>(values.size());
    return shares;
}

double population_stability_index(std::span<const double> expected, std::span<const double> actual) {
    if (expected.size() != actual.size())
        throw InvalidInput(fmt::format("PSI: {} expected shares but {} actual ones", expected.size(), actual.size()));
    double psi = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const double e = std::max(expected[i], kShareFloor);
        const double a = std::max(actual[i], kShareFloor);
        psi += (a - e) * std::log(a / e);
    }
    return psi;
}

std::vector<store::FeatureDrift> measure_drift(store::Store& store, const SeriesKey& key, std::int64_t bars,
                                               std::int64_t now_ms) {
    int version = 0;
    const auto card = champion_card(store, key, version);
    if (!card || !card->contains("feature_profile")) return {};
    const auto last = store.last_bar_time(key);
    if (!last) return {};
    // One bar more than measured: the oldest only gives the next one its previous close.
    const auto loaded = store.load_bars({key, *last - bars * key.interval, *last, std::nullopt});
    const auto table = features::compute_features(loaded, key.interval);
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < table.size(); ++i)
        if (table.history(i) >= 1) rows.push_back(i);
    if (rows.size() < 2) return {};

    std::vector<store::FeatureDrift> out;
    try {
        for (const auto& profile : (*card)["feature_profile"].at("features")) {
            const auto name = profile.at("name").get<std::string>();
            const auto f = std::find(features::feature_names.begin(), features::feature_names.end(), name);
            if (f == features::feature_names.end()) continue; // a feature this build no longer computes
            const auto edges = profile.at("edges").get<std::vector<double>>();
            const auto expected = profile.at("shares").get<std::vector<double>>();
            const auto live =
                bin_shares(edges, column(table, rows, static_cast<std::size_t>(f - features::feature_names.begin())));
            out.push_back({now_ms, key, version, name, population_stability_index(expected, live),
                           static_cast<std::int64_t>(rows.size())});
        }
    } catch (const std::exception& e) { // a hand-edited profile: no drift rather than no scoring
        log::warn("drift: the champion's feature profile is malformed",
                  {{"version", version}, {"error.message", e.what()}});
        return {};
    }
    return out;
}

} // namespace btcml::monitor
