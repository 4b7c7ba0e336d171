#include "report/svg.hpp"

#include "core/time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace btcml::report {
namespace {

constexpr int kLeft = 64;
constexpr int kRight = 16;
constexpr int kTop = 34;
constexpr int kBottom = 44;

struct Range {
    double low = std::numeric_limits<double>::infinity();
    double high = -std::numeric_limits<double>::infinity();
    void add(double v) {
        if (!std::isfinite(v)) return;
        low = std::min(low, v);
        high = std::max(high, v);
    }
    [[nodiscard]] bool empty() const { return low > high; }
    void pad() {
        if (empty()) {
            low = 0;
            high = 1;
        } else if (low == high) {
            low -= std::max(std::abs(low) * 0.05, 1e-9);
            high += std::max(std::abs(high) * 0.05, 1e-9);
        }
    }
};

// Ticks at 1, 2 or 5 times a power of ten: the steps people read without effort.
std::vector<double> nice_ticks(double low, double high, int wanted) {
    const double raw = (high - low) / std::max(1, wanted);
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude;
    for (const double m : {1.0, 2.0, 5.0, 10.0})
        if (raw <= m * magnitude) {
            step = m * magnitude;
            break;
        }
    std::vector<double> ticks;
    for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step)
        ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    return ticks;
}

std::string number_label(double v) {
    const double a = std::abs(v);
    if (a != 0 && (a < 1e-3 || a >= 1e6)) return fmt::format("{:.2g}", v);
    return fmt::format("{:.6g}", v);
}

std::string date_label(double unix_seconds) {
    return format_iso8601(static_cast<std::int64_t>(unix_seconds)).substr(0, 10);
}

std::string frame(const std::string& title, const std::string& y_label, int width, int height) {
    return fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" "
        "height=\"{1}\" "
        "role=\"img\" aria-label=\"{2}\"><title>{2}</title>"
        "<text x=\"{3}\" y=\"20\" class=\"chart-title\" font-size=\"14\" font-weight=\"600\">{2}</text>"
        "<text x=\"12\" y=\"{4}\" font-size=\"11\" transform=\"rotate(-90 12 {4})\" text-anchor=\"middle\">{5}</text>",
        width, height, escape(title), kLeft, kTop + (height - kTop - kBottom) / 2, escape(y_label));
}

// Horizontal grid lines with their labels at nice values of the y range.
template <typename ToPixel> std::string y_grid(const Range& ys, int wanted, int width, ToPixel py) {
    std::string out;
    for (const double t : nice_ticks(ys.low, ys.high, wanted)) {
        out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e3e7ec\"/>", kLeft,
                           width - kRight, py(t), py(t));
        out += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">{}</text>", kLeft - 6,
                           py(t) + 3, number_label(t));
    }
    return out;
}

std::string reference_line(double y, int width) {
    return fmt::format("<line class=\"reference\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#555\" "
                       "stroke-dasharray=\"4 3\"/>",
                       kLeft, width - kRight, y, y);
}

} // namespace

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string line_chart(const LineChart& chart, int width, int height) {
    Range xs;
    Range ys;
    for (const auto& s : chart.series) {
        if (s.x.size() != s.y.size() || (!s.lower.empty() && s.lower.size() != s.y.size()) ||
            s.lower.size() != s.upper.size())
            throw std::invalid_argument("line_chart: a series' x, y and band differ in length: " + s.name);
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.y[i])) continue;
            xs.add(s.x[i]);
            ys.add(s.y[i]);
            if (!s.lower.empty()) {
                ys.add(s.lower[i]);
                ys.add(s.upper[i]);
            }
        }
    }
    if (chart.reference_y) ys.add(*chart.reference_y);
    xs.pad();
    ys.pad();
    const double plot_w = width - kLeft - kRight;
    const double plot_h = height - kTop - kBottom;
    const auto px = [&](double x) { return kLeft + (x - xs.low) / (xs.high - xs.low) * plot_w; };
    const auto py = [&](double y) { return kTop + (ys.high - y) / (ys.high - ys.low) * plot_h; };

    std::string out = frame(chart.title, chart.y_label, width, height);
    out += y_grid(ys, 5, width, py);
    const int x_ticks = 6;
    for (int i = 0; i <= x_ticks; ++i) {
        const double x = xs.low + (xs.high - xs.low) * i / x_ticks;
        out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>", px(x),
                           height - kBottom + 16, chart.time_axis ? date_label(x) : number_label(x));
    }
    out += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#8a96a3\"/>", kLeft, kTop,
                       height - kBottom);
    if (chart.reference_y) out += reference_line(py(*chart.reference_y), width);
    for (const auto& s : chart.series) {
        if (!s.lower.empty()) {
            std::string points;
            for (std::size_t i = 0; i < s.x.size(); ++i)
                if (std::isfinite(s.upper[i])) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.upper[i]));
            for (std::size_t i = s.x.size(); i-- > 0;)
                if (std::isfinite(s.lower[i])) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.lower[i]));
            out +=
                fmt::format("<polygon class=\"band\" points=\"{}\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>",
                            points, escape(s.color));
        }
        std::string path;
        bool pen_down = false;
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.y[i])) {
                pen_down = false;
                continue;
            }
            path += fmt::format("{}{:.1f},{:.1f} ", pen_down ? "L" : "M", px(s.x[i]), py(s.y[i]));
            pen_down = true;
        }
        out += fmt::format("<path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.4\"{}/>", path,
                           escape(s.color), s.dashed ? " stroke-dasharray=\"5 3\"" : "");
    }
    double legend_x = kLeft;
    for (const auto& s : chart.series) {
        out += fmt::format("<rect x=\"{:.0f}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{}\"/>", legend_x, height - 14,
                           escape(s.color));
        out += fmt::format("<text x=\"{:.0f}\" y=\"{}\" font-size=\"11\">{}</text>", legend_x + 16, height - 10,
                           escape(s.name));
        legend_x += 28 + 7.0 * static_cast<double>(s.name.size());
    }
    return out + "</svg>";
}

std::string bar_chart(const BarChart& chart, int width, int height) {
    Range ys;
    ys.add(0);
    for (const auto& b : chart.bars) {
        ys.add(b.value);
        if (b.target) ys.add(*b.target);
    }
    if (chart.reference_y) ys.add(*chart.reference_y);
    ys.high *= 1.08;
    ys.pad();
    const double plot_w = width - kLeft - kRight;
    const double plot_h = height - kTop - kBottom;
    const auto py = [&](double y) { return kTop + (ys.high - y) / (ys.high - ys.low) * plot_h; };
    std::string out = frame(chart.title, chart.y_label, width, height);
    out += y_grid(ys, 4, width, py);
    const double slot = chart.bars.empty() ? plot_w : plot_w / static_cast<double>(chart.bars.size());
    for (std::size_t i = 0; i < chart.bars.size(); ++i) {
        const auto& b = chart.bars[i];
        const double x = kLeft + slot * static_cast<double>(i) + slot * 0.15;
        const double top = py(std::max(b.value, 0.0));
        out += fmt::format("<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                           "fill=\"{}\"><title>{}: {}</title></rect>",
                           x, top, slot * 0.7, std::max(py(0) - top, 0.0), escape(chart.color), escape(b.label),
                           number_label(b.value));
        if (b.target)
            out += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#c0392b\" "
                               "stroke-width=\"2\"/>",
                               x - slot * 0.05, x + slot * 0.75, py(*b.target), py(*b.target));
        out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                           x + slot * 0.35, height - kBottom + 16, escape(b.label));
    }
    if (chart.reference_y) out += reference_line(py(*chart.reference_y), width);
    return out + "</svg>";
}

} // namespace btcml::report
