#pragma once
// The store: one interface over SQLite (default) and PostgreSQL. Owns the schema and its migrations.
#include "core/bar.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace btcml::store {

/// A row that ingestion refused, kept with its reason so that nothing is silently lost.
struct RejectedRow {
    std::int64_t line_number = 0;
    std::string raw;
    std::string reason;
};

/// What an ingest run did; written when the run starts and again when it ends.
struct IngestRun {
    std::int64_t id = 0;
    std::string source;  // e.g. a file path, `binance:BTCUSDT`, `synthetic:42`
    std::string format;  // detected or forced layout
    std::string symbol;
    std::int64_t interval = 0;
    std::string status = "running"; // running | succeeded | failed
    std::string error;
    std::int64_t started_at = 0;
    std::int64_t finished_at = 0;
    std::int64_t rows_read = 0;
    std::int64_t rows_inserted = 0;
    std::int64_t rows_duplicate = 0;
    std::int64_t rows_rejected = 0;
    std::optional<std::int64_t> first_time;
    std::optional<std::int64_t> last_time;
    std::int64_t missing_bars = 0;
    std::string summary_json; // the full JSON summary printed to the user
};

/// Counts from one insert_bars call.
struct InsertResult {
    std::int64_t inserted = 0;
    std::int64_t duplicate = 0; // already stored (same symbol, interval and time): left as they were
};

/// One stored series with its extent.
struct SeriesInfo {
    SeriesKey key;
    std::int64_t bars = 0;
    std::int64_t first_time = 0;
    std::int64_t last_time = 0;
    std::string sources; // distinct sources, comma-separated
};

/// One row of schema_migrations.
struct AppliedMigration {
    int version = 0;
    std::string name;
    std::int64_t applied_at = 0; // unix seconds
};

struct BarQuery {
    SeriesKey key;
    std::optional<std::int64_t> from; // inclusive
    std::optional<std::int64_t> to;   // inclusive
    std::optional<std::int64_t> limit; // the first `limit` bars of the range
};

/// One stored forecast of one horizon, as the server made it; `realised` is the close of the target bar once it is
/// stored (filled by load_predictions only).
struct Prediction {
    int model_version = 0;
    std::string symbol;
    std::int64_t interval = 0;
    std::int64_t origin_time = 0; // open time of the last input bar
    int horizon = 0;
    std::int64_t target_time = 0;
    double price = 0, lower = 0, upper = 0, log_return = 0;
    std::string input_hash; // identifies the input window: identical requests store one row
    std::int64_t created_at = 0;
    std::optional<double> realised;
};

struct PredictionQuery {
    std::optional<std::int64_t> from; // target time, inclusive
    std::optional<std::int64_t> to;   // target time, inclusive
    std::string symbol;               // empty: any
    std::int64_t interval = 0;        // 0: any
    std::int64_t limit = 1000;
};

/// Thread-safety: a Store is one connection and is NOT thread-safe; open one per thread.
class Store {
  public:
    virtual ~Store() = default;

    /// `sqlite` or `postgresql`.
    [[nodiscard]] virtual std::string backend() const = 0;
    /// The highest migration applied.
    virtual int schema_version() = 0;
    /// The migrations recorded in schema_migrations, by version.
    virtual std::vector<AppliedMigration> applied_migrations() = 0;

    /// Transactions. Ingest writes all its bars and rejected rows inside one, so a failed run leaves no trace
    /// but its ingest_runs row (which is written outside it).
    virtual void begin() = 0;
    virtual void commit() = 0;
    virtual void rollback() = 0;

    /// Creates a run (status running) and returns its id. Must be called outside a transaction.
    virtual std::int64_t create_ingest_run(const IngestRun& run) = 0;
    /// Writes the final state of a run. Must be called outside a transaction.
    virtual void finish_ingest_run(const IngestRun& run) = 0;
    virtual std::optional<IngestRun> ingest_run(std::int64_t id) = 0;

    /// Inserts bars that are not yet stored; bars whose (symbol, interval, time) exists are left untouched.
    virtual InsertResult insert_bars(const SeriesKey& key, std::span<const Bar> bars, const std::string& source) = 0;
    /// Text that is not valid UTF-8, or holds NUL bytes, is stored with each offending byte written as `\xNN`
    /// (PostgreSQL TEXT cannot hold it; SQLite does the same so that both backends return the same rows).
    virtual void insert_rejected(std::int64_t run_id, std::span<const RejectedRow> rows) = 0;
    virtual std::vector<RejectedRow> rejected_rows(std::int64_t run_id) = 0;

    /// Bars in ascending time order.
    virtual std::vector<Bar> load_bars(const BarQuery& query) = 0;
    /// The source recorded for each bar of the query, in the same order as load_bars.
    virtual std::vector<std::string> load_bar_sources(const BarQuery& query) = 0;
    virtual std::optional<std::int64_t> last_bar_time(const SeriesKey& key) = 0;
    virtual std::vector<SeriesInfo> list_series() = 0;

    /// The newest ingest runs first, at most `limit`.
    virtual std::vector<IngestRun> list_ingest_runs(std::int64_t limit) = 0;

    /// Stores predictions, skipping any already stored (same model, series, origin, horizon and input); returns
    /// how many were new.
    virtual std::int64_t insert_predictions(std::span<const Prediction> predictions) = 0;
    /// Predictions by target time, each with the realised close where its target bar is stored.
    virtual std::vector<Prediction> load_predictions(const PredictionQuery& query) = 0;
    virtual std::int64_t count_predictions() = 0;
};

/// Opens `sqlite:PATH` (or a bare path) or `postgresql://…` / `postgres://…`, applying pending migrations.
/// An empty url means `sqlite:<home>/btcml.db`. Throws Unavailable when the database cannot be reached and
/// UsageError for an unknown scheme.
std::unique_ptr<Store> open_store(const std::string& url, const std::filesystem::path& home);

/// `sqlite:/path/btcml.db` or the PostgreSQL URL with its password replaced by `***`.
std::string redact_url(const std::string& url);

} // namespace btcml::store
