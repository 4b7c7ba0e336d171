#include "model/artifact.hpp"
#include "model/forecaster.hpp"

#include "core/error.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace btcml::model {
namespace {

namespace fs = std::filesystem;

struct TempHome {
    fs::path path = fs::temp_directory_path() / ("btcml-artifact-" + std::to_string(::getpid()) + "-" +
                                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    TempHome() { fs::remove_all(path); }
    ~TempHome() { fs::remove_all(path); }
};

const std::vector<Tensor> two_tensors{{"a", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b.bias", {2}, {-1.5F, 0.25F}}};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const InvalidInput& e) {
        return e.what();
    }
    return "no InvalidInput";
}

TEST(Artifact, WeightsRoundTripWithDocumentedLayout) {
    const auto bytes = encode_weights(two_tensors);
    // magic 8 + version 4 + count 4 + ("a": 4+1+4+2*4+6*4) + ("b.bias": 4+6+4+4+2*4) + checksum 8
    EXPECT_EQ(bytes.size(), 8u + 4 + 4 + (4 + 1 + 4 + 8 + 24) + (4 + 6 + 4 + 4 + 8) + 8);
    EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "BTCMLWTS");
    EXPECT_EQ(bytes[8], 1); // format version 1, little-endian
    const auto back = decode_weights(bytes, "weights.bin");
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0].name, "a");
    EXPECT_EQ(back[0].shape, (std::vector<std::uint32_t>{2, 3}));
    EXPECT_EQ(back[1].data, two_tensors[1].data);
}

TEST(Artifact, RejectsDamagedWeightsNamingTheProblem) {
    const auto good = encode_weights(two_tensors);
    struct Case {
        const char* name;
        std::function<void(std::vector<unsigned char>&)> damage;
        const char* message;
    };
    const Case cases[] = {
        {"truncated", [](auto& b) { b.resize(b.size() - 9); }, "truncated"},
        {"empty", [](auto& b) { b.clear(); }, "truncated"},
        {"bad magic", [](auto& b) { b[0] = 'X'; }, "bad magic"},
        {"future version", [](auto& b) { b[8] = 2; }, "format version 2"},
        {"flipped data bit", [](auto& b) { b[40] ^= 1; }, "checksum mismatch"},
        {"trailing bytes", [](auto& b) { b.push_back(0); }, "unexpected bytes"},
        {"huge shape", [](auto& b) { b[8 + 4 + 4 + 4 + 1 + 4] = 0xff, b[8 + 4 + 4 + 4 + 1 + 4 + 3] = 0x7f; },
         "runs past the end"},
    };
    for (const auto& c : cases) {
        auto bytes = good;
        c.damage(bytes);
        const std::string message = error_of([&] { decode_weights(bytes, "models/1/weights.bin"); });
        EXPECT_NE(message.find("models/1/weights.bin"), std::string::npos) << c.name << ": " << message;
        EXPECT_NE(message.find(c.message), std::string::npos) << c.name << ": " << message;
    }
}

TEST(Artifact, PublishesConsecutiveVersionsResolvedByNumberOnly) {
    const TempHome home;
    EXPECT_THROW(resolve_version(home.path, "1"), NotFound);
    EXPECT_EQ(publish(home.path, {{"note", "first"}}, two_tensors), 1);
    EXPECT_EQ(publish(home.path, {{"note", "second"}}, two_tensors), 2);
    EXPECT_EQ(list_versions(home.path), (std::vector<int>{1, 2}));
    EXPECT_EQ(resolve_version(home.path, "1"), 1);
    EXPECT_THROW(resolve_version(home.path, "3"), NotFound);
    EXPECT_THROW(resolve_version(home.path, "latest"), UsageError);
    // Aliases are per series and live in the store's registry (tracking::Registry::resolve), not on disk.
    EXPECT_THROW(resolve_version(home.path, "champion"), UsageError);
    EXPECT_FALSE(fs::exists(models_dir(home.path) / "champion"));
    const Artifact a = load(home.path, 2);
    EXPECT_EQ(a.card["version"], 2);
    EXPECT_EQ(a.card["note"], "second");
    for (const auto& entry : fs::directory_iterator(models_dir(home.path)))
        EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u) << "left behind: " << entry.path();
}

TEST(Artifact, RejectsADamagedModelJsonNamingTheFile) {
    const TempHome home;
    publish(home.path, {{"note", "x"}}, two_tensors);
    const fs::path card = models_dir(home.path) / "1" / "model.json";
    std::ofstream(card) << "{\"version\": 1, \"note\": ";
    EXPECT_NE(error_of([&] { load(home.path, 1); }).find(card.string()), std::string::npos);
    std::ofstream(card) << "{\"version\": 7}";
    EXPECT_NE(error_of([&] { load(home.path, 1); }).find("says version 7"), std::string::npos);
    fs::remove(models_dir(home.path) / "1" / "weights.bin");
    std::ofstream(card) << "{\"version\": 1}";
    EXPECT_NE(error_of([&] { load(home.path, 1); }).find("missing"), std::string::npos);
}

Forecaster small_forecaster() {
    features::DatasetSpec spec{4, {1, 3}};
    features::Scaler scaler{std::vector<double>(features::feature_count, 0.1),
                            std::vector<double>(features::feature_count, 2.0),
                            {0.01, 0.02}};
    LstmNetwork net({static_cast<int>(features::feature_count), 5, 2, 6, 0.0F}, 3);
    return {spec, scaler, std::move(net), {0.001, 0.002}};
}

std::vector<Bar> bars(std::size_t n) {
    std::vector<Bar> out;
    for (std::size_t i = 0; i < n; ++i) {
        const double c = 100 + std::sin(static_cast<double>(i));
        out.push_back({static_cast<std::int64_t>(i) * 3600, c, c + 1, c - 1, c, 3});
    }
    return out;
}

TEST(Artifact, ForecasterSurvivesTheRoundTrip) {
    const TempHome home;
    const Forecaster original = small_forecaster();
    nlohmann::json card = original.describe();
    const int version = publish(home.path, card, original.tensors());
    const Forecaster back = Forecaster::from_artifact(load(home.path, version), "model.json");
    const auto series = bars(10);
    const auto a = forecast_latest(original, series, 3600);
    const auto b = forecast_latest(back, series, 3600);
    ASSERT_EQ(a.horizons.size(), 2u);
    for (std::size_t k = 0; k < 2; ++k) {
        EXPECT_EQ(a.horizons[k].price, b.horizons[k].price);
        EXPECT_LE(a.horizons[k].lower, a.horizons[k].price);
        EXPECT_LE(a.horizons[k].price, a.horizons[k].upper);
    }
    EXPECT_EQ(a.horizons[1].target_time, 9 * 3600 + 3 * 3600);
    EXPECT_THROW(forecast_latest(original, std::span(series).first(4), 3600), InvalidInput); // needs 5 bars
}

TEST(Artifact, RejectsWeightsThatDoNotMatchTheArchitecture) {
    const TempHome home;
    const Forecaster original = small_forecaster();
    auto tensors = original.tensors();
    tensors.back().shape = {7};
    tensors.back().data.resize(7);
    const int v1 = publish(home.path, original.describe(), tensors);
    EXPECT_NE(
        error_of([&] { Forecaster::from_artifact(load(home.path, v1), "models/1/model.json"); }).find("head.bias"),
        std::string::npos);
    auto card = original.describe();
    card["horizons"] = {1, 3, 6};
    const int v2 = publish(home.path, card, original.tensors());
    EXPECT_THROW(Forecaster::from_artifact(load(home.path, v2), "m"), InvalidInput);
}

TEST(Artifact, ImpossibleCardFieldsAreInvalidInputNamingTheField) {
    const TempHome home;
    const Forecaster original = small_forecaster();
    nlohmann::json good = original.describe();
    good["hyperparameters"] = TrainOptions{}.to_json();
    struct Case {
        const char* pointer;
        nlohmann::json value;
        const char* field; // as the message names it
    };
    const Case cases[] = {
        {"/window", -5, "window"},
        {"/window", 0, "window"},
        {"/window", 1e12, "window"},
        {"/window", "48", "window"},
        {"/window", 18446744073709551615ULL, "window"},
        {"/horizons", nlohmann::json::array(), "horizons"},
        {"/horizons", {3, 1}, "horizons"},
        {"/horizons", {1, -3}, "horizons/1"},
        {"/horizons", 6, "horizons"},
        {"/quantiles", {0.1, 0.5, 1.5}, "quantiles/2"},
        {"/quantiles", {0.9, 0.5, 0.1}, "quantiles"},
        {"/architecture/hidden_size", -8, "architecture/hidden_size"},
        {"/architecture/hidden_size", 1 << 30, "architecture/hidden_size"},
        {"/architecture/num_layers", 0, "architecture/num_layers"},
        {"/architecture/num_layers", 2.5, "architecture/num_layers"},
        {"/architecture/output_size", -6, "architecture/output_size"},
        {"/architecture/input_size", -1, "architecture/input_size"},
        {"/architecture/dropout", 1.0, "architecture/dropout"},
        {"/scaler/stddev/3", 0.0, "scaler/stddev/3"},
        {"/scaler/mean/0", nullptr, "scaler/mean/0"},
        {"/scaler/target_stddev/1", -0.5, "scaler/target_stddev/1"},
        {"/calibration/interval_offsets", "none", "calibration/interval_offsets"},
        {"/hyperparameters/hidden", -64, "hyperparameters/hidden"},
        {"/hyperparameters/layers", 100000, "hyperparameters/layers"},
        {"/hyperparameters/batch_size", 0, "hyperparameters/batch_size"},
        {"/hyperparameters/lr", -1e-3, "hyperparameters/lr"},
        {"/hyperparameters/samples_per_epoch", -1, "hyperparameters/samples_per_epoch"},
    };
    for (const auto& c : cases) {
        auto card = good;
        card[nlohmann::json::json_pointer(c.pointer)] = c.value;
        const int version = publish(home.path, card, original.tensors());
        const std::string message = error_of([&] { load(home.path, version); });
        const std::string expected = fmt::format("model.json: {} ", c.field);
        EXPECT_NE(message.find(expected), std::string::npos) << c.pointer << " = " << c.value.dump() << ": " << message;
    }
    // The card as written loads and builds its forecaster.
    const int version = publish(home.path, good, original.tensors());
    EXPECT_NO_THROW(Forecaster::from_artifact(load(home.path, version), "model.json"));
}

} // namespace
} // namespace btcml::model
