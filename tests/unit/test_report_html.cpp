#include "report/report.hpp"
#include "text_count.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace btcml::report {
namespace {

using test_support::count;

// Ten points at one hour: one outcome below q10, four in each middle bin, one above q90 (a calibrated PIT).
nlohmann::json report_data(const std::string& source, nlohmann::json live) {
    nlohmann::json points{{"time", {}}, {"base_price", {}}, {"actual", {}}, {"q10", {}}, {"q50", {}}, {"q90", {}}};
    const double actuals[] = {-0.2, -0.05, -0.04, -0.03, -0.02, 0.02, 0.03, 0.04, 0.05, 0.2};
    for (int i = 0; i < 10; ++i) {
        points["time"].push_back(1'700'000'000 + i * 3600);
        points["base_price"].push_back(30000.0 + i);
        points["actual"].push_back(actuals[i]);
        points["q10"].push_back(-0.1);
        points["q50"].push_back(0.0);
        points["q90"].push_back(0.1);
    }
    const nlohmann::json model{{"count", 10},
                               {"mae", 0.01},
                               {"pinball", 0.004},
                               {"coverage_80", 0.8},
                               {"coverage_ci_low", 0.49},
                               {"coverage_ci_high", 0.94},
                               {"below_q10", 0.1},
                               {"below_q50", 0.5},
                               {"below_q90", 0.9},
                               {"dm_pinball_pvalue", {{"naive", 0.25}}}};
    const nlohmann::json naive{{"count", 10}, {"mae", 0.02}, {"pinball", 0.005}, {"coverage_80", 0.7}};
    return {{"evaluation",
             {{"model_version", 3},
              {"symbol", "BTCUSD"},
              {"interval", "1h"},
              {"from", "2023-11-14T22:13:20Z"},
              {"to", "2023-11-15T07:13:20Z"},
              {"points", 10},
              {"folds", 1},
              {"calibration", {{"mode", "static"}}},
              {"overlaps_training", false},
              {"metrics", {{"h1", {{"model", model}, {"naive", naive}}}}},
              {"verdict", {{"h1", "model beats naive on mae"}}}}},
            {"per_point", {{"h1", points}}},
            {"data",
             {{"symbol", "BTCUSD"},
              {"interval", "1h"},
              {"bars", 12},
              {"first", "2023-11-14T22:13:20Z"},
              {"last", "2023-11-15T09:13:20Z"},
              {"missing_bars", 0},
              {"ingests",
               {{{"id", 1},
                 {"source", source},
                 {"status", "succeeded"},
                 {"rows_read", 13},
                 {"rows_inserted", 12},
                 {"rows_duplicate", 0},
                 {"rows_rejected", 1},
                 {"rejected_examples", {{{"line", 7}, {"reason", "high < low"}}}}}}}}},
            {"model",
             {{"version", 3},
              {"created_at", "2023-11-16T00:00:00Z"},
              {"run_id", "abc"},
              {"data_hash", "sha256:00"},
              {"training_range", {{"from", "a"}, {"to", "b"}}},
              {"architecture", {{"type", "lstm"}, {"hidden_size", 8}}},
              {"hyperparameters", {{"epochs", 2}}},
              {"training_curve", {{"epoch", {1, 2}}, {"train_loss", {0.5, 0.4}}, {"validation_loss", {0.6, 0.5}}}}}},
            {"live", std::move(live)}};
}

TEST(ReportHtml, HostileTextStaysTextAndTheEmbeddedDataParsesBack) {
    const auto data = report_data("</script><script>alert(1)</script><a href=\"http://x\">", nlohmann::json::array());
    const auto html = render_html(data);
    EXPECT_EQ(count(html, "</script>"), 1U); // only the data block's own end
    EXPECT_EQ(count(html, "<script"), 1U);
    EXPECT_EQ(html.find("href=\"http"), std::string::npos);
    const std::regex block("<script type=\"application/json\" id=\"report-data\">(.*)</script>");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(html, m, block));
    EXPECT_EQ(nlohmann::json::parse(m[1].str()), data);
    EXPECT_NE(html.find("high &lt; low"), std::string::npos);
    EXPECT_NE(html.find("No live record"), std::string::npos);
}

TEST(ReportHtml, APerfectlyCalibratedForecastHasAFlatPitHistogramAndAPositiveVerdict) {
    const auto html = render_html(report_data("file.csv", nlohmann::json::array()));
    const std::regex bar("class=\"bar\"[^>]*height=\"([0-9.]+)\"");
    std::set<std::string> heights;
    std::size_t bars = 0;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), bar); it != std::sregex_iterator(); ++it, ++bars)
        heights.insert((*it)[1].str());
    EXPECT_EQ(bars, 4U);
    EXPECT_EQ(heights.size(), 1U); // every bin at density 1
    EXPECT_NE(html.find("the model beats the naive forecast on pinball loss, and no baseline does better; its 80% "
                        "bands covered 80.0% of "
                        "outcomes, consistent with 80%"),
              std::string::npos);
    EXPECT_NE(html.find("<td data-metric=\"below_q50\">0.5</td>"), std::string::npos);
}

TEST(ReportHtml, TheLiveRecordDrawsOneLinePerVersionAndHorizonAndTablesTheNewestOfEachWindow) {
    // As the store lists them: newest first, each pass one row per version, horizon and window (1 and 7 days).
    nlohmann::json live = nlohmann::json::array();
    for (int i = 2; i >= 0; --i)
        for (int version : {3, 4})
            for (std::int64_t window : {86400, 7 * 86400})
                live.push_back({{"computed", fmt::format("pass {}", i)},
                                {"computed_ms", (1'700'000'000 + i * 3600) * 1000LL},
                                {"model_version", version},
                                {"horizon", 1},
                                {"window_seconds", window},
                                {"scored", 10 + i},
                                {"mae", 0.01},
                                {"naive_mae", 0.02},
                                {"pinball", 0.003},
                                {"coverage_80", window == 86400 ? 0.5 : 0.7 + 0.05 * i}});
    const auto html = render_html(report_data("file.csv", live));
    const auto start = html.find("<div id=\"chart-live\">");
    ASSERT_NE(start, std::string::npos);
    const auto chart = html.substr(start, html.find("</div>", start) - start);
    EXPECT_EQ(count(chart, "class=\"line\""), 2U); // the 7-day window only
    EXPECT_NE(chart.find("v3 h1 coverage"), std::string::npos);
    EXPECT_NE(chart.find("v4 h1 coverage"), std::string::npos);
    EXPECT_NE(chart.find("trailing 7d"), std::string::npos);
    const auto table = html.substr(html.find("<table class=\"score\" id=\"live-latest\">"));
    EXPECT_NE(table.find("<tr><th>v3 h1 1d</th><td>pass 2</td><td data-metric=\"scored\">12</td>"), std::string::npos);
    EXPECT_NE(table.find("<tr><th>v4 h1 7d</th><td>pass 2</td><td data-metric=\"scored\">12</td>"), std::string::npos);
    const auto rows = table.substr(0, table.find("</table>"));
    EXPECT_EQ(count(rows, "<tr><th>v3 h1 "), 2U);
    EXPECT_EQ(count(rows, "<tr><th>v4 h1 "), 2U);
}

} // namespace
} // namespace btcml::report
