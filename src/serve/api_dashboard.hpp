#pragma once
// The dashboard's page and assets, and the read APIs its views use (api_dashboard.cpp).
#include "serve/http_server.hpp"
#include "serve/service.hpp"

#include <string>
#include <string_view>

namespace btcml::serve {

/// An embedded file with an ETag (a hash of its bytes) and `cache_control`; 304 with no body when the request's
/// If-None-Match holds that ETag, 503 when the file was not embedded at build time.
Response asset_response(const Request& request, std::string_view name, std::string content_type,
                        std::string cache_control);

/// GET / and GET /ui/{file}.
Response dashboard_page(Service& service, const Request& request);
Response dashboard_file(Service& service, const Request& request);

/// GET /api/v1/series, /api/v1/monitoring, /api/v1/alerts, /api/v1/promotions, /api/v1/runs/{run_id},
/// /api/v1/ingest-runs/{id}/rejected and /api/v1/gaps.
Response list_series(Service& service, const Request& request);
Response get_monitoring(Service& service, const Request& request);
Response list_alerts(Service& service, const Request& request);
Response list_promotions(Service& service, const Request& request);
Response show_run(Service& service, const Request& request);
Response list_rejected(Service& service, const Request& request);
Response list_gaps(Service& service, const Request& request);

} // namespace btcml::serve
