#include "data/csv_file.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <cmath>
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
    c = Candidate{};
    c.line = line_number_;
    c.raw = line;
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

} // namespace btcml::data
