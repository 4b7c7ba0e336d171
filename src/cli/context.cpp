#include "cli/context.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"

#include <fast_float/fast_float.h>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace btcml::cli {

namespace {

// Replay mode (core/time.hpp): flag, env or config key; the start is required, since only the user knows where
// the replayed data should begin to be revealed.
void start_clock(const Config& config, const GlobalFlags& flags) {
    const auto speed_text = config.value(Setting::replay_speed, flags.replay_speed);
    if (speed_text.empty()) return;
    double speed = 0;
    const auto res = fast_float::from_chars(speed_text.data(), speed_text.data() + speed_text.size(), speed);
    if (res.ec != std::errc{} || res.ptr != speed_text.data() + speed_text.size())
        throw UsageError(fmt::format("--replay-speed: '{}' is not a number (3600: an hour per second)", speed_text));
    const auto start_text = config.value(Setting::replay_start, flags.replay_start);
    if (start_text.empty())
        throw UsageError("--replay-speed needs --replay-start TIME: the market time the replay clock starts at");
    start_replay_clock(parse_time_arg(start_text, "--replay-start"), speed);
    log::info("replay clock started", {{"start", format_iso8601(now_unix())}, {"speed", speed}});
}

} // namespace

void Context::resolve() {
    config = resolve_config(flags);
    log::configure(config.log_format, config.log_level);
    if (auto sink_options = monitor::log_sink_options(config)) {
        log_sink = std::make_unique<monitor::LogSink>(std::move(*sink_options));
        log::forward_to([sink = log_sink.get()](std::string document) { sink->enqueue(std::move(document)); });
    }
    start_clock(config, flags);
}

Context::~Context() {
    // Every command's threads have ended here; the sink then sends what is queued.
    log::forward_to({});
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
