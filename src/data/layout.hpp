#pragma once
// CSV layouts: recognising a file's layout from its first lines, and the column mapping that results.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::data {

/// Where each field lives in a row (0-based). Times are read in any form parse_time accepts, so a layout does not
/// need to say whether they are ISO 8601, seconds or milliseconds.
struct Layout {
    std::string name; // kaggle, kaggle-legacy, yahoo, cryptodatadownload, kraken, binance-klines, generic
    int time = -1;
    int open = -1;
    int high = -1;
    int low = -1;
    int close = -1;
    int volume = -1;                 // -1: the file has no volume; 0 is stored
    int skip_lines = 0;              // lines before the first data row (a preamble line and/or the header)
    std::vector<std::string> header; // as found in the file, empty if it has none
    int time_of_day = -1;            // a time-of-day column that completes a date-only `time` column; -1: none
    /// The most fields a row may have: the header's, or the first row's when there is no header (the headerless
    /// layouts are known by their field count). A row with more is `bad_field_count`, not read from its first fields.
    int max_fields = 0;
    /// Which column(s) the time comes from and why, for errors about the times: `column 1 'date' (dates without a
    /// time of day)`.
    std::string time_source;

    [[nodiscard]] int max_index() const;
};

/// The layout names `--format` accepts.
const std::vector<std::string>& layout_names();

/// Splits one CSV line into fields (quotes stripped; commas inside quotes kept). Reuses `fields`.
void split_csv(std::string_view line, std::vector<std::string_view>& fields);

/// Recognises the layout from the first lines of a file. `format` forces a layout by name and `columns` maps
/// columns explicitly (`time=Date,open=Open,…` by header name, or `time=1,open=2,…` by 1-based position).
/// Throws InvalidInput naming what was found and how to map it with --columns.
Layout detect_layout(const std::vector<std::string>& first_lines, const std::string& format,
                     const std::string& columns);

} // namespace btcml::data
