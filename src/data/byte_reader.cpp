#include "data/byte_reader.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

namespace btcml::data {
namespace {

constexpr std::size_t kChunk = 1 << 20;

/// The file or stream, opened once. Its first bytes are peeked to tell the container; a regular file is then rewound,
/// while a pipe or FIFO (which cannot be) replays them, so that no byte is lost or read twice.
class Input {
  public:
    explicit Input(const std::filesystem::path& path) : name_(display_name(path)) {
        if (path == "-") {
            file_ = stdin;
        } else {
            std::error_code ec;
            const auto status = std::filesystem::status(path, ec);
            if (ec || !std::filesystem::exists(status)) throw NotFound(fmt::format("{}: no such file", name_));
            if (std::filesystem::is_directory(status))
                throw UsageError(fmt::format("{}: is a directory, not a file", name_));
            file_ = std::fopen(path.c_str(), "rb");
            if (file_ == nullptr) throw NotFound(fmt::format("cannot open {}: {}", name_, std::strerror(errno)));
        }
        struct stat st {};
        // Standard input redirected from a file may start past its beginning: that offset is where the data is.
        start_ = ::ftello(file_);
        seekable_ = ::fstat(::fileno(file_), &st) == 0 && S_ISREG(st.st_mode) && start_ >= 0 && start_ <= st.st_size;
        if (seekable_) size_ = static_cast<std::uint64_t>(st.st_size - start_);
        magic_.resize(4);
        try {
            magic_.resize(read_file(magic_.data(), magic_.size()));
        } catch (...) {
            close();
            throw;
        }
        // A regular file opened as a stream (a FIFO's path, /dev/stdin to a file) still rewinds; else replay.
        if (seekable_ && ::fseeko(file_, start_, SEEK_SET) != 0) seekable_ = false;
        to_replay_ = seekable_ ? 0 : magic_.size();
    }
    ~Input() { close(); }
    Input(const Input&) = delete;
    Input& operator=(const Input&) = delete;

    /// Whether the stream starts with these bytes (up to four: gzip and zip magic).
    [[nodiscard]] bool starts_with(std::string_view magic) const { return std::string_view(magic_).starts_with(magic); }

    std::size_t read(char* buffer, std::size_t size) {
        if (to_replay_ > 0) {
            const std::size_t from = magic_.size() - to_replay_;
            const std::size_t n = std::min(size, to_replay_);
            std::memcpy(buffer, magic_.data() + from, n);
            to_replay_ -= n;
            return n;
        }
        return read_file(buffer, size);
    }
    /// As fseeko, returning the new position or -1, with positions counted from the start of the data; only where
    /// seekable().
    std::int64_t seek(std::int64_t offset, int whence) {
        if (::fseeko(file_, whence == SEEK_SET ? offset + start_ : offset, whence) != 0) return -1;
        return ::ftello(file_) - start_;
    }
    [[nodiscard]] bool seekable() const { return seekable_; }
    /// 0 for a stream: its size is not known.
    [[nodiscard]] std::uint64_t size() const { return size_; }
    [[nodiscard]] const std::string& name() const { return name_; }

  private:
    std::size_t read_file(char* buffer, std::size_t size) {
        const std::size_t n = std::fread(buffer, 1, size, file_);
        if (n == 0 && std::ferror(file_))
            throw Unavailable(fmt::format("{}: read error: {}", name_, std::strerror(errno)));
        return n;
    }
    void close() {
        if (file_ != stdin) std::fclose(file_);
    }

    std::string name_;
    std::FILE* file_ = nullptr;
    off_t start_ = 0; // where the data starts in a seekable file
    bool seekable_ = false;
    std::uint64_t size_ = 0;
    std::string magic_;         // the first bytes
    std::size_t to_replay_ = 0; // how many of them a stream still owes the reader
};

class PlainReader final : public ByteReader {
  public:
    explicit PlainReader(std::unique_ptr<Input> input) : input_(std::move(input)) {}

    std::size_t read(char* buffer, std::size_t size) override {
        const std::size_t n = input_->read(buffer, size);
        position_ += n;
        return n;
    }
    [[nodiscard]] std::uint64_t position() const override { return position_; }
    [[nodiscard]] std::uint64_t file_size() const override { return input_->size(); }
    [[nodiscard]] std::string container() const override { return "plain"; }

  private:
    std::unique_ptr<Input> input_;
    std::uint64_t position_ = 0;
};

bool looks_like_csv(const std::string& name) {
    return name.ends_with(".csv") || name.ends_with(".CSV") || name.ends_with(".txt");
}

/// gzip and zip through libarchive: one decoder for both, streaming, fed from the one Input.
class ArchiveReader final : public ByteReader {
  public:
    ArchiveReader(std::unique_ptr<Input> input, bool zip)
        : input_(std::move(input)), zip_(zip), archive_(archive_read_new()), buffer_(kChunk) {
        if (zip) {
            archive_read_support_format_zip(archive_);
        } else {
            archive_read_support_filter_gzip(archive_);
            archive_read_support_format_raw(archive_);
        }
        const char* kind = zip ? "not a valid zip archive" : "not a valid gzip file";
        archive_read_set_callback_data(archive_, this);
        archive_read_set_read_callback(archive_, &ArchiveReader::read_callback);
        // Seekable input lets libarchive read a zip's central directory, as it would open a file by name.
        if (input_->seekable()) archive_read_set_seek_callback(archive_, &ArchiveReader::seek_callback);
        if (archive_read_open1(archive_) != ARCHIVE_OK) fail(kind);
        archive_entry* entry = nullptr;
        // A zip may hold other files too (a README): take the first CSV-looking entry.
        std::string first_other;
        while (true) {
            const int r = archive_read_next_header(archive_, &entry);
            if (r == ARCHIVE_EOF) break;
            if (r != ARCHIVE_OK && r != ARCHIVE_WARN) fail(kind);
            const char* name = archive_entry_pathname(entry);
            const std::string entry_name = name != nullptr ? name : "data";
            if (!zip) {
                entry_ = entry_name;
                break;
            }
            if (archive_entry_filetype(entry) != AE_IFREG) continue;
            if (looks_like_csv(entry_name)) {
                entry_ = entry_name;
                break;
            }
            if (first_other.empty()) first_other = entry_name;
        }
        if (entry_.empty()) {
            if (first_other.empty()) throw InvalidInput(fmt::format("{}: the archive holds no file", input_->name()));
            throw InvalidInput(
                fmt::format("{}: the archive holds no .csv file (first entry: {})", input_->name(), first_other));
        }
        container_ = zip ? "zip:" + entry_ : "gzip";
    }
    ~ArchiveReader() override { archive_read_free(archive_); }
    ArchiveReader(const ArchiveReader&) = delete;
    ArchiveReader& operator=(const ArchiveReader&) = delete;

    std::size_t read(char* buffer, std::size_t size) override {
        const la_ssize_t n = archive_read_data(archive_, buffer, size);
        if (n < 0) corrupt();
        if (n == 0 && zip_) refuse_other_csv_entries();
        return static_cast<std::size_t>(n);
    }
    [[nodiscard]] std::uint64_t position() const override {
        const la_int64_t p = archive_filter_bytes(archive_, -1);
        return p > 0 ? static_cast<std::uint64_t>(p) : 0;
    }
    [[nodiscard]] std::uint64_t file_size() const override { return input_->size(); }
    [[nodiscard]] std::string container() const override { return container_; }

  private:
    static la_ssize_t read_callback(archive* a, void* data, const void** block) {
        auto& self = *static_cast<ArchiveReader*>(data);
        try {
            *block = self.buffer_.data();
            return static_cast<la_ssize_t>(self.input_->read(self.buffer_.data(), self.buffer_.size()));
        } catch (const std::exception& e) {
            archive_set_error(a, EIO, "%s", e.what());
            return -1;
        }
    }
    static la_int64_t seek_callback(archive*, void* data, la_int64_t offset, int whence) {
        return static_cast<ArchiveReader*>(data)->input_->seek(offset, whence);
    }

    /// Only one CSV file of a zip is read, so a zip that holds several is refused rather than half read: after
    /// the first, the names of the others. Streaming input cannot go back, so the check comes at the end of the
    /// first (the run then fails and stores nothing).
    void refuse_other_csv_entries() {
        if (checked_entries_) return;
        checked_entries_ = true;
        std::vector<std::string> csv{entry_};
        archive_entry* entry = nullptr;
        while (true) {
            const int r = archive_read_next_header(archive_, &entry);
            if (r == ARCHIVE_EOF) break;
            if (r != ARCHIVE_OK && r != ARCHIVE_WARN) corrupt();
            const char* name = archive_entry_pathname(entry);
            if (name != nullptr && archive_entry_filetype(entry) == AE_IFREG && looks_like_csv(name))
                csv.emplace_back(name);
        }
        if (csv.size() > 1) {
            std::sort(csv.begin(), csv.end());
            throw InvalidInput(fmt::format("{}: the zip archive holds {} CSV files ({}); btcml reads one CSV file per "
                                           "ingest: extract them and ingest each",
                                           input_->name(), csv.size(), fmt::join(csv, ", ")));
        }
    }
    [[noreturn]] void corrupt() {
        const char* err = archive_error_string(archive_);
        throw InvalidInput(fmt::format("{}: corrupt or truncated compressed data: {}", input_->name(),
                                       err != nullptr ? err : "unknown error"));
    }
    [[noreturn]] void fail(const char* what) {
        const char* err = archive_error_string(archive_);
        throw InvalidInput(fmt::format("{}: {}: {}", input_->name(), what, err != nullptr ? err : "unknown error"));
    }

    std::unique_ptr<Input> input_;
    bool zip_;
    archive* archive_;
    std::vector<char> buffer_;
    std::string entry_;
    std::string container_;
    bool checked_entries_ = false;
};

} // namespace

std::string display_name(const std::filesystem::path& path) {
    return path == "-" ? std::string("standard input") : path.string();
}

std::unique_ptr<ByteReader> open_byte_reader(const std::filesystem::path& path) {
    auto input = std::make_unique<Input>(path);
    if (input->starts_with("\x1f\x8b")) return std::make_unique<ArchiveReader>(std::move(input), false);
    if (input->starts_with(std::string_view("PK\x03\x04", 4)))
        return std::make_unique<ArchiveReader>(std::move(input), true);
    return std::make_unique<PlainReader>(std::move(input));
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
