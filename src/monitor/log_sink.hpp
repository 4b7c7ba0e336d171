#pragma once
// Ships the ECS log documents (core/log.hpp) to an Elasticsearch or OpenSearch `_bulk` endpoint from a thread of
// its own: a logging thread only appends to a bounded queue, so no request ever waits for the log store. The
// shipper installs its index template (a data stream, deploy/opensearch/btcml-logs-template.json) before the first
// batch, sends batches of up to `batch_size` documents at least every `flush_interval`, and retries a batch that
// failed to arrive (connection failure, 429, 5xx) with exponential backoff while new documents queue. When the queue
// is full new documents are dropped and counted (btcml_log_events_dropped_total{reason="queue_full"}), as are those
// the store refused (reason="rejected") and those still queued when the process stops (reason="shutdown").
#include "core/config.hpp"
#include "net/http_client.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace btcml::monitor {

struct LogSinkOptions {
    std::string url;                  // the store's base URL, e.g. http://127.0.0.1:9200
    std::string index = "btcml-logs"; // the data stream written to; its template matches `index*`
    std::size_t queue_limit = 10'000; // documents waiting to be sent; more are dropped
    std::size_t batch_size = 500;
    std::chrono::milliseconds flush_interval{1000};
    std::chrono::milliseconds max_backoff{10'000};
    std::chrono::milliseconds request_timeout{10'000};
    std::chrono::milliseconds shutdown_grace{3000}; // how long stopping may spend sending what is queued
    std::optional<net::BasicAuth> auth;             // BTCML_LOG_SINK_USER / BTCML_LOG_SINK_PASSWORD
    std::string api_key;                            // BTCML_LOG_SINK_API_KEY (Authorization: ApiKey …)
};

/// The settings `log_sink`, `log_sink_index`, `log_sink_queue` and `log_sink_flush_ms`, with the credentials from
/// the environment; nothing when `log_sink` is unset. Throws UsageError for a malformed value.
std::optional<LogSinkOptions> log_sink_options(const Config& config);

struct LogSinkStats {
    std::uint64_t shipped = 0;
    std::uint64_t dropped_queue_full = 0;
    std::uint64_t dropped_rejected = 0;
    std::uint64_t dropped_shutdown = 0;
    std::uint64_t failed_requests = 0; // bulk requests that did not arrive (each retried)
    std::size_t queued = 0;
};

/// Thread-safe. Destruction sends what is queued for up to `shutdown_grace`, then drops the rest.
class LogSink {
  public:
    explicit LogSink(LogSinkOptions options);
    ~LogSink();
    LogSink(const LogSink&) = delete;
    LogSink& operator=(const LogSink&) = delete;

    /// Queues one ECS document; never blocks on the network. Thread-safe.
    void enqueue(std::string document);
    /// Thread-safe.
    [[nodiscard]] LogSinkStats stats() const;
    /// Appends the counters in the Prometheus text format. Thread-safe.
    void render(std::string& out) const;

  private:
    void run();
    bool install_template(net::HttpClient& client);
    /// Sends one batch; false when it did not arrive and should be retried.
    bool send(net::HttpClient& client, const std::deque<std::string>& batch);
    [[nodiscard]] net::Headers headers(std::string_view content_type) const;

    LogSinkOptions options_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::string> queue_;
    bool stopping_ = false;
    std::atomic<std::uint64_t> shipped_{0}, dropped_queue_full_{0}, dropped_rejected_{0}, dropped_shutdown_{0},
        failed_requests_{0};
    std::thread thread_; // last: started once everything above exists
};

} // namespace btcml::monitor
