// The dashboard (GET / and its embedded assets) and the read APIs only its views needed: stored series with their
// freshness, live monitoring, received alerts, promotion decisions, a training run's curves, rejected rows and gaps.
#include "serve/api_dashboard.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "serve/api.hpp"
#include "serve/assets.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <charconv>
#include <map>
#include <mutex>
#include <unordered_map>

namespace btcml::serve {
namespace {

/// A strong validator of an embedded file: a hash of its bytes, computed once per file. Thread-safe.
std::string etag_of(std::string_view name, std::string_view content) {
    static std::mutex mutex;
    static std::unordered_map<std::string, std::string> cache;
    const std::lock_guard lock(mutex);
    auto& tag = cache[std::string(name)];
    if (tag.empty()) {
        std::uint64_t h = 14695981039346656037ull; // FNV-1a 64
        for (const unsigned char c : content)
            h = (h ^ c) * 1099511628211ull;
        tag = fmt::format("\"{:016x}-{}\"", h, content.size());
    }
    return tag;
}

nlohmann::json time_or_null(std::int64_t unix_ms) {
    return unix_ms > 0 ? nlohmann::json(format_iso8601_ms(unix_ms)) : nlohmann::json();
}

nlohmann::json optional_number(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

nlohmann::json parsed(const std::string& text) {
    auto value = nlohmann::json::parse(text, nullptr, false);
    return value.is_discarded() ? nlohmann::json(text) : value;
}

std::int64_t id_param(const Request& request) {
    const auto text = request.params.at(0);
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc{} || end != text.data() + text.size() || id < 1)
        throw bad_param("id", fmt::format("id '{}' is not a positive integer", text));
    return id;
}

} // namespace

Response asset_response(const Request& request, std::string_view name, std::string content_type,
                        std::string cache_control) {
    const auto file = asset(name);
    if (!file)
        throw Unavailable(fmt::format("{} was not embedded at build time: run scripts/install-deps.sh (npm ci in web/) "
                                      "and rebuild",
                                      name));
    auto tag = etag_of(name, *file);
    const bool fresh = request.header("If-None-Match") == tag;
    Response r{fresh ? 304 : 200, std::move(content_type), fresh ? std::string() : std::string(*file), {}};
    r.headers = {{"ETag", std::move(tag)}, {"Cache-Control", std::move(cache_control)}};
    return r;
}

Response dashboard_page(Service&, const Request& request) {
    // no-cache: the browser revalidates every load (a 304 when unchanged), so a new binary's page never meets the
    // previous binary's script.
    return asset_response(request, "dashboard.html", "text/html; charset=utf-8", "no-cache");
}

Response dashboard_file(Service&, const Request& request) {
    static constexpr std::pair<std::string_view, std::string_view> kFiles[] = {
        {"dashboard.js", "text/javascript; charset=utf-8"},
        {"dashboard.css", "text/css; charset=utf-8"},
    };
    for (const auto& [name, type] : kFiles)
        if (request.params.at(0) == name) return asset_response(request, name, std::string(type), "no-cache");
    throw NotFound(fmt::format("no file {} under /ui", request.params.at(0)));
}

Response list_series(Service& service, const Request&) {
    std::vector<store::SeriesInfo> infos;
    {
        auto store = service.stores().acquire();
        infos = store->list_series();
    }
    const auto served = service.served();
    const auto now = now_unix();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : infos) {
        nlohmann::json model_version;
        for (const auto& entry : *served)
            if (const auto m = entry->model.load(); m && entry->key == s.key) model_version = m->loaded.version;
        // A bar is complete at its open time plus one interval: freshness counts from then.
        out.push_back({{"symbol", s.key.symbol},
                       {"interval", format_interval(s.key.interval)},
                       {"bars", s.bars},
                       {"first_time", format_iso8601(s.first_time)},
                       {"last_time", format_iso8601(s.last_time)},
                       {"age_seconds", now - (s.last_time + s.key.interval)},
                       {"sources", s.sources},
                       {"model_version", model_version}});
    }
    return json_response({{"series", out}});
}

Response get_monitoring(Service& service, const Request& request) {
    const auto key = series_param(request, service);
    const auto limit = int_param(request, "limit", 500, 1, kMaxPage);
    std::vector<store::LiveMetric> history;
    std::vector<store::FeatureDrift> drift;
    {
        auto store = service.stores().acquire();
        history = store->live_metrics_history(key, limit);
        drift = store->latest_feature_drift(key);
    }
    nlohmann::json metrics = nlohmann::json::array();
    for (auto it = history.rbegin(); it != history.rend(); ++it) // oldest first, as charts draw them
        metrics.push_back({{"computed_at", format_iso8601_ms(it->computed_ms)},
                           {"model_version", it->model_version},
                           {"horizon", it->horizon},
                           {"window_seconds", it->window_s},
                           {"scored", it->scored},
                           {"mae", it->mae},
                           {"naive_mae", it->naive_mae},
                           {"pinball", it->pinball},
                           {"baseline_pinball", optional_number(it->baseline_pinball)},
                           {"coverage_80", it->coverage_80},
                           {"direction_accuracy", optional_number(it->direction_accuracy)}});
    nlohmann::json features = nlohmann::json::array();
    for (const auto& d : drift)
        features.push_back({{"feature", d.feature},
                            {"psi", d.psi},
                            {"bars", d.bars},
                            {"model_version", d.model_version},
                            {"computed_at", format_iso8601_ms(d.computed_ms)}});
    return json_response({{"symbol", key.symbol},
                          {"interval", format_interval(key.interval)},
                          {"live_metrics", metrics},
                          {"drift", features}});
}

Response list_alerts(Service& service, const Request& request) {
    const auto limit = int_param(request, "limit", 100, 1, 1000);
    std::vector<store::AlertNotification> alerts;
    {
        auto store = service.stores().acquire();
        alerts = store->alerts(limit);
    }
    // An alert is open while the newest notification of its fingerprint says firing.
    std::map<std::string, bool> open;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& a : alerts) { // newest first
        open.try_emplace(a.fingerprint, a.status == "firing");
        list.push_back({{"alertname", a.alertname},
                        {"status", a.status},
                        {"fingerprint", a.fingerprint},
                        {"starts_at", a.starts_at},
                        {"received_at", time_or_null(a.received_ms)},
                        {"labels", parsed(a.labels_json)},
                        {"outcome", a.outcome},
                        {"pipeline_run", a.run_id ? nlohmann::json(*a.run_id) : nlohmann::json()}});
    }
    std::int64_t open_count = 0;
    for (const auto& [fingerprint, firing] : open)
        open_count += firing ? 1 : 0;
    return json_response({{"open", open_count}, {"alerts", list}});
}

Response list_promotions(Service& service, const Request& request) {
    const auto key = series_param(request, service);
    const auto model = tracking::series_model_name(key.symbol, format_interval(key.interval));
    std::vector<store::ModelVersionRecord> versions;
    std::vector<store::AliasChange> history;
    {
        auto store = service.stores().acquire();
        versions = store->model_versions(model);
        history = store->alias_history(model, "champion");
    }
    nlohmann::json gates = nlohmann::json::array();
    for (const auto& v : versions)
        gates.push_back({{"version", v.version},
                         {"run_id", v.run_id},
                         {"created_at", time_or_null(v.created_ms)},
                         {"gate", parsed(v.gate_json)}});
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& c : history)
        changes.push_back({{"changed_at", time_or_null(c.changed_ms)},
                           {"version", c.version ? nlohmann::json(*c.version) : nlohmann::json()},
                           {"previous", c.previous ? nlohmann::json(*c.previous) : nlohmann::json()},
                           {"reason", c.reason}});
    return json_response({{"registered_model", model}, {"versions", gates}, {"champion_history", changes}});
}

Response show_run(Service& service, const Request& request) {
    const std::string id(request.params.at(0));
    std::optional<store::TrackedRun> run;
    store::RunData data;
    {
        auto store = service.stores().acquire();
        run = store->tracked_run(id);
        if (run) data = store->run_data(id, false);
    }
    if (!run) throw NotFound(fmt::format("no training run {}", id));
    const auto object = [](const store::KeyValues& pairs) {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& [key, value] : pairs)
            out[key] = value;
        return out;
    };
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& m : data.metrics)
        metrics[m.key].push_back({{"step", m.step}, {"value", m.value}, {"time", format_iso8601_ms(m.timestamp_ms)}});
    // MLflow's own page of the run, when it reached a server.
    nlohmann::json mlflow_url;
    if (!run->tracking_uri.empty() && !run->remote_id.empty())
        mlflow_url =
            fmt::format("{}/#/experiments/{}/runs/{}", run->tracking_uri, run->remote_experiment_id, run->remote_id);
    return json_response(
        {{"run_id", run->id},
         {"experiment", run->experiment},
         {"name", run->name},
         {"status", run->status},
         {"started_at", time_or_null(run->start_ms)},
         {"ended_at", run->end_ms ? time_or_null(*run->end_ms) : nlohmann::json()},
         {"seconds", run->end_ms ? nlohmann::json((*run->end_ms - run->start_ms) / 1000.0) : nlohmann::json()},
         {"params", object(data.params)},
         {"tags", object(data.tags)},
         {"metrics", metrics},
         {"mlflow_url", mlflow_url}});
}

Response list_rejected(Service& service, const Request& request) {
    const auto id = id_param(request);
    const auto limit = int_param(request, "limit", 100, 1, kMaxPage);
    std::optional<store::IngestRun> run;
    std::vector<store::RejectedRow> rows;
    {
        auto store = service.stores().acquire();
        run = store->ingest_run(id);
        if (run) rows = store->rejected_rows(id);
    }
    if (!run) throw NotFound(fmt::format("no ingest run {}", id));
    std::map<std::string, std::int64_t> by_reason;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : rows) {
        ++by_reason[r.reason];
        if (static_cast<std::int64_t>(list.size()) < limit)
            list.push_back({{"line", r.line_number}, {"reason", r.reason}, {"raw", r.raw}});
    }
    return json_response({{"run_id", id}, {"rows_rejected", rows.size()}, {"by_reason", by_reason}, {"rows", list}});
}

Response list_gaps(Service& service, const Request& request) {
    const auto key = series_param(request, service);
    const auto bars_wanted = int_param(request, "bars", 5000, 2, 100'000);
    std::vector<Bar> bars;
    {
        auto store = service.stores().acquire();
        const auto last = store->last_bar_time(key);
        if (last) bars = store->load_bars({key, *last - (bars_wanted - 1) * key.interval, std::nullopt, bars_wanted});
    }
    nlohmann::json gaps = nlohmann::json::array();
    std::int64_t missing = 0;
    for (std::size_t i = 1; i < bars.size(); ++i) {
        const auto absent = (bars[i].time - bars[i - 1].time) / key.interval - 1;
        if (absent <= 0) continue;
        missing += absent;
        gaps.push_back({{"after", format_iso8601(bars[i - 1].time)},
                        {"before", format_iso8601(bars[i].time)},
                        {"missing_bars", absent}});
    }
    return json_response({{"symbol", key.symbol},
                          {"interval", format_interval(key.interval)},
                          {"from", bars.empty() ? nlohmann::json() : nlohmann::json(format_iso8601(bars.front().time))},
                          {"to", bars.empty() ? nlohmann::json() : nlohmann::json(format_iso8601(bars.back().time))},
                          {"bars", bars.size()},
                          {"missing_bars", missing},
                          {"gaps", gaps}});
}

} // namespace btcml::serve
