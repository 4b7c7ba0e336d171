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
    Migration{2, "predictions",
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
};

} // namespace

std::span<const Migration> migrations() { return kMigrations; }

} // namespace btcml::store
