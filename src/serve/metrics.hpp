#pragma once
// The server's Prometheus metrics (names prefixed btcml_), rendered in the text exposition format.
#include "model/forecaster.hpp"
#include "serve/http_server.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace btcml::serve {

/// Why a forecast's predictions were answered but not stored.
enum class NotStoredReason {
    anonymous_budget,  // over the budget of requests without an API key
    store_unavailable, // the store stayed unreachable past the writer's queue or a shutdown
};

/// Thread-safe.
class Metrics {
  public:
    /// Counts a finished request and its latency by route, method and status.
    void observe(const Exchange& exchange);
    /// A series' model was swapped in.
    void model_loaded(const SeriesKey& series, int version, double load_seconds, std::int64_t loaded_at);
    /// A series' champion failed to load and its previous model, if any, keeps serving.
    void model_load_failed(const SeriesKey& series);
    /// A series' champion's latest forecast (per horizon).
    void forecast_made(const SeriesKey& series, const model::Forecast& forecast);
    /// The open time of a served series' latest stored bar, as last seen.
    void latest_bar_seen(const SeriesKey& series, std::int64_t time);
    void predictions_stored(std::int64_t count);
    void predictions_not_stored(NotStoredReason reason, std::int64_t count);

    /// Where the in-flight gauge reads from (the server). Not thread-safe: call before serving.
    void count_in_flight_with(std::function<int()> in_flight);
    /// Where the server's refusal and failure counters read from. Not thread-safe: call before serving.
    void count_server_with(std::function<ServerStats()> stats);
    /// What renders the monitor's metrics (monitor::Exporter), appended last. Not thread-safe: call before serving.
    void append_with(std::function<void(std::string&)> render);

    /// Everything in the text format.
    [[nodiscard]] std::string render() const;

  private:
    static constexpr std::array<double, 12> kBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.5,    2.5};
    struct Series {
        std::uint64_t count = 0;
        double sum = 0;
        std::array<std::uint64_t, kBuckets.size()> buckets{}; // non-cumulative
    };
    // Route names are the route table's patterns and methods are interned, so string_views stay valid.
    using Key = std::tuple<std::string_view, std::string_view, int>;

    std::function<int()> in_flight_;
    std::function<ServerStats()> server_stats_;
    std::function<void(std::string&)> append_;
    mutable std::mutex mutex_;
    std::map<Key, Series> requests_;
    // What the model-version metrics say about one served series (labels symbol, interval).
    struct SeriesState {
        int model_version = 0; // 0: none loaded
        double load_seconds = 0;
        std::int64_t loaded_at = 0;
        std::uint64_t load_failures = 0;
        std::int64_t forecast_as_of = 0;
        std::vector<model::HorizonForecast> forecast;
        std::int64_t latest_bar = 0; // 0: none stored
    };
    std::map<std::pair<std::string, std::int64_t>, SeriesState> series_; // by (symbol, interval)
    std::atomic<std::int64_t> predictions_stored_{0};
    std::array<std::atomic<std::int64_t>, 2> predictions_not_stored_{}; // by NotStoredReason
};

} // namespace btcml::serve
