#include "pipeline/catalog.hpp"

#include "core/error.hpp"
#include "core/settings.hpp"
#include "core/time.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>

namespace btcml::pipeline {

std::string pipeline_name(PipelineKind kind, const SeriesKey& key) {
    return fmt::format("{}-{}-{}", kind == PipelineKind::tick ? "tick" : "retrain", key.symbol,
                       format_interval(key.interval));
}

std::vector<SeriesConfig> configured_series(const Config& config) {
    std::vector<SeriesConfig> out;
    if (config.config_file.empty()) return out;
    const auto where = config.config_file.string();
    YAML::Node section;
    try {
        section = YAML::LoadFile(where)["series"];
    } catch (const YAML::Exception& e) {
        throw InvalidInput(fmt::format("config file {}: {}", where, e.what()));
    }
    if (!section || section.IsNull()) return out;
    if (!section.IsSequence())
        throw InvalidInput(
            fmt::format("config file {}: 'series' must be a list of {{symbol, interval, source}}", where));
    for (std::size_t i = 0; i < section.size(); ++i) {
        const auto entry = section[i];
        const auto field = [&](const char* name) -> std::string {
            const auto node = entry[name];
            if (!node) return {};
            if (!node.IsScalar())
                throw InvalidInput(fmt::format("config file {}: series[{}].{} must be a single value", where, i, name));
            return node.as<std::string>();
        };
        if (!entry.IsMap())
            throw InvalidInput(
                fmt::format("config file {}: series[{}] must be a mapping of symbol, interval, source", where, i));
        SeriesConfig series;
        series.key.symbol = field("symbol");
        if (series.key.symbol.empty())
            throw InvalidInput(fmt::format("config file {}: series[{}] has no symbol", where, i));
        const auto interval = field("interval");
        const auto parsed = parse_interval(interval.empty() ? "1h" : interval);
        if (!parsed)
            throw InvalidInput(fmt::format("config file {}: series[{}].interval '{}' is not an interval (e.g. 1h)",
                                           where, i, interval));
        series.key.interval = *parsed;
        series.source = field("source");
        if (std::any_of(out.begin(), out.end(), [&](const SeriesConfig& s) { return s.key == series.key; }))
            throw InvalidInput(fmt::format("config file {}: series[{}] ({} {}) is listed twice", where, i,
                                           series.key.symbol, format_interval(series.key.interval)));
        out.push_back(std::move(series));
    }
    return out;
}

PipelineSettings configured_settings(const Config& config) {
    PipelineSettings settings;
    if (config.config_file.empty()) return settings;
    const auto where = config.config_file.string();
    YAML::Node section;
    try {
        section = YAML::LoadFile(where)["pipelines"];
    } catch (const YAML::Exception& e) {
        throw InvalidInput(fmt::format("config file {}: {}", where, e.what()));
    }
    if (!section || section.IsNull()) return settings;
    if (!section.IsMap()) throw InvalidInput(fmt::format("config file {}: 'pipelines' must be a mapping", where));
    for (const auto& item : section) {
        const auto key = item.first.as<std::string>();
        if (!item.second.IsScalar())
            throw InvalidInput(fmt::format("config file {}: pipelines.{} must be a single value", where, key));
        const auto text = item.second.as<std::string>();
        const auto duration = [&] {
            const auto seconds = parse_interval(text);
            if (!seconds)
                throw InvalidInput(fmt::format("config file {}: pipelines.{} '{}' is not a duration (e.g. 30s, 5m, 1d)",
                                               where, key, text));
            return std::chrono::seconds(*seconds);
        };
        const auto count = [&](int low, int high) {
            int value = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            if (ec != std::errc{} || end != text.data() + text.size() || value < low || value > high)
                throw InvalidInput(fmt::format("config file {}: pipelines.{} '{}' must be a whole number from {} to {}",
                                               where, key, text, low, high));
            return value;
        };
        if (key == "tick_every")
            settings.tick_every = duration();
        else if (key == "retrain_every")
            settings.retrain_every = text == "never" ? std::chrono::seconds(0) : duration();
        else if (key == "attempts")
            settings.attempts = count(1, 100);
        else if (key == "backoff")
            settings.backoff = duration();
        else if (key == "tick_timeout")
            settings.tick_timeout = duration();
        else if (key == "retrain_timeout")
            settings.retrain_timeout = duration();
        else if (key == "epochs")
            settings.epochs = count(1, 10'000);
        else if (key == "lease") {
            settings.lease = duration();
            // Renewed every third of it, at a poll: a shorter lease would expire between two polls of a live holder.
            if (settings.lease < std::chrono::seconds(3))
                throw InvalidInput(
                    fmt::format("config file {}: pipelines.lease '{}' must be at least 3s", where, text));
        } else
            throw InvalidInput(fmt::format("config file {}: unknown key pipelines.{} (known: {})", where, key,
                                           known_keys("pipelines")));
    }
    return settings;
}

std::vector<PipelineSpec> configured_pipelines(const Config& config) {
    const auto settings = configured_settings(config);
    std::vector<PipelineSpec> out;
    for (const auto& series : configured_series(config)) {
        out.push_back({pipeline_name(PipelineKind::tick, series.key), PipelineKind::tick, series,
                       settings.tick_every.value_or(std::chrono::seconds(series.key.interval)), settings.attempts,
                       settings.backoff, settings.tick_timeout, 0});
        out.push_back({pipeline_name(PipelineKind::retrain, series.key), PipelineKind::retrain, series,
                       settings.retrain_every, settings.attempts, settings.backoff, settings.retrain_timeout,
                       settings.epochs});
    }
    return out;
}

std::optional<PipelineSpec> find_pipeline(const std::vector<PipelineSpec>& pipelines, std::string_view name) {
    const auto it =
        std::find_if(pipelines.begin(), pipelines.end(), [&](const PipelineSpec& p) { return p.name == name; });
    if (it == pipelines.end()) return std::nullopt;
    return *it;
}

} // namespace btcml::pipeline
