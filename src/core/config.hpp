#pragma once
// Configuration: every setting resolves with the precedence flag > environment variable > config file > default,
// in this one place. See docs/configuration.md for the list.
#include "core/settings.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace btcml {

enum class LogFormat { text, json };
enum class LogLevel { debug, info, warn, error };

/// Settings given on the command line; unset ones fall through to env, file and defaults.
struct GlobalFlags {
    std::optional<std::string> db;
    std::optional<std::string> home;
    std::optional<std::string> config_file;
    std::optional<std::string> log_format;
    std::optional<std::string> log_level;
    std::optional<std::string> replay_speed; // market seconds per wall second: the process clock replays
    std::optional<std::string> replay_start; // where the replay clock starts
};

/// Resolved settings. A value type: copy freely.
struct Config {
    std::string db_url;                // empty: sqlite under home
    std::filesystem::path home;        // BTCML_HOME
    std::filesystem::path config_file; // the YAML file read, empty if none
    LogFormat log_format = LogFormat::text;
    LogLevel log_level = LogLevel::info;
    std::map<std::string, std::string> file_values; // every scalar key of the config file

    /// Where a resolved value came from.
    enum class Source { flag, env, file, fallback };
    struct Resolved {
        std::string value;
        Source source = Source::fallback;
    };
    /// Resolves `setting` (core/settings.hpp): `flag` if given, else its environment variable, else its key in the
    /// file, else its default. Thread-safe (const).
    [[nodiscard]] Resolved resolve(Setting setting, const std::optional<std::string>& flag = std::nullopt) const;
    [[nodiscard]] std::string value(Setting setting, const std::optional<std::string>& flag = std::nullopt) const {
        return resolve(setting, flag).value;
    }
};

/// Resolves the global settings. The config file is `--config`, else `BTCML_CONFIG`, else `<home>/config.yaml`
/// if it exists. Throws UsageError for unknown values and InvalidInput for a malformed file.
Config resolve_config(const GlobalFlags& flags);

} // namespace btcml
