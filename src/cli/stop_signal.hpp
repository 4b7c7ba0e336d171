#pragma once
// Maps SIGINT/SIGTERM to a std::stop_source for the duration of a command, so that library calls (training, the
// scheduler) stop at their next safe point instead of the process dying mid-write.
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <stop_token>
#include <thread>

namespace btcml::cli {

/// While alive, SIGINT and SIGTERM request a stop of token() instead of ending the process; the previous handlers
/// come back on destruction. One at a time per process; not thread-safe.
class StopOnSignal {
  public:
    StopOnSignal();
    ~StopOnSignal();
    StopOnSignal(const StopOnSignal&) = delete;
    StopOnSignal& operator=(const StopOnSignal&) = delete;

    [[nodiscard]] std::stop_token token() const { return source_.get_token(); }

  private:
    // A signal handler may only set a flag; this thread turns it into request_stop().
    void watch();

    std::stop_source source_;
    void (*old_int_)(int);
    void (*old_term_)(int);
    std::mutex mutex_;
    std::condition_variable wake_;
    bool done_ = false;
    std::thread watcher_;
};

} // namespace btcml::cli
