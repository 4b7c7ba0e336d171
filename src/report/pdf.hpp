#pragma once
// Prints a report's HTML to PDF through headless Chromium, run as a child process in its own process group so that
// a timeout ends Chromium's helper processes too.
#include <chrono>
#include <filesystem>

namespace btcml::report {

inline constexpr const char* kChromium = "/usr/bin/chromium";

/// Prints `html` (a local file) to `pdf` with a fresh, throw-away Chromium profile and no network services.
/// Unavailable when Chromium is missing, fails, or runs past `timeout` (it is then killed).
void print_pdf(const std::filesystem::path& html, const std::filesystem::path& pdf, std::chrono::seconds timeout);

} // namespace btcml::report
