#pragma once
// The one definition of every setting a user can give btcml outside a command's own flags: its config-file key,
// environment variable, flag, default and meaning. The code reads them through it (Config::value, env_value), the
// help texts of their flags and the reference in docs/configuration.md are generated from it (`btcml config
// reference`), and a config file with a key it does not list is refused.
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace btcml {

enum class Setting {
    home,
    db,
    config,
    log_format,
    log_level,
    replay_speed,
    replay_start,
    tracking_uri,
    live_window,
    drift_bars,
    api_key,
    alert_token,
    scheduler,
    heartbeat_seconds,
    log_sink,
    log_sink_index,
    log_sink_queue,
    log_sink_flush_ms,
    log_sink_user,
    log_sink_password,
    log_sink_api_key,
    airflow_url,
    airflow_username,
    airflow_password,
    quality_max_rejected,
    quality_max_age,
    kaggle_url,
    kaggle_username,
    kaggle_key,
    kaggle_config_dir,
    bitstamp_url,
    binance_url,
    series,
    pipelines_tick_every,
    pipelines_retrain_every,
    pipelines_attempts,
    pipelines_backoff,
    pipelines_tick_timeout,
    pipelines_retrain_timeout,
    pipelines_epochs,
    pipelines_lease,
};

struct SettingSpec {
    Setting id;
    std::string_view key;      // config-file key ("pipelines.attempts" inside a section); empty: not in the file
    std::string_view env;      // environment variable; empty: none
    std::string_view flag;     // the flag that sets it, with the commands that take it; empty: none
    std::string_view fallback; // the value used when nothing sets it; empty: unset
    std::string_view shown;    // the default as the reference shows it, when `fallback` alone would not say it
    std::string_view meaning;
    bool secret = false; // never printed by `btcml config show`
};

/// Every setting, in the order of the reference. Thread-safe (constant).
std::span<const SettingSpec> all_settings();
/// The definition of one setting. Thread-safe.
const SettingSpec& spec(Setting setting);
/// The environment variable of `setting` when it is set and not empty. Thread-safe.
std::optional<std::string> env_value(Setting setting);
/// The config-file keys of `section` ("" for the top level, "pipelines" for that mapping), comma-separated, for
/// messages. Thread-safe.
std::string known_keys(std::string_view section);
/// A flag's help text: its meaning, followed by its environment variable, file key and default. Thread-safe.
std::string flag_help(Setting setting);
/// The Markdown reference table of docs/configuration.md. Thread-safe.
std::string settings_reference_markdown();

} // namespace btcml
