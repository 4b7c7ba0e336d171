#include "cli/progress.hpp"

#include <cstdio>
#include <fmt/format.h>

namespace btcml::cli {
namespace {

std::string amount(double v, Progress::Unit unit) {
    if (unit == Progress::Unit::bytes) {
        if (v >= 1e9) return fmt::format("{:.2f} GB", v / 1e9);
        if (v >= 1e6) return fmt::format("{:.1f} MB", v / 1e6);
        return fmt::format("{:.0f} kB", v / 1e3);
    }
    if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
    if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
    return fmt::format("{:.0f}", v);
}

} // namespace

Progress::Progress(std::string label, Unit unit, bool enabled)
    : label_(std::move(label)), unit_(unit), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(std::int64_t done, std::int64_t total) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done != total) return;
    last_draw_ = now;
    drawn_ = true;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    std::string line = fmt::format("{} {}", label_, amount(static_cast<double>(done), unit_));
    if (total > 0) {
        const double fraction = static_cast<double>(done) / static_cast<double>(total);
        line += fmt::format(" / {} ({:.0f}%)", amount(static_cast<double>(total), unit_), 100 * fraction);
        if (rate > 0 && done < total) line += fmt::format(" ETA {:.0f}s", static_cast<double>(total - done) / rate);
    }
    if (rate > 0) line += fmt::format(" {}/s", amount(rate, unit_));
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
}

void Progress::finish() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
}

} // namespace btcml::cli
