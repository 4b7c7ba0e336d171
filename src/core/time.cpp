#include "core/time.hpp"

#include "core/error.hpp"

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fast_float/fast_float.h>
#include <fmt/format.h>

namespace btcml {
namespace {

// Hand-written because this runs once per ingested row (millions per file): std::chrono::parse is missing from
// g++ 12 and strptime is locale-dependent and several times slower.
bool read_digits(std::string_view s, std::size_t pos, std::size_t count, int& out) noexcept {
    if (pos + count > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

std::int64_t days_from_civil(int y, unsigned m, unsigned d) noexcept {
    using namespace std::chrono;
    return sys_days{year{y} / month{m} / day{d}}.time_since_epoch().count();
}

bool valid_date(int y, int m, int d) noexcept {
    const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(m)},
                                          std::chrono::day{static_cast<unsigned>(d)}};
    return ymd.ok();
}

std::optional<std::int64_t> in_range(std::int64_t unix_seconds) noexcept {
    return in_time_range(unix_seconds) ? std::optional{unix_seconds} : std::nullopt;
}

} // namespace

std::optional<std::int64_t> parse_iso8601(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '"'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '"' || s.back() == '\r'))
        s.remove_suffix(1);
    int y = 0, mo = 0, d = 0;
    if (!read_digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !read_digits(s, 5, 2, mo) || s[7] != '-' ||
        !read_digits(s, 8, 2, d) || !valid_date(y, mo, d))
        return std::nullopt;
    std::int64_t seconds = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400;
    std::size_t pos = 10;
    if (pos == s.size()) return in_range(seconds);
    if (s[pos] != 'T' && s[pos] != ' ' && s[pos] != 't') return std::nullopt;
    ++pos;
    int hh = 0, mm = 0, ss = 0;
    if (!read_digits(s, pos, 2, hh) || hh > 23) return std::nullopt;
    pos += 2;
    if (pos < s.size() && s[pos] == ':') {
        if (!read_digits(s, pos + 1, 2, mm) || mm > 59) return std::nullopt;
        pos += 3;
        if (pos < s.size() && s[pos] == ':') {
            if (!read_digits(s, pos + 1, 2, ss) || ss > 60) return std::nullopt;
            pos += 3;
        }
    } else {
        return std::nullopt; // an hour alone is ambiguous
    }
    seconds += hh * 3600 + mm * 60 + ss;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        const std::size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
            ++pos;
        if (pos == start) return std::nullopt;
    }
    if (pos == s.size()) return in_range(seconds);
    if (s[pos] == 'Z' || s[pos] == 'z') return pos + 1 == s.size() ? in_range(seconds) : std::nullopt;
    if (s[pos] == '+' || s[pos] == '-') {
        const int sign = s[pos] == '+' ? 1 : -1;
        int oh = 0, om = 0;
        if (!read_digits(s, pos + 1, 2, oh) || oh > 23) return std::nullopt;
        pos += 3;
        if (pos < s.size() && s[pos] == ':') ++pos;
        if (pos < s.size()) {
            if (!read_digits(s, pos, 2, om) || om > 59) return std::nullopt;
            pos += 2;
        }
        if (pos != s.size()) return std::nullopt;
        return in_range(seconds - sign * (oh * 3600 + om * 60));
    }
    return std::nullopt;
}

std::optional<std::int64_t> parse_unix_time(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '"'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '"' || s.back() == '\r'))
        s.remove_suffix(1);
    if (s.empty() || s.front() == '-') return std::nullopt;
    double value = 0;
    const auto res = fast_float::from_chars(s.data(), s.data() + s.size(), value);
    if (res.ec != std::errc{} || res.ptr != s.data() + s.size() || !(value >= 0)) return std::nullopt;
    // Magnitude tells the unit: seconds stay below 1e11 until the year 5138.
    if (value >= 1e17) return std::nullopt;
    if (value >= 1e14)
        value /= 1e6; // microseconds
    else if (value >= 1e11)
        value /= 1e3; // milliseconds
    return in_range(static_cast<std::int64_t>(value));
}

std::optional<std::int64_t> parse_time(std::string_view text) noexcept {
    if (auto t = parse_iso8601(text)) return t;
    return parse_unix_time(text);
}

// From the calendar rather than with fmt's chrono formatting: fmt 9 (Debian bookworm) formats system_clock time
// points in the local time zone.
std::string format_iso8601(std::int64_t unix_seconds) {
    const auto ms = format_iso8601_ms(unix_seconds * 1000);
    return ms.substr(0, ms.size() - 5) + "Z";
}

std::string format_iso8601_ms(std::int64_t unix_ms) {
    using namespace std::chrono;
    const sys_time<milliseconds> tp{milliseconds{unix_ms}};
    const auto day_point = floor<days>(tp);
    const year_month_day ymd{day_point};
    const hh_mm_ss hms{tp - day_point};
    return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                       hms.minutes().count(), hms.seconds().count(), hms.subseconds().count());
}

std::int64_t parse_time_arg(std::string_view text, std::string_view what) {
    if (auto t = parse_time(text)) return *t;
    throw UsageError(
        fmt::format("{}: '{}' is not a time from 1970-01-01 to 2099-12-31 (use ISO 8601 such as 2024-01-31T12:00:00Z, "
                    "or unix seconds)",
                    what, text));
}

std::optional<std::int64_t> parse_interval(std::string_view s) noexcept {
    if (s.size() < 2) return std::nullopt;
    std::int64_t n = 0;
    const auto res = std::from_chars(s.data(), s.data() + s.size() - 1, n);
    if (res.ec != std::errc{} || res.ptr != s.data() + s.size() - 1 || n <= 0) return std::nullopt;
    std::int64_t unit = 0;
    switch (s.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return std::nullopt;
    }
    // Checked before multiplying: `99999999999999999h` would overflow.
    if (n > (kTimeEnd - kTimeBegin) / unit) return std::nullopt;
    return n * unit;
}

std::string format_interval(std::int64_t seconds) {
    if (seconds % (7 * 86400) == 0) return fmt::format("{}w", seconds / (7 * 86400));
    if (seconds % 86400 == 0) return fmt::format("{}d", seconds / 86400);
    if (seconds % 3600 == 0) return fmt::format("{}h", seconds / 3600);
    if (seconds % 60 == 0) return fmt::format("{}m", seconds / 60);
    return fmt::format("{}s", seconds);
}

std::int64_t parse_interval_arg(std::string_view text, std::string_view what) {
    if (auto i = parse_interval(text)) return *i;
    throw UsageError(fmt::format("{}: '{}' is not an interval (use e.g. 1m, 5m, 1h, 4h, 1d; at most {} days)", what,
                                 text, (kTimeEnd - kTimeBegin) / 86400));
}

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Set once at startup, before other threads start (start_replay_clock), so relaxed loads suffice.
std::atomic<double> replay_speed{0}; // 0: wall time
std::atomic<std::int64_t> replay_start_ms{0};
std::atomic<std::int64_t> replay_wall_anchor_ms{0};

} // namespace

std::int64_t now_ms() {
    const double speed = replay_speed.load(std::memory_order_relaxed);
    const std::int64_t wall = wall_ms();
    if (speed == 0) return wall;
    const auto elapsed = static_cast<double>(wall - replay_wall_anchor_ms.load(std::memory_order_relaxed));
    return replay_start_ms.load(std::memory_order_relaxed) + static_cast<std::int64_t>(elapsed * speed);
}

std::int64_t now_unix() { return now_ms() / 1000; }

std::int64_t wall_unix() { return wall_ms() / 1000; }

void start_replay_clock(std::int64_t start_unix, double speed) {
    if (!(speed > 0) || !std::isfinite(speed))
        throw UsageError(fmt::format("--replay-speed: {} is not a positive number (3600: an hour per second)", speed));
    if (!in_time_range(start_unix))
        throw UsageError(fmt::format("--replay-start: {} is outside 1970-01-01 to 2099-12-31", start_unix));
    replay_start_ms.store(start_unix * 1000, std::memory_order_relaxed);
    replay_wall_anchor_ms.store(wall_ms(), std::memory_order_relaxed);
    replay_speed.store(speed, std::memory_order_relaxed);
}

bool replay_clock_running() { return replay_speed.load(std::memory_order_relaxed) != 0; }

} // namespace btcml
