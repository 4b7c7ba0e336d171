// CSV files (plain, .gz, .zip): detect the layout from the first lines, then stream rows into the writer.
#include "core/error.hpp"
#include "core/time.hpp"
#include "data/byte_reader.hpp"
#include "data/layout.hpp"
#include "data/sources.hpp"

#include <cmath>
#include <fast_float/fast_float.h>
#include <fmt/format.h>
#include <limits>

namespace btcml::data {
namespace {

constexpr std::size_t kDetectLines = 5;
constexpr std::int64_t kProgressEvery = 1 << 16;

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

Candidate parse_row(std::string_view line, std::int64_t line_number, const Layout& layout,
                    std::vector<std::string_view>& fields) {
    Candidate c;
    c.line = line_number;
    c.raw = line;
    split_csv(line, fields);
    if (static_cast<int>(fields.size()) <= layout.max_index()) {
        c.parse_error = RejectReason::bad_field_count;
        return c;
    }
    c.time = parse_time(fields[static_cast<std::size_t>(layout.time)]);
    bool bad = false;
    c.open = parse_number(fields[static_cast<std::size_t>(layout.open)], bad);
    c.high = parse_number(fields[static_cast<std::size_t>(layout.high)], bad);
    c.low = parse_number(fields[static_cast<std::size_t>(layout.low)], bad);
    c.close = parse_number(fields[static_cast<std::size_t>(layout.close)], bad);
    if (layout.volume >= 0) {
        c.volume = parse_number(fields[static_cast<std::size_t>(layout.volume)], bad);
        // An empty volume next to valid prices is a missing value, not a bad row.
        if (std::isnan(c.volume) && !bad && trim(fields[static_cast<std::size_t>(layout.volume)]).empty()) c.volume = 0;
    }
    if (!c.time) c.parse_error = RejectReason::unparsable_time;
    else if (bad) c.parse_error = RejectReason::unparsable_number;
    return c;
}

} // namespace

void read_file(const std::filesystem::path& path, SourceContext& ctx) {
    auto reader = open_byte_reader(path);
    if (reader->file_size() == 0) throw InvalidInput(fmt::format("{}: the file is empty", path.string()));
    LineReader lines(*reader);

    std::vector<std::string> head;
    std::string_view line;
    while (head.size() < kDetectLines && lines.next(line)) head.emplace_back(line);
    Layout layout;
    try {
        layout = detect_layout(head, ctx.options.format, ctx.options.columns);
    } catch (const Error& e) {
        throw Error(e.kind(), fmt::format("{}: {}", path.string(), e.what()));
    }
    ctx.format = layout.name;
    const std::string container = reader->container();
    if (container != "plain") ctx.format += " (" + container + ")";

    std::vector<std::string_view> fields;
    std::int64_t line_number = 0;
    const auto handle = [&](std::string_view text) {
        ++line_number;
        if (line_number <= layout.skip_lines) return;
        if (trim(text).empty()) return;
        ctx.writer.add(parse_row(text, line_number, layout, fields));
        if (line_number % kProgressEvery == 0)
            ctx.progress(static_cast<std::int64_t>(reader->position()), static_cast<std::int64_t>(reader->file_size()));
    };
    for (const auto& h : head) handle(h);
    while (lines.next(line)) handle(line);
    if (ctx.writer.rows_read() == 0)
        throw InvalidInput(fmt::format("{}: the file has a header but no data rows", path.string()));
    ctx.progress(static_cast<std::int64_t>(reader->file_size()), static_cast<std::int64_t>(reader->file_size()));
}

} // namespace btcml::data
