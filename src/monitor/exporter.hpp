#pragma once
// The monitor's part of /metrics: live metrics, feature drift and data freshness of every series with a registered
// model, read from the store by a thread of its own so that a scrape only reads memory.
#include "core/bar.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace btcml::monitor {

/// What the exporter last read from the store.
struct MonitorSnapshot {
    struct Freshness {
        SeriesKey series;
        std::int64_t last_bar = 0; // open time of the latest stored bar
    };
    std::vector<store::LiveMetric> metrics; // the latest pass of each series
    std::map<std::string, int> champions;   // series_model_name → the champion's version now
    std::vector<store::FeatureDrift> drift; // the latest measurement of each series
    std::vector<Freshness> freshness;
};

/// Reads the snapshot: series are those with a registered model (btcml-SYMBOL-INTERVAL) and stored bars.
/// Not thread-safe per Store.
MonitorSnapshot read_snapshot(store::Store& store);

/// Appends the snapshot in the Prometheus text format (docs/monitoring.md lists the metrics), ages as of `now`
/// (process clock, unix seconds).
void render_snapshot(const MonitorSnapshot& snapshot, std::int64_t now, std::string& out);

/// The `window` label: 24h, 7d, 30d (hours below two days, else whole days, else the interval's name).
std::string window_label(std::int64_t seconds);

/// Refreshes a snapshot every `poll` on a thread of its own (its own store connection, reopened after a failure;
/// the last good snapshot stays exported meanwhile). Thread-safe; not copyable.
class Exporter {
  public:
    Exporter(std::string db_url, std::filesystem::path home, std::chrono::milliseconds poll);
    ~Exporter();
    Exporter(const Exporter&) = delete;
    Exporter& operator=(const Exporter&) = delete;

    /// Appends the metrics of the latest snapshot; ages as of now (process clock).
    void render(std::string& out) const;
    /// Reads the store now rather than at the next poll (after a scoring pass in this process), without waiting.
    void poke();

  private:
    void run();

    std::string db_url_;
    std::filesystem::path home_;
    std::chrono::milliseconds poll_;
    std::atomic<std::shared_ptr<const MonitorSnapshot>> snapshot_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    bool poked_ = false;
    std::thread thread_;
};

} // namespace btcml::monitor
