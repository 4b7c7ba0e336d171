#include "core/log.hpp"

#include "core/time.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <fmt/format.h>
#include <random>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <utility>

namespace btcml::log {
namespace {

constexpr std::string_view kEcsVersion = "8.11.0";

struct State {
    LogFormat format = LogFormat::text;
    Forwarder forwarder;
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

thread_local std::string current_trace;
thread_local bool local_only = false;

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

/// ECS field sets a caller may name directly; any other field is ours and goes under `btcml.`, so that it can
/// never clash with a field ECS defines later.
bool is_ecs_field(std::string_view key) {
    static constexpr std::array<std::string_view, 22> kSets = {
        "client", "container", "destination", "ecs",     "error",   "event",  "file",    "host",
        "http",   "labels",    "log",         "network", "process", "server", "service", "source",
        "span",   "trace",     "transaction", "url",     "user",    "btcml"};
    const auto dot = key.find('.');
    if (dot == std::string_view::npos) return false;
    const auto set = key.substr(0, dot);
    return std::find(kSets.begin(), kSets.end(), set) != kSets.end();
}

/// The fields every event carries, after `@timestamp`, `log.level` and `message`; fixed for the process.
const std::string& constant_fields() {
    static const std::string fields = [] {
        std::array<char, 256> host{};
        if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
        return fmt::format(R"("ecs.version":"{}","service.name":"btcml","service.version":"{}",)"
                           R"("process.pid":{},"host.hostname":{})",
                           kEcsVersion, BTCML_VERSION, getpid(), nlohmann::json(host.data()).dump());
    }();
    return fields;
}

std::string dump(const nlohmann::json& v) { return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

} // namespace

void configure(LogFormat format, LogLevel level) {
    state().format = format;
    state().logger->set_level(to_spdlog(level));
}

void forward_to(Forwarder forwarder) { state().forwarder = std::move(forwarder); }

std::string ecs_document(LogLevel level, std::string_view message, const nlohmann::json& fields) {
    // Written field by field rather than merged into one object first: the server logs every request.
    std::string line = fmt::format(R"({{"@timestamp":"{}","log.level":"{}","message":{},{})", timestamp(),
                                   level_name(level), dump(nlohmann::json(message)), constant_fields());
    if (!current_trace.empty() && !fields.contains("trace.id"))
        line += fmt::format(R"(,"trace.id":"{}")", current_trace);
    if (!fields.contains("event.dataset")) line += R"(,"event.dataset":"btcml.log")";
    for (const auto& [k, v] : fields.items()) {
        if (k == "@timestamp" || k == "log.level" || k == "message" || k.starts_with("service.")) continue;
        line += fmt::format(",{}:{}", dump(nlohmann::json(is_ecs_field(k) ? k : "btcml." + k)), dump(v));
    }
    line += '}';
    return line;
}

void write(LogLevel level, std::string_view message, const nlohmann::json& fields) {
    auto& s = state();
    const auto spd_level = to_spdlog(level);
    if (!s.logger->should_log(spd_level)) return;
    const bool forward = s.forwarder && !local_only;
    if (s.format == LogFormat::json || forward) {
        auto document = ecs_document(level, message, fields);
        if (s.format == LogFormat::json) s.logger->log(spd_level, document);
        if (forward) s.forwarder(std::move(document));
        if (s.format == LogFormat::json) return;
    }
    std::string text = fmt::format("{} {:<5} {}", timestamp(), level_name(level), message);
    if (!current_trace.empty()) text += fmt::format(" trace.id={}", current_trace);
    for (const auto& [k, v] : fields.items())
        text += fmt::format(" {}={}", k, v.is_string() ? v.get<std::string>() : v.dump());
    s.logger->log(spd_level, text);
}

std::string new_trace_id() {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::uint64_t high = 0;
    while (high == 0)
        high = engine();
    return fmt::format("{:016x}{:016x}", high, engine());
}

TraceScope::TraceScope(std::string trace_id) : previous_(std::exchange(current_trace, std::move(trace_id))) {}
TraceScope::~TraceScope() { current_trace = std::move(previous_); }

LocalOnly::LocalOnly() : previous_(std::exchange(local_only, true)) {}
LocalOnly::~LocalOnly() { local_only = previous_; }

} // namespace btcml::log
