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
    /// Bytes of the underlying file consumed so far, and its size (0 for a pipe): for progress.
    [[nodiscard]] virtual std::uint64_t position() const = 0;
    [[nodiscard]] virtual std::uint64_t file_size() const = 0;
    /// `plain`, `gzip` or `zip:<entry name>`.
    [[nodiscard]] virtual std::string container() const = 0;
};

/// Opens a file, a FIFO or a pipe once, telling gzip and zip apart by their magic bytes; `-` is standard input.
/// Throws NotFound / InvalidInput.
std::unique_ptr<ByteReader> open_byte_reader(const std::filesystem::path& path);

/// How errors name the input: the path, or `standard input` for `-`.
std::string display_name(const std::filesystem::path& path);

/// Whole lines of a byte stream. The buffer is kept between refills, so that a reused chunk allocates nothing.
class TextChunk {
  public:
    [[nodiscard]] std::string_view text() const { return {buffer_.data(), size_}; }

  private:
    friend class ChunkReader;
    std::vector<char> buffer_;
    std::size_t size_ = 0;
};

/// Splits a byte stream into chunks of whole lines, so that chunks can be parsed apart, on several threads.
/// Not thread-safe.
class ChunkReader {
  public:
    /// A line this long or longer ends the reading: the file is not a CSV file of bars.
    static constexpr std::size_t kMaxLine = 16 << 20;

    /// `chunk_bytes` is capped below kMaxLine, so that only a chunk's first line can be overlong.
    ChunkReader(ByteReader& reader, std::size_t chunk_bytes);
    /// Replaces `chunk` with the next whole lines: about chunk_bytes of them and at least one line, each ending in
    /// `\n` but the stream's last. False when nothing is left, or when the next line is kMaxLine bytes or longer.
    bool next(TextChunk& chunk);
    /// As next, but appends the lines to those already in `chunk`.
    bool extend(TextChunk& chunk);
    /// Whether the next call returns false: the stream is consumed, or its next line is overlong.
    [[nodiscard]] bool at_end() const { return overlong_ || (eof_ && carry_.empty()); }
    /// Whether reading stopped at a line of kMaxLine bytes or more.
    [[nodiscard]] bool overlong() const { return overlong_; }

  private:
    ByteReader& reader_;
    std::size_t chunk_bytes_;
    std::vector<char> carry_; // the start of the line that the last read cut
    bool eof_ = false;
    bool overlong_ = false;
};

} // namespace btcml::data
