#pragma once
// Model artifacts on disk: `$BTCML_HOME/models/<version>/` holding `model.json` (everything but the weights) and
// `weights.bin` (the tensors, checksummed). Versions are consecutive integers, published atomically and never
// changed: which version is a series' champion is state, kept in the store's registry (src/tracking/registry.hpp).
// See docs/forecasting.md for the byte layout.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace btcml::model {

struct Tensor {
    std::string name;
    std::vector<std::uint32_t> shape;
    std::vector<float> data; // row-major, product of shape floats
};

inline constexpr std::uint32_t weights_format_version = 1;

/// Writes tensors in the weights.bin format (little-endian: magic "BTCMLWTS", format version, tensor count,
/// per tensor name/shape/float32 data, FNV-1a 64 checksum of every byte before it).
std::vector<unsigned char> encode_weights(std::span<const Tensor> tensors);
/// Parses weights.bin bytes; throws InvalidInput naming `what` and the problem (truncated, bad magic, unknown
/// version, checksum mismatch, trailing bytes).
std::vector<Tensor> decode_weights(std::span<const unsigned char> bytes, const std::string& what);

/// A model as stored: its description and its tensors.
struct Artifact {
    int version = 0;
    nlohmann::json card; // model.json
    std::vector<Tensor> tensors;
};

/// `<home>/models`.
std::filesystem::path models_dir(const std::filesystem::path& home);

/// Stored versions, ascending (folders whose name is a positive integer).
std::vector<int> list_versions(const std::filesystem::path& home);

/// Writes the artifact to `models/.tmp-XXXX`, fsyncs it and renames it to the next free version, so a crash
/// never leaves a half-written model. Sets card["version"]. Does not touch the champion: the registry's promotion
/// gate decides (src/tracking/registry.hpp). Returns the version.
int publish(const std::filesystem::path& home, nlohmann::json card, std::span<const Tensor> tensors);

/// The stored version named by `spec`, a positive integer. Throws NotFound when there is no such model, UsageError
/// when spec is not a number (aliases such as `champion` are per series: tracking::Registry::resolve).
int resolve_version(const std::filesystem::path& home, const std::string& spec);

/// Largest values a model card may hold: beyond them a hand-edited card would make loading allocate gigabytes.
inline constexpr std::int64_t max_window = 100'000;
inline constexpr std::int64_t max_horizon = 100'000;
inline constexpr std::int64_t max_hidden = 4096;
inline constexpr std::int64_t max_layers = 64;

/// Checks every field of a model card that loading or refitting a forecaster reads, where present: JSON types,
/// signs and bounds (window, horizons positive and ascending, architecture sizes, dropout in [0, 1), quantiles in
/// (0, 1) ascending, finite scaler values with positive deviations, hyperparameters). Throws InvalidInput
/// "<what>: <field> …" naming the field, so that a hand-edited model.json fails here and not as a crash later.
/// Consistency between fields (tensor shapes, one scale per horizon) is checked by Forecaster::from_artifact.
void validate_card(const nlohmann::json& card, const std::string& what);

/// Loads and checks a stored version (validate_card, the weights' checksum); throws NotFound when absent and
/// InvalidInput naming the file for a truncated, corrupt or inconsistent artifact.
Artifact load(const std::filesystem::path& home, int version);

/// An exclusive lock (flock) on `models/.lock` for its lifetime: serialises the registry's alias changes between
/// the threads and processes sharing a home. Waits for the lock. Not copyable.
class ModelsLock {
  public:
    explicit ModelsLock(const std::filesystem::path& home);
    ~ModelsLock();
    ModelsLock(const ModelsLock&) = delete;
    ModelsLock& operator=(const ModelsLock&) = delete;

  private:
    int fd_;
};

} // namespace btcml::model
