#include "report/svg.hpp"
#include "text_count.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <stdexcept>

namespace btcml::report {
namespace {

using test_support::count;

TEST(ReportSvg, EscapesMarkupInEveryText) {
    EXPECT_EQ(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    LineChart chart;
    chart.title = "<script>alert(1)</script>";
    chart.series.push_back({"a&b", "red\"/><script>", {0, 1}, {1, 2}, {}, {}});
    const auto svg = line_chart(chart);
    EXPECT_EQ(svg.find("<script>"), std::string::npos);
    EXPECT_NE(svg.find("&lt;script&gt;"), std::string::npos);
}

TEST(ReportSvg, ALineBreaksAtMissingValuesAndABandIsOnePolygon) {
    LineChart chart;
    chart.title = "t";
    const double nan = std::nan("");
    chart.series.push_back(
        {"median", "#000", {0, 3600, 7200, 10800, 14400}, {1, 2, nan, 4, 5}, {0, 1, nan, 3, 4}, {2, 3, nan, 5, 6}});
    const auto svg = line_chart(chart);
    const std::regex path("d=\"([^\"]*)\"");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(svg, m, path));
    EXPECT_EQ(count(m[1], "M"), 2U); // two pieces around the gap
    EXPECT_EQ(count(m[1], "L"), 2U);
    EXPECT_EQ(count(svg, "<polygon class=\"band\""), 1U);
    EXPECT_NE(svg.find("1970-01-01"), std::string::npos); // the time axis is labelled in UTC dates
    // Nothing but the SVG namespace is referenced: the report makes no external request.
    EXPECT_EQ(count(svg, "http"), 1U);
}

TEST(ReportSvg, EveryBarIsDrawnWithItsTarget) {
    BarChart chart;
    chart.title = "coverage";
    chart.bars = {{"q10", 0.11, 0.10}, {"q50", 0.52, 0.50}, {"q90", 0.88, 0.90}};
    chart.reference_y = 0.5;
    const auto svg = bar_chart(chart);
    EXPECT_EQ(count(svg, "<rect class=\"bar\""), 3U);
    EXPECT_EQ(count(svg, "stroke=\"#c0392b\""), 3U);
    EXPECT_EQ(count(svg, "class=\"reference\""), 1U);
    EXPECT_NE(svg.find("q50: 0.52"), std::string::npos);
}

TEST(ReportSvg, SeriesOfDifferentLengthsAreRefusedAndEmptyChartsStillDraw) {
    LineChart chart;
    chart.series.push_back({"x", "#000", {0, 1}, {1}, {}, {}});
    EXPECT_THROW((void)line_chart(chart), std::invalid_argument);
    EXPECT_NE(line_chart(LineChart{}).find("</svg>"), std::string::npos);
    EXPECT_NE(bar_chart(BarChart{}).find("</svg>"), std::string::npos);
}

} // namespace
} // namespace btcml::report
