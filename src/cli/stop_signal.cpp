#include "cli/stop_signal.hpp"

#include <chrono>

namespace btcml::cli {
namespace {

volatile std::sig_atomic_t signalled = 0;

void on_signal(int) { signalled = 1; }

} // namespace

StopOnSignal::StopOnSignal() : old_int_(std::signal(SIGINT, on_signal)), old_term_(std::signal(SIGTERM, on_signal)) {
    signalled = 0;
    watcher_ = std::thread([this] { watch(); });
}

StopOnSignal::~StopOnSignal() {
    {
        std::lock_guard lock(mutex_);
        done_ = true;
    }
    wake_.notify_all();
    watcher_.join();
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
}

void StopOnSignal::watch() {
    std::unique_lock lock(mutex_);
    // 50 ms: how late a stop may start after the signal, well under an epoch.
    while (!wake_.wait_for(lock, std::chrono::milliseconds(50), [this] { return done_; }))
        if (signalled != 0) {
            source_.request_stop();
            return;
        }
}

} // namespace btcml::cli
