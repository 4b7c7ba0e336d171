#include "store/migrations.hpp"

#include <array>

namespace btcml::store {
namespace {

// Times are unix seconds (UTC) and intervals seconds in both backends, so that results compare bit for bit.
constexpr std::array kMigrations{
    Migration{1, "bars, ingest runs and rejected rows",
              R"sql(
CREATE TABLE bars (
    symbol TEXT NOT NULL,
    interval_s INTEGER NOT NULL,
    open_time INTEGER NOT NULL,
    open REAL NOT NULL,
    high REAL NOT NULL,
    low REAL NOT NULL,
    close REAL NOT NULL,
    volume REAL NOT NULL,
    complete INTEGER NOT NULL DEFAULT 1,
    source TEXT NOT NULL,
    PRIMARY KEY (symbol, interval_s, open_time)
) WITHOUT ROWID;
CREATE TABLE ingest_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    format TEXT NOT NULL DEFAULT '',
    symbol TEXT NOT NULL DEFAULT '',
    interval_s INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_inserted INTEGER NOT NULL DEFAULT 0,
    rows_duplicate INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    first_time INTEGER,
    last_time INTEGER,
    missing_bars INTEGER NOT NULL DEFAULT 0,
    summary_json TEXT NOT NULL DEFAULT ''
);
CREATE TABLE rejected_rows (
    run_id INTEGER NOT NULL REFERENCES ingest_runs(id),
    line_number INTEGER NOT NULL,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, line_number)
);
)sql",
              R"sql(
CREATE TABLE bars (
    symbol TEXT NOT NULL,
    interval_s BIGINT NOT NULL,
    open_time BIGINT NOT NULL,
    open DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    close DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION NOT NULL,
    complete BOOLEAN NOT NULL DEFAULT TRUE,
    source TEXT NOT NULL,
    PRIMARY KEY (symbol, interval_s, open_time)
);
CREATE TABLE ingest_runs (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    format TEXT NOT NULL DEFAULT '',
    symbol TEXT NOT NULL DEFAULT '',
    interval_s BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    rows_read BIGINT NOT NULL DEFAULT 0,
    rows_inserted BIGINT NOT NULL DEFAULT 0,
    rows_duplicate BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    first_time BIGINT,
    last_time BIGINT,
    missing_bars BIGINT NOT NULL DEFAULT 0,
    summary_json TEXT NOT NULL DEFAULT ''
);
CREATE TABLE rejected_rows (
    run_id BIGINT NOT NULL REFERENCES ingest_runs(id),
    line_number BIGINT NOT NULL,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, line_number)
);
)sql"},
    Migration{2, "experiment tracking and model registry",
              R"sql(
CREATE TABLE tracked_runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER,
    tracking_uri TEXT NOT NULL DEFAULT '',
    remote_id TEXT NOT NULL DEFAULT '',
    remote_experiment_id TEXT NOT NULL DEFAULT '',
    artifact_uri TEXT NOT NULL DEFAULT '',
    remote_status TEXT NOT NULL DEFAULT ''
);
CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    step INTEGER NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    path TEXT NOT NULL,
    local_path TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
CREATE TABLE model_versions (
    version INTEGER PRIMARY KEY,
    model_name TEXT NOT NULL REFERENCES registered_models(name),
    run_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    gate_json TEXT NOT NULL DEFAULT '{}',
    remote_version TEXT NOT NULL DEFAULT ''
);
CREATE TABLE model_aliases (
    model_name TEXT NOT NULL REFERENCES registered_models(name),
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (model_name, alias)
);
CREATE TABLE alias_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER,
    previous INTEGER,
    changed_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
)sql",
              R"sql(
CREATE TABLE tracked_runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT,
    tracking_uri TEXT NOT NULL DEFAULT '',
    remote_id TEXT NOT NULL DEFAULT '',
    remote_experiment_id TEXT NOT NULL DEFAULT '',
    artifact_uri TEXT NOT NULL DEFAULT '',
    remote_status TEXT NOT NULL DEFAULT ''
);
CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    synced BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    synced BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    seq BIGINT NOT NULL,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    step BIGINT NOT NULL,
    synced BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL REFERENCES tracked_runs(id),
    path TEXT NOT NULL,
    local_path TEXT NOT NULL,
    synced BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);
CREATE TABLE model_versions (
    version BIGINT PRIMARY KEY,
    model_name TEXT NOT NULL REFERENCES registered_models(name),
    run_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    gate_json TEXT NOT NULL DEFAULT '{}',
    remote_version TEXT NOT NULL DEFAULT ''
);
CREATE TABLE model_aliases (
    model_name TEXT NOT NULL REFERENCES registered_models(name),
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (model_name, alias)
);
CREATE TABLE alias_history (
    id BIGSERIAL PRIMARY KEY,
    model_name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT,
    previous BIGINT,
    changed_ms BIGINT NOT NULL,
    reason TEXT NOT NULL
);
)sql"},
    Migration{3, "predictions",
              R"sql(
CREATE TABLE predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    interval_s INTEGER NOT NULL,
    origin_time INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    target_time INTEGER NOT NULL,
    price REAL NOT NULL,
    lower REAL NOT NULL,
    upper REAL NOT NULL,
    log_return REAL NOT NULL,
    input_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (model_version, symbol, interval_s, origin_time, horizon, input_hash)
);
CREATE INDEX predictions_by_target ON predictions (target_time);
)sql",
              R"sql(
CREATE TABLE predictions (
    id BIGSERIAL PRIMARY KEY,
    model_version BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    interval_s BIGINT NOT NULL,
    origin_time BIGINT NOT NULL,
    horizon BIGINT NOT NULL,
    target_time BIGINT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    lower DOUBLE PRECISION NOT NULL,
    upper DOUBLE PRECISION NOT NULL,
    log_return DOUBLE PRECISION NOT NULL,
    input_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (model_version, symbol, interval_s, origin_time, horizon, input_hash)
);
CREATE INDEX predictions_by_target ON predictions (target_time);
)sql"},
    // Unix milliseconds of a running run's last sign of life; NULL until its first beat (its start counts).
    Migration{4, "run heartbeats",
              R"sql(
ALTER TABLE ingest_runs ADD COLUMN heartbeat_ms INTEGER;
ALTER TABLE tracked_runs ADD COLUMN heartbeat_ms INTEGER;
)sql",
              R"sql(
ALTER TABLE ingest_runs ADD COLUMN heartbeat_ms BIGINT;
ALTER TABLE tracked_runs ADD COLUMN heartbeat_ms BIGINT;
)sql"},
    // Pipeline runs (queued by a schedule, an alert, the API or the CLI; one active run per pipeline, enforced by a
    // partial unique index so that concurrent triggers in any process share it), their tasks' attempts, the leases
    // that let one scheduler run a pipeline at a time, and the Alertmanager notifications received (deduplicated).
    Migration{5, "pipelines and alerts",
              R"sql(
CREATE TABLE pipeline_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    queued_ms INTEGER NOT NULL,
    clock_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    result_json TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX pipeline_runs_active ON pipeline_runs (pipeline) WHERE status IN ('queued', 'running');
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline, id);
CREATE TABLE pipeline_tasks (
    run_id INTEGER NOT NULL REFERENCES pipeline_runs(id),
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    detail_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, task, attempt)
);
CREATE TABLE pipeline_leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE alert_notifications (
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels_json TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL DEFAULT '',
    run_id INTEGER,
    PRIMARY KEY (group_key, fingerprint, starts_at, status)
);
)sql",
              R"sql(
CREATE TABLE pipeline_runs (
    id BIGSERIAL PRIMARY KEY,
    pipeline TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    queued_ms BIGINT NOT NULL,
    clock_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    result_json TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX pipeline_runs_active ON pipeline_runs (pipeline) WHERE status IN ('queued', 'running');
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline, id);
CREATE TABLE pipeline_tasks (
    run_id BIGINT NOT NULL REFERENCES pipeline_runs(id),
    task TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    detail_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, task, attempt)
);
CREATE TABLE pipeline_leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE alert_notifications (
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels_json TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '',
    run_id BIGINT,
    PRIMARY KEY (group_key, fingerprint, starts_at, status)
);
)sql"},
    // Where a stored forecast came from: `scheduled` (the champion's forecast of the latest bar, made by the
    // scheduler: the only ones that count toward model quality) or `client` (POST /api/v1/predict).
    Migration{6, "prediction provenance",
              R"sql(
ALTER TABLE predictions ADD COLUMN provenance TEXT NOT NULL DEFAULT 'client';
)sql",
              R"sql(
ALTER TABLE predictions ADD COLUMN provenance TEXT NOT NULL DEFAULT 'client';
)sql"}, // Live scoring (src/monitor): one score per stored forecast once its target bar is stored, the rolling live
    // metrics computed from them (appended on every pass: the history the dashboard reads) and the drift of the
    // champion's input features.
    Migration{7, "live scores, live metrics and feature drift",
              R"sql(
CREATE INDEX predictions_by_series ON predictions (symbol, interval_s, target_time);
CREATE TABLE prediction_scores (
    prediction_id INTEGER PRIMARY KEY REFERENCES predictions(id),
    symbol TEXT NOT NULL,
    interval_s INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    provenance TEXT NOT NULL,
    target_time INTEGER NOT NULL,
    realised_log_return REAL NOT NULL,
    error REAL NOT NULL,
    inside INTEGER NOT NULL,
    pinball REAL NOT NULL,
    baseline_pinball REAL,
    direction_hit INTEGER,
    scored_ms INTEGER NOT NULL
);
CREATE INDEX prediction_scores_by_series ON prediction_scores (symbol, interval_s, target_time);
CREATE TABLE live_metrics (
    computed_ms INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    interval_s INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    window_s INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    mae REAL NOT NULL,
    naive_mae REAL NOT NULL,
    pinball REAL NOT NULL,
    baseline_pinball REAL,
    coverage_80 REAL NOT NULL,
    direction_accuracy REAL,
    PRIMARY KEY (symbol, interval_s, computed_ms, model_version, horizon, window_s)
);
CREATE TABLE feature_drift (
    computed_ms INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    interval_s INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    feature TEXT NOT NULL,
    psi REAL NOT NULL,
    bars INTEGER NOT NULL,
    PRIMARY KEY (symbol, interval_s, computed_ms, feature)
);
)sql",
              R"sql(
CREATE INDEX predictions_by_series ON predictions (symbol, interval_s, target_time);
CREATE TABLE prediction_scores (
    prediction_id BIGINT PRIMARY KEY REFERENCES predictions(id),
    symbol TEXT NOT NULL,
    interval_s BIGINT NOT NULL,
    model_version BIGINT NOT NULL,
    horizon BIGINT NOT NULL,
    provenance TEXT NOT NULL,
    target_time BIGINT NOT NULL,
    realised_log_return DOUBLE PRECISION NOT NULL,
    error DOUBLE PRECISION NOT NULL,
    inside BIGINT NOT NULL,
    pinball DOUBLE PRECISION NOT NULL,
    baseline_pinball DOUBLE PRECISION,
    direction_hit BIGINT,
    scored_ms BIGINT NOT NULL
);
CREATE INDEX prediction_scores_by_series ON prediction_scores (symbol, interval_s, target_time);
CREATE TABLE live_metrics (
    computed_ms BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    interval_s BIGINT NOT NULL,
    model_version BIGINT NOT NULL,
    horizon BIGINT NOT NULL,
    window_s BIGINT NOT NULL,
    scored BIGINT NOT NULL,
    mae DOUBLE PRECISION NOT NULL,
    naive_mae DOUBLE PRECISION NOT NULL,
    pinball DOUBLE PRECISION NOT NULL,
    baseline_pinball DOUBLE PRECISION,
    coverage_80 DOUBLE PRECISION NOT NULL,
    direction_accuracy DOUBLE PRECISION,
    PRIMARY KEY (symbol, interval_s, computed_ms, model_version, horizon, window_s)
);
CREATE TABLE feature_drift (
    computed_ms BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    interval_s BIGINT NOT NULL,
    model_version BIGINT NOT NULL,
    feature TEXT NOT NULL,
    psi DOUBLE PRECISION NOT NULL,
    bars BIGINT NOT NULL,
    PRIMARY KEY (symbol, interval_s, computed_ms, feature)
);
)sql"},
    // Online interval calibration (src/model/calibration.hpp): model versions are immutable once published, so the
    // state that live scoring updates lives here, one row per version and horizon.
    Migration{8, "online interval calibration state",
              R"sql(
CREATE TABLE calibration_state (
    model_version INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    log_scale_low REAL NOT NULL,
    log_scale_high REAL NOT NULL,
    updates INTEGER NOT NULL,
    last_target_time INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (model_version, horizon)
);
)sql",
              R"sql(
CREATE TABLE calibration_state (
    model_version BIGINT NOT NULL,
    horizon BIGINT NOT NULL,
    log_scale_low DOUBLE PRECISION NOT NULL,
    log_scale_high DOUBLE PRECISION NOT NULL,
    updates BIGINT NOT NULL,
    last_target_time BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (model_version, horizon)
);
)sql"},
};

} // namespace

std::span<const Migration> migrations() { return kMigrations; }

} // namespace btcml::store
