#pragma once
// Files embedded into the binary at build time (CMake generates the table): the OpenAPI document, the /docs page
// and Swagger UI from npm's swagger-ui-dist (absent when it was not installed before the build).
#include <optional>
#include <string_view>

namespace btcml::serve {

/// The embedded file named `name` (e.g. `openapi.json`, `swagger-ui.css`), or nothing.
std::optional<std::string_view> asset(std::string_view name);

} // namespace btcml::serve
