#include "data/layout.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <fast_float/fast_float.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace btcml::data {
namespace {

enum class Role { time, open, high, low, close, volume };
constexpr std::array kRoles{Role::time, Role::open, Role::high, Role::low, Role::close, Role::volume};

std::string_view role_name(Role r) {
    switch (r) {
    case Role::time: return "time";
    case Role::open: return "open";
    case Role::high: return "high";
    case Role::low: return "low";
    case Role::close: return "close";
    case Role::volume: return "volume";
    }
    return "";
}

int& slot(Layout& l, Role r) {
    switch (r) {
    case Role::time: return l.time;
    case Role::open: return l.open;
    case Role::high: return l.high;
    case Role::low: return l.low;
    case Role::close: return l.close;
    case Role::volume: return l.volume;
    }
    return l.time;
}

// Header names each role answers to, best first (normalised: lower case, spaces and dashes as underscores).
// Volume prefers the base currency (BTC): CryptoDataDownload and old Kaggle files carry both.
const std::vector<std::string_view>& aliases(Role r) {
    static const std::vector<std::string_view> time{"timestamp", "unix", "unix_timestamp", "open_time", "opentime",
                                                    "datetime",  "date", "time",           "ts",        "t"};
    static const std::vector<std::string_view> open{"open", "o", "open_price"};
    static const std::vector<std::string_view> high{"high", "h", "high_price"};
    static const std::vector<std::string_view> low{"low", "l", "low_price"};
    static const std::vector<std::string_view> close{"close", "c", "close_price", "price"};
    static const std::vector<std::string_view> volume{"volume", "volume_(btc)", "volume_btc", "volume_xbt", "vol",
                                                      "v",      "base_volume"};
    switch (r) {
    case Role::time: return time;
    case Role::open: return open;
    case Role::high: return high;
    case Role::low: return low;
    case Role::close: return close;
    case Role::volume: return volume;
    }
    return time;
}

std::string normalise(std::string_view name) {
    std::string out;
    for (const char c : name) {
        if (c == '"' || c == '\'' || c == '\r' || c == '\xEF' || c == '\xBB' || c == '\xBF') continue; // quotes, BOM
        out.push_back(c == ' ' || c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    while (!out.empty() && out.front() == '_')
        out.erase(out.begin());
    while (!out.empty() && out.back() == '_')
        out.pop_back();
    return out;
}

bool is_number(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '"'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '"'))
        s.remove_suffix(1);
    double v = 0;
    const auto r = fast_float::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

bool looks_like_data(const std::vector<std::string_view>& fields) {
    return !fields.empty() && parse_time(fields[0]).has_value() &&
           std::count_if(fields.begin(), fields.end(), [](std::string_view f) { return is_number(f); }) >= 4;
}

bool is_binary(std::string_view line) {
    const auto odd = std::count_if(line.begin(), line.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u == 0 || (u < 32 && c != '\t' && c != '\r');
    });
    return odd > 0;
}

std::string show(std::string_view line) {
    std::string s(line.substr(0, 80));
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
    return line.size() > 80 ? s + "…" : s;
}

constexpr std::string_view kColumnsHelp =
    "map the columns with --columns time=COL,open=COL,high=COL,low=COL,close=COL[,volume=COL] (COL is a header "
    "name or a 1-based column number), or force a layout with --format";

/// Layouts without a header are known by their field count.
std::optional<Layout> headerless(std::size_t field_count, const std::string& forced) {
    // All of them are time,open,high,low,close[,volume,…].
    Layout l;
    l.time = 0;
    l.open = 1;
    l.high = 2;
    l.low = 3;
    l.close = 4;
    l.volume = 5;
    if (forced == "kraken" || (forced.empty() && field_count == 7)) {
        l.name = "kraken";
    } else if (forced == "binance-klines" || (forced.empty() && field_count == 12)) {
        l.name = "binance-klines";
    } else if ((forced.empty() || forced == "generic") && (field_count == 6 || field_count == 5)) {
        l.name = "generic";
        if (field_count == 5) l.volume = -1;
    } else {
        return std::nullopt;
    }
    return l;
}

std::string header_layout_name(const std::vector<std::string>& names) {
    const auto has = [&](std::string_view n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    if (has("weighted_price") && has("volume_(btc)")) return "kaggle-legacy";
    if (names == std::vector<std::string>{"timestamp", "open", "high", "low", "close", "volume"}) return "kaggle";
    if (has("adj_close")) return "yahoo";
    if (has("unix") && has("symbol")) return "cryptodatadownload";
    if (has("open_time") && has("close_time")) return "binance-klines";
    return "generic";
}

void apply_columns(Layout& layout, const std::vector<std::string>& names, const std::string& columns) {
    for (const Role r : kRoles)
        slot(layout, r) = -1;
    std::string_view rest = columns;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        const auto eq = item.find('=');
        if (eq == std::string_view::npos)
            throw UsageError(fmt::format("--columns: '{}' is not ROLE=COLUMN; {}", item, kColumnsHelp));
        const std::string role = normalise(item.substr(0, eq));
        const std::string_view column = item.substr(eq + 1);
        const auto role_it = std::find_if(kRoles.begin(), kRoles.end(), [&](Role r) { return role_name(r) == role; });
        if (role_it == kRoles.end())
            throw UsageError(
                fmt::format("--columns: unknown role '{}' (roles: time, open, high, low, close, volume)", role));
        int index = -1;
        int number = 0;
        const auto [ptr, ec] = std::from_chars(column.data(), column.data() + column.size(), number);
        if (ec == std::errc{} && ptr == column.data() + column.size() && number >= 1) {
            index = number - 1;
        } else {
            const auto it = std::find(names.begin(), names.end(), normalise(column));
            if (it == names.end())
                throw UsageError(
                    fmt::format("--columns: no column named '{}' (header: {})", column, fmt::join(names, ", ")));
            index = static_cast<int>(it - names.begin());
        }
        slot(layout, *role_it) = index;
    }
    for (const Role r : kRoles)
        if (r != Role::volume && slot(layout, r) < 0)
            throw UsageError(fmt::format("--columns: no column given for {}; {}", role_name(r), kColumnsHelp));
}

/// What a column's values in the first rows are, as a bar time.
enum class TimeKind { none, full, date_only, time_of_day };

TimeKind time_kind(std::string_view value) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '"'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '"' || value.back() == '\r'))
        value.remove_suffix(1);
    if (parse_time(value)) return value.size() == 10 && value[4] == '-' ? TimeKind::date_only : TimeKind::full;
    // HH:MM[:SS[.fff]]: completes a date column.
    if (value.size() >= 5 && value[2] == ':' && parse_iso8601(fmt::format("1970-01-01T{}Z", value)))
        return TimeKind::time_of_day;
    return TimeKind::none;
}

/// The kind that the sampled rows' values agree on, a bad row aside; none when no value is a time, or two disagree.
TimeKind column_kind(const std::vector<std::vector<std::string_view>>& rows, int column) {
    TimeKind kind = TimeKind::none;
    for (const auto& row : rows) {
        if (static_cast<int>(row.size()) <= column) continue;
        const TimeKind k = time_kind(row[static_cast<std::size_t>(column)]);
        if (k == TimeKind::none) continue;
        if (kind != TimeKind::none && kind != k) return TimeKind::none;
        kind = k;
    }
    return kind;
}

std::string describe_column(const Layout& layout, int column, std::string_view why) {
    const auto i = static_cast<std::size_t>(column);
    if (i < layout.header.size()) return fmt::format("column {} '{}' ({})", column + 1, layout.header[i], why);
    return fmt::format("column {} ({})", column + 1, why);
}

/// Picks the time column of a header layout from the columns named like a time, by what their first rows hold: a
/// full timestamp (unix time or date and time) first, then a date-only column completed by a time-of-day column,
/// then a date-only column (daily bars); among equals, the name that ranks first in the aliases. With no rows to
/// look at, the best-ranked name.
void choose_time(Layout& layout, const std::vector<std::string>& names,
                 const std::vector<std::vector<std::string_view>>& rows) {
    const auto& time_aliases = aliases(Role::time);
    const auto taken = [&](int column) {
        return std::any_of(kRoles.begin(), kRoles.end(),
                           [&](Role r) { return r != Role::time && slot(layout, r) == column; });
    };
    // (alias rank, column): names that are not aliases but speak of time rank after them, in column order.
    std::vector<std::pair<std::size_t, int>> candidates;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const auto column = static_cast<int>(i);
        if (taken(column)) continue;
        const auto alias = std::find(time_aliases.begin(), time_aliases.end(), names[i]);
        if (alias != time_aliases.end()) {
            candidates.emplace_back(static_cast<std::size_t>(alias - time_aliases.begin()), column);
        } else if (names[i].find("time") != std::string::npos || names[i].find("date") != std::string::npos ||
                   names[i].find("epoch") != std::string::npos || names[i].find("unix") != std::string::npos) {
            candidates.emplace_back(time_aliases.size() + i, column);
        }
    }
    std::sort(candidates.begin(), candidates.end());
    const auto first_of = [&](TimeKind kind) {
        for (const auto& [rank, column] : candidates)
            if (column_kind(rows, column) == kind) return column;
        return -1;
    };
    const int full = first_of(TimeKind::full);
    const int date = first_of(TimeKind::date_only);
    const int time_of_day = first_of(TimeKind::time_of_day);
    if (full >= 0) {
        layout.time = full;
        layout.time_source = describe_column(layout, full, "a full timestamp");
    } else if (date >= 0 && time_of_day >= 0) {
        layout.time = date;
        layout.time_of_day = time_of_day;
        layout.time_source = fmt::format("{} with {}", describe_column(layout, date, "dates"),
                                         describe_column(layout, time_of_day, "times of day"));
    } else if (date >= 0) {
        layout.time = date;
        layout.time_source = describe_column(layout, date, "dates without a time of day");
    } else {
        // Alias names only: a column merely containing "time" is no evidence without values that parse.
        const auto alias = std::find_if(candidates.begin(), candidates.end(),
                                        [&](const auto& c) { return c.first < time_aliases.size(); });
        if (alias == candidates.end()) return;
        layout.time = alias->second;
        layout.time_source =
            describe_column(layout, layout.time,
                            rows.empty() ? "its name; no rows to check" : "its name; its first values are not times");
    }
}

} // namespace

int Layout::max_index() const { return std::max({time, open, high, low, close, volume, time_of_day}); }

const std::vector<std::string>& layout_names() {
    static const std::vector<std::string> names{"kaggle", "kaggle-legacy",  "yahoo",  "cryptodatadownload",
                                                "kraken", "binance-klines", "generic"};
    return names;
}

void split_csv(std::string_view line, std::vector<std::string_view>& fields) {
    fields.clear();
    if (line.find('"') == std::string_view::npos) {
        std::size_t start = 0;
        while (true) {
            const auto comma = line.find(',', start);
            if (comma == std::string_view::npos) {
                fields.push_back(line.substr(start));
                return;
            }
            fields.push_back(line.substr(start, comma - start));
            start = comma + 1;
        }
    }
    // Quoted fields: rare in market data, so the slower path is fine. Doubled quotes inside are kept as they are.
    std::size_t i = 0;
    while (i <= line.size()) {
        if (i < line.size() && line[i] == '"') {
            const auto close = line.find('"', i + 1);
            const std::size_t end = close == std::string_view::npos ? line.size() : close;
            fields.push_back(line.substr(i + 1, end - i - 1));
            const auto comma = line.find(',', end);
            if (comma == std::string_view::npos) return;
            i = comma + 1;
        } else {
            const auto comma = line.find(',', i);
            if (comma == std::string_view::npos) {
                fields.push_back(line.substr(i));
                return;
            }
            fields.push_back(line.substr(i, comma - i));
            i = comma + 1;
        }
    }
}

Layout detect_layout(const std::vector<std::string>& first_lines, const std::string& format,
                     const std::string& columns) {
    if (!format.empty() && std::find(layout_names().begin(), layout_names().end(), format) == layout_names().end())
        throw UsageError(fmt::format("--format: '{}' is not one of {}", format, fmt::join(layout_names(), ", ")));
    std::vector<std::string_view> fields;
    std::size_t index = 0;
    while (index < first_lines.size() && first_lines[index].find_first_not_of(" \t\r") == std::string::npos)
        ++index;
    if (index == first_lines.size()) throw InvalidInput("the file is empty (no CSV lines)");
    for (std::size_t i = index; i < first_lines.size(); ++i)
        if (is_binary(first_lines[i]))
            throw InvalidInput(fmt::format("line {} holds binary bytes: this is not a CSV text file", i + 1));

    int skip = static_cast<int>(index);
    split_csv(first_lines[index], fields);
    // A preamble line (CryptoDataDownload puts its URL first): skip one line that is not a row of several fields
    // when the next one is.
    if (fields.size() < 4 && index + 1 < first_lines.size()) {
        std::vector<std::string_view> next;
        split_csv(first_lines[index + 1], next);
        if (next.size() >= 4) {
            ++index;
            ++skip;
            fields = std::move(next);
        }
    }

    Layout layout;
    if (looks_like_data(fields)) {
        if (!columns.empty()) {
            layout.name = format.empty() ? "generic" : format;
            apply_columns(layout, {}, columns);
        } else if (auto l = headerless(fields.size(), format)) {
            layout = *l;
        } else {
            throw InvalidInput(fmt::format("unrecognised layout: the file has no header and {} fields per row (first "
                                           "row: '{}'); known headerless layouts have 7 fields (Kraken "
                                           "unix,open,high,low,close,volume,trades), 12 (Binance klines) or 5-6 "
                                           "(time,open,high,low,close[,volume]); {}",
                                           fields.size(), show(first_lines[index]), kColumnsHelp));
        }
        layout.skip_lines = skip;
        layout.max_fields = static_cast<int>(fields.size());
        layout.time_source = fmt::format("column {}", layout.time + 1);
        return layout;
    }

    // A header row.
    std::vector<std::string> names;
    for (const auto f : fields) {
        names.push_back(normalise(f));
        layout.header.emplace_back(f);
    }
    layout.skip_lines = skip + 1;
    layout.max_fields = static_cast<int>(names.size());
    layout.name = format.empty() ? header_layout_name(names) : format;
    if (!columns.empty()) {
        apply_columns(layout, names, columns);
        layout.time_source = describe_column(layout, layout.time, "as --columns maps it");
        return layout;
    }
    for (const Role r : kRoles) {
        if (r == Role::time) continue; // chosen below, by what the columns hold
        for (const auto alias : aliases(r)) {
            const auto it = std::find(names.begin(), names.end(), alias);
            if (it != names.end()) {
                slot(layout, r) = static_cast<int>(it - names.begin());
                break;
            }
        }
    }
    std::vector<std::vector<std::string_view>> rows;
    for (std::size_t i = index + 1; i < first_lines.size(); ++i) {
        if (first_lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
        split_csv(first_lines[i], rows.emplace_back());
    }
    choose_time(layout, names, rows);
    std::vector<std::string> missing;
    for (const Role r : kRoles)
        if (r != Role::volume && slot(layout, r) < 0) missing.emplace_back(role_name(r));
    if (!missing.empty())
        throw InvalidInput(fmt::format("unrecognised layout: the header has columns [{}] but no {} column; {}",
                                       fmt::join(layout.header, ", "), fmt::join(missing, ", "), kColumnsHelp));
    return layout;
}

} // namespace btcml::data
