#pragma once
// Ingestion: every source (files, Kaggle, exchanges, synthetic) turns its records into Candidates and hands them
// to an IngestWriter, which validates, deduplicates, resamples and writes them to the store in one transaction.
#include "core/bar.hpp"
#include "store/store.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::data {

/// Why a row was refused. The names (to_string) are what users see in `rejected_reasons` and in the store.
enum class RejectReason {
    none,
    bad_field_count,    // the row has fewer fields than the layout needs, or more than its header
    unparsable_time,    // the time field is not a time in the valid range (1970 to 2099, core/time.hpp)
    unparsable_number,  // a price or volume field is not a number
    non_finite_number,  // a price or volume is infinite or too large for a double (`inf`, `1e309`)
    missing_price,      // an empty or NaN price (the old Kaggle layout's minutes without trades)
    non_positive_price, // a price <= 0
    high_below_open_close,
    low_above_open_close,
    negative_volume,
    duplicate_time,  // the same time appeared earlier in this input
    misaligned_time, // the time is not a multiple of the interval
    future_time,     // the bar opens after now
};
std::string_view to_string(RejectReason reason) noexcept;

struct Candidate;
/// The checks of a record's own values that every source's rows pass (a parsed time, positive finite prices
/// consistent with high and low, a finite non-negative volume); `none` when it passes. Interval alignment,
/// future and duplicate times are checked by the writer, which knows the series.
RejectReason check_values(const Candidate& candidate) noexcept;

/// One record as a source read it, before validation.
struct Candidate {
    std::int64_t line = 0; // 1-based line in the file, or record number in an API response
    std::string_view raw;  // the original text, stored if the row is rejected
    std::optional<std::int64_t> time;
    double open = 0, high = 0, low = 0, close = 0, volume = 0;
    RejectReason parse_error = RejectReason::none; // set by the source when a field did not parse
};

struct IngestOptions {
    std::string symbol = "BTCUSD";
    std::optional<std::int64_t> interval; // seconds; inferred from the timestamps when absent
    std::optional<std::int64_t> resample; // seconds; aggregate to this interval before storing
    std::optional<std::int64_t> from;     // keep bars at or after
    std::optional<std::int64_t> to;       // keep bars at or before
    std::string format;                   // force a file layout (see layout.hpp)
    std::string columns;                  // explicit column mapping (see layout.hpp)
    std::string base_url;                 // override an API's base URL (tests, mirrors)
    std::filesystem::path home;           // BTCML_HOME: downloads go under it
    bool progress = false;                // draw progress on stderr (a terminal, not --json)
};

/// What one ingest did; printed as the command's JSON summary.
struct IngestSummary : store::IngestCounts {
    std::int64_t run_id = 0;
    std::string source;
    std::string format;
    std::string symbol;
    std::int64_t interval = 0;
    std::optional<std::int64_t> source_interval; // before resampling
    bool synthetic = false;
    std::map<std::string, std::int64_t> rejected_reasons;
    std::int64_t incomplete_buckets = 0; // resampled buckets that lacked source bars
    bool newest_first = false;
    double seconds = 0;
};

/// The summary as printed by `btcml ingest --json` (times as ISO 8601 UTC).
nlohmann::json to_json(const IngestSummary& summary);

/// Validates and stores candidates. Not thread-safe: one writer per ingest run.
class IngestWriter {
  public:
    /// `source_label` is recorded with every stored bar (e.g. the file name, `binance:BTCUSDT`).
    IngestWriter(store::Store& store, const IngestOptions& options, std::int64_t run_id, std::string source_label);
    ~IngestWriter();
    IngestWriter(const IngestWriter&) = delete;
    IngestWriter& operator=(const IngestWriter&) = delete;

    /// Names where a source's times come from (`column 1 'date' (…)`), for the errors about them.
    void set_time_source(std::string description);
    void add(const Candidate& candidate);
    /// Flushes everything buffered; fills the counters of `summary`. The caller commits.
    void finish(IngestSummary& summary);
    /// The interval in use (seconds), once known.
    [[nodiscard]] std::optional<std::int64_t> interval() const;
    [[nodiscard]] std::int64_t rows_read() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Reports progress of long work: called with units done and total (0 when unknown).
using ProgressFn = std::function<void(std::int64_t done, std::int64_t total)>;

/// What a source does: reads its records into the writer. `format` is set by the source to the layout it found.
struct SourceContext {
    store::Store& store;
    const IngestOptions& options;
    IngestWriter& writer;
    std::string& format;
    const ProgressFn& progress;
};

/// Runs one ingest of SOURCE (a file path or `-` for standard input, `kaggle:…`, `bitstamp:…`, `binance:…`,
/// `synthetic[:SEED]`, `replay:PATH`: a file revealed bar by bar as the process clock passes each bar's close): records
/// the run, writes all of it in one transaction, and on failure rolls back and records the error before rethrowing.
IngestSummary ingest(store::Store& store, const std::string& source, const IngestOptions& options,
                     const ProgressFn& progress = {});

/// The same run for records that come from elsewhere (an HTTP body): `read` adds them to ctx.writer; `source` is
/// recorded with the run and every bar.
IngestSummary ingest_records(store::Store& store, const std::string& source, const IngestOptions& options,
                             const std::function<void(SourceContext&)>& read, const ProgressFn& progress = {});

} // namespace btcml::data
