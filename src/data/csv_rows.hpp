#pragma once
// Turning the lines of a CSV file into Candidates, in a detected layout. The file source and the ingest benchmark
// both use it, so that the benchmark times the code that ingests.
#include "data/ingest.hpp"
#include "data/layout.hpp"

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace btcml::data {

/// Not thread-safe: it reuses one field buffer across lines.
class CsvRowParser {
  public:
    explicit CsvRowParser(Layout layout) : layout_(std::move(layout)) {}

    /// Parses line `line_number` (1-based) into `out`. False for lines that hold no row: the preamble and header
    /// lines the layout skips, and blank lines. A row whose fields do not parse is returned with its parse_error set.
    bool parse(std::string_view line, std::int64_t line_number, Candidate& out);

    [[nodiscard]] const Layout& layout() const { return layout_; }

  private:
    Layout layout_;
    std::vector<std::string_view> fields_;
};

} // namespace btcml::data
