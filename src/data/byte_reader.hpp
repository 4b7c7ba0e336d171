#pragma once
// Streaming byte input from plain, gzip and zip files, and a line splitter over it, so that memory stays flat
// however large the file.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::data {

/// Not thread-safe.
class ByteReader {
  public:
    virtual ~ByteReader() = default;
    /// Reads up to `size` bytes; 0 at the end.
    virtual std::size_t read(char* buffer, std::size_t size) = 0;
    /// Bytes of the underlying file consumed so far, and its size: for progress.
    [[nodiscard]] virtual std::uint64_t position() const = 0;
    [[nodiscard]] virtual std::uint64_t file_size() const = 0;
    /// `plain`, `gzip` or `zip:<entry name>`.
    [[nodiscard]] virtual std::string container() const = 0;
};

/// Opens a file, telling gzip and zip apart by their magic bytes. Throws NotFound / InvalidInput.
std::unique_ptr<ByteReader> open_byte_reader(const std::filesystem::path& path);

/// Splits a byte stream into lines (without the `\n` or `\r\n`). Not thread-safe.
class LineReader {
  public:
    static constexpr std::size_t kMaxLine = 16 << 20;

    explicit LineReader(ByteReader& reader);
    /// The next line, valid until the next call; false at the end. Throws InvalidInput for a line over kMaxLine.
    bool next(std::string_view& line);
    /// 1-based number of the line last returned.
    [[nodiscard]] std::int64_t line_number() const { return line_number_; }

  private:
    bool fill();

    ByteReader& reader_;
    std::vector<char> buffer_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    bool eof_ = false;
    std::int64_t line_number_ = 0;
};

} // namespace btcml::data
