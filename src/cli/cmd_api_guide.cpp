// btcml api-guide: the API guide of docs/api.md, rendered from the OpenAPI document embedded in this binary.
#include "cli/commands.hpp"
#include "core/error.hpp"
#include "serve/api_guide.hpp"
#include "serve/assets.hpp"
#include "serve/http_server.hpp"

#include <fmt/format.h>

#include <iostream>

namespace btcml::cli {

void setup_api_guide(CLI::App& app, Context&) {
    auto* cmd = app.add_subcommand("api-guide", "The HTTP API guide as Markdown, from the embedded OpenAPI document "
                                                "(docs/api.md is generated from it)");
    cmd->callback([] {
        const auto document = serve::asset("openapi.json");
        if (!document) throw Unavailable("this binary was built without its OpenAPI document");
        // The examples address a server started with the default host and port (`btcml serve`).
        const serve::ServerOptions defaults;
        std::cout << serve::api_guide_markdown(nlohmann::ordered_json::parse(*document),
                                               fmt::format("http://{}:{}", defaults.host, defaults.port));
    });
}

} // namespace btcml::cli
