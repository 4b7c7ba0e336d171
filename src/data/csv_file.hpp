#pragma once
// A CSV file of bars read as a stream of Candidates: the layout is detected from its first lines, then each data
// line is split and parsed. The file source and the ingest benchmark both read through it, so that the benchmark
// times the code that ingests.
//
// Parsing is a pipeline: the file is cut into chunks of whole lines, threads read and parse chunks ahead into
// batches of Candidates, and next() hands the rows out strictly in file order. The consumer (IngestWriter) is not
// thread-safe and its line numbers, "first occurrence wins" dedupe and rejection reasons depend on file order, so
// only parsing is spread; line numbers are counted within a chunk and offset by the lines of the chunks before.
#include "data/byte_reader.hpp"
#include "data/ingest.hpp"
#include "data/layout.hpp"

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace btcml::data {

/// How a CsvFile is read; tests shrink the chunks to put their boundaries anywhere.
struct CsvFileTuning {
    std::size_t chunk_bytes = 128 << 10;
    /// Parsing threads. None: one per core up to four, and none when the file fits in its first chunk.
    /// 0: everything on the thread that calls next().
    std::optional<unsigned> threads;
};

/// Not thread-safe: one thread calls next(). Large files are parsed ahead on threads of the reader's own.
class CsvFile {
  public:
    /// Opens the file (plain, .gz or .zip; a FIFO or pipe too; `-` is standard input) once and detects its layout
    /// from its first chunk; `format` and `columns` as in IngestOptions. Throws NotFound, UsageError or
    /// InvalidInput (prefixed with the path).
    CsvFile(const std::filesystem::path& path, const std::string& format, const std::string& columns,
            const CsvFileTuning& tuning = {});
    /// Stops the parsing threads wherever they wait and joins them: prompt also when the consumer stopped early.
    ~CsvFile();
    CsvFile(const CsvFile&) = delete;
    CsvFile& operator=(const CsvFile&) = delete;

    /// The next data row, in file order; false at the end. Header, preamble and blank lines are skipped; a row
    /// whose fields do not parse comes back with its parse_error set. `out.raw` stays valid until the next call.
    /// Throws what reading throws (InvalidInput for corrupt compressed data or an overlong line) once the rows
    /// before the failure have been returned.
    bool next(Candidate& out);

    /// The layout's name, with the container when compressed: `kaggle`, `kaggle (gzip)`.
    [[nodiscard]] const std::string& format() const { return format_; }
    /// Which column(s) the times come from and why (Layout::time_source).
    [[nodiscard]] const std::string& time_source() const { return layout_.time_source; }
    /// Bytes of the file read up to the rows returned so far, and its size (0 for a pipe): for progress.
    [[nodiscard]] std::uint64_t position() const { return ring_[current_ % ring_.size()].position; }
    [[nodiscard]] std::uint64_t file_size() const { return file_size_; }

  private:
    /// A chunk of lines and the rows parsed from it.
    struct Batch {
        TextChunk chunk;
        std::vector<Candidate> rows; // `line` counts from the chunk's first line
        std::int64_t lines = 0;
        std::uint64_t position = 0; // the reader's position once the chunk was read
        bool last = false;          // no batch follows
        bool overlong = false;      // reading stopped at a line of ChunkReader::kMaxLine bytes or more
        std::exception_ptr error;   // reading or parsing failed here
        bool ready = false;         // parsed; under mutex_ when threads run
    };

    /// Reads the next chunk into `batch`; true when it was the last. The caller is the only reader.
    bool read(Batch& batch);
    void parse(Batch& batch) const noexcept;
    void parse_row(std::string_view line, Candidate& c, std::vector<std::string_view>& fields) const;
    bool parse_plain(std::string_view line, Candidate& c) const;
    void advance();
    void work();
    void stop_threads() noexcept;

    std::unique_ptr<ByteReader> reader_;
    std::uint64_t file_size_ = 0;
    ChunkReader chunks_;
    Layout layout_;
    std::string format_;
    std::vector<double Candidate::*> targets_; // by field index up to the layout's last: the price it holds, if any

    // Batch n sits at ring_[n % ring_.size()]; the consumer holds batch current_, threads fill the ones after it.
    std::vector<Batch> ring_;
    std::uint64_t current_ = 0;  // written under mutex_ when threads run
    std::size_t row_ = 0;        // the next row of the current batch
    std::int64_t line_base_ = 0; // lines before the current batch

    // Every wait of the threads is on changed_ under mutex_ and observes stop_, so that the destructor can end them
    // wherever they wait, whether or not the consumer ever released their slots (it stops early when it throws).
    std::mutex mutex_;
    std::condition_variable_any changed_; // a batch became ready, a read ended, or the consumer moved on
    std::stop_source stop_;
    bool reading_ = false;        // under mutex_: a thread reads, so that batches are numbered in file order
    std::uint64_t next_read_ = 1; // under mutex_
    bool read_done_ = false;      // under mutex_ when threads run
    std::vector<std::thread> threads_;
};

} // namespace btcml::data
