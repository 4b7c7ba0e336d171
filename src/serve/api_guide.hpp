#pragma once
// The API guide: docs/api.md's generated part, rendered from the OpenAPI document the server embeds and serves, so
// that the guide cannot describe another API than the one served.
#include <nlohmann/json.hpp>

#include <string>

namespace btcml::serve {

/// The guide to the OpenAPI document `spec` as Markdown: per tag (in the document's order), every operation with its
/// method and path, auth, parameters, request body fields, responses and a curl example built from the document's
/// examples against `base_url`. Throws std::invalid_argument on a document without `paths`. Thread-safe.
std::string api_guide_markdown(const nlohmann::ordered_json& spec, const std::string& base_url);

} // namespace btcml::serve
