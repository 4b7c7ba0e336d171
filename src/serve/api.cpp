#include "serve/api.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "data/ingest.hpp"
#include "model/artifact.hpp"
#include "serve/api_dashboard.hpp"
#include "serve/api_pipelines.hpp"
#include "serve/assets.hpp"
#include "tracking/registry.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>

#include <algorithm>
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

namespace {

const nlohmann::json& member(const nlohmann::json& object, const char* name, nlohmann::json::value_t type,
                             const std::string& path, const char* type_name) {
    const auto it = object.find(name);
    if (it == object.end()) throw invalid(path, fmt::format("{} is required", path));
    const bool ok = type == nlohmann::json::value_t::number_float ? it->is_number() : it->type() == type;
    if (!ok) throw invalid(path, fmt::format("{} must be {}, got {}", path, type_name, it->type_name()));
    return *it;
}

} // namespace

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

std::optional<std::int64_t> interval_param(const Request& request) {
    const auto text = request.query_param("interval");
    if (!text) return std::nullopt;
    const auto interval = parse_interval(*text);
    if (!interval) throw bad_param("interval", fmt::format("interval '{}' is not like 1h or 5m", *text));
    return interval;
}

/// The field at fault when no served series matches: the symbol when none serves it, else the interval.
std::string unmatched_field(const ServedList& served, const std::optional<std::string>& symbol) {
    const bool known =
        symbol && std::any_of(served.begin(), served.end(), [&](const auto& s) { return s->key.symbol == *symbol; });
    return symbol && !known ? "symbol" : "interval";
}

/// The served series ?symbol=&interval= select (Service::choose: the only one served, else BTCUSD 1h).
std::shared_ptr<ServedSeries> served_param(const Request& request, const Service& service) {
    const auto text = request.query_param("symbol");
    const auto symbol = text ? std::optional<std::string>(*text) : std::nullopt;
    const auto interval = interval_param(request);
    try {
        return service.choose(symbol, interval);
    } catch (const NotFound& e) {
        throw FieldError(ErrorKind::not_found, unmatched_field(*service.served(), symbol), e.what());
    } catch (const UsageError& e) {
        throw bad_param(symbol ? "interval" : "symbol", e.what());
    }
}

} // namespace

/// The series of ?symbol=&interval= (any stored series); what is not given is the default served series' (the only
/// one served, else BTCUSD 1h).
SeriesKey series_param(const Request& request, const Service& service) {
    const auto symbol = request.query_param("symbol");
    const auto interval = interval_param(request);
    if (symbol && interval) return {std::string(*symbol), *interval};
    if (service.served()->empty())
        throw bad_param(symbol ? "interval" : "symbol", "symbol and interval are required while no model is loaded");
    SeriesKey key;
    try {
        key = service.choose(std::nullopt, std::nullopt)->key;
    } catch (const UsageError& e) {
        throw bad_param(symbol ? "interval" : "symbol", e.what());
    }
    if (symbol) key.symbol = *symbol;
    if (interval) key.interval = *interval;
    return key;
}

namespace {

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

/// Each registered version's registered model, and each registered model's aliases, as the store holds them now.
struct RegistryView {
    std::map<int, std::string> model_of;
    std::map<std::string, std::map<std::string, int>> aliases;

    explicit RegistryView(store::Store& store) {
        for (const auto& v : store.model_versions(""))
            model_of[v.version] = v.model_name;
        for (const auto& name : store.registered_models())
            aliases[name] = store.aliases(name);
    }

    /// The version's aliases, and its registered model (null when unregistered).
    void describe(int version, nlohmann::json& out) const {
        const auto it = model_of.find(version);
        out["registered_model"] = it == model_of.end() ? nlohmann::json() : nlohmann::json(it->second);
        out["aliases"] = nlohmann::json::array();
        if (it != model_of.end())
            for (const auto& [alias, v] : aliases.at(it->second))
                if (v == version) out["aliases"].push_back(alias);
        out["champion"] = std::find(out["aliases"].begin(), out["aliases"].end(), "champion") != out["aliases"].end();
    }
};

nlohmann::json model_summary(const nlohmann::json& card, int version, const RegistryView& registry) {
    nlohmann::json out{{"version", version}};
    registry.describe(version, out);
    for (const char* key : {"run_id", "created_at", "symbol", "interval", "window", "horizons", "quantiles", "data"})
        out[key] = card.value(key, nlohmann::json());
    return out;
}

/// Unavailable, naming why (each series' champion load failure), unless at least one series serves.
void require_some_model(const ServedList& list) {
    std::string why;
    for (const auto& s : list) {
        if (s->model.load()) return;
        try {
            (void)Service::require_model(*s);
        } catch (const Unavailable& e) {
            why += (why.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    throw Unavailable(why.empty() ? "no model is loaded yet (train one with btcml train)" : why);
}

nlohmann::json series_json(const SeriesKey& key) {
    return {{"symbol", key.symbol}, {"interval", format_interval(key.interval)}};
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
    // Ready when at least one series serves; a series whose champion does not load says why.
    const auto list = service.served();
    try {
        require_some_model(*list);
    } catch (const Unavailable& e) {
        problems.emplace_back(e.what());
    }
    nlohmann::json series = nlohmann::json::array();
    for (const auto& s : *list) {
        auto entry = series_json(s->key);
        const auto m = s->model.load();
        entry["model_version"] = m ? nlohmann::json(m->loaded.version) : nlohmann::json();
        // A newer champion that does not load: the previous model serves, and operators learn why.
        if (const auto failure = s->failure.load()) entry["champion_error"] = Service::describe(*failure);
        series.push_back(std::move(entry));
    }
    if (!problems.empty()) {
        std::string detail;
        for (const auto& p : problems)
            detail += (detail.empty() ? "" : "; ") + p;
        return problem_response(503, detail);
    }
    return json_response({{"status", "ready"}, {"series", series}});
}

Response forecast(Service& service, const Request& request) {
    const auto series = served_param(request, service);
    return {200, "application/json", service.current_forecast(*series), {}};
}

Response predict(Service& service, const Request& request) {
    const auto list = service.served();
    require_some_model(*list);
    const auto body = parse_json_body(request);
    const auto symbol = string_member(body, "symbol");
    const auto interval = interval_member(body);
    const auto found = std::find_if(list->begin(), list->end(), [&](const auto& s) {
        return s->key == SeriesKey{symbol, interval};
    });
    if (found == list->end()) {
        std::string serving;
        for (const auto& s : *list)
            serving +=
                fmt::format("{}{} {}", serving.empty() ? "" : ", ", s->key.symbol, format_interval(s->key.interval));
        throw invalid(unmatched_field(*list, symbol), fmt::format("no model serves {} {} (served series: {})", symbol,
                                                                  format_interval(interval), serving));
    }
    const auto m = Service::require_model(**found);
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
    const auto store = service.stores().acquire();
    const RegistryView registry(*store);
    nlohmann::json out{{"registered_models", nlohmann::json::array()}, {"models", nlohmann::json::array()}};
    const auto list = service.served();
    for (const auto& [name, aliases] : registry.aliases) {
        nlohmann::json entry{{"name", name}, {"aliases", aliases}, {"serving", nullptr}};
        if (const auto key = tracking::series_of_model(name)) {
            entry.update(series_json(*key));
            for (const auto& s : *list)
                if (const auto m = s->model.load(); m && s->key == *key) entry["serving"] = m->loaded.version;
        }
        out["registered_models"].push_back(std::move(entry));
    }
    for (const int v : model::list_versions(home)) {
        try {
            out["models"].push_back(model_summary(read_card(home, v), v, registry));
        } catch (const NotFound&) { // a version being written or removed right now: list what is readable
        }
    }
    return json_response(out);
}

Response show_model(Service& service, const Request& request) {
    const int version = version_param(request);
    auto card = read_card(service.options().home, version);
    card["version"] = version;
    const auto store = service.stores().acquire();
    RegistryView(*store).describe(version, card);
    return json_response(card);
}

Response promote(Service& service, const Request& request) {
    const int version = version_param(request);
    std::optional<int> previous;
    std::string model_name;
    {
        auto store = service.stores().acquire();
        previous = promote_champion(*store, service.options(), version);
        model_name = store->model_version(version)->model_name;
    }
    service.poke(); // only the promoted version's series reloads
    return json_response({{"version", version},
                          {"registered_model", model_name},
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
    return {200, "text/plain; version=0.0.4; charset=utf-8", service.metrics().render(), {}};
}

Response openapi(Service&, const Request& request) {
    return asset_response(request, "openapi.json", "application/json", "public, max-age=3600");
}
Response docs(Service&, const Request& request) {
    return asset_response(request, "docs.html", "text/html; charset=utf-8", "public, max-age=3600");
}

Response docs_file(Service&, const Request& request) {
    static constexpr std::pair<std::string_view, std::string_view> kFiles[] = {
        {"swagger-ui.css", "text/css; charset=utf-8"},
        {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
        {"favicon-32x32.png", "image/png"},
    };
    for (const auto& [name, type] : kFiles)
        if (request.params.at(0) == name)
            return asset_response(request, name, std::string(type), "public, max-age=3600");
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
    {{"POST", "/api/v1/alerts", Access::alert, Work::pool}, post_alerts},
    {{"GET", "/api/v1/pipelines", Access::read, Work::pool}, list_pipelines},
    {{"GET", "/api/v1/pipelines/{name}/runs", Access::read, Work::pool}, list_pipeline_runs},
    {{"POST", "/api/v1/pipelines/{name}/runs", Access::write, Work::pool}, start_pipeline_run},
    {{"GET", "/metrics", Access::open, Work::io}, metrics},
    {{"GET", "/openapi.json", Access::open, Work::io}, openapi},
    {{"GET", "/docs", Access::open, Work::io}, docs},
    {{"GET", "/docs/{file}", Access::open, Work::io}, docs_file},
    {{"GET", "/", Access::open, Work::io}, dashboard_page},
    {{"GET", "/ui/{file}", Access::open, Work::io}, dashboard_file},
    {{"GET", "/api/v1/series", Access::read, Work::pool}, list_series},
    {{"GET", "/api/v1/monitoring", Access::read, Work::pool}, get_monitoring},
    {{"GET", "/api/v1/alerts", Access::read, Work::pool}, list_alerts},
    {{"GET", "/api/v1/promotions", Access::read, Work::pool}, list_promotions},
    {{"GET", "/api/v1/runs/{run_id}", Access::read, Work::pool}, show_run},
    {{"GET", "/api/v1/ingest-runs/{id}/rejected", Access::read, Work::pool}, list_rejected},
    {{"GET", "/api/v1/gaps", Access::read, Work::pool}, list_gaps},
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
