#pragma once
// The HTTP API of btcml serve: the route table and its handlers.
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

/// A request's JSON body as an object: UsageError (400) when it is not JSON or nests deeper than kMaxJsonDepth,
/// InvalidInput (422) when it is not an object. For the handlers in api_*.cpp.
nlohmann::json parse_json_body(const Request& request);

/// POST /api/v1/alerts, Alertmanager's webhook (api_alerts.cpp).
Response post_alerts(Service& service, const Request& request);

/// Largest page GET /api/v1/bars and /api/v1/predictions return.
inline constexpr std::int64_t kMaxPage = 10'000;

/// Deepest nesting of arrays and objects a JSON request body may have (the top-level value is level 1).
inline constexpr int kMaxJsonDepth = 64;

} // namespace btcml::serve
