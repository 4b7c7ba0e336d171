#include "core/config.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace btcml {
namespace {

std::map<std::string, std::string> read_config_file(const std::filesystem::path& path) {
    std::map<std::string, std::string> values;
    YAML::Node root;
    try {
        root = YAML::LoadFile(path.string());
    } catch (const YAML::BadFile&) {
        throw UsageError(fmt::format("config file {} cannot be read", path.string()));
    } catch (const YAML::Exception& e) {
        throw InvalidInput(fmt::format("config file {}: {}", path.string(), e.what()));
    }
    if (root.IsNull()) return values;
    if (!root.IsMap())
        throw InvalidInput(fmt::format("config file {}: expected a mapping of key: value", path.string()));
    for (const auto& item : root) {
        const auto key = item.first.as<std::string>();
        // Structured sections belong to the subsystem that reads them from config_file (src/pipeline).
        if (key == "series" || key == "pipelines") continue;
        const auto settings = all_settings();
        if (std::none_of(settings.begin(), settings.end(), [&](const SettingSpec& s) { return s.key == key; })) {
            throw InvalidInput(fmt::format("config file {}: unknown key '{}' (known: {}; see docs/configuration.md)",
                                           path.string(), key, known_keys("")));
        }
        if (!item.second.IsScalar())
            throw InvalidInput(fmt::format("config file {}: '{}' must be a single value", path.string(), key));
        values[key] = item.second.as<std::string>();
    }
    return values;
}

std::filesystem::path default_home() {
    if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::filesystem::path(h) / ".btcml";
    return std::filesystem::current_path() / ".btcml";
}

LogFormat parse_log_format(const std::string& s) {
    if (s == "text") return LogFormat::text;
    if (s == "json") return LogFormat::json;
    throw UsageError(fmt::format("--log-format: '{}' is not one of text, json", s));
}

LogLevel parse_log_level(const std::string& s) {
    if (s == "debug") return LogLevel::debug;
    if (s == "info") return LogLevel::info;
    if (s == "warn" || s == "warning") return LogLevel::warn;
    if (s == "error") return LogLevel::error;
    throw UsageError(fmt::format("--log-level: '{}' is not one of debug, info, warn, error", s));
}

} // namespace

Config::Resolved Config::resolve(Setting setting, const std::optional<std::string>& flag) const {
    if (flag) return {*flag, Source::flag};
    if (auto e = env_value(setting)) return {*e, Source::env};
    const auto& s = spec(setting);
    if (!s.key.empty())
        if (auto it = file_values.find(std::string(s.key)); it != file_values.end()) return {it->second, Source::file};
    return {std::string(s.fallback), Source::fallback};
}

Config resolve_config(const GlobalFlags& flags) {
    Config config;
    // The file may name the home, so the home used to find the default file comes from flag/env/default only.
    const std::filesystem::path early_home =
        flags.home ? *flags.home : env_value(Setting::home).value_or(default_home().string());
    if (flags.config_file) {
        config.config_file = *flags.config_file;
    } else if (auto e = env_value(Setting::config)) {
        config.config_file = *e;
    } else if (std::filesystem::exists(early_home / "config.yaml")) {
        config.config_file = early_home / "config.yaml";
    }
    if (!config.config_file.empty()) config.file_values = read_config_file(config.config_file);

    const auto home = config.resolve(Setting::home, flags.home);
    config.home = home.source == Config::Source::fallback ? default_home() : std::filesystem::path(home.value);
    config.db_url = config.value(Setting::db, flags.db);
    config.log_format = parse_log_format(config.value(Setting::log_format, flags.log_format));
    config.log_level = parse_log_level(config.value(Setting::log_level, flags.log_level));
    return config;
}

} // namespace btcml
