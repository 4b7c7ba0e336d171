#include "serve/api.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "data/ingest.hpp"
#include "model/artifact.hpp"
#include "serve/api_pipelines.hpp"
#include "serve/assets.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>

namespace btcml::serve {

// ---- request parsing -------------------------------------------------------------------------------------------

FieldError invalid(std::string field, const std::string& message) {
    return {ErrorKind::invalid, std::move(field), message};
}

FieldError bad_param(std::string field, const std::string& message) {
    return {ErrorKind::usage, std::move(field), message};
}

nlohmann::json parse_json_body(const Request& request) {
    const auto type = request.header("Content-Type");
    if (!type.empty() && type.find("application/json") == std::string_view::npos)
        throw bad_param("body", fmt::format("the body must be application/json, not {}", type));
    // Refused while parsing, before a deep value exists: walking one (dump, copy, destruction) recurses per level
    // and ~70,000 levels overflow a request thread's stack.
    const auto limit_depth = [](int depth, nlohmann::json::parse_event_t event, const nlohmann::json&) {
        const bool opens =
            event == nlohmann::json::parse_event_t::array_start || event == nlohmann::json::parse_event_t::object_start;
        if (opens && depth >= kMaxJsonDepth)
            throw bad_param("body",
                            fmt::format("the body nests arrays and objects more than {} levels deep", kMaxJsonDepth));
        return true;
    };
    auto body = nlohmann::json::parse(request.body, limit_depth, false);
    if (body.is_discarded()) throw bad_param("body", "the body is not valid JSON");
    if (!body.is_object()) throw invalid("body", "the body must be a JSON object");
    return body;
}

const nlohmann::json& member(const nlohmann::json& object, const char* name, nlohmann::json::value_t type,
                             const std::string& path, const char* type_name) {
    const auto it = object.find(name);
    if (it == object.end()) throw invalid(path, fmt::format("{} is required", path));
    const bool ok = type == nlohmann::json::value_t::number_float ? it->is_number() : it->type() == type;
    if (!ok) throw invalid(path, fmt::format("{} must be {}, got {}", path, type_name, it->type_name()));
    return *it;
}

std::string string_member(const nlohmann::json& object, const char* name) {
    return member(object, name, nlohmann::json::value_t::string, name, "a string").get<std::string>();
}

namespace {

std::int64_t interval_member(const nlohmann::json& object) {
    const auto text = string_member(object, "interval");
    const auto interval = parse_interval(text);
    if (!interval) throw invalid("interval", fmt::format("interval '{}' is not an interval like 1h or 5m", text));
    return *interval;
}

/// One bar of a body as an ingest candidate, with the first field at fault (empty when the bar is fine).
struct ParsedBar {
    data::Candidate candidate;
    std::string field;
    std::string problem;
};

ParsedBar parse_bar(const nlohmann::json& bar, std::int64_t line) {
    ParsedBar p;
    auto& c = p.candidate;
    c.line = line;
    if (!bar.is_object()) {
        c.parse_error = data::RejectReason::bad_field_count;
        p.problem = fmt::format("a bar must be an object, got {}", bar.type_name());
        return p;
    }
    const auto time = bar.find("time");
    if (time != bar.end() && time->is_string()) c.time = parse_iso8601(time->get<std::string>());
    if (!c.time) {
        c.parse_error = data::RejectReason::unparsable_time;
        p.field = "time";
        p.problem = "time must be an ISO 8601 time such as 2024-01-02T03:00:00Z";
        return p;
    }
    static constexpr std::pair<const char*, double data::Candidate::*> kNumbers[] = {
        {"open", &data::Candidate::open},
        {"high", &data::Candidate::high},
        {"low", &data::Candidate::low},
        {"close", &data::Candidate::close},
        {"volume", &data::Candidate::volume}};
    for (const auto& [name, field] : kNumbers) {
        const auto it = bar.find(name);
        if (it == bar.end() || !it->is_number()) {
            c.parse_error = data::RejectReason::unparsable_number;
            p.field = name;
            p.problem = fmt::format("{} must be a number", name);
            return p;
        }
        c.*field = it->get<double>();
    }
    const auto reason = data::check_values(c);
    if (reason == data::RejectReason::none) return p;
    p.problem = std::string(data::to_string(reason));
    switch (reason) {
    case data::RejectReason::high_below_open_close: p.field = "high"; break;
    case data::RejectReason::low_above_open_close: p.field = "low"; break;
    case data::RejectReason::negative_volume:
    case data::RejectReason::unparsable_number: p.field = "volume"; break;
    default:
        for (const auto& [name, field] : kNumbers)
            if (!(c.*field > 0) || std::isinf(c.*field)) {
                p.field = name;
                break;
            }
    }
    p.problem = fmt::format("{} is invalid: {}", p.field, p.problem);
    return p;
}

const nlohmann::json& bars_member(const nlohmann::json& body) {
    return member(body, "bars", nlohmann::json::value_t::array, "bars", "an array");
}

std::optional<std::int64_t> time_param(const Request& request, const char* name) {
    const auto text = request.query_param(name);
    if (!text) return std::nullopt;
    const auto t = parse_time(*text);
    if (!t) throw bad_param(name, fmt::format("{}: '{}' is not an ISO 8601 time or unix seconds", name, *text));
    return t;
}

} // namespace

std::int64_t int_param(const Request& request, const char* name, std::int64_t fallback, std::int64_t lo,
                       std::int64_t hi) {
    const auto text = request.query_param(name);
    if (!text) return fallback;
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc{} || end != text->data() + text->size() || value < lo || value > hi)
        throw bad_param(name, fmt::format("{}: '{}' is not an integer from {} to {}", name, *text, lo, hi));
    return value;
}

namespace {

/// The series named by ?symbol=&interval=, each defaulting to the serving model's.
SeriesKey series_param(const Request& request, const Service& service) {
    const auto m = service.model();
    auto symbol = request.query_param("symbol");
    auto interval_text = request.query_param("interval");
    if ((!symbol || !interval_text) && !m)
        throw bad_param(symbol ? "interval" : "symbol", "symbol and interval are required while no model is loaded");
    SeriesKey key = m ? m->loaded.series : SeriesKey{};
    if (symbol) key.symbol = *symbol;
    if (interval_text) {
        const auto interval = parse_interval(*interval_text);
        if (!interval) throw bad_param("interval", fmt::format("interval '{}' is not like 1h or 5m", *interval_text));
        key.interval = *interval;
    }
    return key;
}

/// Refuses a series the serving model does not forecast, naming the field.
void require_model_series(const Model& m, const std::string& symbol, std::int64_t interval, ErrorKind kind) {
    const auto& series = m.loaded.series;
    const auto serves = fmt::format("the serving model (version {}) forecasts {} {}", m.loaded.version, series.symbol,
                                    format_interval(series.interval));
    if (symbol != series.symbol)
        throw FieldError(kind, "symbol", fmt::format("unknown symbol '{}': {}", symbol, serves));
    if (interval != series.interval)
        throw FieldError(kind, "interval", fmt::format("unknown interval '{}': {}", format_interval(interval), serves));
}

int version_param(const Request& request) {
    const auto text = request.params.at(0);
    int version = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
    if (ec != std::errc{} || end != text.data() + text.size() || version < 1)
        throw bad_param("version", fmt::format("version '{}' is not a positive integer", text));
    return version;
}

nlohmann::json read_card(const std::filesystem::path& home, int version) {
    std::ifstream in(model::models_dir(home) / std::to_string(version) / "model.json");
    auto card = nlohmann::json::parse(in, nullptr, false);
    if (!in || card.is_discarded())
        throw NotFound(fmt::format("model version {} does not exist or is unreadable", version));
    return card;
}

std::optional<int> champion_or_none(const std::filesystem::path& home) {
    try {
        return resolve_champion(home);
    } catch (const NotFound&) {
        return std::nullopt;
    }
}

nlohmann::json model_summary(const nlohmann::json& card, int version, std::optional<int> champion) {
    nlohmann::json out{{"version", version}, {"champion", champion == version}};
    for (const char* key : {"run_id", "created_at", "symbol", "interval", "window", "horizons", "quantiles", "data"})
        out[key] = card.value(key, nlohmann::json());
    return out;
}

// ---- handlers ----------------------------------------------------------------------------------------------------

Response healthz(Service&, const Request&) { return json_response({{"status", "ok"}}); }

Response readyz(Service& service, const Request&) {
    std::vector<std::string> problems;
    try {
        auto store = service.stores().acquire();
        (void)store->schema_version();
    } catch (const std::exception& e) {
        problems.push_back(fmt::format("store unreachable: {}", e.what()));
    }
    std::shared_ptr<const Model> m;
    try {
        m = service.require_model();
    } catch (const Unavailable& e) {
        problems.emplace_back(e.what());
    }
    if (!problems.empty()) {
        std::string detail;
        for (const auto& p : problems)
            detail += (detail.empty() ? "" : "; ") + p;
        return problem_response(503, detail);
    }
    nlohmann::json out{{"status", "ready"}, {"model_version", m->loaded.version}};
    // A newer champion that does not load: the previous model serves, and operators learn why.
    if (const auto failure = service.champion_failure()) out["champion_error"] = Service::describe(*failure);
    return json_response(out);
}

Response forecast(Service& service, const Request& request) {
    const auto m = service.require_model();
    const auto key = series_param(request, service);
    require_model_series(*m, key.symbol, key.interval, ErrorKind::not_found);
    return {200, "application/json", service.current_forecast(), {}};
}

Response predict(Service& service, const Request& request) {
    const auto body = parse_json_body(request);
    const auto m = service.require_model();
    const auto symbol = string_member(body, "symbol");
    const auto interval = interval_member(body);
    require_model_series(*m, symbol, interval, ErrorKind::invalid);
    const auto& items = bars_member(body);
    const std::size_t needed = m->loaded.forecaster.spec().window + 1;
    if (items.size() < needed)
        throw invalid("bars",
                      fmt::format("the model needs at least {} consecutive bars (a window of {} returns), got {}",
                                  needed, needed - 1, items.size()));
    std::vector<Bar> bars;
    bars.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto p = parse_bar(items[i], static_cast<std::int64_t>(i + 1));
        if (!p.problem.empty())
            throw invalid(p.field.empty() ? fmt::format("bars[{}]", i) : fmt::format("bars[{}].{}", i, p.field),
                          fmt::format("bars[{}]: {}", i, p.problem));
        const auto& c = p.candidate;
        if (!bars.empty() && *c.time != bars.back().time + interval)
            throw invalid(fmt::format("bars[{}].time", i),
                          fmt::format("bars[{}].time must be one {} bar after the previous bar ({})", i,
                                      format_interval(interval), format_iso8601(bars.back().time + interval)));
        bars.push_back({*c.time, c.open, c.high, c.low, c.close, c.volume, true});
    }
    // Every bar is checked; the latest window + 1 are the input (the same bars as a forecast from the same data).
    const std::span<const Bar> used = std::span<const Bar>(bars).last(needed);
    auto out = service.predict(*m, used, !request.authenticated);
    out["bars_used"] = used.size();
    return json_response(out);
}

Response get_bars(Service& service, const Request& request) {
    const auto key = series_param(request, service);
    const auto limit = int_param(request, "limit", 1000, 1, kMaxPage);
    auto from = time_param(request, "from");
    const auto to = time_param(request, "to");
    if (const auto cursor = request.query_param("cursor")) {
        const auto t = parse_unix_time(*cursor);
        if (!t) throw bad_param("cursor", "cursor is not one returned by this API");
        from = std::max(from.value_or(*t), *t);
    }
    std::vector<Bar> bars;
    {
        auto store = service.stores().acquire();
        bars = store->load_bars({key, from, to, limit + 1});
    }
    std::optional<std::int64_t> next;
    if (static_cast<std::int64_t>(bars.size()) > limit) {
        next = bars.back().time;
        bars.pop_back();
    }
    if (request.header("Accept").find("text/csv") != std::string_view::npos) {
        std::string csv = "time,open,high,low,close,volume\n";
        for (const auto& b : bars)
            csv += fmt::format("{},{},{},{},{},{}\n", format_iso8601(b.time), b.open, b.high, b.low, b.close, b.volume);
        Response r{200, "text/csv; charset=utf-8", std::move(csv), {}};
        if (next) r.headers.emplace_back("X-Next-Cursor", std::to_string(*next));
        return r;
    }
    nlohmann::json out{{"symbol", key.symbol},
                       {"interval", format_interval(key.interval)},
                       {"bars", nlohmann::json::array()},
                       {"next_cursor", next ? nlohmann::json(std::to_string(*next)) : nlohmann::json()}};
    for (const auto& b : bars)
        out["bars"].push_back({{"time", format_iso8601(b.time)},
                               {"open", b.open},
                               {"high", b.high},
                               {"low", b.low},
                               {"close", b.close},
                               {"volume", b.volume}});
    return json_response(out);
}

Response post_bars(Service& service, const Request& request) {
    const auto body = parse_json_body(request);
    data::IngestOptions options;
    options.symbol = string_member(body, "symbol");
    if (options.symbol.empty() || options.symbol.size() > 64)
        throw invalid("symbol", "symbol must have 1 to 64 characters");
    options.interval = interval_member(body);
    options.home = service.options().home;
    const auto& items = bars_member(body);
    if (items.empty()) throw invalid("bars", "bars is empty");
    // Rows go through the same writer as files: bad ones are rejected with their reason and kept, good ones stored.
    const auto read = [&](data::SourceContext& ctx) {
        ctx.format = "json";
        for (std::size_t i = 0; i < items.size(); ++i) {
            auto p = parse_bar(items[i], static_cast<std::int64_t>(i + 1));
            const std::string raw = items[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            p.candidate.raw = raw;
            ctx.writer.add(p.candidate);
        }
    };
    data::IngestSummary summary;
    {
        auto store = service.stores().acquire();
        summary = data::ingest_records(*store, "api", options, read);
    }
    service.poke();
    return json_response(data::to_json(summary), summary.rows_inserted > 0 ? 201 : 200);
}

Response get_predictions(Service& service, const Request& request) {
    store::PredictionQuery query;
    query.from = time_param(request, "from");
    query.to = time_param(request, "to");
    if (const auto symbol = request.query_param("symbol")) query.symbol = *symbol;
    if (const auto text = request.query_param("interval")) {
        const auto interval = parse_interval(*text);
        if (!interval) throw bad_param("interval", fmt::format("interval '{}' is not like 1h or 5m", *text));
        query.interval = *interval;
    }
    query.limit = int_param(request, "limit", 1000, 1, kMaxPage);
    std::vector<store::Prediction> rows;
    {
        auto store = service.stores().acquire();
        rows = store->load_predictions(query);
    }
    nlohmann::json out{{"predictions", nlohmann::json::array()}};
    for (const auto& p : rows) {
        const auto known = [&](double v) { return p.realised ? nlohmann::json(v) : nlohmann::json(); };
        out["predictions"].push_back(
            {{"model_version", p.model_version},
             {"symbol", p.symbol},
             {"interval", format_interval(p.interval)},
             {"origin_time", format_iso8601(p.origin_time)},
             {"horizon", p.horizon},
             {"target_time", format_iso8601(p.target_time)},
             {"price", p.price},
             {"lower", p.lower},
             {"upper", p.upper},
             {"log_return", p.log_return},
             {"created_at", format_iso8601(p.created_at)},
             {"realised", known(p.realised.value_or(0))},
             {"error", known(p.realised.value_or(0) - p.price)},
             {"inside_interval",
              p.realised ? nlohmann::json(*p.realised >= p.lower && *p.realised <= p.upper) : nlohmann::json()}});
    }
    return json_response(out);
}

Response list_models(Service& service, const Request&) {
    const auto& home = service.options().home;
    const auto champion = champion_or_none(home);
    nlohmann::json out{
        {"champion", champion ? nlohmann::json(*champion) : nlohmann::json()},
        {"serving", service.model() ? nlohmann::json(service.model()->loaded.version) : nlohmann::json()},
        {"models", nlohmann::json::array()}};
    for (const int v : model::list_versions(home)) {
        try {
            out["models"].push_back(model_summary(read_card(home, v), v, champion));
        } catch (const NotFound&) { // a version being written or removed right now: list what is readable
        }
    }
    return json_response(out);
}

Response show_model(Service& service, const Request& request) {
    const int version = version_param(request);
    const auto& home = service.options().home;
    auto card = read_card(home, version);
    card["version"] = version;
    card["champion"] = champion_or_none(home) == version;
    return json_response(card);
}

Response promote(Service& service, const Request& request) {
    const int version = version_param(request);
    std::optional<int> previous;
    {
        auto store = service.stores().acquire();
        previous = promote_champion(*store, service.options(), version);
    }
    service.poke();
    return json_response({{"version", version},
                          {"champion", true},
                          {"previous", previous ? nlohmann::json(*previous) : nlohmann::json()}});
}

Response list_runs(Service& service, const Request& request) {
    const auto limit = int_param(request, "limit", 50, 1, 1000);
    std::vector<store::IngestRun> runs;
    {
        auto store = service.stores().acquire();
        // Runs whose process died (kill -9) are ended here too, so the API never lists them as running for ever.
        tracking::sweep_abandoned_runs(*store);
        runs = store->list_ingest_runs(limit);
    }
    const auto time_or_null = [](std::optional<std::int64_t> t) {
        return t && *t != 0 ? nlohmann::json(format_iso8601(*t)) : nlohmann::json();
    };
    nlohmann::json out{{"ingest_runs", nlohmann::json::array()}, {"training_runs", nlohmann::json::array()}};
    for (const auto& r : runs)
        out["ingest_runs"].push_back(
            {{"id", r.id},
             {"source", r.source},
             {"format", r.format},
             {"symbol", r.symbol},
             {"interval", r.interval > 0 ? nlohmann::json(format_interval(r.interval)) : nlohmann::json()},
             {"status", r.status},
             {"error", r.error},
             {"started_at", time_or_null(r.started_at)},
             {"finished_at", time_or_null(r.finished_at)},
             {"rows_read", r.rows_read},
             {"rows_inserted", r.rows_inserted},
             {"rows_duplicate", r.rows_duplicate},
             {"rows_rejected", r.rows_rejected}});
    const auto& home = service.options().home;
    auto versions = model::list_versions(home);
    for (auto it = versions.rbegin();
         it != versions.rend() && out["training_runs"].size() < static_cast<std::size_t>(limit); ++it) {
        try {
            const auto card = read_card(home, *it);
            out["training_runs"].push_back({{"run_id", card.value("run_id", "")},
                                            {"model_version", *it},
                                            {"created_at", card.value("created_at", nlohmann::json())},
                                            {"symbol", card.value("symbol", "")},
                                            {"interval", card.value("interval", "")},
                                            {"best_epoch", card.value("best_epoch", nlohmann::json())},
                                            {"metrics", card.value("metrics", nlohmann::json::object())}});
        } catch (const NotFound&) { // being written: skip
        }
    }
    return json_response(out);
}

Response metrics(Service& service, const Request&) {
    return {200, "text/plain; version=0.0.4; charset=utf-8", service.metrics().render(service.latest_bar()), {}};
}

Response embedded(std::string_view name, std::string content_type) {
    const auto file = asset(name);
    if (!file)
        throw Unavailable(fmt::format("{} was not embedded at build time: run scripts/install-deps.sh (npm ci in web/) "
                                      "and rebuild",
                                      name));
    return {200, std::move(content_type), std::string(*file), {{"Cache-Control", "public, max-age=3600"}}};
}

Response openapi(Service&, const Request&) { return embedded("openapi.json", "application/json"); }
Response docs(Service&, const Request&) { return embedded("docs.html", "text/html; charset=utf-8"); }

Response docs_file(Service&, const Request& request) {
    static constexpr std::pair<std::string_view, std::string_view> kFiles[] = {
        {"swagger-ui.css", "text/css; charset=utf-8"},
        {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
        {"favicon-32x32.png", "image/png"},
    };
    for (const auto& [name, type] : kFiles)
        if (request.params.at(0) == name) return embedded(name, std::string(type));
    throw NotFound(fmt::format("no file {} under /docs", request.params.at(0)));
}

// ---- the route table ---------------------------------------------------------------------------------------------

using HandlerFn = Response (*)(Service&, const Request&);

struct RouteRow {
    RouteSpec spec;
    HandlerFn handler;
};

// Work::io only for handlers that answer from memory (GET /api/v1/forecast too: its cache misses once per new bar
// or champion, and that read of the store does not wait for writers under SQLite's WAL); the rest may block.
constexpr RouteRow kRoutes[] = {
    {{"GET", "/healthz", Access::open, Work::io}, healthz},
    {{"GET", "/readyz", Access::open, Work::pool}, readyz},
    {{"GET", "/api/v1/forecast", Access::read, Work::io}, forecast},
    {{"POST", "/api/v1/predict", Access::read, Work::pool}, predict},
    {{"GET", "/api/v1/bars", Access::read, Work::pool}, get_bars},
    {{"POST", "/api/v1/bars", Access::write, Work::pool}, post_bars},
    {{"GET", "/api/v1/predictions", Access::read, Work::pool}, get_predictions},
    {{"GET", "/api/v1/models", Access::read, Work::pool}, list_models},
    {{"GET", "/api/v1/models/{version}", Access::read, Work::pool}, show_model},
    {{"POST", "/api/v1/models/{version}/promote", Access::write, Work::pool}, promote},
    {{"GET", "/api/v1/runs", Access::read, Work::pool}, list_runs},
    {{"GET", "/api/v1/pipelines", Access::read, Work::pool}, list_pipelines},
    {{"GET", "/api/v1/pipelines/{name}/runs", Access::read, Work::pool}, list_pipeline_runs},
    {{"POST", "/api/v1/pipelines/{name}/runs", Access::write, Work::pool}, start_pipeline_run},
    {{"GET", "/metrics", Access::open, Work::io}, metrics},
    {{"GET", "/openapi.json", Access::open, Work::io}, openapi},
    {{"GET", "/docs", Access::open, Work::io}, docs},
    {{"GET", "/docs/{file}", Access::open, Work::io}, docs_file},
};

} // namespace

std::vector<RouteSpec> route_specs() {
    std::vector<RouteSpec> out;
    for (const auto& r : kRoutes)
        out.push_back(r.spec);
    return out;
}

std::vector<Route> make_routes(Service& service) {
    std::vector<Route> out;
    for (const auto& r : kRoutes)
        out.push_back({std::string(r.spec.method), std::string(r.spec.pattern), r.spec.access, r.spec.work,
                       [&service, handler = r.handler](const Request& request) { return handler(service, request); }});
    return out;
}

} // namespace btcml::serve
