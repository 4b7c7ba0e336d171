#pragma once
// The state the API shares between its threads: a pool of store connections, the champion of every series that has
// one (each hot reloaded on its own by a watcher thread), their cached forecasts, the background writer of
// predictions, and the metrics.
#include "model/forecaster.hpp"
#include "pipeline/airflow_relay.hpp"
#include "pipeline/catalog.hpp"
#include "serve/metrics.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace btcml::serve {

/// Store connections for request threads (a Store is one connection and not thread-safe). A connection that is no
/// longer healthy (the database restarted, the SQLite file was replaced) is dropped rather than pooled or handed
/// out, so that the next acquire opens a new one: the server recovers by itself once the database is back.
/// Thread-safe.
class StorePool {
  public:
    StorePool(std::string url, std::filesystem::path home);

    /// A connection held until the lease is destroyed.
    class Lease {
      public:
        Lease(StorePool& pool, std::unique_ptr<store::Store> store) : pool_(pool), store_(std::move(store)) {}
        ~Lease();
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        store::Store* operator->() const { return store_.get(); }
        store::Store& operator*() const { return *store_; }

      private:
        StorePool& pool_;
        std::unique_ptr<store::Store> store_;
    };

    /// A healthy pooled connection, or a new one (Unavailable when the database cannot be reached). Thread-safe.
    Lease acquire();

  private:
    std::string url_;
    std::filesystem::path home_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<store::Store>> idle_;
};

/// A loaded model as published to request threads; immutable once published.
struct Model {
    model::LoadedModel loaded;
    double load_seconds = 0;
    std::int64_t loaded_at = 0; // unix seconds
};

/// The cached body of GET /api/v1/forecast, valid while the model version and the latest bar are unchanged.
struct CachedForecast {
    int model_version = 0;
    std::int64_t last_bar = 0;
    std::string body;
};

/// Writes predictions from a background thread in batches, so that requests never wait on the database, and
/// drops repeats of recently stored ones before they reach it (the table's unique key catches the rest). While the
/// store is unreachable the queue is kept (up to kMaxQueuedPredictions, oldest dropped first) and the write is
/// retried with backoff, so that an outage loses no prediction unless it outlasts the queue. Thread-safe.
class PredictionWriter {
  public:
    PredictionWriter(StorePool& pool, Metrics& metrics);
    ~PredictionWriter(); // flushes what is queued
    PredictionWriter(const PredictionWriter&) = delete;
    PredictionWriter& operator=(const PredictionWriter&) = delete;

    /// Queues the predictions of one forecast unless it was queued recently; `admit`, when given, is asked only
    /// for a forecast that would be queued, and false drops it. Thread-safe.
    void add(std::vector<store::Prediction> predictions, const std::function<bool()>& admit = {});
    /// Blocks until everything queued so far is written, or dropped after one more attempt when the store is
    /// unreachable (for shutdown). Thread-safe.
    void flush();

  private:
    void loop();

    StorePool& pool_;
    Metrics& metrics_;
    std::mutex mutex_;
    std::condition_variable wake_, written_;
    std::vector<store::Prediction> queue_;
    std::unordered_set<std::string> recent_; // keys of forecasts already queued
    std::uint64_t queued_batches_ = 0, written_batches_ = 0;
    std::uint64_t drain_until_ = 0; // a flush waits for the batches up to this one: they are not retried
    bool stopping_ = false;
    std::thread thread_;
};

/// Most predictions the writer holds while the store is unreachable (about 200 bytes each).
inline constexpr std::size_t kMaxQueuedPredictions = 100'000;

struct ServiceOptions {
    std::filesystem::path home;
    std::string db_url;
    std::string tracking_uri; // where the registry mirrors promotions (empty: the store only)
    std::chrono::milliseconds poll_interval{1000};
    /// Distinct POST /api/v1/predict forecasts stored in any 60 minutes for requests without a valid
    /// API key; beyond it they are answered but not stored (0: none are stored).
    int anonymous_predictions_per_hour = 100;
    /// The configured pipelines (the config file's series: section): what /api/v1/pipelines lists and triggers and
    /// POST /api/v1/alerts may queue.
    std::vector<pipeline::PipelineSpec> pipelines;
    /// Set when `airflow_url` is configured: retrain alerts trigger Airflow's btcml_retrain DAG instead.
    std::shared_ptr<pipeline::AirflowRelay> airflow;
};

/// Admits at most `limit` events in any sliding `period`. Thread-safe.
class SlidingWindowLimit {
  public:
    SlidingWindowLimit(std::size_t limit, std::chrono::seconds period) : limit_(limit), period_(period) {}
    /// True, and the event counted, when fewer than `limit` were admitted in the `period` before `now`.
    bool admit(std::chrono::steady_clock::time_point now);

  private:
    std::size_t limit_;
    std::chrono::seconds period_;
    std::mutex mutex_;
    std::deque<std::chrono::steady_clock::time_point> admitted_;
};

/// Why the champion is not being served: its load failed; the watcher retries at `retry_at`.
struct ChampionFailure {
    int version = 0;
    std::string reason;
    int attempts = 0;
    std::chrono::steady_clock::time_point retry_at;
};

/// Makes `version` the champion through the registry (alias history, MLflow mirror) after checking that it loads;
/// returns the previous champion. Conflict when it already is.
std::optional<int> promote_champion(store::Store& store, const ServiceOptions& options, int version);

/// One series with a champion: the model serving it, its cached forecast, its latest bar and the champion's last
/// load failure. Entries live as long as the service; their fields are swapped atomically. Thread-safe.
struct ServedSeries {
    explicit ServedSeries(SeriesKey k) : key(std::move(k)) {}
    const SeriesKey key;
    std::atomic<std::shared_ptr<const Model>> model;             // null until the champion first loads
    std::atomic<std::shared_ptr<const CachedForecast>> cache;    // GET /api/v1/forecast
    std::atomic<std::int64_t> latest_bar{0};                     // 0: none seen
    std::atomic<std::shared_ptr<const ChampionFailure>> failure; // written by the watcher thread only
};

/// Every served series, ordered by symbol then interval; replaced (never changed) when a series gains a champion.
using ServedList = std::vector<std::shared_ptr<ServedSeries>>;

/// Thread-safe unless a method says otherwise.
class Service {
  public:
    explicit Service(ServiceOptions options);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    /// Every series with a champion (served, or failing to load). Lock-free.
    [[nodiscard]] std::shared_ptr<const ServedList> served() const { return served_.load(); }
    /// The series a request means (tracking::choose_series among the served ones: the only one, else BTCUSD 1h);
    /// Unavailable while no series has a champion, NotFound / UsageError naming the served series.
    [[nodiscard]] std::shared_ptr<ServedSeries> choose(const std::optional<std::string>& symbol,
                                                       std::optional<std::int64_t> interval) const;
    /// A served series' model; Unavailable naming why there is none (the champion's version, its load error and
    /// when it is retried).
    [[nodiscard]] static std::shared_ptr<const Model> require_model(const ServedSeries& series);
    /// A sentence for users: the champion's version, its load error and the seconds until the next attempt.
    [[nodiscard]] static std::string describe(const ChampionFailure& failure);
    /// Tells the watcher to look for new champions and bars now (after a promotion or an ingest here). Only a series
    /// whose champion changed reloads.
    void poke();

    /// The series' champion's forecast from its latest stored bars, as JSON text; cached until a new bar or champion.
    std::string current_forecast(ServedSeries& series);
    /// Forecasts from bars given by the caller (already validated: the model's window + 1 consecutive bars) and
    /// stores what it predicted; `anonymous` (no valid API key) forecasts only within the anonymous budget.
    nlohmann::json predict(const Model& model, std::span<const Bar> bars, bool anonymous);

    [[nodiscard]] const ServiceOptions& options() const { return options_; }
    StorePool& stores() { return stores_; }
    Metrics& metrics() { return metrics_; }
    PredictionWriter& predictions() { return writer_; }

  private:
    void watch();
    void check_champions();
    void check_champion(ServedSeries& series, int version);
    void record(const Model& model, const model::Forecast& forecast, std::span<const Bar> bars, bool anonymous);
    /// The stored online calibration of `loaded`, or the last one read when the store is unreachable. Thread-safe.
    std::vector<model::IntervalState> calibration_of(const model::LoadedModel& loaded);

    ServiceOptions options_;
    StorePool stores_;
    Metrics metrics_;
    PredictionWriter writer_;
    std::atomic<std::shared_ptr<const ServedList>> served_; // replaced by the watcher thread only
    SlidingWindowLimit anonymous_budget_;
    std::mutex wake_mutex_;
    std::condition_variable wake_;
    bool poked_ = false, stopping_ = false;
    std::mutex calibration_mutex_;
    std::map<int, std::vector<model::IntervalState>> last_calibration_; // per model version
    std::thread watcher_;
};

} // namespace btcml::serve
