#include "store/heartbeat.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/settings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace btcml::store {
namespace {

constexpr int kPeriodsBeforeAbandoned = 6;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

std::chrono::milliseconds heartbeat_period() {
    const auto value = env_value(Setting::heartbeat_seconds).value_or(std::string(spec(Setting::heartbeat_seconds).fallback));
    const char* text = value.c_str();
    char* end = nullptr;
    const double seconds = std::strtod(text, &end);
    if (*end != '\0' || !std::isfinite(seconds) || seconds < 0.01 || seconds > 3600)
        throw UsageError(
            fmt::format("BTCML_HEARTBEAT_SECONDS: '{}' is not a number of seconds from 0.01 to 3600", text));
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

std::chrono::milliseconds abandon_after() { return heartbeat_period() * kPeriodsBeforeAbandoned; }

std::vector<std::string> sweep_abandoned_runs(Store& store) {
    try {
        auto ended = store.abandon_stale_runs(now_ms() - abandon_after().count());
        for (const auto& id : ended)
            log::warn("training run abandoned: it stopped sending heartbeats without ending", {{"run_id", id}});
        return ended;
    } catch (const UsageError&) {
        throw; // a malformed BTCML_HEARTBEAT_SECONDS
    } catch (const Error& e) { // a sweep is housekeeping: the command that runs it goes on
        log::warn("abandoned runs not swept", {{"error.message", e.what()}});
        return {};
    }
}

Heartbeat::Heartbeat(const Store& store, RunKind kind, std::string run_id)
    : store_(store), kind_(kind), run_id_(std::move(run_id)), period_(heartbeat_period()),
      thread_([this] { run(); }) {}

Heartbeat::~Heartbeat() {
    {
        const std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void Heartbeat::run() {
    // A beat skipped because another connection held SQLite's write lock is retried soon: once that writer is done,
    // a sweep could otherwise find this live run stale before the next period.
    constexpr auto retry_skipped = std::chrono::milliseconds(50);
    std::unique_ptr<Store> connection;
    std::unique_lock lock(mutex_);
    while (!stop_) {
        lock.unlock();
        bool beaten = true;
        try {
            if (!connection) connection = store_.open_another();
            beaten = connection->heartbeat(kind_, run_id_, now_ms());
        } catch (const std::exception& e) {
            connection.reset(); // a broken connection is opened afresh at the next beat
            log::warn("heartbeat not recorded; retrying", {{"run_id", run_id_}, {"error.message", e.what()}});
        }
        lock.lock();
        wake_.wait_for(lock, beaten ? period_ : std::min(period_, retry_skipped), [this] { return stop_; });
    }
}

} // namespace btcml::store
