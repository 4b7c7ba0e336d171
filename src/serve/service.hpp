#pragma once
// The state the API shares between its threads: a pool of store connections, the published champion model (hot
// reloaded by a watcher thread), the cached forecast, the background writer of predictions, and the metrics.
#include "model/forecaster.hpp"
#include "serve/metrics.hpp"
#include "store/store.hpp"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace btcml::serve {

/// The version that should serve: the ONE place that decides it (today models/champion, else the newest; a
/// registry replaces this function's body).
int resolve_champion(const std::filesystem::path& home);

/// Store connections for request threads (a Store is one connection and not thread-safe). Thread-safe.
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

    /// A pooled connection, or a new one (Unavailable when the database cannot be reached). Thread-safe.
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
/// drops repeats of recently stored ones before they reach it (the table's unique key catches the rest).
/// Thread-safe.
class PredictionWriter {
  public:
    PredictionWriter(StorePool& pool, Metrics& metrics);
    ~PredictionWriter(); // flushes what is queued
    PredictionWriter(const PredictionWriter&) = delete;
    PredictionWriter& operator=(const PredictionWriter&) = delete;

    /// Queues the predictions of one forecast. Thread-safe.
    void add(std::vector<store::Prediction> predictions);
    /// Blocks until everything queued so far is written. Thread-safe.
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
    bool stopping_ = false;
    std::thread thread_;
};

struct ServiceOptions {
    std::filesystem::path home;
    std::string db_url;
    std::string tracking_uri; // where the registry mirrors promotions (empty: the store only)
    std::chrono::milliseconds poll_interval{1000};
};

/// Makes `version` the champion through the registry (alias history, MLflow mirror) after checking that it loads;
/// returns the previous champion. Conflict when it already is.
std::optional<int> promote_champion(store::Store& store, const ServiceOptions& options, int version);

/// Thread-safe unless a method says otherwise.
class Service {
  public:
    explicit Service(ServiceOptions options);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    /// The serving model, or null when none could be loaded yet. Lock-free.
    [[nodiscard]] std::shared_ptr<const Model> model() const { return model_.load(); }
    /// The latest stored bar of the model's series, as last seen.
    [[nodiscard]] std::optional<std::int64_t> latest_bar() const;
    /// Tells the watcher to look for a new champion or bar now (after a promotion or an ingest here).
    void poke();

    /// The champion's forecast from the latest stored bars, as JSON text; cached until a new bar or champion.
    std::string current_forecast();
    /// Forecasts from bars given by the caller (already validated) and stores what it predicted.
    nlohmann::json predict(const Model& model, std::span<const Bar> bars);

    [[nodiscard]] const ServiceOptions& options() const { return options_; }
    StorePool& stores() { return stores_; }
    Metrics& metrics() { return metrics_; }
    PredictionWriter& predictions() { return writer_; }

  private:
    void watch();
    void check_champion();
    void check_latest_bar();
    void record(const Model& model, const model::Forecast& forecast, std::span<const Bar> bars);

    ServiceOptions options_;
    StorePool stores_;
    Metrics metrics_;
    PredictionWriter writer_;
    std::atomic<std::shared_ptr<const Model>> model_;
    std::atomic<std::shared_ptr<const CachedForecast>> cache_;
    std::atomic<std::int64_t> latest_bar_{0}; // 0: none seen
    int failed_version_ = 0;                  // watcher thread only: a version that failed to load
    std::mutex wake_mutex_;
    std::condition_variable wake_;
    bool poked_ = false, stopping_ = false;
    std::thread watcher_;
};

} // namespace btcml::serve
