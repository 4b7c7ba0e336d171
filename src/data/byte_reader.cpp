#include "data/byte_reader.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>

namespace btcml::data {
namespace {

constexpr std::size_t kChunk = 1 << 20;

class PlainReader final : public ByteReader {
  public:
    PlainReader(const std::filesystem::path& path, std::uint64_t size)
        : file_(std::fopen(path.c_str(), "rb")), size_(size) {
        if (file_ == nullptr) throw NotFound(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    }
    ~PlainReader() override { std::fclose(file_); }
    PlainReader(const PlainReader&) = delete;
    PlainReader& operator=(const PlainReader&) = delete;

    std::size_t read(char* buffer, std::size_t size) override {
        const std::size_t n = std::fread(buffer, 1, size, file_);
        if (n == 0 && std::ferror(file_)) throw Unavailable(fmt::format("read error: {}", std::strerror(errno)));
        position_ += n;
        return n;
    }
    [[nodiscard]] std::uint64_t position() const override { return position_; }
    [[nodiscard]] std::uint64_t file_size() const override { return size_; }
    [[nodiscard]] std::string container() const override { return "plain"; }

  private:
    std::FILE* file_;
    std::uint64_t size_;
    std::uint64_t position_ = 0;
};

/// gzip and zip through libarchive: one decoder for both, streaming.
class ArchiveReader final : public ByteReader {
  public:
    ArchiveReader(const std::filesystem::path& path, std::uint64_t size, bool zip)
        : size_(size), archive_(archive_read_new()) {
        if (zip) {
            archive_read_support_format_zip(archive_);
        } else {
            archive_read_support_filter_gzip(archive_);
            archive_read_support_format_raw(archive_);
        }
        const char* kind = zip ? "not a valid zip archive" : "not a valid gzip file";
        if (archive_read_open_filename(archive_, path.c_str(), kChunk) != ARCHIVE_OK) fail(path, kind);
        archive_entry* entry = nullptr;
        // A zip may hold several files: take the first CSV-looking entry, else the first regular file.
        std::string chosen;
        while (true) {
            const int r = archive_read_next_header(archive_, &entry);
            if (r == ARCHIVE_EOF) break;
            if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail(path, kind);
            const char* name = archive_entry_pathname(entry);
            const std::string entry_name = name != nullptr ? name : "data";
            if (!zip) {
                chosen = entry_name;
                break;
            }
            if (archive_entry_filetype(entry) != AE_IFREG) continue;
            const bool csv = entry_name.size() >= 4 && (entry_name.ends_with(".csv") || entry_name.ends_with(".CSV") ||
                                                        entry_name.ends_with(".txt"));
            if (csv) {
                chosen = entry_name;
                break;
            }
            if (first_other_.empty()) first_other_ = entry_name;
        }
        if (chosen.empty()) {
            if (first_other_.empty()) throw InvalidInput(fmt::format("{}: the archive holds no file", path.string()));
            throw InvalidInput(
                fmt::format("{}: the archive holds no .csv file (first entry: {})", path.string(), first_other_));
        }
        container_ = zip ? "zip:" + chosen : "gzip";
    }
    ~ArchiveReader() override { archive_read_free(archive_); }
    ArchiveReader(const ArchiveReader&) = delete;
    ArchiveReader& operator=(const ArchiveReader&) = delete;

    std::size_t read(char* buffer, std::size_t size) override {
        const la_ssize_t n = archive_read_data(archive_, buffer, size);
        if (n < 0)
            throw InvalidInput(fmt::format("corrupt or truncated compressed data: {}",
                                           archive_error_string(archive_) != nullptr ? archive_error_string(archive_)
                                                                                     : "unknown error"));
        return static_cast<std::size_t>(n);
    }
    [[nodiscard]] std::uint64_t position() const override {
        const la_int64_t p = archive_filter_bytes(archive_, -1);
        return p > 0 ? static_cast<std::uint64_t>(p) : 0;
    }
    [[nodiscard]] std::uint64_t file_size() const override { return size_; }
    [[nodiscard]] std::string container() const override { return container_; }

  private:
    [[noreturn]] void fail(const std::filesystem::path& path, const char* what) {
        const char* err = archive_error_string(archive_);
        throw InvalidInput(fmt::format("{}: {}: {}", path.string(), what, err != nullptr ? err : "unknown error"));
    }

    std::uint64_t size_;
    archive* archive_;
    std::string container_;
    std::string first_other_;
};

} // namespace

std::unique_ptr<ByteReader> open_byte_reader(const std::filesystem::path& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) throw NotFound(fmt::format("{}: no such file", path.string()));
    if (std::filesystem::is_directory(status))
        throw UsageError(fmt::format("{}: is a directory, not a file", path.string()));
    const auto size = std::filesystem::file_size(path, ec);
    unsigned char magic[4] = {0, 0, 0, 0};
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
        [[maybe_unused]] const auto n = std::fread(magic, 1, sizeof magic, f);
        std::fclose(f);
    } else {
        throw NotFound(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    }
    if (magic[0] == 0x1f && magic[1] == 0x8b) return std::make_unique<ArchiveReader>(path, size, false);
    if (magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4)
        return std::make_unique<ArchiveReader>(path, size, true);
    return std::make_unique<PlainReader>(path, size);
}

ChunkReader::ChunkReader(ByteReader& reader, std::size_t chunk_bytes)
    : reader_(reader), chunk_bytes_(std::clamp<std::size_t>(chunk_bytes, 1, kMaxLine / 2)) {}

bool ChunkReader::next(TextChunk& chunk) {
    chunk.size_ = 0;
    return extend(chunk);
}

bool ChunkReader::extend(TextChunk& chunk) {
    if (at_end()) return false;
    auto& buffer = chunk.buffer_;
    const std::size_t line_start = chunk.size_;
    std::size_t size = line_start + carry_.size();
    // The buffer only grows (resize zero-fills, which would cost as much as the reads).
    if (buffer.size() < size + chunk_bytes_) buffer.resize(size + chunk_bytes_);
    std::memcpy(buffer.data() + line_start, carry_.data(), carry_.size());
    carry_.clear();
    while (true) {
        const std::size_t read_from = size;
        while (!eof_ && size < read_from + chunk_bytes_) {
            const std::size_t n = reader_.read(buffer.data() + size, read_from + chunk_bytes_ - size);
            if (n == 0) eof_ = true;
            size += n;
        }
        if (size - line_start >= kMaxLine && std::memchr(buffer.data() + line_start, '\n', kMaxLine) == nullptr) {
            overlong_ = true;
            chunk.size_ = line_start;
            return false;
        }
        const char* begin = buffer.data() + read_from;
        if (const auto* last = static_cast<const char*>(::memrchr(begin, '\n', size - read_from))) {
            const char* end = buffer.data() + size;
            chunk.size_ = static_cast<std::size_t>(last + 1 - buffer.data());
            carry_.assign(last + 1, end);
            return true;
        }
        if (eof_) {
            chunk.size_ = size;
            return size > line_start;
        }
        // No line ends in what was read: read on.
        if (buffer.size() < size + chunk_bytes_) buffer.resize(size + chunk_bytes_);
    }
}

} // namespace btcml::data
