#pragma once
// A one-line progress display on stderr for long work; silent unless enabled (a terminal, not --json).
#include <chrono>
#include <cstdint>
#include <string>

namespace btcml::cli {

/// Not thread-safe.
class Progress {
  public:
    enum class Unit { bytes, items };
    Progress(std::string label, Unit unit, bool enabled);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    /// Redraws at most ten times a second. `total` 0 means unknown.
    void update(std::int64_t done, std::int64_t total);
    /// Clears the line.
    void finish();

  private:
    std::string label_;
    Unit unit_;
    bool enabled_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
};

} // namespace btcml::cli
