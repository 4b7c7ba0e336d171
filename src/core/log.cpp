#include "core/log.hpp"

#include "core/time.hpp"

#include <chrono>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace btcml::log {
namespace {

struct State {
    LogFormat format = LogFormat::text;
    std::shared_ptr<spdlog::logger> logger;
    State() : logger(spdlog::stderr_logger_mt("btcml")) {
        logger->set_pattern("%v");
        logger->set_level(spdlog::level::info);
    }
};

State& state() {
    static State s;
    return s;
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
    }
    return spdlog::level::info;
}

const char* level_name(LogLevel level) {
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    }
    return "info";
}

std::string timestamp() {
    return format_iso8601_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

} // namespace

void configure(LogFormat format, LogLevel level) {
    state().format = format;
    state().logger->set_level(to_spdlog(level));
}

void write(LogLevel level, std::string_view message, const nlohmann::json& fields) {
    auto& s = state();
    const auto spd_level = to_spdlog(level);
    if (!s.logger->should_log(spd_level)) return;
    if (s.format == LogFormat::json) {
        // Written field by field rather than merged into one object first: the server logs every request.
        const auto dump = [](const nlohmann::json& v) {
            return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        };
        std::string line = fmt::format(R"({{"@timestamp":"{}","log.level":"{}","message":{},"service.name":"btcml")",
                                       timestamp(), level_name(level), dump(nlohmann::json(message)));
        for (const auto& [k, v] : fields.items()) {
            if (k == "@timestamp" || k == "log.level" || k == "message" || k == "service.name") continue;
            line += fmt::format(",{}:{}", dump(nlohmann::json(k)), dump(v));
        }
        line += '}';
        s.logger->log(spd_level, line);
        return;
    }
    std::string text = fmt::format("{} {:<5} {}", timestamp(), level_name(level), message);
    for (const auto& [k, v] : fields.items())
        text += fmt::format(" {}={}", k, v.is_string() ? v.get<std::string>() : v.dump());
    s.logger->log(spd_level, text);
}

} // namespace btcml::log
