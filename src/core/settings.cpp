#include "core/settings.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdlib>

namespace btcml {
namespace {

using S = Setting;

// Indexed by Setting: spec() checks that each entry sits at its own index.
constexpr std::array kSettings{
    SettingSpec{S::home, "home", "BTCML_HOME", "--home DIR", "", "`~/.btcml`",
                "holds the default SQLite file, models and artifacts"},
    SettingSpec{S::db, "db", "BTCML_DB", "--db URL", "", "`sqlite:$BTCML_HOME/btcml.db`",
                "store: `sqlite:PATH` (or a bare path), `postgresql://USER[:PASSWORD]@HOST:PORT/DB` (a connection "
                "attempt gives up after 10 s unless the URL sets `?connect_timeout=N`)"},
    SettingSpec{S::config, "", "BTCML_CONFIG", "--config FILE", "", "`$BTCML_HOME/config.yaml` if it exists",
                "the YAML config file"},
    SettingSpec{S::log_format, "log_format", "BTCML_LOG_FORMAT", "--log-format text|json", "text", "",
                "logs on stderr; `json` is one ECS object per line (`@timestamp` in UTC with milliseconds, "
                "`log.level`, `message`, fields)"},
    SettingSpec{S::log_level, "log_level", "BTCML_LOG_LEVEL", "--log-level LEVEL", "info", "",
                "`debug`, `info`, `warn` or `error`"},
    SettingSpec{S::replay_speed, "replay_speed", "BTCML_REPLAY_SPEED", "--replay-speed X", "", "unset: wall time",
                "replay mode: the process clock runs X market seconds per wall second (3600: an hour per second); "
                "needs a replay start"},
    SettingSpec{S::replay_start, "replay_start", "BTCML_REPLAY_START", "--replay-start TIME", "", "",
                "the market time the replay clock starts at"},
    SettingSpec{S::tracking_uri, "tracking_uri", "BTCML_TRACKING_URI",
                "--tracking-uri URI (train, models promote|rollback, tracking sync)", "", "empty: local tracking only",
                "MLflow tracking server, `http://HOST:PORT`, started with artifact proxying (`mlflow server "
                "--artifacts-destination DIR`)"},
    SettingSpec{S::live_window, "live_window", "", "", "30d", "",
                "the third window of the live metrics, besides 24h and 7d"},
    SettingSpec{S::drift_bars, "drift_bars", "", "", "500", "",
                "latest bars the feature drift (PSI) is measured over (10 to 1,000,000)"},
    SettingSpec{S::api_key, "", "BTCML_API_KEY", "--api-key KEY (serve)", "", "none",
                "key(s) for the write routes of `btcml serve`; several separated by commas", true},
    SettingSpec{S::alert_token, "alert_token", "BTCML_ALERT_TOKEN", "--alert-token TOKEN (serve)", "", "none",
                "the bearer token Alertmanager sends to `POST /api/v1/alerts`; without one the webhook answers 401",
                true},
    SettingSpec{S::scheduler, "scheduler", "BTCML_SCHEDULER", "--scheduler / --no-scheduler (serve)", "false", "",
                "run the built-in scheduler inside `btcml serve` (`true` or `false`)"},
    SettingSpec{S::heartbeat_seconds, "", "BTCML_HEARTBEAT_SECONDS", "", "10", "",
                "how often a training run tells the store it is alive; a run silent for 6 periods is ended as "
                "abandoned by the next command (0.01 to 3600)"},
    SettingSpec{S::log_sink, "log_sink", "BTCML_LOG_SINK", "", "", "unset: no shipping",
                "also ship every log event to this Elasticsearch/OpenSearch server (`http://HOST:9200`, the base URL); "
                "see docs/operations.md"},
    SettingSpec{S::log_sink_index, "log_sink_index", "BTCML_LOG_SINK_INDEX", "", "btcml-logs", "",
                "the data stream the events are written to; the installed index template matches `btcml-logs*`"},
    SettingSpec{S::log_sink_queue, "log_sink_queue", "BTCML_LOG_SINK_QUEUE", "", "10000", "",
                "events that may wait behind the batch being sent (up to 500); more are dropped and counted"},
    SettingSpec{S::log_sink_flush_ms, "log_sink_flush_ms", "BTCML_LOG_SINK_FLUSH_MS", "", "1000", "",
                "the longest an event waits before its batch is sent, in milliseconds"},
    SettingSpec{S::log_sink_user, "", "BTCML_LOG_SINK_USER", "", "", "none",
                "HTTP basic user for the log sink, with `BTCML_LOG_SINK_PASSWORD`"},
    SettingSpec{S::log_sink_password, "", "BTCML_LOG_SINK_PASSWORD", "", "", "none", "that user's password", true},
    SettingSpec{S::log_sink_api_key, "", "BTCML_LOG_SINK_API_KEY", "", "", "none",
                "or an API key for the log sink (`Authorization: ApiKey …`)", true},
    SettingSpec{S::airflow_url, "airflow_url", "BTCML_AIRFLOW_URL", "", "", "none",
                "`btcml serve` relays retrain alerts to this Airflow API server (triggers the DAG `btcml_retrain`) "
                "instead of queueing the built-in scheduler's run; see docs/airflow.md"},
    SettingSpec{S::airflow_username, "", "BTCML_AIRFLOW_USERNAME", "", "", "none",
                "the Airflow user btcml signs in as (`POST /auth/token`); required with `airflow_url`"},
    SettingSpec{S::airflow_password, "", "BTCML_AIRFLOW_PASSWORD", "", "", "none",
                "that user's password; required with `airflow_url`", true},
    SettingSpec{S::quality_max_rejected, "quality_max_rejected", "BTCML_QUALITY_MAX_REJECTED",
                "--max-rejected F (quality)", "0.05", "",
                "largest fraction of rows the series' latest ingest run may have rejected (`btcml quality`)"},
    SettingSpec{S::quality_max_age, "quality_max_age", "BTCML_QUALITY_MAX_AGE", "--max-age D (quality)", "",
                "not checked",
                "largest age of the newest bar (from its close, by the process clock), e.g. `3h` (`btcml quality`)"},
    SettingSpec{S::kaggle_url, "", "BTCML_KAGGLE_URL", "--base-url URL (ingest)", "https://www.kaggle.com", "",
                "API base URL of `kaggle:` sources (mirrors, tests)"},
    SettingSpec{S::kaggle_username, "", "KAGGLE_USERNAME", "", "", "",
                "Kaggle user for `kaggle:` sources, with `KAGGLE_KEY`; else `kaggle.json`"},
    SettingSpec{S::kaggle_key, "", "KAGGLE_KEY", "", "", "", "Kaggle API key for `kaggle:` sources", true},
    SettingSpec{S::kaggle_config_dir, "", "KAGGLE_CONFIG_DIR", "", "", "`~/.kaggle`",
                "the folder of the Kaggle CLI's `kaggle.json` token"},
    SettingSpec{S::bitstamp_url, "", "BTCML_BITSTAMP_URL", "--base-url URL (ingest)", "https://www.bitstamp.net",
                "", "API base URL of `bitstamp:` sources"},
    SettingSpec{S::binance_url, "", "BTCML_BINANCE_URL", "--base-url URL (ingest)", "https://api.binance.com", "",
                "API base URL of `binance:` sources"},
    SettingSpec{S::series, "series", "", "", "", "none",
                "the series the scheduler keeps: a list of `symbol`, `interval` (default 1h), `source` (any ingest "
                "SOURCE); each gets the pipelines `tick-SYMBOL-INTERVAL` and `retrain-SYMBOL-INTERVAL`"},
    SettingSpec{S::pipelines_tick_every, "pipelines.tick_every", "", "", "", "the series' interval",
                "how often the tick runs (ingest, forecast, score)"},
    SettingSpec{S::pipelines_retrain_every, "pipelines.retrain_every", "", "", "1d", "",
                "how often the retrain runs (train, gate, reload), or `never`: on triggers only"},
    SettingSpec{S::pipelines_attempts, "pipelines.attempts", "", "", "3", "",
                "attempts per task, the first included (1 to 100)"},
    SettingSpec{S::pipelines_backoff, "pipelines.backoff", "", "", "1s", "",
                "wait before the 2nd attempt; doubled for each next one, at most 5 minutes"},
    SettingSpec{S::pipelines_tick_timeout, "pipelines.tick_timeout", "", "", "5m", "", "per task attempt of a tick"},
    SettingSpec{S::pipelines_retrain_timeout, "pipelines.retrain_timeout", "", "", "1h", "",
                "per task attempt of a retrain (training stops after its current epoch)"},
    SettingSpec{S::pipelines_epochs, "pipelines.epochs", "", "", "", "the champion's",
                "retrain epochs (1 to 10,000); the champion's window, horizons and hyperparameters are reused"},
    SettingSpec{S::pipelines_lease, "pipelines.lease", "", "", "30s", "",
                "how long a scheduler's hold on a pipeline lasts unless renewed (every third of it; at least 3s, and "
                "longer than three polls); when its scheduler dies another takes the pipeline over after this"},
};

std::string code_or_dash(std::string_view text) { return text.empty() ? "—" : fmt::format("`{}`", text); }

std::string shown_default(const SettingSpec& s) {
    if (!s.shown.empty()) return std::string(s.shown);
    return s.fallback.empty() ? "—" : fmt::format("`{}`", s.fallback);
}

} // namespace

std::span<const SettingSpec> all_settings() { return kSettings; }

const SettingSpec& spec(Setting setting) {
    const auto& s = kSettings.at(static_cast<std::size_t>(setting));
    if (s.id != setting) std::abort(); // the table is out of order: a programmer error caught by every test run
    return s;
}

std::optional<std::string> env_value(Setting setting) {
    const auto name = spec(setting).env;
    if (name.empty()) return std::nullopt;
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}

std::string known_keys(std::string_view section) {
    std::string out;
    for (const auto& s : kSettings) {
        std::string_view key = s.key;
        if (key.empty()) continue;
        const auto dot = key.find('.');
        if (section.empty() ? dot != std::string_view::npos
                            : (dot == std::string_view::npos || key.substr(0, dot) != section))
            continue;
        if (!section.empty()) key.remove_prefix(dot + 1);
        out += fmt::format("{}{}", out.empty() ? "" : ", ", key);
    }
    return out;
}

std::string flag_help(Setting setting) {
    const auto& s = spec(setting);
    std::string text(s.meaning);
    std::string where;
    if (!s.env.empty()) where += fmt::format("env {}", s.env);
    if (!s.key.empty()) where += fmt::format("{}config {}", where.empty() ? "" : ", ", s.key);
    if (!s.fallback.empty()) where += fmt::format("{}default {}", where.empty() ? "" : ", ", s.fallback);
    if (!where.empty()) text += fmt::format(" ({})", where);
    return text;
}

std::string settings_reference_markdown() {
    std::string out = "| file key | env | flag | default | meaning |\n|---|---|---|---|---|\n";
    for (const auto& s : kSettings) {
        std::string flag = s.flag.empty() ? "—" : fmt::format("`{}`", s.flag);
        // A | inside a table cell must be escaped, even inside code.
        for (std::size_t at = 0; (at = flag.find('|', at)) != std::string::npos; at += 2)
            flag.replace(at, 1, "\\|");
        out += fmt::format("| {} | {} | {} | {} | {}{} |\n", code_or_dash(s.key), code_or_dash(s.env), flag,
                           shown_default(s), s.meaning, s.secret ? " (secret: `config show` never prints it)" : "");
    }
    return out;
}

} // namespace btcml
