#include "store/postgres_store.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>
#include <memory>
#include <type_traits>

namespace btcml::store {
namespace {

// Serialises migrations across every connection to the server ("btcml" in ASCII).
constexpr std::int64_t kMigrationLockKey = 0x6274636d6c;
// Serialises promotions and rollbacks (Store::begin_registry_change).
constexpr std::int64_t kRegistryLockKey = 0x6274636d6c72;
// With a hash of the series, locks one series against concurrent writers ("btcm" in ASCII).
constexpr std::int32_t kSeriesLockClass = 0x6274636d;
// Seconds a connection attempt may take unless the URL says otherwise (connect_timeout=…).
constexpr const char* kDefaultConnectTimeout = "10";
// COPY data is sent in chunks of about this size.
constexpr std::size_t kCopyChunk = 1 << 20;

struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

std::string trimmed(const char* message) {
    std::string out = message ? message : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
        out.pop_back();
    return out;
}

// Connection trouble and retryable conflicts are Unavailable; constraint violations are Conflicts; the rest are bugs.
[[noreturn]] void throw_error(PGconn* conn, const PGresult* result, const std::string& url, std::string_view what) {
    const auto message =
        fmt::format("{}: {}: {}", url, what, trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(conn)));
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    const std::string_view sqlstate = state ? state : "";
    const auto sqlstate_class = sqlstate.substr(0, 2);
    if (PQstatus(conn) != CONNECTION_OK || sqlstate.empty() || sqlstate_class == "08" || sqlstate_class == "53" ||
        sqlstate_class == "57" || sqlstate == "40001" || sqlstate == "40P01") {
        throw Unavailable(message);
    }
    if (sqlstate_class == "23") throw Conflict(message);
    throw Error(ErrorKind::internal, message);
}

void check(PGconn* conn, const ResultPtr& result, const std::string& url, std::string_view what) {
    const auto status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw_error(conn, result.get(), url, what);
}

// What to name a failed statement in an error message: its first words.
std::string_view statement_name(std::string_view sql) { return sql.substr(0, std::min<std::size_t>(sql.size(), 40)); }

// Results come in binary: no float formatting on the server, no parsing here, and doubles exact by construction.
class PgRow final : public SqlRow {
  public:
    PgRow(const PGresult* result, int row) : result_(result), row_(row) {}
    [[nodiscard]] bool is_null(int column) const override { return PQgetisnull(result_, row_, column) != 0; }
    [[nodiscard]] std::int64_t get_int(int column) const override {
        switch (size(column)) {
        case 2: return static_cast<std::int16_t>(big_endian<std::uint16_t>(column));
        case 4: return static_cast<std::int32_t>(big_endian<std::uint32_t>(column));
        case 8: return static_cast<std::int64_t>(big_endian<std::uint64_t>(column));
        default: throw unexpected(column, "an integer");
        }
    }
    [[nodiscard]] double get_double(int column) const override {
        if (size(column) != 8) throw unexpected(column, "a double");
        return std::bit_cast<double>(big_endian<std::uint64_t>(column));
    }
    [[nodiscard]] bool get_bool(int column) const override {
        if (size(column) != 1) throw unexpected(column, "a boolean");
        return value(column)[0] != 0;
    }
    [[nodiscard]] std::string get_text(int column) const override { return {value(column), size(column)}; }

  private:
    [[nodiscard]] const char* value(int column) const { return PQgetvalue(result_, row_, column); }
    [[nodiscard]] std::size_t size(int column) const {
        return static_cast<std::size_t>(PQgetlength(result_, row_, column));
    }
    template <class U> [[nodiscard]] U big_endian(int column) const {
        const auto* bytes = reinterpret_cast<const unsigned char*>(value(column));
        U out = 0;
        for (std::size_t i = 0; i < sizeof(U); ++i)
            out = static_cast<U>(out << 8U) | bytes[i];
        return out;
    }
    [[nodiscard]] Error unexpected(int column, std::string_view wanted) const {
        return Error(ErrorKind::internal,
                     fmt::format("postgresql: column {} ({} bytes) is not {}", column, size(column), wanted));
    }

    const PGresult* result_;
    int row_;
};

// A text field of COPY's text format: sanitized (PostgreSQL TEXT takes neither NUL nor invalid UTF-8) and escaped.
void append_copy_text(fmt::memory_buffer& out, std::string_view text) {
    std::string sanitized;
    if (!is_clean_text(text)) {
        sanitized = sanitize_text(text);
        text = sanitized;
    }
    for (const char c : text) {
        switch (c) {
        case '\\': out.append(std::string_view("\\\\")); break;
        case '\t': out.append(std::string_view("\\t")); break;
        case '\n': out.append(std::string_view("\\n")); break;
        case '\r': out.append(std::string_view("\\r")); break;
        default: out.push_back(c);
        }
    }
}

void append_int(fmt::memory_buffer& out, std::int64_t value) {
    const fmt::format_int text(value);
    out.append(text.data(), text.data() + text.size());
}

// Fields of COPY's binary format: a big-endian length, then the value in network byte order. Doubles travel as
// their bits, so the server stores exactly what it was given and spends no time parsing text.
void append_be(fmt::memory_buffer& out, std::uint64_t value, int bytes) {
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8)
        out.push_back(static_cast<char>(value >> shift));
}

void append_binary_int(fmt::memory_buffer& out, std::int64_t value) {
    append_be(out, 8, 4);
    append_be(out, static_cast<std::uint64_t>(value), 8);
}

void append_binary_double(fmt::memory_buffer& out, double value) {
    append_be(out, 8, 4);
    append_be(out, std::bit_cast<std::uint64_t>(value), 8);
}

void append_binary_text(fmt::memory_buffer& out, std::string_view text) {
    const std::string sanitized = is_clean_text(text) ? std::string() : sanitize_text(text);
    if (!sanitized.empty()) text = sanitized;
    append_be(out, text.size(), 4);
    out.append(text);
}

} // namespace

/// One COPY … FROM STDIN: rows are written into buffer() and sent in chunks; destroyed unfinished, it aborts.
class PostgresStore::CopyIn {
  public:
    CopyIn(PostgresStore& store, const std::string& sql) : store_(store) {
        const ResultPtr result(PQexec(store_.conn_, sql.c_str()));
        if (!result || PQresultStatus(result.get()) != PGRES_COPY_IN) {
            throw_error(store_.conn_, result.get(), store_.url_, statement_name(sql));
        }
        buffer_.reserve(kCopyChunk + 4096);
    }
    ~CopyIn() {
        if (done_) return;
        PQputCopyEnd(store_.conn_, "btcml: COPY aborted");
        while (PGresult* result = PQgetResult(store_.conn_))
            PQclear(result);
    }
    CopyIn(const CopyIn&) = delete;
    CopyIn& operator=(const CopyIn&) = delete;

    fmt::memory_buffer& buffer() { return buffer_; }
    /// Sends what is buffered once a chunk's worth has built up; call after each row.
    void end_row() {
        if (buffer_.size() >= kCopyChunk) flush();
    }
    void finish() {
        flush();
        done_ = true;
        if (PQputCopyEnd(store_.conn_, nullptr) != 1) throw_error(store_.conn_, nullptr, store_.url_, "COPY end");
        // The COPY's own result, then the end of the command.
        std::optional<ResultPtr> failed;
        while (PGresult* raw = PQgetResult(store_.conn_)) {
            ResultPtr result(raw);
            if (PQresultStatus(raw) != PGRES_COMMAND_OK && !failed) failed = std::move(result);
        }
        if (failed) throw_error(store_.conn_, failed->get(), store_.url_, "COPY");
    }

  private:
    void flush() {
        if (buffer_.size() == 0) return;
        if (PQputCopyData(store_.conn_, buffer_.data(), static_cast<int>(buffer_.size())) != 1) {
            throw_error(store_.conn_, nullptr, store_.url_, "COPY data");
        }
        buffer_.clear();
    }

    PostgresStore& store_;
    fmt::memory_buffer buffer_;
    bool done_ = false;
};

PostgresStore::PostgresStore(const std::string& url) : url_(redact_url(url)) {
    // libpq waits for ever on a server that accepts but never answers (or a host that drops packets), freezing the
    // thread that connects; a connect_timeout in the URL wins over this default, which comes first.
    const std::array<const char*, 3> keywords{"connect_timeout", "dbname", nullptr};
    const std::array<const char*, 3> values{kDefaultConnectTimeout, url.c_str(), nullptr};
    conn_ = PQconnectdbParams(keywords.data(), values.data(), 1);
    if (PQstatus(conn_) != CONNECTION_OK) {
        const auto message = trimmed(PQerrorMessage(conn_));
        PQfinish(conn_);
        throw Unavailable(fmt::format("cannot connect to {}: {}", url_, message));
    }
    try {
        // Notices ("relation already exists, skipping") are expected, not news.
        PQsetNoticeProcessor(
            conn_, [](void*, const char*) {}, nullptr);
        exec("SET client_encoding = 'UTF8'; SET TIME ZONE 'UTC'");
        migrate();
    } catch (...) {
        PQfinish(conn_);
        throw;
    }
}

PostgresStore::~PostgresStore() { PQfinish(conn_); } // the server rolls back an open transaction

bool PostgresStore::healthy() {
    if (PQstatus(conn_) != CONNECTION_OK) return false;
    // A server that stops or terminates this backend sends an error and closes the socket; PQstatus learns of it
    // only once something reads. Read what has arrived without waiting.
    pollfd socket{PQsocket(conn_), POLLIN, 0};
    if (::poll(&socket, 1, 0) > 0 && PQconsumeInput(conn_) == 0) return false;
    return PQstatus(conn_) == CONNECTION_OK;
}

void PostgresStore::exec(const std::string& sql) {
    const ResultPtr result(PQexec(conn_, sql.c_str()));
    check(conn_, result, url_, statement_name(sql));
}

std::int64_t PostgresStore::query(const std::string& sql, std::span<const SqlParam> params, const RowCallback& on_row) {
    std::vector<std::string> texts(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (std::size_t i = 0; i < params.size(); ++i) {
        std::visit(
            [&](const auto& value) {
                using T = std::decay_t<decltype(value)>;
                if constexpr (std::is_same_v<T, std::int64_t>) {
                    texts[i] = fmt::format_int(value).str();
                } else if constexpr (std::is_same_v<T, double>) {
                    texts[i] = fmt::format("{}", value);
                } else if constexpr (std::is_same_v<T, std::string_view>) {
                    texts[i] = is_clean_text(value) ? std::string(value) : sanitize_text(value);
                }
                if constexpr (!std::is_same_v<T, std::nullptr_t>) values[i] = texts[i].c_str();
            },
            params[i]);
    }
    const ResultPtr result(
        PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr, values.data(), nullptr, nullptr, 1));
    check(conn_, result, url_, statement_name(sql));
    if (on_row) {
        const int rows = PQntuples(result.get());
        for (int r = 0; r < rows; ++r)
            on_row(PgRow(result.get(), r));
    }
    const char* changed = PQcmdTuples(result.get());
    std::int64_t count = 0;
    std::from_chars(changed, changed + std::strlen(changed), count); // empty for statements that count nothing
    return count;
}

void PostgresStore::begin_exclusive() {
    exec(fmt::format("BEGIN; SELECT pg_advisory_xact_lock({})", kMigrationLockKey));
}

void PostgresStore::lock_registry() { exec(fmt::format("SELECT pg_advisory_xact_lock({})", kRegistryLockKey)); }

// Row locks are short here: the ingest's long transaction only holds key-share locks on its run row.
bool PostgresStore::try_begin_sql() {
    exec(begin_sql());
    return true;
}

bool PostgresStore::has_table(const std::string& name) {
    bool found = false;
    const std::array<SqlParam, 1> params{std::string_view(name)};
    query("SELECT to_regclass($1) IS NOT NULL", params, [&](const SqlRow& row) { found = row.get_bool(0); });
    return found;
}

void PostgresStore::copy_bars(std::string_view table, const SeriesKey& key, std::span<const Bar> bars,
                              std::string_view source) {
    constexpr int kFields = 10;
    // The series and source are the same on every row: encode them once.
    fmt::memory_buffer prefix;
    append_be(prefix, kFields, 2);
    append_binary_text(prefix, key.symbol);
    append_binary_int(prefix, key.interval);
    fmt::memory_buffer suffix;
    append_binary_text(suffix, source);
    CopyIn copy(*this,
                fmt::format("COPY {} (symbol, interval_s, open_time, open, high, low, close, volume, complete, source) "
                            "FROM STDIN (FORMAT binary)",
                            table));
    auto& out = copy.buffer();
    // The binary format's signature, flags and header extension length.
    out.append(std::string_view("PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0", 19));
    for (const auto& bar : bars) {
        out.append(prefix);
        append_binary_int(out, bar.time);
        for (const double value : {bar.open, bar.high, bar.low, bar.close, bar.volume})
            append_binary_double(out, value);
        append_be(out, 1, 4);
        out.push_back(bar.complete ? '\1' : '\0');
        out.append(suffix);
        copy.end_row();
    }
    append_be(out, 0xFFFF, 2); // the trailer: a field count of -1
    copy.finish();
}

bool PostgresStore::is_new_range(const SeriesKey& key, std::span<const Bar> sorted) {
    if (sorted.empty()) return false;
    const std::array<SqlParam, 4> params{std::string_view(key.symbol), key.interval, sorted.front().time,
                                         sorted.back().time};
    bool stored = true;
    query("SELECT EXISTS (SELECT 1 FROM bars WHERE symbol = $1 AND interval_s = $2 AND open_time BETWEEN $3 AND $4)",
          params, [&](const SqlRow& row) { stored = row.get_bool(0); });
    return !stored;
}

InsertResult PostgresStore::insert_bars(const SeriesKey& key, std::span<const Bar> bars, const std::string& source) {
    // Within a batch the first bar of a time wins, as with SQLite's INSERT OR IGNORE; ingest sends sorted batches,
    // which need no copy.
    std::span<const Bar> rows = bars;
    std::vector<Bar> distinct;
    const auto by_time = [](const Bar& a, const Bar& b) { return a.time < b.time; };
    if (std::adjacent_find(bars.begin(), bars.end(), [](const Bar& a, const Bar& b) { return a.time >= b.time; }) !=
        bars.end()) {
        distinct.assign(bars.begin(), bars.end());
        std::stable_sort(distinct.begin(), distinct.end(), by_time);
        distinct.erase(
            std::unique(distinct.begin(), distinct.end(), [](const Bar& a, const Bar& b) { return a.time == b.time; }),
            distinct.end());
        rows = distinct;
    }

    ScopedTransaction transaction(*this);
    const std::array<SqlParam, 2> params{std::string_view(key.symbol), key.interval};
    // Writers of one series take turns, so the range check and the merge below need no ON CONFLICT clause, whose
    // per-row speculative insertion makes a merge about 2.5 times slower.
    query(fmt::format("SELECT pg_advisory_xact_lock({}, hashtext($1::text || '/' || $2::bigint::text))",
                      kSeriesLockClass),
          params, {});
    InsertResult result;
    if (is_new_range(key, rows)) {
        // Nothing stored between the first and last time (a first load, or newer data): straight into bars.
        copy_bars("bars", key, rows, source);
        result.inserted = static_cast<std::int64_t>(rows.size());
    } else {
        // COPY cannot skip stored bars, so it fills a per-transaction staging table that one INSERT then merges.
        exec("CREATE TEMP TABLE IF NOT EXISTS btcml_bar_staging (LIKE bars) ON COMMIT DROP; "
             "TRUNCATE btcml_bar_staging");
        copy_bars("btcml_bar_staging", key, rows, source);
        result.inserted = query("INSERT INTO bars SELECT * FROM btcml_bar_staging s WHERE NOT EXISTS (SELECT 1 FROM "
                                "bars b WHERE b.symbol = $1::text AND b.interval_s = $2::bigint "
                                "AND b.open_time = s.open_time)",
                                params, {});
    }
    result.duplicate = static_cast<std::int64_t>(bars.size()) - result.inserted;
    transaction.commit();
    return result;
}

void PostgresStore::insert_rejected(std::int64_t run_id, std::span<const RejectedRow> rows) {
    ScopedTransaction transaction(*this);
    {
        CopyIn copy(*this, "COPY rejected_rows (run_id, line_number, raw, reason) FROM STDIN");
        auto& out = copy.buffer();
        for (const auto& row : rows) {
            append_int(out, run_id);
            out.push_back('\t');
            append_int(out, row.line_number);
            out.push_back('\t');
            append_copy_text(out, row.raw);
            out.push_back('\t');
            append_copy_text(out, row.reason);
            out.push_back('\n');
            copy.end_row();
        }
        copy.finish();
    }
    transaction.commit();
}

} // namespace btcml::store
