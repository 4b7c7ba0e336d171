#include "store/sql_store.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "store/migrations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>

namespace btcml::store {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0 (RFC 3629 table 3-7).
std::size_t utf8_sequence_length(std::string_view s) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto in = [&](std::size_t i, unsigned lo, unsigned hi) {
        return i < s.size() && byte(i) >= lo && byte(i) <= hi;
    };
    const unsigned c = byte(0);
    if (c >= 0x01 && c <= 0x7F) return 1;
    if (c >= 0xC2 && c <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        const unsigned lo = c == 0xE0 ? 0xA0 : 0x80; // no overlongs
        const unsigned hi = c == 0xED ? 0x9F : 0xBF; // no surrogates
        return in(1, lo, hi) && in(2, 0x80, 0xBF) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
        const unsigned hi = c == 0xF4 ? 0x8F : 0xBF; // nothing above U+10FFFF
        return in(1, lo, hi) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
    }
    return 0;
}

constexpr const char* kCreateSchemaMigrations = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                                                "applied_at BIGINT NOT NULL)";

constexpr const char* kRunColumns = "source, format, symbol, interval_s, status, error, started_at, finished_at, "
                                    "rows_read, rows_inserted, rows_duplicate, rows_rejected, first_time, last_time, "
                                    "missing_bars, summary_json";

SqlParam optional_param(std::optional<std::int64_t> value) { return value ? SqlParam{*value} : SqlParam{nullptr}; }

// The run's fields as $1..$16, in kRunColumns order.
std::array<SqlParam, 16> run_params(const IngestRun& run, std::int64_t started_at,
                                    std::optional<std::int64_t> finished_at) {
    return {run.source,
            run.format,
            run.symbol,
            run.interval,
            run.status,
            run.error,
            started_at,
            optional_param(finished_at),
            run.rows_read,
            run.rows_inserted,
            run.rows_duplicate,
            run.rows_rejected,
            optional_param(run.first_time),
            optional_param(run.last_time),
            run.missing_bars,
            run.summary_json};
}

std::optional<std::int64_t> optional_int(const SqlRow& row, int column) {
    return row.is_null(column) ? std::nullopt : std::optional{row.get_int(column)};
}

// A row of `SELECT id, <kRunColumns>`.
IngestRun read_run(const SqlRow& row) {
    IngestRun run;
    run.id = row.get_int(0);
    run.source = row.get_text(1);
    run.format = row.get_text(2);
    run.symbol = row.get_text(3);
    run.interval = row.get_int(4);
    run.status = row.get_text(5);
    run.error = row.get_text(6);
    run.started_at = row.get_int(7);
    run.finished_at = optional_int(row, 8).value_or(0);
    run.rows_read = row.get_int(9);
    run.rows_inserted = row.get_int(10);
    run.rows_duplicate = row.get_int(11);
    run.rows_rejected = row.get_int(12);
    run.first_time = optional_int(row, 13);
    run.last_time = optional_int(row, 14);
    run.missing_bars = row.get_int(15);
    run.summary_json = row.get_text(16);
    return run;
}

// The WHERE, ORDER and LIMIT of a bar query, with its parameters $1..$5.
std::string bar_query_sql(std::string_view columns) {
    return fmt::format("SELECT {} FROM bars WHERE symbol = $1 AND interval_s = $2 AND open_time >= $3 "
                       "AND open_time <= $4 ORDER BY open_time LIMIT $5",
                       columns);
}

std::array<SqlParam, 5> bar_query_params(const BarQuery& q) {
    if (q.limit && *q.limit < 0) throw UsageError(fmt::format("limit must not be negative, got {}", *q.limit));
    constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
    constexpr auto highest = std::numeric_limits<std::int64_t>::max();
    return {std::string_view(q.key.symbol), q.key.interval, q.from.value_or(lowest), q.to.value_or(highest),
            q.limit.value_or(highest)};
}

} // namespace

bool is_clean_text(std::string_view text) noexcept {
    for (std::size_t i = 0; i < text.size();) {
        if (static_cast<unsigned char>(text[i]) - 1U < 0x7FU) { // the ASCII fast path, NUL excluded
            ++i;
            continue;
        }
        const auto n = utf8_sequence_length(text.substr(i));
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string sanitize_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (const auto n = utf8_sequence_length(text.substr(i)); n > 0) {
            out.append(text.substr(i, n));
            i += n;
        } else {
            out += fmt::format("\\x{:02X}", static_cast<unsigned char>(text[i]));
            ++i;
        }
    }
    return out;
}

SqlStore::ScopedTransaction::ScopedTransaction(SqlStore& store) : store_(store), owned_(!store.in_transaction()) {
    if (owned_) store_.begin();
}

SqlStore::ScopedTransaction::~ScopedTransaction() {
    if (!owned_) return;
    try {
        store_.rollback();
    } catch (...) { // NOLINT(bugprone-empty-catch): the error that got us here is the one to report
    }
}

void SqlStore::ScopedTransaction::commit() {
    if (!owned_) return;
    owned_ = false;
    store_.commit();
}

void SqlStore::begin() {
    if (in_transaction_) throw Error(ErrorKind::internal, "store: a transaction is already open");
    exec(begin_sql());
    in_transaction_ = true;
}

bool SqlStore::try_write(const std::function<void()>& body) {
    if (in_transaction_) throw Error(ErrorKind::internal, "store: a transaction is already open");
    in_transaction_ = try_begin_sql();
    if (!in_transaction_) return false;
    try {
        body();
    } catch (...) {
        rollback();
        throw;
    }
    commit();
    return true;
}

void SqlStore::commit() {
    if (!in_transaction_) throw Error(ErrorKind::internal, "store: commit without a transaction");
    try {
        exec("COMMIT");
    } catch (...) {
        // Whatever happened, no transaction is open afterwards (PostgreSQL ends it; SQLite may keep it on BUSY).
        try {
            exec("ROLLBACK");
        } catch (...) { // NOLINT(bugprone-empty-catch): the COMMIT error is the one to report
        }
        in_transaction_ = false;
        throw;
    }
    in_transaction_ = false;
}

void SqlStore::rollback() {
    if (!in_transaction_) return;
    in_transaction_ = false;
    exec("ROLLBACK");
}

void SqlStore::require_no_transaction(const char* what) const {
    if (in_transaction_)
        throw Error(ErrorKind::internal, fmt::format("store: {} must be called outside a transaction", what));
}

std::int64_t SqlStore::query_version() {
    std::int64_t version = 0;
    query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {},
          [&](const SqlRow& row) { version = row.get_int(0); });
    return version;
}

int SqlStore::schema_version() { return static_cast<int>(query_version()); }

std::vector<AppliedMigration> SqlStore::applied_migrations() {
    std::vector<AppliedMigration> out;
    query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version", {}, [&](const SqlRow& row) {
        out.push_back({static_cast<int>(row.get_int(0)), row.get_text(1), row.get_int(2)});
    });
    return out;
}

void SqlStore::migrate() {
    const auto all = migrations();
    const int latest = all.back().version;
    const auto check_not_newer = [&](std::int64_t version) {
        if (version > latest) {
            throw Conflict(fmt::format("the database has schema version {} but this btcml knows only up to {}: "
                                       "upgrade btcml",
                                       version, latest));
        }
    };
    // Most opens find the schema current: answer that without taking the write lock.
    if (has_table("schema_migrations")) {
        const auto version = query_version();
        check_not_newer(version);
        if (version == latest) return;
    }
    const bool sqlite = backend() == "sqlite";
    for (const auto& m : all) {
        // Each migration gets its own locked transaction; a concurrent opener waits, then sees it applied.
        begin_exclusive();
        in_transaction_ = true;
        try {
            exec(kCreateSchemaMigrations);
            const auto version = query_version();
            check_not_newer(version);
            if (version < m.version) {
                exec(sqlite ? m.sqlite_sql : m.postgres_sql);
                const std::array<SqlParam, 3> params{std::int64_t{m.version}, std::string_view(m.name), wall_unix()};
                query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", params, {});
            }
            commit();
        } catch (...) {
            rollback();
            throw;
        }
    }
}

std::int64_t SqlStore::create_ingest_run(const IngestRun& run) {
    require_no_transaction("create_ingest_run");
    const auto params = run_params(run, run.started_at != 0 ? run.started_at : wall_unix(), std::nullopt);
    std::int64_t id = 0;
    query(fmt::format("INSERT INTO ingest_runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                      "$14, $15, $16) RETURNING id",
                      kRunColumns),
          params, [&](const SqlRow& row) { id = row.get_int(0); });
    return id;
}

void SqlStore::finish_ingest_run(const IngestRun& run) {
    require_no_transaction("finish_ingest_run");
    const auto fields = run_params(run, run.started_at != 0 ? run.started_at : wall_unix(),
                                   run.finished_at != 0 ? run.finished_at : wall_unix());
    std::vector<SqlParam> params(fields.begin(), fields.end());
    params.emplace_back(run.id);
    const auto changed = query("UPDATE ingest_runs SET source = $1, format = $2, symbol = $3, interval_s = $4, "
                               "status = $5, error = $6, started_at = $7, finished_at = $8, rows_read = $9, "
                               "rows_inserted = $10, rows_duplicate = $11, rows_rejected = $12, first_time = $13, "
                               "last_time = $14, missing_bars = $15, summary_json = $16 WHERE id = $17",
                               params, {});
    if (changed != 1) throw NotFound(fmt::format("ingest run {} does not exist", run.id));
}

std::optional<IngestRun> SqlStore::ingest_run(std::int64_t id) {
    std::optional<IngestRun> out;
    const std::array<SqlParam, 1> params{id};
    query(fmt::format("SELECT id, {} FROM ingest_runs WHERE id = $1", kRunColumns), params,
          [&](const SqlRow& row) { out = read_run(row); });
    return out;
}

std::vector<IngestRun> SqlStore::list_ingest_runs(std::int64_t limit) {
    std::vector<IngestRun> out;
    const std::array<SqlParam, 1> params{limit};
    query(fmt::format("SELECT id, {} FROM ingest_runs ORDER BY id DESC LIMIT $1", kRunColumns), params,
          [&](const SqlRow& row) { out.push_back(read_run(row)); });
    return out;
}

std::int64_t SqlStore::insert_predictions(std::span<const Prediction> predictions) {
    ScopedTransaction transaction(*this);
    std::int64_t inserted = 0;
    for (const auto& p : predictions) {
        const std::array<SqlParam, 13> params{std::int64_t{p.model_version},
                                              std::string_view(p.symbol),
                                              p.interval,
                                              p.origin_time,
                                              std::int64_t{p.horizon},
                                              p.target_time,
                                              p.price,
                                              p.lower,
                                              p.upper,
                                              p.log_return,
                                              std::string_view(p.input_hash),
                                              p.created_at,
                                              std::string_view(p.provenance)};
        inserted += query("INSERT INTO predictions (model_version, symbol, interval_s, origin_time, horizon, "
                          "target_time, price, lower, upper, log_return, input_hash, created_at, provenance) VALUES "
                          "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
                          params, {});
    }
    transaction.commit();
    return inserted;
}

std::vector<Prediction> SqlStore::load_predictions(const PredictionQuery& q) {
    constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
    constexpr auto highest = std::numeric_limits<std::int64_t>::max();
    const std::array<SqlParam, 5> params{q.from.value_or(lowest), q.to.value_or(highest), std::string_view(q.symbol),
                                         q.interval, q.limit};
    std::vector<Prediction> out;
    query("SELECT p.model_version, p.symbol, p.interval_s, p.origin_time, p.horizon, p.target_time, p.price, "
          "p.lower, p.upper, p.log_return, p.input_hash, p.created_at, b.close, p.provenance FROM predictions p "
          "LEFT JOIN bars b ON b.symbol = p.symbol AND b.interval_s = p.interval_s AND b.open_time = p.target_time "
          "WHERE p.target_time >= $1 AND p.target_time <= $2 AND ($3 = '' OR p.symbol = $3) "
          "AND ($4 = 0 OR p.interval_s = $4) ORDER BY p.target_time, p.horizon, p.id LIMIT $5",
          params, [&](const SqlRow& row) {
              Prediction p;
              p.model_version = static_cast<int>(row.get_int(0));
              p.symbol = row.get_text(1);
              p.interval = row.get_int(2);
              p.origin_time = row.get_int(3);
              p.horizon = static_cast<int>(row.get_int(4));
              p.target_time = row.get_int(5);
              p.price = row.get_double(6);
              p.lower = row.get_double(7);
              p.upper = row.get_double(8);
              p.log_return = row.get_double(9);
              p.input_hash = row.get_text(10);
              p.created_at = row.get_int(11);
              if (!row.is_null(12)) p.realised = row.get_double(12);
              p.provenance = row.get_text(13);
              out.push_back(std::move(p));
          });
    return out;
}

std::int64_t SqlStore::count_predictions() {
    std::int64_t n = 0;
    query("SELECT COUNT(*) FROM predictions", {}, [&](const SqlRow& row) { n = row.get_int(0); });
    return n;
}

std::vector<RejectedRow> SqlStore::rejected_rows(std::int64_t run_id) {
    std::vector<RejectedRow> out;
    const std::array<SqlParam, 1> params{run_id};
    query("SELECT line_number, raw, reason FROM rejected_rows WHERE run_id = $1 ORDER BY line_number", params,
          [&](const SqlRow& row) {
              out.push_back({row.get_int(0), row.get_text(1), row.get_text(2)});
          });
    return out;
}

std::vector<Bar> SqlStore::load_bars(const BarQuery& q) {
    std::vector<Bar> out;
    query(bar_query_sql("open_time, open, high, low, close, volume, complete"), bar_query_params(q),
          [&](const SqlRow& row) {
              out.push_back({row.get_int(0), row.get_double(1), row.get_double(2), row.get_double(3), row.get_double(4),
                             row.get_double(5), row.get_bool(6)});
          });
    return out;
}

std::vector<std::string> SqlStore::load_bar_sources(const BarQuery& q) {
    std::vector<std::string> out;
    query(bar_query_sql("source"), bar_query_params(q), [&](const SqlRow& row) { out.push_back(row.get_text(0)); });
    return out;
}

std::optional<std::int64_t> SqlStore::last_bar_time(const SeriesKey& key) {
    std::optional<std::int64_t> out;
    const std::array<SqlParam, 2> params{std::string_view(key.symbol), key.interval};
    query("SELECT MAX(open_time) FROM bars WHERE symbol = $1 AND interval_s = $2", params,
          [&](const SqlRow& row) { out = optional_int(row, 0); });
    return out;
}

std::vector<SeriesInfo> SqlStore::list_series() {
    // Grouped by source too and merged here, so that both backends list sources in the same (sorted) order.
    std::vector<SeriesInfo> out;
    query("SELECT symbol, interval_s, source, COUNT(*), MIN(open_time), MAX(open_time) FROM bars "
          "GROUP BY symbol, interval_s, source ORDER BY symbol, interval_s, source",
          {}, [&](const SqlRow& row) {
              SeriesKey key{row.get_text(0), row.get_int(1)};
              const auto source = row.get_text(2);
              const auto count = row.get_int(3);
              const auto first = row.get_int(4);
              const auto last = row.get_int(5);
              if (out.empty() || out.back().key != key) {
                  out.push_back({std::move(key), count, first, last, source});
                  return;
              }
              auto& series = out.back();
              series.bars += count;
              series.first_time = std::min(series.first_time, first);
              series.last_time = std::max(series.last_time, last);
              series.sources += ',';
              series.sources += source;
          });
    return out;
}

} // namespace btcml::store
