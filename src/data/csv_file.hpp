#pragma once
// A CSV file of bars read as a stream of Candidates: the layout is detected from its first lines, then each data
// line is split and parsed. The file source and the ingest benchmark both read through it, so that the benchmark
// times the code that ingests.
#include "data/byte_reader.hpp"
#include "data/ingest.hpp"
#include "data/layout.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::data {

/// Not thread-safe.
class CsvFile {
  public:
    /// Opens the file (plain, .gz or .zip) and detects its layout; `format` and `columns` as in IngestOptions.
    /// Throws NotFound, UsageError or InvalidInput (prefixed with the path).
    CsvFile(const std::filesystem::path& path, const std::string& format, const std::string& columns);

    /// The next data row; false at the end. Header, preamble and blank lines are skipped; a row whose fields do
    /// not parse comes back with its parse_error set. `out.raw` stays valid until the next call.
    bool next(Candidate& out);

    /// The layout's name, with the container when compressed: `kaggle`, `kaggle (gzip)`.
    [[nodiscard]] const std::string& format() const { return format_; }
    /// Bytes of the file consumed so far, and its size: for progress.
    [[nodiscard]] std::uint64_t position() const { return reader_->position(); }
    [[nodiscard]] std::uint64_t file_size() const { return reader_->file_size(); }

  private:
    bool parse(std::string_view line, Candidate& out);
    bool parse_plain(std::string_view line, Candidate& out) const;

    std::unique_ptr<ByteReader> reader_;
    std::unique_ptr<LineReader> lines_;
    std::vector<std::string> head_; // the lines read to detect the layout, served first
    std::size_t head_served_ = 0;
    Layout layout_;
    std::string format_;
    std::int64_t line_number_ = 0;
    std::vector<std::string_view> fields_;
    std::vector<double Candidate::*> targets_; // by field index up to the layout's last: the price it holds, if any
};

} // namespace btcml::data
