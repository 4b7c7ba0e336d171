#pragma once
// UTC time helpers: ISO 8601 parsing and formatting, bar intervals.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace btcml {

/// The valid time range of bars and time arguments: from 1970-01-01T00:00:00Z (included) to 2100-01-01T00:00:00Z
/// (excluded). Every time parser below refuses times outside it, so that a bar time is always a positive unix time
/// that the slot arithmetic of ingest cannot overflow.
inline constexpr std::int64_t kTimeBegin = 0;
inline constexpr std::int64_t kTimeEnd = 4'102'444'800;
/// Whether `unix_seconds` lies in the valid time range.
constexpr bool in_time_range(std::int64_t unix_seconds) noexcept {
    return unix_seconds >= kTimeBegin && unix_seconds < kTimeEnd;
}

/// Parses ISO 8601 dates and times: `2024-01-02`, `2024-01-02 03:04:05`, `2024-01-02T03:04:05.123Z`,
/// `2024-01-02T03:04:05+02:00`. Naive times are taken as UTC. Returns unix seconds (fractions truncated
/// towards the past) or nothing when the text is not such a time in the valid time range.
std::optional<std::int64_t> parse_iso8601(std::string_view text) noexcept;

/// Parses a unix time given as integer or float seconds, or as milliseconds (13 digits) or microseconds
/// (16 digits), telling them apart by magnitude. Returns unix seconds, or nothing outside the valid time range.
std::optional<std::int64_t> parse_unix_time(std::string_view text) noexcept;

/// Either of the two forms above.
std::optional<std::int64_t> parse_time(std::string_view text) noexcept;

/// `2024-01-02T03:04:05Z`.
std::string format_iso8601(std::int64_t unix_seconds);
/// `2024-01-02T03:04:05.678Z`.
std::string format_iso8601_ms(std::int64_t unix_ms);

/// Parses a user-supplied time (ISO 8601 or unix seconds) or throws UsageError naming `what`.
std::int64_t parse_time_arg(std::string_view text, std::string_view what);

/// Parses `1m`, `5m`, `1h`, `4h`, `1d`, `1w` (also `60s`, `90m`) into seconds; nothing when malformed, not
/// positive, or longer than the valid time range.
std::optional<std::int64_t> parse_interval(std::string_view text) noexcept;

/// The shortest name of an interval in seconds: 60 -> `1m`, 3600 -> `1h`, 86400 -> `1d`.
std::string format_interval(std::int64_t seconds);

/// Parses an interval argument or throws UsageError naming `what`.
std::int64_t parse_interval_arg(std::string_view text, std::string_view what);

/// The process clock: what "now" means to forecasting, ingest (future bars), staleness and the scheduler's ticks.
/// Wall time by default; in replay mode (start_replay_clock) market time that starts at the replay's start and runs
/// `speed` times faster than wall time. Thread-safe.
std::int64_t now_unix();
/// The process clock in unix milliseconds.
std::int64_t now_ms();
/// Wall time in unix seconds, whatever the process clock: when something happened on this machine (run start and
/// end, migrations), comparable with heartbeats. Thread-safe.
std::int64_t wall_unix();

/// Switches the process clock to replay mode: from this call on it reads `start_unix` plus `speed` times the wall
/// time elapsed (speed 3600: one hour of market time per second). UsageError unless speed is positive and finite
/// and the start in the valid time range. Call once at startup, before other threads read the clock.
void start_replay_clock(std::int64_t start_unix, double speed);
/// Whether the process clock is a replay clock.
bool replay_clock_running();

} // namespace btcml
