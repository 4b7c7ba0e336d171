#pragma once
// Logging: one line per event on stderr, as text or as JSON in the Elastic Common Schema
// (`@timestamp`, `log.level`, `message`, then structured fields). Thread-safe.
#include "core/config.hpp"

#include <nlohmann/json.hpp>
#include <string_view>

namespace btcml::log {

/// Sets format and threshold for the whole process. Call once at start-up, before other threads exist.
void configure(LogFormat format, LogLevel level);

/// Writes one event if `level` passes the threshold. Thread-safe.
void write(LogLevel level, std::string_view message, const nlohmann::json& fields = nlohmann::json::object());

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
