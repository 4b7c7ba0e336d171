#include "data/csv_file.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

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

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// Parses a price or volume. Empty fields and NaN give NaN (a missing value); text that is not a number sets
/// `bad`.
double parse_number(std::string_view s, bool& bad) {
    s = trim(s);
    if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
    double v = 0;
    const auto r = fast_float::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) {
        bad = true;
        return std::numeric_limits<double>::quiet_NaN();
    }
    return v;
}

// Clinger's fast path: a mantissa up to 2^53 divided by an exact power of ten is correctly rounded, so it gives the
// same double as fast_float.
constexpr std::uint64_t kMaxExactMantissa = std::uint64_t{1} << 53;
constexpr std::array<double, 23> kPowersOfTen{1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                              1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
// Unix seconds below this are taken as seconds by parse_unix_time; larger ones take the general path.
constexpr std::uint64_t kMaxPlainSeconds = 100'000'000'000;

constexpr std::array<std::uint64_t, 9> kIntPowersOfTen{1, 10, 100, 1'000, 10'000, 100'000, 1'000'000, 10'000'000,
                                                        100'000'000};

/// A field of the form digits[.digits], as exchanges and Kaggle write prices, volumes and float unix seconds.
struct PlainDecimal {
    std::uint64_t mantissa = 0; // all the digits, as an integer
    std::uint64_t integer = 0;  // the digits before the point
    std::size_t fraction_digits = 0;
};

/// Appends the run of digits at `p` to `value` and moves `p` past it; returns how many digits. Eight bytes at a
/// time while the line has them (SWAR: find the first non-digit, then combine up to eight digits with three
/// multiplications), else one by one.
std::size_t take_digits(const char*& p, const char* end, std::uint64_t& value) {
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
    while (p != end && *p >= '0' && *p <= '9') value = value * 10 + static_cast<unsigned>(*p++ - '0');
    return static_cast<std::size_t>(p - start);
}

/// Reads a plain decimal from `p` up to the next comma or `end`, leaving `p` there. False, for the general path to
/// judge, when the field is anything else (signs, spaces, exponents, NaN, quotes, empty) or has over 19 digits.
bool scan_plain_decimal(const char*& p, const char* end, PlainDecimal& d) {
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

CsvFile::CsvFile(const std::filesystem::path& path, const std::string& format, const std::string& columns)
    : reader_(open_byte_reader(path)) {
    if (reader_->file_size() == 0) throw InvalidInput(fmt::format("{}: the file is empty", path.string()));
    lines_ = std::make_unique<LineReader>(*reader_);
    std::string_view line;
    while (head_.size() < kDetectLines && lines_->next(line)) head_.emplace_back(line);
    try {
        layout_ = detect_layout(head_, format, columns);
    } catch (const Error& e) {
        throw Error(e.kind(), fmt::format("{}: {}", path.string(), e.what()));
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
}

bool CsvFile::next(Candidate& out) {
    std::string_view line;
    while (true) {
        if (head_served_ < head_.size()) line = head_[head_served_++];
        else if (!lines_->next(line)) return false;
        ++line_number_;
        if (parse(line, out)) return true;
    }
}

bool CsvFile::parse(std::string_view line, Candidate& c) {
    if (line_number_ <= layout_.skip_lines || trim(line).empty()) return false;
    Candidate fresh;
    fresh.line = line_number_;
    fresh.raw = line;
    c = fresh;
    if (parse_plain(line, c)) return true;
    c = fresh; // the fast path may have filled some fields before it declined
    split_csv(line, fields_);
    if (static_cast<int>(fields_.size()) <= layout_.max_index()) {
        c.parse_error = RejectReason::bad_field_count;
        return true;
    }
    const auto field = [&](int index) { return fields_[static_cast<std::size_t>(index)]; };
    c.time = parse_time(field(layout_.time));
    bool bad = false;
    c.open = parse_number(field(layout_.open), bad);
    c.high = parse_number(field(layout_.high), bad);
    c.low = parse_number(field(layout_.low), bad);
    c.close = parse_number(field(layout_.close), bad);
    if (layout_.volume >= 0) {
        c.volume = parse_number(field(layout_.volume), bad);
        // An empty volume next to valid prices is a missing value, not a bad row.
        if (std::isnan(c.volume) && !bad && trim(field(layout_.volume)).empty()) c.volume = 0;
    }
    if (!c.time) c.parse_error = RejectReason::unparsable_time;
    else if (bad) c.parse_error = RejectReason::unparsable_number;
    return true;
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
            if (!scan_plain_decimal(p, end, d) || d.integer >= kMaxPlainSeconds || d.fraction_digits > 8 ||
                d.mantissa != d.integer * kIntPowersOfTen[d.fraction_digits])
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
            while (p != end && *p != ',') ++p;
        }
    }
    return true;
}

} // namespace btcml::data
