#include "model/artifact.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/file.h>
#include <iterator>
#include <limits>
#include <unistd.h>

namespace btcml::model {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "weights.bin is written in host order: little-endian only");

namespace {

constexpr char magic[8] = {'B', 'T', 'C', 'M', 'L', 'W', 'T', 'S'};
constexpr std::uint32_t max_rank = 8;

template <typename T> void put(std::vector<unsigned char>& out, T value) {
    const auto* p = reinterpret_cast<const unsigned char*>(&value);
    out.insert(out.end(), p, p + sizeof(T));
}

class Reader {
  public:
    Reader(std::span<const unsigned char> bytes, const std::string& what) : bytes_(bytes), what_(what) {}

    template <typename T> T get(const char* field) {
        T value;
        std::memcpy(&value, take(sizeof(T), field).data(), sizeof(T));
        return value;
    }
    std::span<const unsigned char> take(std::size_t n, const char* field) {
        if (n > bytes_.size() - pos_)
            throw InvalidInput(fmt::format("{}: truncated at byte {} while reading {}", what_, pos_, field));
        const auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }
    [[nodiscard]] std::size_t pos() const { return pos_; }

  private:
    std::span<const unsigned char> bytes_;
    const std::string& what_;
    std::size_t pos_ = 0;
};

[[noreturn]] void io_error(const fs::path& path, const char* action) {
    throw Unavailable(fmt::format("cannot {} {}: {}", action, path.string(), std::strerror(errno)));
}

void write_file_synced(const fs::path& path, std::span<const unsigned char> bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) io_error(path, "create");
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::close(fd);
            io_error(path, "write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        ::close(fd);
        io_error(path, "fsync");
    }
    ::close(fd);
}

void sync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) io_error(dir, "open");
    ::fsync(fd);
    ::close(fd);
}

std::vector<unsigned char> read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InvalidInput(fmt::format("{}: missing or unreadable", path.string()));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::span<const unsigned char> as_bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

std::optional<int> parse_version(std::string_view text) {
    int v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v <= 0) return std::nullopt;
    return v;
}

// Card fields by JSON pointer; each check names the field it rejects.
class CardChecker {
  public:
    CardChecker(const nlohmann::json& card, const std::string& what) : card_(card), what_(what) {}

    // The value at `field`, or null when the card does not have it.
    [[nodiscard]] const nlohmann::json* find(const std::string& field) const {
        const nlohmann::json::json_pointer pointer(field);
        return card_.contains(pointer) ? &card_.at(pointer) : nullptr;
    }
    [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
        throw InvalidInput(fmt::format("{}: {} {}", what_, field.substr(1), problem));
    }
    void integer(const std::string& field, std::int64_t low, std::int64_t high) const {
        if (const auto* v = find(field)) check_integer(field, *v, low, high);
    }
    void check_integer(const std::string& field, const nlohmann::json& v, std::int64_t low, std::int64_t high) const {
        // A large unsigned value does not fit int64: it is out of range all the same.
        const bool in_range = v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(high)
                                                     : v.is_number_integer() && v.get<std::int64_t>() <= high;
        if (!in_range || (v.is_number_integer() && v.get<std::int64_t>() < low))
            fail(field, fmt::format("must be an integer from {} to {}, not {}", low, high, v.dump()));
    }
    // A finite number in [low, high] (or (low, high] / [low, high) when open).
    void number(const std::string& field, double low, double high, bool open_low, bool open_high) const {
        if (const auto* v = find(field)) check_number(field, *v, low, high, open_low, open_high);
    }
    void check_number(const std::string& field, const nlohmann::json& v, double low, double high, bool open_low,
                      bool open_high) const {
        const double x = v.is_number() ? v.get<double>() : std::nan("");
        if (std::isfinite(x) && x >= low && x <= high && !(open_low && x == low) && !(open_high && x == high)) return;
        constexpr double unbounded = std::numeric_limits<double>::max();
        if (low == -unbounded) fail(field, fmt::format("must be a finite number, not {}", v.dump()));
        if (high == unbounded)
            fail(field, fmt::format("must be a finite number {} {}, not {}", open_low ? ">" : ">=", low, v.dump()));
        fail(field, fmt::format("must be a number in {}{}, {}{}, not {}", open_low ? '(' : '[', low, high,
                                open_high ? ')' : ']', v.dump()));
    }
    // An array; each element checked by `element(field/k, value)`.
    template <typename F> void array(const std::string& field, bool non_empty, F&& element) const {
        const auto* v = find(field);
        if (v == nullptr) return;
        if (!v->is_array() || (non_empty && v->empty()))
            fail(field, fmt::format("must be a{} array, not {}", non_empty ? " non-empty" : "n", v->dump()));
        for (std::size_t k = 0; k < v->size(); ++k)
            element(fmt::format("{}/{}", field, k), (*v)[k]);
    }
    // An array of numbers strictly ascending.
    void ascending(const std::string& field) const {
        const auto* v = find(field);
        for (std::size_t k = 1; v != nullptr && k < v->size(); ++k)
            if (!((*v)[k].get<double>() > (*v)[k - 1].get<double>()))
                fail(field, fmt::format("must be strictly ascending, not {}", v->dump()));
    }

  private:
    const nlohmann::json& card_;
    const std::string& what_;
};

} // namespace

void validate_card(const nlohmann::json& card, const std::string& what) {
    const CardChecker c(card, what);
    c.integer("/window", 1, max_window);
    c.array("/horizons", true,
            [&](const std::string& f, const nlohmann::json& v) { c.check_integer(f, v, 1, max_horizon); });
    c.ascending("/horizons");
    c.array("/quantiles", true, [&](const std::string& f, const nlohmann::json& v) {
        c.check_number(f, v, 0, 1, true, true);
    });
    c.ascending("/quantiles");
    c.integer("/architecture/input_size", 1, 1024);
    c.integer("/architecture/hidden_size", 1, max_hidden);
    c.integer("/architecture/num_layers", 1, max_layers);
    c.integer("/architecture/output_size", 1, 3 * 1024);
    c.number("/architecture/dropout", 0, 1, false, true);
    const auto finite = [&](const std::string& f, const nlohmann::json& v) {
        c.check_number(f, v, -std::numeric_limits<double>::max(), std::numeric_limits<double>::max(), false, false);
    };
    const auto positive = [&](const std::string& f, const nlohmann::json& v) {
        c.check_number(f, v, 0, std::numeric_limits<double>::max(), true, false);
    };
    c.array("/scaler/mean", true, finite);
    c.array("/scaler/stddev", true, positive);
    c.array("/scaler/target_stddev", true, positive);
    c.array("/calibration/interval_offsets", true, finite);
    c.integer("/hyperparameters/hidden", 1, max_hidden);
    c.integer("/hyperparameters/layers", 1, max_layers);
    c.number("/hyperparameters/dropout", 0, 1, false, true);
    c.integer("/hyperparameters/batch_size", 1, 1'000'000);
    c.integer("/hyperparameters/epochs", 0, 1'000'000);
    c.integer("/hyperparameters/patience", 0, 1'000'000);
    c.integer("/hyperparameters/samples_per_epoch", 0, std::numeric_limits<std::int32_t>::max());
    c.number("/hyperparameters/lr", 0, 1e3, true, false);
    c.array("/baselines/horizons", true, [&](const std::string& f, const nlohmann::json& v) {
        c.check_integer(f, v, 1, max_horizon);
    });
}

std::vector<unsigned char> encode_weights(std::span<const Tensor> tensors) {
    std::vector<unsigned char> out(std::begin(magic), std::end(magic));
    put(out, weights_format_version);
    put(out, static_cast<std::uint32_t>(tensors.size()));
    for (const Tensor& t : tensors) {
        put(out, static_cast<std::uint32_t>(t.name.size()));
        out.insert(out.end(), t.name.begin(), t.name.end());
        put(out, static_cast<std::uint32_t>(t.shape.size()));
        for (const std::uint32_t d : t.shape)
            put(out, d);
        const auto* p = reinterpret_cast<const unsigned char*>(t.data.data());
        out.insert(out.end(), p, p + t.data.size() * sizeof(float));
    }
    put(out, fnv1a64(out));
    return out;
}

std::vector<Tensor> decode_weights(std::span<const unsigned char> bytes, const std::string& what) {
    Reader r(bytes, what);
    if (!std::equal(std::begin(magic), std::end(magic), r.take(sizeof magic, "the magic").begin()))
        throw InvalidInput(fmt::format("{}: not a btcml weights file (bad magic)", what));
    const auto format = r.get<std::uint32_t>("the format version");
    if (format != weights_format_version)
        throw InvalidInput(
            fmt::format("{}: format version {} is not supported (expected {})", what, format, weights_format_version));
    const auto count = r.get<std::uint32_t>("the tensor count");
    std::vector<Tensor> tensors;
    for (std::uint32_t k = 0; k < count; ++k) {
        Tensor t;
        const auto name_size = r.get<std::uint32_t>("a tensor name");
        const auto name = r.take(name_size, "a tensor name");
        t.name.assign(name.begin(), name.end());
        const auto rank = r.get<std::uint32_t>("a tensor rank");
        if (rank > max_rank) throw InvalidInput(fmt::format("{}: tensor {} has rank {}", what, t.name, rank));
        std::uint64_t size = 1;
        for (std::uint32_t d = 0; d < rank; ++d) {
            t.shape.push_back(r.get<std::uint32_t>("a tensor shape"));
            size *= t.shape.back();
            if (size > bytes.size())
                throw InvalidInput(fmt::format("{}: truncated: tensor {} runs past the end of the file", what, t.name));
        }
        const auto data = r.take(size * sizeof(float), "tensor data");
        t.data.resize(size);
        std::memcpy(t.data.data(), data.data(), data.size());
        tensors.push_back(std::move(t));
    }
    const std::size_t body = r.pos();
    const auto stored = r.get<std::uint64_t>("the checksum");
    if (stored != fnv1a64(bytes.first(body)))
        throw InvalidInput(fmt::format("{}: checksum mismatch: the file is corrupt", what));
    if (r.pos() != bytes.size())
        throw InvalidInput(fmt::format("{}: {} unexpected bytes after the checksum", what, bytes.size() - r.pos()));
    return tensors;
}

fs::path models_dir(const fs::path& home) { return home / "models"; }

std::vector<int> list_versions(const fs::path& home) {
    std::vector<int> versions;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(models_dir(home), ec))
        if (const auto v = parse_version(entry.path().filename().string()); v && entry.is_directory())
            versions.push_back(*v);
    std::sort(versions.begin(), versions.end());
    return versions;
}

int publish(const fs::path& home, nlohmann::json card, std::span<const Tensor> tensors) {
    const fs::path dir = models_dir(home);
    fs::create_directories(dir);
    std::string pattern = (dir / ".tmp-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) io_error(pattern, "create");
    const fs::path tmp = pattern;
    try {
        fs::permissions(tmp, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec); // mkdtemp makes it private
        write_file_synced(tmp / "weights.bin", encode_weights(tensors));
        for (int attempt = 0;; ++attempt) {
            const auto versions = list_versions(home);
            const int version = versions.empty() ? 1 : versions.back() + 1;
            card["version"] = version;
            write_file_synced(tmp / "model.json", as_bytes(card.dump(2) + "\n"));
            sync_dir(tmp);
            // rename(2) of a directory fails if the target exists and is not empty: another train won the race.
            if (::rename(tmp.c_str(), (dir / std::to_string(version)).c_str()) == 0) {
                sync_dir(dir);
                return version;
            }
            if ((errno != EEXIST && errno != ENOTEMPTY) || attempt > 100)
                io_error(dir / std::to_string(version), "publish");
        }
    } catch (...) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
        throw;
    }
}

ModelsLock::ModelsLock(const fs::path& home) {
    const fs::path dir = models_dir(home);
    std::error_code ec;
    fs::create_directories(dir, ec);
    const fs::path path = dir / ".lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) io_error(path, "open");
    while (::flock(fd_, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        const int error = errno;
        ::close(fd_);
        errno = error;
        io_error(path, "lock");
    }
}

ModelsLock::~ModelsLock() { ::close(fd_); } // closing the only descriptor releases the lock

int resolve_version(const fs::path& home, const std::string& spec) {
    const auto versions = list_versions(home);
    const auto v = parse_version(spec);
    if (!v) throw UsageError(fmt::format("'{}' is not a model version number", spec));
    if (!std::binary_search(versions.begin(), versions.end(), *v))
        throw NotFound(fmt::format("model version {} does not exist ({})", *v,
                                   versions.empty() ? std::string("no models yet")
                                                    : fmt::format("versions 1 to {}", versions.back())));
    return *v;
}

Artifact load(const fs::path& home, int version) {
    const fs::path dir = models_dir(home) / std::to_string(version);
    if (!fs::is_directory(dir)) throw NotFound(fmt::format("model version {} does not exist", version));
    Artifact a;
    a.version = version;
    const fs::path card_path = dir / "model.json";
    const auto card_bytes = read_file(card_path);
    a.card = nlohmann::json::parse(card_bytes.begin(), card_bytes.end(), nullptr, false);
    if (a.card.is_discarded() || !a.card.is_object())
        throw InvalidInput(fmt::format("{}: not a valid JSON object", card_path.string()));
    const auto& stated = a.card.contains("version") ? a.card["version"] : nlohmann::json();
    if (!stated.is_number_integer() || stated.get<int>() != version)
        throw InvalidInput(
            fmt::format("{}: says version {}, but lies in folder {}", card_path.string(), stated.dump(), version));
    validate_card(a.card, card_path.string());
    const fs::path weights_path = dir / "weights.bin";
    a.tensors = decode_weights(read_file(weights_path), weights_path.string());
    return a;
}

} // namespace btcml::model
