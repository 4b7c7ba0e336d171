#include "store/sqlite_store.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <array>
#include <chrono>
#include <thread>
#include <cctype>
#include <sys/stat.h>
#include <type_traits>

namespace btcml::store {
namespace {

// Another process (an ingest, a server replica) may hold the write lock for a while.
constexpr int kBusyTimeoutMs = 30'000;

// The device and inode of a file, when it exists.
std::optional<std::pair<dev_t, ino_t>> file_identity(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return std::pair{st.st_dev, st.st_ino};
}

// Shared SQL numbers its parameters $1, $2, …: SQLite's ?1, ?2, … bind by the same numbers.
std::string to_sqlite_params(const std::string& sql) {
    std::string out = sql;
    for (std::size_t i = 0; i + 1 < out.size(); ++i) {
        if (out[i] == '$' && std::isdigit(static_cast<unsigned char>(out[i + 1]))) out[i] = '?';
    }
    return out;
}

// Text is bound in place when clean, else as a sanitized copy that SQLite keeps.
int bind_text(sqlite3_stmt* statement, int index, std::string_view text) {
    if (is_clean_text(text)) {
        return sqlite3_bind_text64(statement, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    const auto clean = sanitize_text(text);
    return sqlite3_bind_text64(statement, index, clean.data(), clean.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

int bind_param(sqlite3_stmt* statement, int index, const SqlParam& param) {
    return std::visit(
        [&](const auto& value) {
            using T = std::decay_t<decltype(value)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
                return sqlite3_bind_null(statement, index);
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                return sqlite3_bind_int64(statement, index, value);
            } else if constexpr (std::is_same_v<T, double>) {
                return sqlite3_bind_double(statement, index, value);
            } else {
                return bind_text(statement, index, value);
            }
        },
        param);
}

class SqliteRow final : public SqlRow {
  public:
    explicit SqliteRow(sqlite3_stmt* statement) : statement_(statement) {}
    [[nodiscard]] bool is_null(int column) const override {
        return sqlite3_column_type(statement_, column) == SQLITE_NULL;
    }
    [[nodiscard]] std::int64_t get_int(int column) const override { return sqlite3_column_int64(statement_, column); }
    [[nodiscard]] double get_double(int column) const override { return sqlite3_column_double(statement_, column); }
    [[nodiscard]] bool get_bool(int column) const override { return sqlite3_column_int(statement_, column) != 0; }
    [[nodiscard]] std::string get_text(int column) const override {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
        return text ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))) : "";
    }

  private:
    sqlite3_stmt* statement_;
};

// Leaves a cached statement ready for its next use, whatever happened to this one.
class ResetOnExit {
  public:
    explicit ResetOnExit(sqlite3_stmt* statement) : statement_(statement) {}
    ~ResetOnExit() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }
    ResetOnExit(const ResetOnExit&) = delete;
    ResetOnExit& operator=(const ResetOnExit&) = delete;

  private:
    sqlite3_stmt* statement_;
};

} // namespace

void SqliteStore::StatementDeleter::operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }

SqliteStore::SqliteStore(const std::string& path) : path_(path) {
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        throw Unavailable(fmt::format("cannot open sqlite:{}: {}", path, message));
    }
    try {
        sqlite3_extended_result_codes(db_, 1);
        sqlite3_busy_timeout(db_, kBusyTimeoutMs);
        // WAL lets readers (the server) run beside a writer (an ingest); NORMAL is durable enough under WAL
        // (a power cut may lose the last commits, never corrupt) and much faster for bulk loads.
        set_journal_mode_wal();
        exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON");
        migrate();
    } catch (...) {
        statements_.clear();
        sqlite3_close(db_);
        throw;
    }
    file_ = file_identity(path);
}

void SqliteStore::set_journal_mode_wal() {
    // Switching a new file to WAL takes an exclusive lock, and SQLite does not call the busy handler for it:
    // two processes opening the same new home at once would see "database is locked". Retry until the usual
    // busy timeout instead.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
    for (;;) {
        const int rc = sqlite3_exec(db_, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) return;
        if ((rc & 0xFF) != SQLITE_BUSY && (rc & 0xFF) != SQLITE_LOCKED) fail(rc, "PRAGMA journal_mode = WAL");
        if (std::chrono::steady_clock::now() >= deadline) fail(rc, "PRAGMA journal_mode = WAL");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool SqliteStore::healthy() {
    // A connection keeps reading a removed or replaced file (a restored backup, a deleted home) for ever.
    return !file_ || file_identity(path_) == file_;
}

SqliteStore::~SqliteStore() {
    if (in_transaction()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    statements_.clear(); // statements must be finalized before the connection closes
    sqlite3_close(db_);
}

void SqliteStore::fail(int rc, std::string_view what) const {
    const auto message = fmt::format("sqlite:{}: {}: {}", path_, what, sqlite3_errmsg(db_));
    switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: throw Unavailable(message);
    case SQLITE_CONSTRAINT: throw Conflict(message);
    default: throw Error(ErrorKind::internal, message);
    }
}

void SqliteStore::exec(const std::string& sql) {
    if (const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr); rc != SQLITE_OK) {
        fail(rc, sql.substr(0, sql.find_first_of("(\n")));
    }
}

sqlite3_stmt* SqliteStore::statement(const std::string& sql) {
    auto& cached = statements_[sql];
    if (!cached) {
        sqlite3_stmt* prepared = nullptr;
        const auto text = to_sqlite_params(sql);
        const int rc = sqlite3_prepare_v3(db_, text.c_str(), static_cast<int>(text.size() + 1),
                                          SQLITE_PREPARE_PERSISTENT, &prepared, nullptr);
        if (rc != SQLITE_OK) {
            statements_.erase(sql);
            fail(rc, "prepare");
        }
        cached.reset(prepared);
    }
    return cached.get();
}

std::int64_t SqliteStore::step_done(sqlite3_stmt* statement) {
    const int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE) fail(rc, "step");
    sqlite3_reset(statement);
    return sqlite3_changes64(db_);
}

std::int64_t SqliteStore::query(const std::string& sql, std::span<const SqlParam> params, const RowCallback& on_row) {
    auto* st = statement(sql);
    ResetOnExit reset(st);
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (const int rc = bind_param(st, static_cast<int>(i + 1), params[i]); rc != SQLITE_OK) fail(rc, "bind");
    }
    const SqliteRow row(st);
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (on_row) on_row(row);
    }
    if (rc != SQLITE_DONE) fail(rc, "step");
    return sqlite3_changes64(db_);
}

void SqliteStore::begin_exclusive() { exec("BEGIN IMMEDIATE"); }

bool SqliteStore::try_begin_sql() {
    sqlite3_busy_timeout(db_, 0);
    const int rc = sqlite3_exec(db_, begin_sql().c_str(), nullptr, nullptr, nullptr);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    if ((rc & 0xFF) == SQLITE_BUSY) return false;
    if (rc != SQLITE_OK) fail(rc, begin_sql());
    return true;
}

bool SqliteStore::has_table(const std::string& name) {
    bool found = false;
    const std::array<SqlParam, 1> params{std::string_view(name)};
    query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1", params,
          [&](const SqlRow&) { found = true; });
    return found;
}

InsertResult SqliteStore::insert_bars(const SeriesKey& key, std::span<const Bar> bars, const std::string& source) {
    ScopedTransaction transaction(*this);
    auto* st = statement("INSERT OR IGNORE INTO bars (symbol, interval_s, open_time, open, high, low, close, volume, "
                         "complete, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
    ResetOnExit reset(st);
    // One prepared statement for all rows; the series and source bindings survive each reset.
    int rc = bind_text(st, 1, key.symbol);
    rc = rc == SQLITE_OK ? sqlite3_bind_int64(st, 2, key.interval) : rc;
    rc = rc == SQLITE_OK ? bind_text(st, 10, source) : rc;
    if (rc != SQLITE_OK) fail(rc, "bind");
    InsertResult result;
    for (const auto& bar : bars) {
        sqlite3_bind_int64(st, 3, bar.time);
        sqlite3_bind_double(st, 4, bar.open);
        sqlite3_bind_double(st, 5, bar.high);
        sqlite3_bind_double(st, 6, bar.low);
        sqlite3_bind_double(st, 7, bar.close);
        sqlite3_bind_double(st, 8, bar.volume);
        sqlite3_bind_int(st, 9, bar.complete ? 1 : 0);
        result.inserted += step_done(st);
    }
    result.duplicate = static_cast<std::int64_t>(bars.size()) - result.inserted;
    transaction.commit();
    return result;
}

void SqliteStore::insert_rejected(std::int64_t run_id, std::span<const RejectedRow> rows) {
    ScopedTransaction transaction(*this);
    auto* st = statement("INSERT INTO rejected_rows (run_id, line_number, raw, reason) VALUES ($1, $2, $3, $4)");
    ResetOnExit reset(st);
    if (const int rc = sqlite3_bind_int64(st, 1, run_id); rc != SQLITE_OK) fail(rc, "bind");
    for (const auto& row : rows) {
        int rc = sqlite3_bind_int64(st, 2, row.line_number);
        rc = rc == SQLITE_OK ? bind_text(st, 3, row.raw) : rc;
        rc = rc == SQLITE_OK ? bind_text(st, 4, row.reason) : rc;
        if (rc != SQLITE_OK) fail(rc, "bind");
        step_done(st);
    }
    transaction.commit();
}

} // namespace btcml::store
