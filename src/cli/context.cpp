#include "cli/context.hpp"

#include "core/log.hpp"

#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace btcml::cli {

void Context::resolve() {
    config = resolve_config(flags);
    log::configure(config.log_format, config.log_level);
}

std::unique_ptr<store::Store> Context::open_store() const { return store::open_store(config.db_url, config.home); }

bool Context::interactive() const {
    return !json && config.log_format == LogFormat::text && isatty(STDERR_FILENO) != 0;
}

void add_json_flag(CLI::App& command, Context& ctx) {
    command.add_flag("--json", ctx.json, "Print exactly one JSON object on stdout");
}

void print_json(const nlohmann::json& value) {
    std::cout << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n' << std::flush;
}

} // namespace btcml::cli
