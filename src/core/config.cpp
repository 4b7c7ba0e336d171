#include "core/config.hpp"

#include "core/error.hpp"

#include <cstdlib>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace btcml {
namespace {

std::optional<std::string> env(const char* name) {
    if (name == nullptr) return std::nullopt;
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
}

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
        if (!item.second.IsScalar())
            throw InvalidInput(fmt::format("config file {}: '{}' must be a single value", path.string(), key));
        values[key] = item.second.as<std::string>();
    }
    return values;
}

std::filesystem::path default_home() {
    if (auto h = env("HOME")) return std::filesystem::path(*h) / ".btcml";
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

std::string Config::setting(const std::optional<std::string>& flag, const char* env_name, const std::string& file_key,
                            const std::string& fallback) const {
    if (flag) return *flag;
    if (auto e = env(env_name)) return *e;
    if (auto it = file_values.find(file_key); it != file_values.end()) return it->second;
    return fallback;
}

Config resolve_config(const GlobalFlags& flags) {
    Config config;
    // The file may name the home, so the home used to find the default file comes from flag/env/default only.
    const std::filesystem::path early_home =
        flags.home ? *flags.home : env("BTCML_HOME").value_or(default_home().string());
    if (flags.config_file) {
        config.config_file = *flags.config_file;
    } else if (auto e = env("BTCML_CONFIG")) {
        config.config_file = *e;
    } else if (std::filesystem::exists(early_home / "config.yaml")) {
        config.config_file = early_home / "config.yaml";
    }
    if (!config.config_file.empty()) config.file_values = read_config_file(config.config_file);

    config.home = config.setting(flags.home, "BTCML_HOME", "home", default_home().string());
    config.db_url = config.setting(flags.db, "BTCML_DB", "db", "");
    config.log_format = parse_log_format(config.setting(flags.log_format, "BTCML_LOG_FORMAT", "log_format", "text"));
    config.log_level = parse_log_level(config.setting(flags.log_level, "BTCML_LOG_LEVEL", "log_level", "info"));
    return config;
}

} // namespace btcml
