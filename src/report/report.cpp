#include "report/report.hpp"

#include "core/time.hpp"
#include "model/forecaster.hpp"
#include "report/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <tuple>

namespace btcml::report {
namespace {

constexpr std::int64_t kLiveHistory = 2000;  // live_metrics rows shown
constexpr std::size_t kRejectSamples = 5;    // rejected rows quoted per ingest
constexpr std::int64_t kIngestHistory = 200; // ingest runs searched for the series

nlohmann::json data_section(store::Store& store, const SeriesKey& key, std::int64_t from, std::int64_t to) {
    const auto bars = store.load_bars({key, from, to, std::nullopt});
    nlohmann::json out{{"symbol", key.symbol}, {"interval", format_interval(key.interval)}, {"bars", bars.size()}};
    std::int64_t gaps = 0;
    if (!bars.empty()) {
        out["first"] = format_iso8601(bars.front().time);
        out["last"] = format_iso8601(bars.back().time);
        gaps = (bars.back().time - bars.front().time) / key.interval + 1 - static_cast<std::int64_t>(bars.size());
    }
    out["missing_bars"] = gaps;
    nlohmann::json ingests = nlohmann::json::array();
    for (const auto& run : store.list_ingest_runs(kIngestHistory)) {
        if (run.symbol != key.symbol || run.interval != key.interval) continue;
        nlohmann::json rejects = nlohmann::json::array();
        for (const auto& row : store.rejected_rows(run.id)) {
            if (rejects.size() == kRejectSamples) break;
            rejects.push_back({{"line", row.line_number}, {"reason", row.reason}});
        }
        ingests.push_back({{"id", run.id},
                           {"source", run.source},
                           {"status", run.status},
                           {"rows_read", run.rows_read},
                           {"rows_inserted", run.rows_inserted},
                           {"rows_duplicate", run.rows_duplicate},
                           {"rows_rejected", run.rows_rejected},
                           {"rejected_examples", rejects}});
    }
    out["ingests"] = ingests;
    return out;
}

nlohmann::json model_section(store::Store& store, const model::LoadedModel& loaded) {
    const auto& card = loaded.card;
    nlohmann::json out{{"version", loaded.version},
                       {"architecture", card.value("architecture", nlohmann::json::object())},
                       {"hyperparameters", card.value("hyperparameters", nlohmann::json::object())},
                       {"window", card.value("window", nlohmann::json())},
                       {"horizons", card.value("horizons", nlohmann::json())},
                       {"data_hash", card.value("/data/hash"_json_pointer, std::string())},
                       {"training_range", card.value("training_range", nlohmann::json::object())},
                       {"created_at", card.value("created_at", std::string())},
                       {"run_id", card.value("run_id", std::string())}};
    // The curve as tracked: the run's logged per-epoch losses.
    nlohmann::json curve{{"epoch", nlohmann::json::array()},
                         {"train_loss", nlohmann::json::array()},
                         {"validation_loss", nlohmann::json::array()}};
    const std::string run_id = out["run_id"];
    if (!run_id.empty()) {
        auto metrics = store.run_data(run_id, false).metrics;
        std::stable_sort(metrics.begin(), metrics.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
        for (const auto& m : metrics)
            if (m.key == "train_loss") {
                curve["epoch"].push_back(m.step);
                curve["train_loss"].push_back(m.value);
            } else if (m.key == "validation_loss") {
                curve["validation_loss"].push_back(m.value);
            }
        if (const auto run = store.tracked_run(run_id); run && !run->remote_id.empty())
            out["mlflow_link"] = fmt::format("{}/#/experiments/{}/runs/{}", run->tracking_uri,
                                             run->remote_experiment_id, run->remote_id);
    }
    out["training_curve"] = curve;
    return out;
}

nlohmann::json live_section(store::Store& store, const SeriesKey& key) {
    const auto optional = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : store.live_metrics_history(key, kLiveHistory))
        out.push_back({{"computed", format_iso8601_ms(m.computed_ms)},
                       {"computed_ms", m.computed_ms},
                       {"model_version", m.model_version},
                       {"horizon", m.horizon},
                       {"window_seconds", m.window_s},
                       {"scored", m.scored},
                       {"mae", m.mae},
                       {"naive_mae", m.naive_mae},
                       {"pinball", m.pinball},
                       {"baseline_pinball", optional(m.baseline_pinball)},
                       {"coverage_80", m.coverage_80},
                       {"direction_accuracy", optional(m.direction_accuracy)}});
    return out;
}

std::vector<double> doubles(const nlohmann::json& column) {
    std::vector<double> out;
    for (const auto& v : column)
        out.push_back(v.get<double>());
    return out;
}

std::string number(const nlohmann::json& v, int digits = 4) {
    if (v.is_null()) return "–";
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
    if (v.is_number()) return fmt::format("{:.{}g}", v.get<double>(), digits);
    return escape(v.is_string() ? v.get<std::string>() : v.dump());
}

std::string key_value_table(const nlohmann::json& object) {
    std::string html = "<table class=\"kv\">";
    for (const auto& [key, value] : object.items())
        html += fmt::format("<tr><th>{}</th><td>{}</td></tr>", escape(key), number(value, 6));
    return html + "</table>";
}

// Forecasts in price terms at their target bars: the median and the 80% band against the realised close.
std::string forecast_chart(const std::string& horizon, const nlohmann::json& points, std::int64_t step) {
    Series realised{"realised close", "#222222", {}, {}, {}, {}, false};
    Series median{"forecast median, 80% band", "#3b6ea8", {}, {}, {}, {}, false};
    const auto times = doubles(points["time"]);
    const auto base = doubles(points["base_price"]);
    const auto actual = doubles(points["actual"]);
    const auto q10 = doubles(points["q10"]);
    const auto q50 = doubles(points["q50"]);
    const auto q90 = doubles(points["q90"]);
    for (std::size_t i = 0; i < times.size(); ++i) {
        const double target = times[i] + static_cast<double>(step);
        realised.x.push_back(target);
        realised.y.push_back(base[i] * std::exp(actual[i]));
        median.x.push_back(target);
        median.y.push_back(base[i] * std::exp(q50[i]));
        median.lower.push_back(base[i] * std::exp(q10[i]));
        median.upper.push_back(base[i] * std::exp(q90[i]));
    }
    return line_chart({fmt::format("Forecasts {} ahead against realised prices", horizon),
                       "price",
                       true,
                       std::nullopt,
                       {median, realised}});
}

// Where each outcome fell among the forecast's quantiles, as a density per bin: 1 everywhere when calibrated.
std::string pit_chart(const std::string& horizon, const nlohmann::json& points) {
    const auto actual = doubles(points["actual"]);
    const auto q10 = doubles(points["q10"]);
    const auto q50 = doubles(points["q50"]);
    const auto q90 = doubles(points["q90"]);
    std::array<double, 4> counts{};
    for (std::size_t i = 0; i < actual.size(); ++i)
        ++counts[actual[i] < q10[i] ? 0 : actual[i] < q50[i] ? 1 : actual[i] < q90[i] ? 2 : 3];
    constexpr std::array<double, 4> widths{0.1, 0.4, 0.4, 0.1};
    constexpr std::array<const char*, 4> labels{"< q10", "q10–q50", "q50–q90", "≥ q90"};
    BarChart chart{fmt::format("PIT histogram, {} (density; 1 = calibrated)", horizon), "density", "#3b6ea8", 1.0, {}};
    const double n = std::max<double>(1.0, static_cast<double>(actual.size()));
    for (std::size_t b = 0; b < counts.size(); ++b)
        chart.bars.push_back({labels[b], counts[b] / n / widths[b], std::nullopt});
    return bar_chart(chart, 880, 200);
}

// Rolling mean absolute error of the median and rolling 80% coverage over the last `window` points.
std::string rolling_chart(const std::string& horizon, const nlohmann::json& points, std::size_t window) {
    const auto times = doubles(points["time"]);
    const auto actual = doubles(points["actual"]);
    const auto q10 = doubles(points["q10"]);
    const auto q50 = doubles(points["q50"]);
    const auto q90 = doubles(points["q90"]);
    Series coverage{"80% coverage", "#3b6ea8", {}, {}, {}, {}, false};
    Series error{"MAE / overall MAE", "#c0504d", {}, {}, {}, {}, true};
    double total_error = 0;
    for (std::size_t i = 0; i < actual.size(); ++i)
        total_error += std::abs(actual[i] - q50[i]);
    const double mean_error = total_error / std::max<double>(1.0, static_cast<double>(actual.size()));
    double err = 0, covered = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        err += std::abs(actual[i] - q50[i]);
        covered += actual[i] >= q10[i] && actual[i] <= q90[i] ? 1 : 0;
        if (i >= window) {
            err -= std::abs(actual[i - window] - q50[i - window]);
            covered -= actual[i - window] >= q10[i - window] && actual[i - window] <= q90[i - window] ? 1 : 0;
        }
        if (i + 1 < window) continue;
        coverage.x.push_back(times[i]);
        coverage.y.push_back(covered / static_cast<double>(window));
        error.x.push_back(times[i]);
        error.y.push_back(mean_error > 0 ? err / static_cast<double>(window) / mean_error : 0);
    }
    return line_chart({fmt::format("Rolling error and coverage, {} (last {} forecasts)", horizon, window),
                       "ratio / share",
                       true,
                       0.8,
                       {coverage, error}});
}

// "24h", "7d": the trailing window a live metric covers.
std::string window_label(std::int64_t seconds) {
    return seconds % 86400 == 0 ? fmt::format("{}d", seconds / 86400) : fmt::format("{}h", seconds / 3600);
}

// One line per served version and horizon over the longest trailing window scored: the windows overlap, and one
// line per window would draw the same forecasts three times.
std::string live_chart(const nlohmann::json& live) {
    std::int64_t window = 0;
    for (const auto& m : live)
        window = std::max(window, m["window_seconds"].get<std::int64_t>());
    std::map<std::pair<int, int>, Series> by_version; // (version, horizon)
    for (const auto& m : live) {
        if (m["window_seconds"].get<std::int64_t>() != window) continue;
        const std::pair<int, int> key{m["model_version"].get<int>(), m["horizon"].get<int>()};
        auto& s = by_version[key];
        if (s.name.empty()) {
            s.name = fmt::format("v{} h{} coverage", key.first, key.second);
            constexpr std::array<const char*, 5> colors{"#3b6ea8", "#c0504d", "#9bbb59", "#8064a2", "#f79646"};
            s.color = colors[by_version.size() % colors.size()];
        }
        s.x.push_back(m["computed_ms"].get<double>() / 1000.0);
        s.y.push_back(m["coverage_80"].get<double>());
    }
    LineChart chart{fmt::format("Live 80% coverage of the served versions (trailing {})", window_label(window)),
                    "coverage",
                    true,
                    0.8,
                    {}};
    for (auto& [key, s] : by_version) {
        // The store returns newest first; lines run forward in time.
        std::vector<std::size_t> order(s.x.size());
        for (std::size_t i = 0; i < order.size(); ++i)
            order[i] = i;
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s.x[a] < s.x[b]; });
        Series sorted{s.name, s.color, {}, {}, {}, {}, false};
        for (const std::size_t i : order) {
            sorted.x.push_back(s.x[i]);
            sorted.y.push_back(s.y[i]);
        }
        chart.series.push_back(std::move(sorted));
    }
    return line_chart(chart);
}

// The newest live metrics of each served version, horizon and window (the store lists them newest first).
std::string live_table(const nlohmann::json& live) {
    constexpr std::array<const char*, 5> columns{"scored", "mae", "naive_mae", "pinball", "coverage_80"};
    std::string html = "<table class=\"score\" id=\"live-latest\"><tr><th>version, horizon, window</th>"
                       "<th>computed</th>";
    for (const char* c : columns)
        html += fmt::format("<th>{}</th>", c);
    html += "</tr>";
    std::map<std::tuple<int, int, std::int64_t>, const nlohmann::json*> newest;
    for (const auto& m : live)
        newest.emplace(
            std::tuple{m["model_version"].get<int>(), m["horizon"].get<int>(), m["window_seconds"].get<std::int64_t>()},
            &m);
    for (const auto& [key, m] : newest) {
        html += fmt::format("<tr><th>v{} h{} {}</th><td>{}</td>", std::get<0>(key), std::get<1>(key),
                            window_label(std::get<2>(key)), escape((*m)["computed"].get<std::string>()));
        for (const char* c : columns)
            html += fmt::format("<td data-metric=\"{}\">{}</td>", c, number((*m)[c], 6));
        html += "</tr>";
    }
    return html + "</table>";
}

std::string scoreboard_table(const std::string& horizon, const nlohmann::json& per_model) {
    constexpr std::array<const char*, 7> columns{
        "count", "mae", "rmse", "mase", "pinball", "coverage_80", "direction_accuracy"};
    std::string html = fmt::format("<table class=\"score\" id=\"score-{}\"><tr><th>forecaster</th>", escape(horizon));
    for (const char* c : columns)
        html += fmt::format("<th>{}</th>", c);
    html += "<th>DM p (pinball) vs model</th></tr>";
    const auto& dm = per_model["model"].value("dm_pinball_pvalue", nlohmann::json::object());
    for (const auto& [name, m] : per_model.items()) {
        html += fmt::format("<tr><th>{}</th>", escape(name));
        for (const char* c : columns)
            html += fmt::format("<td data-metric=\"{}\">{}</td>", c, number(m.value(c, nlohmann::json()), 6));
        html += fmt::format("<td>{}</td></tr>", name == "model" ? "" : number(dm.value(name, nlohmann::json()), 3));
    }
    return html + "</table>";
}

std::string calibration_table(const std::string& horizon, const nlohmann::json& model) {
    std::string html = fmt::format("<table class=\"score\" id=\"calibration-{}\"><tr><th>quantile</th><th>level</th>"
                                   "<th>share of outcomes below</th></tr>",
                                   escape(horizon));
    for (const auto& [q, level] :
         std::array<std::pair<const char*, double>, 3>{{{"below_q10", 0.1}, {"below_q50", 0.5}, {"below_q90", 0.9}}})
        html += fmt::format("<tr><th>{}</th><td>{}</td><td data-metric=\"{}\">{}</td></tr>", q, level, q,
                            number(model.value(q, nlohmann::json()), 6));
    return html + "</table>";
}

// The verdict in plain words: does the model beat the naive forecast, and do its 80% bands hold 80%?
std::string verdict(const nlohmann::json& evaluation) {
    std::string html = "<ul>";
    for (const auto& [horizon, per_model] : evaluation["metrics"].items()) {
        const auto& m = per_model["model"];
        const auto& naive = per_model["naive"];
        const bool beats = m["pinball"].is_number() && naive["pinball"].is_number() &&
                           m["pinball"].get<double>() < naive["pinball"].get<double>();
        std::string better; // the baselines with a lower pinball loss than the model
        for (const auto& [name, b] : per_model.items())
            if (name != "model" && b["pinball"].is_number() && m["pinball"].is_number() &&
                b["pinball"].get<double>() < m["pinball"].get<double>())
                better += (better.empty() ? "" : ", ") + name;
        const double low = m.value("coverage_ci_low", 0.0);
        const double high = m.value("coverage_ci_high", 1.0);
        const std::string bands = low > 0.8    ? "too wide (they hold more than 80%)"
                                  : high < 0.8 ? "too narrow (they hold less than 80%)"
                                               : "consistent with 80%";
        html += fmt::format(
            "<li><b>{}</b>: the model {} the naive forecast on pinball loss, {}; its 80% bands covered "
            "{:.1f}% of outcomes, {}. <span class=\"detail\">{}</span></li>",
            escape(horizon), beats ? "beats" : "does NOT beat",
            better.empty() ? "and no baseline does better" : "but a SIMPLE BASELINE DOES BETTER: " + escape(better),
            100.0 * m.value("coverage_80", 0.0), bands, escape(evaluation["verdict"].value(horizon, std::string())));
    }
    if (evaluation.value("overlaps_training", false))
        html += "<li><b>Warning</b>: the period overlaps the model's training data; these numbers are optimistic.</li>";
    return html + "</ul>";
}

// Printed, every section starts a page of its own: no chart splits across pages, and the page count is one per
// section (the charts shrink to the page width).
constexpr const char* kStyle = R"(body{font-family:sans-serif;max-width:920px;margin:24px auto;color:#222}
h1{font-size:24px}h2{font-size:19px;border-bottom:1px solid #ccc;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}.kv th{text-align:left}.cols{display:flex;gap:32px}.detail{color:#666;font-size:12px}
svg{display:block;margin:10px 0;max-width:100%;height:auto}
@page{size:A4;margin:12mm}section+section{break-before:page})";

} // namespace

nlohmann::json collect(store::Store& store, const std::filesystem::path& home, pipeline::EvaluateRequest request) {
    request.with_points = true;
    nlohmann::json evaluation = pipeline::evaluate(store, home, request);
    nlohmann::json per_point = std::move(evaluation["per_point"]);
    evaluation.erase("per_point");
    const auto loaded = model::load_model(home, std::to_string(evaluation["model_version"].get<int>()));
    return {{"evaluation", evaluation},
            {"per_point", per_point},
            {"data", data_section(store, loaded.series, request.from, request.to)},
            {"model", model_section(store, loaded)},
            {"live", live_section(store, loaded.series)}};
}

std::string render_html(const nlohmann::json& data) {
    const auto& ev = data["evaluation"];
    const auto& model = data["model"];
    const auto& series = data["data"];
    const std::int64_t interval = parse_interval(ev["interval"].get<std::string>()).value_or(0);
    const std::string title = fmt::format("Validation report: model {} on {} {}", ev["model_version"].get<int>(),
                                          ev["symbol"].get<std::string>(), ev["interval"].get<std::string>());
    std::string html = fmt::format("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>"
                                   "<style>{}</style></head><body><h1>{}</h1>",
                                   escape(title), kStyle, escape(title));
    html +=
        fmt::format("<p>Forecast origins {} to {}, {} point(s), {} fold(s), {} calibration.</p>",
                    escape(ev["from"].get<std::string>()), escape(ev["to"].get<std::string>()), number(ev["points"]),
                    number(ev["folds"]), escape(ev["calibration"].value("mode", std::string())));

    html += "<section id=\"verdict\"><h2>Verdict</h2>" + verdict(ev) + "</section>";

    html += "<section id=\"data\"><h2>Data used</h2>";
    html += fmt::format("<p>{} {}: {} stored bar(s) from {} to {}, {} missing bar(s) in that range.</p>",
                        escape(series["symbol"].get<std::string>()), escape(series["interval"].get<std::string>()),
                        number(series["bars"]), escape(series.value("first", std::string("–"))),
                        escape(series.value("last", std::string("–"))), number(series["missing_bars"]));
    html += "<table><tr><th>ingest</th><th>source</th><th>status</th><th>read</th><th>inserted</th><th>duplicate</th>"
            "<th>rejected</th><th>first rejects</th></tr>";
    for (const auto& run : series["ingests"]) {
        std::string rejects;
        for (const auto& r : run["rejected_examples"])
            rejects += fmt::format("line {}: {}<br>", number(r["line"]), escape(r["reason"].get<std::string>()));
        html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                            "<td class=\"detail\">{}</td></tr>",
                            number(run["id"]), escape(run["source"].get<std::string>()),
                            escape(run["status"].get<std::string>()), number(run["rows_read"]),
                            number(run["rows_inserted"]), number(run["rows_duplicate"]), number(run["rows_rejected"]),
                            rejects);
    }
    html += "</table></section>";

    html += "<section id=\"model\"><h2>Model card</h2>";
    html +=
        fmt::format("<p>Version {}, created {}, tracked run {}, data hash <code>{}</code>, trained on {} to {}.</p>",
                    number(model["version"]), escape(model["created_at"].get<std::string>()),
                    escape(model["run_id"].get<std::string>()), escape(model["data_hash"].get<std::string>()),
                    escape(model["training_range"].value("from", std::string("–"))),
                    escape(model["training_range"].value("to", std::string("–"))));
    if (model.contains("mlflow_link"))
        html += fmt::format("<p>MLflow run: <code>{}</code></p>", escape(model["mlflow_link"].get<std::string>()));
    else
        html += "<p>The run is tracked locally only (not synced to MLflow).</p>";
    html += "<div class=\"cols\"><div><h3>Architecture</h3>" + key_value_table(model["architecture"]) +
            "</div><div><h3>Parameters</h3>" + key_value_table(model["hyperparameters"]) + "</div></div>";
    const auto& curve = model["training_curve"];
    LineChart losses{"Training curve", "loss", false, std::nullopt, {}};
    losses.series.push_back(
        {"train loss", "#3b6ea8", doubles(curve["epoch"]), doubles(curve["train_loss"]), {}, {}, false});
    if (curve["validation_loss"].size() == curve["epoch"].size())
        losses.series.push_back(
            {"validation loss", "#c0504d", doubles(curve["epoch"]), doubles(curve["validation_loss"]), {}, {}, true});
    html += "<div id=\"chart-training\">" + line_chart(losses) + "</div></section>";

    html += "<section id=\"forecasts\"><h2>Forecasts against realised prices</h2>";
    for (const auto& [horizon, points] : data["per_point"].items()) {
        const std::int64_t h = std::stoll(horizon.substr(1));
        html += fmt::format("<div id=\"chart-forecast-{}\">{}</div>", escape(horizon),
                            forecast_chart(horizon, points, h * interval));
    }
    html += "</section>";

    html += "<section id=\"scoreboard\"><h2>Scoreboard against the baselines</h2><p>Diebold–Mariano p-values test "
            "equal mean pinball loss of the model and each baseline.</p>";
    for (const auto& [horizon, per_model] : ev["metrics"].items())
        html += fmt::format("<h3>{}</h3>", escape(horizon)) + scoreboard_table(horizon, per_model);
    html += "</section>";

    html += "<section id=\"calibration\"><h2>Calibration</h2>";
    for (const auto& [horizon, points] : data["per_point"].items())
        html += fmt::format("<h3>{}</h3>", escape(horizon)) +
                calibration_table(horizon, ev["metrics"][horizon]["model"]) +
                fmt::format("<div id=\"chart-pit-{}\">{}</div>", escape(horizon), pit_chart(horizon, points));
    html += "</section>";

    html += "<section id=\"rolling\"><h2>Rolling error and coverage</h2>";
    for (const auto& [horizon, points] : data["per_point"].items()) {
        const std::size_t n = points["time"].size();
        const std::size_t window = std::clamp<std::size_t>(n / 10, 2, 720);
        html += fmt::format("<div id=\"chart-rolling-{}\">{}</div>", escape(horizon),
                            rolling_chart(horizon, points, std::min(window, std::max<std::size_t>(n, 1))));
    }
    html += "</section>";

    html += "<section id=\"live\"><h2>Live record</h2>";
    if (data["live"].empty())
        html += "<p>No live record: the store has no scored forecasts of a served version of this series.</p>";
    else
        html += "<div id=\"chart-live\">" + live_chart(data["live"]) + "</div>" + live_table(data["live"]);
    html += "</section>";

    // Inside a script element "</" would end it early and "<!--" changes how it is parsed: no "<" at all, as JSON's
    // \u003c escape.
    std::string embedded;
    for (const char c : data.dump())
        if (c == '<')
            embedded += "\\u003c";
        else
            embedded += c;
    html += "<script type=\"application/json\" id=\"report-data\">" + embedded + "</script></body></html>\n";
    return html;
}

} // namespace btcml::report
