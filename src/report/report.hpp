#pragma once
// `btcml report`: a self-contained HTML validation report of one model over one period. collect() gathers the data
// (the walk-forward evaluation through pipeline::evaluate, so its numbers are those of `evaluate --json`, the stored
// bars and ingests, the model card, the tracked run's losses and the live record); render_html() draws it with the
// inline SVG charts of svg.hpp and embeds the data as JSON (id="report-data") for machines.
#include "pipeline/train.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace btcml::report {

/// {"evaluation": what `evaluate --json` prints, "per_point": …, "data": …, "model": …, "live": […]}.
/// Errors as pipeline::evaluate (NotFound for an unknown model, InvalidInput for a period without origins).
/// Not thread-safe per Store.
nlohmann::json collect(store::Store& store, const std::filesystem::path& home, pipeline::EvaluateRequest request);

/// The report as one HTML document with no external reference.
std::string render_html(const nlohmann::json& data);

} // namespace btcml::report
