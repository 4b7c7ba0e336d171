#pragma once
// Logging: one line per event on stderr, as text for terminals or as JSON in the Elastic Common Schema (ECS 8):
// `@timestamp` (UTC, milliseconds), `log.level`, `message`, `service.*`, `trace.id` while a TraceScope is alive, the
// ECS fields a caller names (`http.*`, `url.*`, `event.*`, `error.*`, …) as they are and every other field under
// `btcml.*`. The same ECS document can be forwarded to a log shipper (monitor/log_sink.hpp). Thread-safe.
#include "core/config.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace btcml::log {

/// Sets format and threshold for the whole process. Call once at start-up, before other threads exist.
void configure(LogFormat format, LogLevel level);

/// Receives the ECS document (one JSON object, no newline) of every event that passes the threshold, on the thread
/// that logged it: it must not block. Not thread-safe: set it before other threads exist and clear it (an empty
/// function) after they ended.
using Forwarder = std::function<void(std::string document)>;
void forward_to(Forwarder forwarder);

/// Writes one event if `level` passes the threshold. Thread-safe.
void write(LogLevel level, std::string_view message, const nlohmann::json& fields = nlohmann::json::object());

/// The ECS document of one event, as written with --log-format json. Thread-safe.
[[nodiscard]] std::string ecs_document(LogLevel level, std::string_view message, const nlohmann::json& fields);

/// A new W3C trace id: 32 lowercase hex digits, not all zero. Thread-safe.
[[nodiscard]] std::string new_trace_id();

/// While alive, every event this thread logs carries `trace.id` (a request, a pipeline run). Scopes nest.
class TraceScope {
  public:
    explicit TraceScope(std::string trace_id);
    ~TraceScope();
    TraceScope(const TraceScope&) = delete;
    TraceScope& operator=(const TraceScope&) = delete;

  private:
    std::string previous_;
};

/// While alive, events this thread logs go to stderr only, never to the forwarder: the shipper's own thread uses it,
/// so that a failure to ship is not queued for shipping.
class LocalOnly {
  public:
    LocalOnly();
    ~LocalOnly();
    LocalOnly(const LocalOnly&) = delete;
    LocalOnly& operator=(const LocalOnly&) = delete;

  private:
    bool previous_;
};

inline void debug(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
    write(LogLevel::debug, m, f);
}
inline void info(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
    write(LogLevel::info, m, f);
}
inline void warn(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
    write(LogLevel::warn, m, f);
}
inline void error(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
    write(LogLevel::error, m, f);
}

} // namespace btcml::log
