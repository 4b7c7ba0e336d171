#include "data/ingest.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "data/slot_set.hpp"
#include "data/sources.hpp"
#include "store/heartbeat.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <unordered_map>

namespace btcml::data {

std::string_view to_string(RejectReason reason) noexcept {
    switch (reason) {
    case RejectReason::none: return "none";
    case RejectReason::bad_field_count: return "bad_field_count";
    case RejectReason::unparsable_time: return "unparsable_time";
    case RejectReason::unparsable_number: return "unparsable_number";
    case RejectReason::non_finite_number: return "non_finite_number";
    case RejectReason::missing_price: return "missing_price";
    case RejectReason::non_positive_price: return "non_positive_price";
    case RejectReason::high_below_open_close: return "high_below_open_close";
    case RejectReason::low_above_open_close: return "low_above_open_close";
    case RejectReason::negative_volume: return "negative_volume";
    case RejectReason::duplicate_time: return "duplicate_time";
    case RejectReason::misaligned_time: return "misaligned_time";
    case RejectReason::future_time: return "future_time";
    }
    return "unknown";
}

namespace {

constexpr std::size_t kBarBatch = 20'000;
constexpr std::size_t kRejectBatch = 5'000;
constexpr std::size_t kInferenceRows = 1'000;
constexpr std::size_t kMaxRawBytes = 1'000;
constexpr std::int64_t kWeek = 7 * 86400;
// Weekly bars open on Mondays; the unix epoch was a Thursday.
constexpr std::int64_t kMondayOffset = 4 * 86400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::int64_t alignment_offset(std::int64_t interval) { return interval % kWeek == 0 ? kMondayOffset : 0; }

/// The slot of an aligned time; nothing when `time` is not a multiple of the interval.
std::optional<std::int64_t> slot_of(std::int64_t time, std::int64_t interval) {
    const std::int64_t shifted = time - alignment_offset(interval);
    if (shifted % interval != 0) return std::nullopt;
    return shifted / interval;
}

std::int64_t bucket_start(std::int64_t time, std::int64_t interval) {
    const std::int64_t off = alignment_offset(interval);
    return floor_div(time - off, interval) * interval + off;
}

} // namespace

RejectReason check_values(const Candidate& c) noexcept {
    if (c.parse_error != RejectReason::none) return c.parse_error;
    if (!c.time || !in_time_range(*c.time)) return RejectReason::unparsable_time;
    for (const double p : {c.open, c.high, c.low, c.close, c.volume})
        if (std::isinf(p)) return RejectReason::non_finite_number;
    for (const double p : {c.open, c.high, c.low, c.close})
        if (std::isnan(p)) return RejectReason::missing_price;
    for (const double p : {c.open, c.high, c.low, c.close})
        if (!(p > 0)) return RejectReason::non_positive_price;
    if (c.high < std::max(c.open, c.close) || c.high < c.low) return RejectReason::high_below_open_close;
    if (c.low > std::min(c.open, c.close)) return RejectReason::low_above_open_close;
    if (std::isnan(c.volume)) return RejectReason::unparsable_number;
    if (c.volume < 0) return RejectReason::negative_volume;
    return RejectReason::none;
}

namespace {

/// A candidate kept while the interval is still being inferred; owns its raw text.
struct PendingCandidate {
    Candidate candidate;
    std::string raw;
};

/// Aggregates finer bars into buckets (open first, high max, low min, close last, volume sum).
struct Bucket {
    Bar bar;
    std::int64_t first_time = 0;
    std::int64_t last_time = 0;
    std::int64_t count = 0;
};

} // namespace

struct IngestWriter::Impl {
    store::Store& store;
    IngestOptions options;
    std::int64_t run_id;
    std::string source_label;
    std::optional<std::int64_t> interval;
    std::int64_t now = now_unix();
    std::string time_source; // where the times come from, for errors; empty when the source says nothing

    std::vector<PendingCandidate> pending;
    SlotSet seen;         // source slots, for duplicates within the input
    SlotSet stored_slots; // slots in the stored interval, for missing_bars
    std::vector<Bar> batch;
    std::vector<store::RejectedRow> rejects;
    std::map<std::int64_t, Bucket> buckets;

    std::int64_t rows_read = 0;
    std::int64_t rows_inserted = 0;
    std::int64_t rows_duplicate = 0;
    std::int64_t rows_rejected = 0;
    std::int64_t incomplete_buckets = 0;
    std::map<std::string, std::int64_t> reasons;
    std::optional<std::int64_t> first_seen_time;
    std::optional<std::int64_t> previous_time;
    std::int64_t descending_steps = 0;
    std::int64_t ascending_steps = 0;

    Impl(store::Store& s, const IngestOptions& o, std::int64_t id, std::string label)
        : store(s), options(o), run_id(id), source_label(std::move(label)), interval(o.interval) {}

    [[nodiscard]] std::int64_t stored_interval() const { return options.resample ? *options.resample : *interval; }

    void reject(const Candidate& c, RejectReason reason) {
        ++rows_rejected;
        ++reasons[std::string(to_string(reason))];
        std::string raw(c.raw.substr(0, kMaxRawBytes));
        rejects.push_back({c.line, std::move(raw), std::string(to_string(reason))});
        if (rejects.size() >= kRejectBatch) flush_rejects();
    }

    void flush_rejects() {
        if (rejects.empty()) return;
        store.insert_rejected(run_id, rejects);
        rejects.clear();
    }

    void flush_bars() {
        if (batch.empty()) return;
        const auto result = store.insert_bars({options.symbol, stored_interval()}, batch, source_label);
        rows_inserted += result.inserted;
        rows_duplicate += result.duplicate;
        batch.clear();
    }

    void emit(const Bar& bar) {
        if (auto slot = slot_of(bar.time, stored_interval())) stored_slots.insert(*slot);
        batch.push_back(bar);
        if (batch.size() >= kBarBatch) flush_bars();
    }

    void emit_bucket(const Bucket& b) {
        Bar bar = b.bar;
        bar.complete = b.count == *options.resample / *interval;
        if (!bar.complete) ++incomplete_buckets;
        emit(bar);
    }

    void resample(const Bar& bar) {
        const std::int64_t target = *options.resample;
        const std::int64_t start = bucket_start(bar.time, target);
        auto [it, fresh] = buckets.try_emplace(start);
        Bucket& b = it->second;
        if (fresh) {
            b.bar = bar;
            b.bar.time = start;
            b.first_time = b.last_time = bar.time;
        } else {
            if (bar.time < b.first_time) {
                b.first_time = bar.time;
                b.bar.open = bar.open;
            }
            if (bar.time > b.last_time) {
                b.last_time = bar.time;
                b.bar.close = bar.close;
            }
            b.bar.high = std::max(b.bar.high, bar.high);
            b.bar.low = std::min(b.bar.low, bar.low);
            b.bar.volume += bar.volume;
        }
        ++b.count;
        // Sorted input (either direction) finishes a bucket once rows two buckets away arrive.
        for (auto i = buckets.begin(); i != buckets.end();) {
            if (std::llabs(i->first - start) >= 2 * target) {
                emit_bucket(i->second);
                i = buckets.erase(i);
            } else {
                ++i;
            }
        }
    }

    void accept(const Candidate& c) {
        const RejectReason value_problem = check_values(c);
        if (value_problem != RejectReason::none) return reject(c, value_problem);
        const std::int64_t t = *c.time;
        if (options.from && t < *options.from) return;
        if (options.to && t > *options.to) return;
        const auto slot = slot_of(t, *interval);
        if (!slot) return reject(c, RejectReason::misaligned_time);
        if (t > now) return reject(c, RejectReason::future_time);
        if (!seen.insert(*slot)) return reject(c, RejectReason::duplicate_time);
        if (previous_time) (t < *previous_time ? descending_steps : ascending_steps)++;
        previous_time = t;
        const Bar bar{t, c.open, c.high, c.low, c.close, c.volume, true};
        if (options.resample)
            resample(bar);
        else
            emit(bar);
    }

    void infer_interval() {
        std::vector<std::int64_t> times;
        // Rows with bad prices still sit on the time grid (the old Kaggle NaN minutes), so every parsed time counts.
        for (const auto& p : pending)
            if (p.candidate.time) times.push_back(*p.candidate.time);
        std::unordered_map<std::int64_t, std::int64_t> counts;
        for (std::size_t i = 1; i < times.size(); ++i)
            if (const auto d = std::llabs(times[i] - times[i - 1]); d > 0) ++counts[d];
        const std::string where = time_source.empty() ? "" : fmt::format(" in {}", time_source);
        if (times.empty() && !pending.empty())
            throw InvalidInput(fmt::format(
                "cannot infer the bar interval: none of the first {} rows has a time that parses{} (first row: "
                "'{}'); times are ISO 8601 or unix seconds/milliseconds from 1970 to 2099; map the time column with "
                "--columns time=COL",
                pending.size(), where, pending.front().raw.substr(0, 80)));
        if (counts.empty())
            throw InvalidInput(fmt::format("cannot infer the bar interval: fewer than two rows with distinct times{}; "
                                           "pass --interval (e.g. --interval 1h), or map the time column with "
                                           "--columns time=COL",
                                           where));
        std::int64_t best = 0, best_count = 0;
        for (const auto& [d, n] : counts)
            if (n > best_count || (n == best_count && d < best)) best = d, best_count = n;
        interval = best;
        log::debug("inferred bar interval", {{"interval", format_interval(best)}, {"from_rows", times.size()}});
    }

    void start_streaming() {
        if (!interval) infer_interval();
        if (options.resample) {
            if (*options.resample < *interval || *options.resample % *interval != 0)
                throw UsageError(fmt::format("--resample {}: must be a multiple of the source interval {}",
                                             format_interval(*options.resample), format_interval(*interval)));
        }
        auto held = std::move(pending);
        pending.clear();
        for (auto& p : held) {
            p.candidate.raw = p.raw;
            accept(p.candidate);
        }
    }

    void add(const Candidate& c) {
        ++rows_read;
        if (!interval || !pending.empty()) {
            if (pending.size() < kInferenceRows) {
                pending.push_back({c, std::string(c.raw)});
                pending.back().candidate.raw = {};
                return;
            }
            start_streaming();
        }
        accept(c);
    }
};

IngestWriter::IngestWriter(store::Store& store, const IngestOptions& options, std::int64_t run_id,
                           std::string source_label)
    : impl_(std::make_unique<Impl>(store, options, run_id, std::move(source_label))) {}
IngestWriter::~IngestWriter() = default;

void IngestWriter::set_time_source(std::string description) { impl_->time_source = std::move(description); }
void IngestWriter::add(const Candidate& candidate) { impl_->add(candidate); }
std::optional<std::int64_t> IngestWriter::interval() const { return impl_->interval; }
std::int64_t IngestWriter::rows_read() const { return impl_->rows_read; }

void IngestWriter::finish(IngestSummary& summary) {
    auto& s = *impl_;
    if (s.rows_read == 0 && !s.interval) throw InvalidInput("the source holds no data rows");
    if (!s.pending.empty() || !s.interval) s.start_streaming();
    for (const auto& [start, bucket] : s.buckets)
        s.emit_bucket(bucket);
    s.buckets.clear();
    s.flush_bars();
    s.flush_rejects();
    summary.interval = s.stored_interval();
    if (s.options.resample) summary.source_interval = *s.interval;
    summary.rows_read = s.rows_read;
    summary.rows_inserted = s.rows_inserted;
    summary.rows_duplicate = s.rows_duplicate;
    summary.rows_rejected = s.rows_rejected;
    summary.rejected_reasons = s.reasons;
    summary.incomplete_buckets = s.incomplete_buckets;
    summary.newest_first = s.descending_steps > s.ascending_steps;
    if (!s.stored_slots.empty()) {
        const std::int64_t iv = summary.interval;
        const std::int64_t off = alignment_offset(iv);
        summary.first_time = s.stored_slots.min() * iv + off;
        summary.last_time = s.stored_slots.max() * iv + off;
        summary.missing_bars = s.stored_slots.gaps();
    }
}

nlohmann::json to_json(const IngestSummary& s) {
    const auto time_or_null = [](const std::optional<std::int64_t>& t) {
        return t ? nlohmann::json(format_iso8601(*t)) : nlohmann::json(nullptr);
    };
    nlohmann::json j = {
        {"run_id", s.run_id},
        {"source", s.source},
        {"format", s.format},
        {"symbol", s.symbol},
        {"interval", format_interval(s.interval)},
        {"synthetic", s.synthetic},
        {"rows_read", s.rows_read},
        {"rows_inserted", s.rows_inserted},
        {"rows_duplicate", s.rows_duplicate},
        {"rows_rejected", s.rows_rejected},
        {"rejected_reasons", s.rejected_reasons},
        {"first_time", time_or_null(s.first_time)},
        {"last_time", time_or_null(s.last_time)},
        {"missing_bars", s.missing_bars},
        {"newest_first", s.newest_first},
        {"seconds", s.seconds},
    };
    if (s.source_interval) {
        j["resampled_from"] = format_interval(*s.source_interval);
        j["incomplete_buckets"] = s.incomplete_buckets;
    }
    return j;
}

namespace {

using SourceFn = void (*)(std::string_view spec, SourceContext& ctx);

struct SourceKind {
    std::string_view prefix;
    SourceFn read;
    std::string_view default_symbol;
    std::int64_t default_interval; // 0: inferred from the data
    std::string_view default_spec; // what `prefix` alone means
};

void read_path(std::string_view spec, SourceContext& ctx) { read_file(std::filesystem::path(spec), ctx); }

// A replay reveals a bar once it has closed by the process clock (core/time.hpp), so that each ingest of the same
// file stores the bars that closed since the previous one; later rows are skipped, not rejected.
std::int64_t replay_until(std::string_view spec, const IngestOptions& options) {
    if (spec.empty()) throw UsageError("replay: needs a file (replay:PATH)");
    if (!options.interval && !options.resample)
        throw UsageError("replay: needs the series' interval (--interval) to tell when a bar has closed");
    const std::int64_t now = now_unix();
    const std::int64_t until =
        options.resample ? now / *options.resample * *options.resample - 1 : now - *options.interval;
    return options.to ? std::min(*options.to, until) : until;
}

// The route table of sources: SOURCE is matched by its prefix before the first ':'.
constexpr SourceKind kSources[] = {
    {"synthetic", read_synthetic, "BTCUSD-SYNTH", 3600, "42"},
    {"kaggle", read_kaggle, "BTCUSD", 0, "mczielinski/bitcoin-historical-data"},
    {"bitstamp", read_bitstamp, "BTCUSD", 3600, "btcusd"},
    {"binance", read_binance, "BTCUSD", 3600, "BTCUSDT"},
    {"replay", read_path, "BTCUSD", 0, ""},
};

std::pair<const SourceKind*, std::string_view> find_source(std::string_view source) {
    static constexpr SourceKind file_kind{"file", read_path, "BTCUSD", 0, ""};
    const auto colon = source.find(':');
    const std::string_view prefix = source.substr(0, colon);
    for (const auto& kind : kSources)
        if (prefix == kind.prefix)
            return {&kind, colon == std::string_view::npos ? std::string_view{} : source.substr(colon + 1)};
    return {&file_kind, source};
}

} // namespace

IngestSummary ingest(store::Store& store, const std::string& source_in, const IngestOptions& options_in,
                     const ProgressFn& progress) {
    if (source_in.empty()) throw UsageError("ingest: SOURCE is empty");
    auto [kind, spec] = find_source(source_in);
    if (spec.empty()) spec = kind->default_spec;
    // Bars carry the full source, seed or data set included, so that `synthetic` is stored as `synthetic:42`.
    const std::string source = kind->prefix == "file" ? source_in : fmt::format("{}:{}", kind->prefix, spec);
    IngestOptions options = options_in;
    if (options.symbol.empty()) options.symbol = std::string(kind->default_symbol);
    if (!options.interval && kind->default_interval > 0) options.interval = kind->default_interval;
    if (kind->prefix == "replay") options.to = replay_until(spec, options);
    return ingest_records(
        store, source, options, [&](SourceContext& ctx) { kind->read(spec, ctx); }, progress);
}

IngestSummary ingest_records(store::Store& store, const std::string& source, const IngestOptions& options,
                             const std::function<void(SourceContext&)>& read, const ProgressFn& progress) {
    const auto started = std::chrono::steady_clock::now();
    store::IngestRun run;
    run.source = source;
    run.symbol = options.symbol;
    run.started_at = wall_unix();
    store::sweep_abandoned_runs(store);
    run.id = store.create_ingest_run(run);
    const store::Heartbeat heartbeat(store, store::RunKind::ingest, std::to_string(run.id));

    IngestSummary summary;
    summary.run_id = run.id;
    summary.source = source;
    summary.symbol = options.symbol;
    summary.synthetic = source.starts_with("synthetic:");
    try {
        store.begin();
        IngestWriter writer(store, options, run.id, source);
        const ProgressFn no_progress = [](std::int64_t, std::int64_t) {};
        SourceContext ctx{store, options, writer, summary.format, progress ? progress : no_progress};
        read(ctx);
        writer.finish(summary);
        store.commit();
    } catch (const std::exception& e) {
        // The error that got us here is the one to report, once, by the caller. A failing rollback adds nothing to
        // it: the database may have ended the transaction itself (SQLite on a full disk) or lost the connection.
        try {
            store.rollback();
        } catch (const std::exception& rollback_error) {
            log::debug("rollback after a failed ingest", {{"error.message", rollback_error.what()}});
        }
        run.status = "failed";
        run.error = e.what();
        run.format = summary.format;
        run.finished_at = wall_unix();
        // The store may be what failed (PostgreSQL gone, a full disk): recording the failure must not replace the
        // error that ended the run.
        try {
            store.finish_ingest_run(run);
        } catch (const std::exception& record_error) {
            log::error("could not record the failed ingest run",
                       {{"ingest.run_id", run.id}, {"error.message", record_error.what()}});
        }
        throw;
    }
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    run.status = "succeeded";
    run.format = summary.format;
    run.interval = summary.interval;
    run.finished_at = wall_unix();
    static_cast<store::IngestCounts&>(run) = summary;
    run.summary_json = to_json(summary).dump();
    store.finish_ingest_run(run);
    return summary;
}

} // namespace btcml::data
