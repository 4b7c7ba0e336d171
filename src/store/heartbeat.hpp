#pragma once
// Liveness of running runs. A run's process keeps its row's heartbeat fresh; a run whose process died without
// ending it (kill -9, OOM killer, power cut) stops beating, and the next command that starts or lists runs ends it
// as abandoned. The period is BTCML_HEARTBEAT_SECONDS (default 10 s); a run is abandoned once its last beat is
// older than abandon_after() = 6 periods (60 s by default). Every process sharing a store must use the same period.
#include "store/store.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace btcml::store {

/// BTCML_HEARTBEAT_SECONDS (a positive number, fractions allowed) or 10 s. UsageError when malformed.
std::chrono::milliseconds heartbeat_period();
/// How old a running run's last beat may be before a sweep abandons it: 6 heartbeat periods.
std::chrono::milliseconds abandon_after();

/// Store::abandon_stale_runs with the documented threshold; returns the training runs it ended.
std::vector<std::string> sweep_abandoned_runs(Store& store);

/// Beats for one run from a thread of its own with a connection of its own (the run's connection may sit inside
/// a long transaction), from construction until destruction. A failed beat is logged and retried at the next
/// period; a beat that finds SQLite's write lock held is skipped (no sweep can write then either) and retried
/// every 50 ms until it lands.
/// Not copyable; construct and destroy it from one thread.
class Heartbeat {
  public:
    Heartbeat(const Store& store, RunKind kind, std::string run_id);
    ~Heartbeat();
    Heartbeat(const Heartbeat&) = delete;
    Heartbeat& operator=(const Heartbeat&) = delete;

  private:
    void run();

    const Store& store_;
    RunKind kind_;
    std::string run_id_;
    std::chrono::milliseconds period_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

} // namespace btcml::store
