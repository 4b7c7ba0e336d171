#include "data/csv_file.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <fast_float/fast_float.h>
#include <fmt/format.h>
#include <limits>

namespace btcml::data {
namespace {

constexpr std::size_t kDetectLines = 5;
// More parsing threads than this would wait on the one consumer.
constexpr unsigned kMaxThreads = 4;
// Batches in flight per thread: slack for a thread descheduled on a busy machine, while small chunks keep a batch
// (its text and its rows) in the cache between the thread that parses it and the one that consumes it.
constexpr std::size_t kBatchesPerThread = 4;

std::string overlong_message(std::int64_t line) {
    return fmt::format("line {} is longer than {} MB: not a CSV file of bars", line, ChunkReader::kMaxLine >> 20);
}

/// The line at `pos` in `text`, without its `\n` or `\r\n`; moves `pos` past it. The last line may lack the `\n`.
std::string_view take_line(std::string_view text, std::size_t& pos) {
    const std::size_t nl = text.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(pos, end - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// Parses a price or volume. Empty fields and NaN give NaN (a missing value); text that is not a number sets
/// `bad`; an infinity, or a number too large for a double (`1e309`), sets `infinite` (one too small is 0).
double parse_number(std::string_view s, bool& bad, bool& infinite) {
    s = trim(s);
    if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
    double v = 0;
    const auto r = fast_float::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ptr != s.data() + s.size() || (r.ec != std::errc{} && r.ec != std::errc::result_out_of_range)) {
        bad = true;
        return std::numeric_limits<double>::quiet_NaN();
    }
    if (std::isinf(v)) infinite = true;
    return v;
}

// Clinger's fast path: a mantissa up to 2^53 divided by an exact power of ten is correctly rounded, so it gives the
// same double as fast_float.
constexpr std::uint64_t kMaxExactMantissa = std::uint64_t{1} << 53;
constexpr std::array<double, 23> kPowersOfTen{1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                              1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

constexpr std::array<std::uint64_t, 9> kIntPowersOfTen{1,       10,        100,        1'000,      10'000,
                                                       100'000, 1'000'000, 10'000'000, 100'000'000};

/// A field of the form digits[.digits], as exchanges and Kaggle write prices, volumes and float unix seconds.
struct PlainDecimal {
    std::uint64_t mantissa = 0; // all the digits, as an integer
    std::uint64_t integer = 0;  // the digits before the point
    std::size_t fraction_digits = 0;
};

/// Appends the run of digits at `p` to `value` and moves `p` past it; returns how many digits. Eight bytes at a
/// time while the line has them (SWAR: find the first non-digit, then combine up to eight digits with three
/// multiplications), else one by one.
[[gnu::always_inline]] inline std::size_t take_digits(const char*& p, const char* end, std::uint64_t& value) {
    const char* start = p;
    if constexpr (std::endian::native == std::endian::little) {
        while (end - p >= 8) {
            std::uint64_t chunk = 0;
            std::memcpy(&chunk, p, 8);
            const std::uint64_t digits = chunk - 0x3030303030303030;
            // A byte's high bit ends up set when it is below '0' (the subtraction borrows) or above '9' (the
            // addition carries); a borrow or carry only reaches later bytes, past the first non-digit.
            const std::uint64_t non_digits = (digits | (chunk + 0x4646464646464646)) & 0x8080808080808080;
            const auto n = non_digits == 0 ? 8U : static_cast<unsigned>(std::countr_zero(non_digits)) / 8;
            if (n == 0) return static_cast<std::size_t>(p - start);
            std::uint64_t v = digits << (8 * (8 - n)); // the n digits, behind leading zeros
            v = v * 10 + (v >> 8);
            constexpr std::uint64_t kPairs = 0x000000FF000000FF;
            v = ((v & kPairs) * 0x000F424000000064 + ((v >> 16) & kPairs) * 0x0000271000000001) >> 32;
            value = value * kIntPowersOfTen[n] + v;
            p += n;
            if (n < 8) return static_cast<std::size_t>(p - start);
        }
    }
    while (p != end && *p >= '0' && *p <= '9')
        value = value * 10 + static_cast<unsigned>(*p++ - '0');
    return static_cast<std::size_t>(p - start);
}

/// Reads a plain decimal from `p` up to the next comma or `end`, leaving `p` there. False, for the general path to
/// judge, when the field is anything else (signs, spaces, exponents, NaN, quotes, empty) or has over 19 digits.
[[gnu::always_inline]] inline bool scan_plain_decimal(const char*& p, const char* end, PlainDecimal& d) {
    std::size_t digits = take_digits(p, end, d.mantissa);
    d.integer = d.mantissa;
    if (digits == 0) return false;
    if (p != end && *p == '.') {
        ++p;
        d.fraction_digits = take_digits(p, end, d.mantissa);
        if (d.fraction_digits == 0) return false;
        digits += d.fraction_digits;
    }
    return digits <= 19 && (p == end || *p == ',');
}

} // namespace

CsvFile::CsvFile(const std::filesystem::path& path, const std::string& format, const std::string& columns,
                 const CsvFileTuning& tuning)
    : reader_(open_byte_reader(path)), file_size_(reader_->file_size()), chunks_(*reader_, tuning.chunk_bytes) {
    // The first chunk, extended until it holds the lines that the layout is detected from, is batch 0.
    const std::size_t threads =
        tuning.threads ? *tuning.threads : std::clamp(std::thread::hardware_concurrency(), 1U, kMaxThreads);
    ring_.resize(threads == 0 ? 1 : kBatchesPerThread * threads);
    Batch& first = ring_.front();
    std::vector<std::string> head;
    std::size_t pos = 0;
    while (head.size() < kDetectLines) {
        if (pos == first.chunk.text().size() && !chunks_.extend(first.chunk)) break;
        head.emplace_back(take_line(first.chunk.text(), pos));
    }
    if (chunks_.overlong()) throw InvalidInput(overlong_message(static_cast<std::int64_t>(head.size()) + 1));
    try {
        layout_ = detect_layout(head, format, columns);
    } catch (const Error& e) {
        throw Error(e.kind(), fmt::format("{}: {}", display_name(path), e.what()));
    }
    targets_.assign(static_cast<std::size_t>(layout_.max_index() + 1), nullptr);
    targets_[static_cast<std::size_t>(layout_.open)] = &Candidate::open;
    targets_[static_cast<std::size_t>(layout_.high)] = &Candidate::high;
    targets_[static_cast<std::size_t>(layout_.low)] = &Candidate::low;
    targets_[static_cast<std::size_t>(layout_.close)] = &Candidate::close;
    if (layout_.volume >= 0) targets_[static_cast<std::size_t>(layout_.volume)] = &Candidate::volume;
    format_ = layout_.name;
    const std::string container = reader_->container();
    if (container != "plain") format_ += " (" + container + ")";

    first.position = reader_->position();
    first.last = read_done_ = chunks_.at_end();
    // A file that fits in its first chunk is not worth a thread.
    if (!read_done_) {
        try {
            for (std::size_t i = 0; i < threads; ++i)
                threads_.emplace_back([this] { work(); });
        } catch (...) {
            stop_threads(); // a thread that failed to start must not leave the others running
            throw;
        }
    }
    parse(first);
}

CsvFile::~CsvFile() { stop_threads(); }

void CsvFile::stop_threads() noexcept {
    {
        // Under the mutex, so that no thread is between checking stop_ and waiting when the notification comes.
        const std::lock_guard lock(mutex_);
        stop_.request_stop();
    }
    changed_.notify_all();
    for (auto& thread : threads_)
        thread.join();
    threads_.clear();
}

bool CsvFile::next(Candidate& out) {
    while (true) {
        const Batch& batch = ring_[current_ % ring_.size()];
        while (row_ < batch.rows.size()) {
            out = batch.rows[row_++];
            out.line += line_base_;
            if (out.line > layout_.skip_lines) return true;
        }
        if (batch.last) return false;
        advance();
    }
}

// Releases the current batch to the threads and takes the next one, or reads and parses it here when no
// threads run; rethrows what failed there.
void CsvFile::advance() {
    line_base_ += ring_[current_ % ring_.size()].lines;
    row_ = 0;
    if (threads_.empty()) {
        ++current_;
        Batch& batch = ring_[current_ % ring_.size()];
        read(batch);
        parse(batch);
    } else {
        std::unique_lock lock(mutex_);
        ring_[current_ % ring_.size()].ready = false;
        ++current_;
        changed_.notify_all();
        // Every batch up to the last one read becomes ready: a failed read or parse is a ready batch with an error.
        changed_.wait(lock, [this] { return ring_[current_ % ring_.size()].ready; });
    }
    const Batch& batch = ring_[current_ % ring_.size()];
    if (batch.error) std::rethrow_exception(batch.error);
    if (batch.overlong) throw InvalidInput(overlong_message(line_base_ + 1));
}

// A parsing thread: takes the next chunk in file order once its slot of the ring is released, reads it while the
// other threads wait their turn, and parses it outside the lock, so that one thread parses while another reads (or
// decompresses). Every wait ends when stop is requested.
void CsvFile::work() {
    const std::stop_token stop = stop_.get_token();
    std::unique_lock lock(mutex_);
    while (true) {
        const bool go = changed_.wait(lock, stop, [&] {
            return read_done_ || (!reading_ && next_read_ < current_ + ring_.size());
        });
        if (!go || read_done_) return;
        reading_ = true;
        Batch& batch = ring_[next_read_++ % ring_.size()];
        lock.unlock();
        const bool last = read(batch);
        lock.lock();
        reading_ = false;
        read_done_ = last;
        changed_.notify_all();
        lock.unlock();
        parse(batch);
        lock.lock();
        batch.ready = true;
        changed_.notify_all();
    }
}

bool CsvFile::read(Batch& batch) {
    batch.overlong = false;
    batch.error = nullptr;
    try {
        batch.overlong = !chunks_.next(batch.chunk) && chunks_.overlong();
    } catch (...) {
        batch.error = std::current_exception();
    }
    batch.position = reader_->position();
    batch.last = batch.error != nullptr || chunks_.at_end();
    return batch.last;
}

// Parses every line of the batch's chunk; blank lines give no row but count.
void CsvFile::parse(Batch& batch) const noexcept {
    batch.rows.clear();
    batch.lines = 0;
    try {
        std::vector<std::string_view> fields; // split_csv's output, kept for the chunk
        const std::string_view text = batch.chunk.text();
        std::size_t pos = 0;
        while (pos < text.size()) {
            const std::string_view line = take_line(text, pos);
            ++batch.lines;
            if (trim(line).empty()) continue;
            Candidate& c = batch.rows.emplace_back();
            c.line = batch.lines;
            c.raw = line;
            parse_row(line, c, fields);
        }
    } catch (...) { // only allocation can fail
        batch.rows.clear();
        batch.error = std::current_exception();
    }
}

void CsvFile::parse_row(std::string_view line, Candidate& c, std::vector<std::string_view>& fields) const {
    if (parse_plain(line, c)) return;
    // The fast path may have filled some fields before it declined.
    Candidate fresh;
    fresh.line = c.line;
    fresh.raw = line;
    c = fresh;
    split_csv(line, fields);
    const auto count = static_cast<int>(fields.size());
    if (count <= layout_.max_index() || count > layout_.max_fields) {
        c.parse_error = RejectReason::bad_field_count;
        return;
    }
    const auto field = [&](int index) { return fields[static_cast<std::size_t>(index)]; };
    if (layout_.time_of_day >= 0)
        c.time = parse_iso8601(fmt::format("{}T{}", trim(field(layout_.time)), trim(field(layout_.time_of_day))));
    else
        c.time = parse_time(field(layout_.time));
    bool bad = false;
    bool infinite = false;
    c.open = parse_number(field(layout_.open), bad, infinite);
    c.high = parse_number(field(layout_.high), bad, infinite);
    c.low = parse_number(field(layout_.low), bad, infinite);
    c.close = parse_number(field(layout_.close), bad, infinite);
    if (layout_.volume >= 0) {
        c.volume = parse_number(field(layout_.volume), bad, infinite);
        // An empty volume next to valid prices is a missing value, not a bad row.
        if (std::isnan(c.volume) && !bad && trim(field(layout_.volume)).empty()) c.volume = 0;
    }
    if (!c.time)
        c.parse_error = RejectReason::unparsable_time;
    else if (bad)
        c.parse_error = RejectReason::unparsable_number;
    else if (infinite)
        c.parse_error = RejectReason::non_finite_number;
}

// The common row, read in one pass without splitting: it gives what the general path would, or declines.
bool CsvFile::parse_plain(std::string_view line, Candidate& c) const {
    const char* p = line.data();
    const char* const end = p + line.size();
    for (std::size_t i = 0; i < targets_.size(); ++i) {
        if (i > 0) {
            if (p == end) return false; // too few fields
            ++p;                        // the comma
        }
        if (static_cast<int>(i) == layout_.time) {
            PlainDecimal d;
            // Whole seconds only (digits <= 19 keeps the products exact): a fraction takes the general path.
            if (!scan_plain_decimal(p, end, d) || d.integer >= static_cast<std::uint64_t>(kTimeEnd) ||
                d.fraction_digits > 8 || d.mantissa != d.integer * kIntPowersOfTen[d.fraction_digits])
                return false;
            c.time = static_cast<std::int64_t>(d.integer);
        } else if (const auto target = targets_[i]) {
            PlainDecimal d;
            if (!scan_plain_decimal(p, end, d) || d.mantissa > kMaxExactMantissa ||
                d.fraction_digits >= kPowersOfTen.size())
                return false;
            c.*target = static_cast<double>(d.mantissa) / kPowersOfTen[d.fraction_digits];
        } else {
            if (p != end && *p == '"') return false; // a quoted field may hold commas
            while (p != end && *p != ',')
                ++p;
        }
    }
    // Fields past the last one used: the general path judges a row that may have too many.
    if (p == end) return true;
    int count = static_cast<int>(targets_.size());
    for (; p != end; ++p) {
        if (*p == '"') return false; // a quoted field may hold commas
        if (*p == ',' && ++count > layout_.max_fields) return false;
    }
    return true;
}

} // namespace btcml::data
