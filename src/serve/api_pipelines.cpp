#include "serve/api_pipelines.hpp"

#include "core/error.hpp"
#include "pipeline/scheduler.hpp"
#include "serve/api.hpp"

#include <fmt/format.h>

namespace btcml::serve {
namespace {

const pipeline::PipelineSpec& pipeline_param(const Service& service, const Request& request) {
    const auto& pipelines = service.options().pipelines;
    const std::string name(request.params.at(0));
    const auto it = std::find_if(pipelines.begin(), pipelines.end(),
                                 [&](const pipeline::PipelineSpec& p) { return p.name == name; });
    if (it == pipelines.end()) {
        std::string known;
        for (const auto& p : pipelines)
            known += fmt::format("{}{}", known.empty() ? "" : ", ", p.name);
        throw NotFound(fmt::format("no pipeline '{}' is configured (configured: {})", name,
                                   known.empty() ? "none: the config file has no series: section" : known));
    }
    return *it;
}

} // namespace

Response list_pipelines(Service& service, const Request&) {
    auto store = service.stores().acquire();
    return json_response({{"pipelines", pipeline::describe_pipelines(*store, service.options().pipelines)}});
}

Response list_pipeline_runs(Service& service, const Request& request) {
    const auto& spec = pipeline_param(service, request);
    const auto limit = int_param(request, "limit", 20, 1, 100);
    auto store = service.stores().acquire();
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& run : store->pipeline_runs(spec.name, limit)) {
        const auto tasks = store->pipeline_tasks(run.id);
        runs.push_back(pipeline::to_json(run, &tasks));
    }
    return json_response({{"pipeline", spec.name}, {"runs", runs}});
}

Response start_pipeline_run(Service& service, const Request& request) {
    const auto& spec = pipeline_param(service, request);
    const auto body = parse_json_body(request);
    const auto reason = string_member(body, "reason");
    if (reason.empty()) throw invalid("reason", "reason must say why the run is wanted");
    if (reason.size() > 1000) throw invalid("reason", "reason is longer than 1000 characters");
    auto store = service.stores().acquire();
    const auto [run, created] = pipeline::enqueue(*store, service.options().pipelines, spec.name, "api", reason);
    return json_response({{"run", pipeline::to_json(run)}, {"created", created}}, 202);
}

} // namespace btcml::serve
