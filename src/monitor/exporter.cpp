#include "monitor/exporter.hpp"

#include "core/log.hpp"
#include "core/time.hpp"
#include "tracking/registry.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <optional>

namespace btcml::monitor {
namespace {

void header(std::string& out, const char* name, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name);
}

std::string series_labels(const SeriesKey& key) {
    // Symbols come from ingest arguments: escaped as the text format requires.
    std::string symbol;
    for (const char c : key.symbol) {
        if (c == '\\' || c == '"') symbol += '\\';
        if (c == '\n') {
            symbol += "\\n";
            continue;
        }
        symbol += c;
    }
    return fmt::format("symbol=\"{}\",interval=\"{}\"", symbol, format_interval(key.interval));
}

struct LiveGauge {
    const char* name;
    const char* help;
    std::function<std::optional<double>(const store::LiveMetric&)> value;
};

std::optional<double> ratio(double a, std::optional<double> b) {
    if (!b || *b <= 0) return std::nullopt;
    return a / *b;
}

} // namespace

std::string window_label(std::int64_t seconds) {
    if (seconds % 3600 == 0 && seconds < 2 * 86400) return fmt::format("{}h", seconds / 3600);
    if (seconds % 86400 == 0) return fmt::format("{}d", seconds / 86400);
    return format_interval(seconds);
}

MonitorSnapshot read_snapshot(store::Store& store) {
    MonitorSnapshot s;
    s.metrics = store.latest_live_metrics({});
    s.drift = store.latest_feature_drift({});
    const auto models = store.registered_models();
    for (const auto& model : models) {
        const auto aliases = store.aliases(model);
        if (const auto it = aliases.find("champion"); it != aliases.end()) s.champions[model] = it->second;
    }
    // Per registered series, the newest bar through the primary key: listing every series aggregates the whole bars
    // table (100 ms at 50,000 bars), which would delay every refresh of /metrics.
    for (const auto& model : models)
        if (const auto key = tracking::series_of_model(model))
            if (const auto last = store.last_bar_time(*key)) s.freshness.push_back({*key, *last});
    return s;
}

void render_snapshot(const MonitorSnapshot& snapshot, std::int64_t now, std::string& out) {
    static const LiveGauge kLive[] = {
        {"btcml_live_mae", "Live MAE of the median log-return forecast of scheduled (champion) forecasts.",
         [](const store::LiveMetric& m) { return std::optional{m.mae}; }},
        {"btcml_live_naive_mae", "Live MAE of the naive (zero log return) forecast on the same origins.",
         [](const store::LiveMetric& m) { return std::optional{m.naive_mae}; }},
        {"btcml_live_mae_ratio", "Live MAE / naive MAE on the same origins (above 1: worse than naive).",
         [](const store::LiveMetric& m) { return ratio(m.mae, m.naive_mae); }},
        {"btcml_live_pinball", "Live mean pinball loss over the 0.1/0.5/0.9 quantiles (log returns).",
         [](const store::LiveMetric& m) { return std::optional{m.pinball}; }},
        {"btcml_live_baseline_pinball",
         "Live pinball of the unconditional-quantile baseline (the training data's quantiles) on the same origins.",
         [](const store::LiveMetric& m) { return m.baseline_pinball; }},
        {"btcml_live_pinball_ratio", "Live pinball / baseline pinball (above 1: worse than the baseline).",
         [](const store::LiveMetric& m) { return ratio(m.pinball, m.baseline_pinball); }},
        {"btcml_live_coverage_80", "Share of realised closes inside the 80% interval (target 0.8).",
         [](const store::LiveMetric& m) { return std::optional{m.coverage_80}; }},
        {"btcml_live_direction_accuracy", "Share of forecasts whose direction was right (where both had one).",
         [](const store::LiveMetric& m) { return m.direction_accuracy; }},
        {"btcml_live_scored_forecasts", "Scheduled forecasts scored in the window.",
         [](const store::LiveMetric& m) { return std::optional{static_cast<double>(m.scored)}; }},
    };
    // `champion` tells the serving version's rows from those of versions it replaced, whose forecasts stay in the
    // windows for a while: alert rules select champion="true" so that a replaced model does not keep firing.
    const auto is_champion = [&](const store::LiveMetric& m) {
        const auto it =
            snapshot.champions.find(tracking::series_model_name(m.series.symbol, format_interval(m.series.interval)));
        return it != snapshot.champions.end() && it->second == m.model_version;
    };
    for (const auto& gauge : kLive) {
        header(out, gauge.name, gauge.help);
        for (const auto& m : snapshot.metrics)
            if (const auto v = gauge.value(m))
                out += fmt::format("{}{{{},version=\"{}\",champion=\"{}\",horizon=\"{}\",window=\"{}\"}} {}\n",
                                   gauge.name, series_labels(m.series), m.model_version, is_champion(m), m.horizon,
                                   window_label(m.window_s), *v);
    }
    header(out, "btcml_feature_psi",
           "Population stability index of an input feature over the latest bars against the champion's training "
           "profile (0.1: moderate shift, 0.25: significant).");
    for (const auto& d : snapshot.drift)
        out += fmt::format("btcml_feature_psi{{{},version=\"{}\",feature=\"{}\"}} {}\n", series_labels(d.series),
                           d.model_version, d.feature, d.psi);
    header(out, "btcml_data_age_seconds", "Seconds since the latest stored bar closed (its open time + interval).");
    for (const auto& f : snapshot.freshness)
        out += fmt::format("btcml_data_age_seconds{{{}}} {}\n", series_labels(f.series),
                           now - (f.last_bar + f.series.interval));
    header(out, "btcml_data_stale", "1 when the latest stored bar closed more than two intervals ago.");
    for (const auto& f : snapshot.freshness)
        out += fmt::format("btcml_data_stale{{{}}} {}\n", series_labels(f.series),
                           now - (f.last_bar + f.series.interval) > 2 * f.series.interval ? 1 : 0);
}

Exporter::Exporter(std::string db_url, std::filesystem::path home, std::chrono::milliseconds poll)
    : db_url_(std::move(db_url)), home_(std::move(home)), poll_(poll),
      snapshot_(std::make_shared<const MonitorSnapshot>()) {
    thread_ = std::thread([this] { run(); });
}

Exporter::~Exporter() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void Exporter::render(std::string& out) const { render_snapshot(*snapshot_.load(), now_unix(), out); }

void Exporter::poke() {
    {
        const std::lock_guard lock(mutex_);
        poked_ = true;
    }
    wake_.notify_all();
}

void Exporter::run() {
    std::unique_ptr<store::Store> store;
    bool failing = false; // an outage is logged when it starts and when it ends, not on every poll
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        try {
            if (!store || !store->healthy()) store = store::open_store(db_url_, home_);
            snapshot_.store(std::make_shared<const MonitorSnapshot>(read_snapshot(*store)));
            if (failing) log::info("reading the live metrics works again");
            failing = false;
        } catch (const std::exception& e) {
            store.reset();
            if (!failing) log::warn("reading the live metrics failed", {{"error.message", e.what()}});
            failing = true;
        }
        lock.lock();
        wake_.wait_for(lock, poll_, [this] { return stopping_ || poked_; });
        poked_ = false;
    }
}

} // namespace btcml::monitor
