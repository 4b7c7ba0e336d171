#pragma once
// Inline SVG charts for the validation report: self-contained markup with no scripts, fonts or external references,
// so that the HTML file reads the same offline, in a mail attachment and when printed to PDF. Written here because
// the charting libraries of the C++ ecosystem draw to raster files or need a display; a report needs only lines,
// bands, bars and axes, and their text must stay selectable.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::report {

/// Escapes text for HTML/SVG element content and attribute values.
std::string escape(std::string_view text);

struct Series {
    std::string name;
    std::string color;         // CSS color
    std::vector<double> x;     // unix seconds (time axis) or any number
    std::vector<double> y;     // NaN: a break in the line
    std::vector<double> lower; // optional band, same length as y
    std::vector<double> upper;
    bool dashed = false;
};

struct LineChart {
    std::string title;
    std::string y_label;
    bool time_axis = true;             // x in unix seconds, labelled as UTC dates
    std::optional<double> reference_y; // a horizontal reference line (a target coverage, ratio 1)
    std::vector<Series> series;
};

/// A line chart with optional bands; throws std::invalid_argument for series whose vectors differ in length.
std::string line_chart(const LineChart& chart, int width = 880, int height = 300);

struct Bar {
    std::string label;
    double value = 0;
    std::optional<double> target; // drawn as a tick across the bar (a quantile's level)
};

struct BarChart {
    std::string title;
    std::string y_label;
    std::string color = "#3b6ea8";
    std::optional<double> reference_y; // a horizontal line (the uniform height of a PIT histogram)
    std::vector<Bar> bars;
};

std::string bar_chart(const BarChart& chart, int width = 880, int height = 260);

} // namespace btcml::report
