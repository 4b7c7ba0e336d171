#pragma once
// The /api/v1/pipelines routes: the configured pipelines, their run history and triggering a run (queued for the
// scheduler: src/pipeline/scheduler.hpp).
#include "serve/http_server.hpp"
#include "serve/service.hpp"

namespace btcml::serve {

/// GET /api/v1/pipelines: each configured pipeline, its schedule, last run and next due time.
Response list_pipelines(Service& service, const Request& request);
/// GET /api/v1/pipelines/{name}/runs?limit=N: the newest runs with their task attempts.
Response list_pipeline_runs(Service& service, const Request& request);
/// POST /api/v1/pipelines/{name}/runs {"reason": "..."}: 202 with the queued (or already active) run.
Response start_pipeline_run(Service& service, const Request& request);

} // namespace btcml::serve
