#pragma once
// FNV-1a 64: the one fast, non-cryptographic checksum btcml uses (weights file integrity). Not collision-resistant:
// never a key that untrusted input chooses (features::hash_bars is SHA-256 for that reason).
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace btcml {

/// Incremental FNV-1a 64. Not thread-safe: one per computation.
class Fnv1a64 {
  public:
    void update(std::span<const unsigned char> bytes) noexcept {
        for (const unsigned char b : bytes)
            hash_ = (hash_ ^ b) * 1099511628211ULL;
    }
    /// The object representation of a trivially copyable value (host byte order).
    template <typename T> void update_value(const T& value) noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        update({reinterpret_cast<const unsigned char*>(&value), sizeof value});
    }
    [[nodiscard]] std::uint64_t digest() const noexcept { return hash_; }

  private:
    std::uint64_t hash_ = 14695981039346656037ULL;
};

inline std::uint64_t fnv1a64(std::span<const unsigned char> bytes) noexcept {
    Fnv1a64 h;
    h.update(bytes);
    return h.digest();
}

} // namespace btcml
