#pragma once
// The HTTP API of btcml serve: the route table and its handlers.
#include "core/error.hpp"
#include "serve/http_server.hpp"
#include "serve/service.hpp"

#include <span>
#include <string_view>
#include <vector>

namespace btcml::serve {

/// One row of the route table without its handler (what the OpenAPI check compares against).
struct RouteSpec {
    std::string_view method;
    std::string_view pattern;
    Access access;
    Work work; // where its handler runs: the I/O thread or the worker pool
};

/// Every route the server registers.
std::vector<RouteSpec> route_specs();

/// The routes bound to `service` (which must outlive them).
std::vector<Route> make_routes(Service& service);

// Request parsing shared by the handler files (api.cpp, api_pipelines.cpp, …).

/// A 422-style field error (ErrorKind::invalid) and a 400 one (ErrorKind::usage) naming `field`.
FieldError invalid(std::string field, const std::string& message);
FieldError bad_param(std::string field, const std::string& message);
/// The body as a JSON object: 400 when it is not JSON (or nests deeper than kMaxJsonDepth), 422 when not an object.
nlohmann::json parse_json_body(const Request& request);
/// A required string member of a body object; 422 naming it when missing or not a string.
std::string string_member(const nlohmann::json& object, const char* name);
/// An integer query parameter in [lo, hi]; `fallback` when absent, 400 naming it otherwise.
std::int64_t int_param(const Request& request, const char* name, std::int64_t fallback, std::int64_t lo,
                       std::int64_t hi);

/// The series of ?symbol=&interval= (any stored series); what is not given is the default served series' (the only
/// one served, else BTCUSD 1h). 400 naming the parameter when neither can be resolved.
SeriesKey series_param(const Request& request, const Service& service);

/// POST /api/v1/alerts, Alertmanager's webhook (api_alerts.cpp).
Response post_alerts(Service& service, const Request& request);

/// Largest page GET /api/v1/bars and /api/v1/predictions return.
inline constexpr std::int64_t kMaxPage = 10'000;

/// Deepest nesting of arrays and objects a JSON request body may have (the top-level value is level 1).
inline constexpr int kMaxJsonDepth = 64;

} // namespace btcml::serve
