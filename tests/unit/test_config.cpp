#include "core/config.hpp"
#include "core/error.hpp"

#include <cstdlib>
#include <set>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

namespace btcml {
namespace {

class ConfigTest : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* v : {"BTCML_DB", "BTCML_HOME", "BTCML_CONFIG", "BTCML_LOG_FORMAT", "BTCML_LOG_LEVEL"})
            unsetenv(v);
        dir_ = std::filesystem::temp_directory_path() / ("btcml-config-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        file_ = dir_ / "config.yaml";
        std::ofstream(file_) << "db: sqlite:/from/file.db\nlog_level: warn\ntracking_uri: http://file\n";
    }
    void TearDown() override {
        for (const char* v : {"BTCML_DB", "BTCML_HOME", "BTCML_CONFIG", "BTCML_LOG_FORMAT", "BTCML_LOG_LEVEL"})
            unsetenv(v);
        std::filesystem::remove_all(dir_);
    }
    std::filesystem::path dir_;
    std::filesystem::path file_;
};

TEST_F(ConfigTest, FlagsBeatEnvBeatFileBeatDefaults) {
    GlobalFlags flags;
    flags.config_file = file_.string();
    Config c = resolve_config(flags);
    EXPECT_EQ(c.db_url, "sqlite:/from/file.db");
    EXPECT_EQ(c.log_level, LogLevel::warn);
    EXPECT_EQ(c.log_format, LogFormat::text);

    setenv("BTCML_DB", "sqlite:/from/env.db", 1);
    c = resolve_config(flags);
    EXPECT_EQ(c.db_url, "sqlite:/from/env.db");

    flags.db = "sqlite:/from/flag.db";
    c = resolve_config(flags);
    EXPECT_EQ(c.db_url, "sqlite:/from/flag.db");
    EXPECT_EQ(c.value(Setting::tracking_uri), "http://file");
    EXPECT_EQ(c.resolve(Setting::tracking_uri).source, Config::Source::file);
    EXPECT_EQ(c.value(Setting::tracking_uri, "http://flag"), "http://flag");
    EXPECT_EQ(c.value(Setting::live_window), "30d");
    EXPECT_EQ(c.resolve(Setting::live_window).source, Config::Source::fallback);
    setenv("BTCML_TRACKING_URI", "http://env", 1);
    EXPECT_EQ(c.resolve(Setting::tracking_uri).value, "http://env");
    EXPECT_EQ(c.resolve(Setting::tracking_uri).source, Config::Source::env);
    unsetenv("BTCML_TRACKING_URI");
}

TEST_F(ConfigTest, EverySettingIsDefinedOnceAtItsOwnPlace) {
    std::set<std::string_view> keys;
    std::set<std::string_view> envs;
    for (const auto& s : all_settings()) {
        EXPECT_EQ(&spec(s.id), &s);
        EXPECT_FALSE(s.meaning.empty());
        EXPECT_FALSE(s.key.empty() && s.env.empty()) << s.meaning;
        if (!s.key.empty()) EXPECT_TRUE(keys.insert(s.key).second) << s.key;
        if (!s.env.empty()) EXPECT_TRUE(envs.insert(s.env).second) << s.env;
    }
    EXPECT_EQ(known_keys("pipelines"),
              "tick_every, retrain_every, attempts, backoff, tick_timeout, retrain_timeout, epochs, lease");
    const auto reference = settings_reference_markdown();
    for (const auto& s : all_settings())
        EXPECT_NE(reference.find(std::string(s.meaning)), std::string::npos) << s.meaning;
}

TEST_F(ConfigTest, AnUnknownKeyInTheFileIsNamed) {
    std::ofstream(file_) << "db: sqlite:/x.db\ntracking_url: http://typo\n";
    GlobalFlags flags;
    flags.config_file = file_.string();
    try {
        resolve_config(flags);
        FAIL();
    } catch (const InvalidInput& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("unknown key 'tracking_url'"), std::string::npos) << what;
        EXPECT_NE(what.find("tracking_uri"), std::string::npos) << what; // the known keys are listed
    }
    // An environment-only setting (a secret that belongs in no file) is unknown to the file too.
    std::ofstream(file_) << "BTCML_API_KEY: k\n";
    EXPECT_THROW(resolve_config(flags), InvalidInput);
}

TEST_F(ConfigTest, HomeConfigFileIsFoundByDefault) {
    setenv("BTCML_HOME", dir_.c_str(), 1);
    const Config c = resolve_config({});
    EXPECT_EQ(c.home, dir_);
    EXPECT_EQ(c.config_file, file_);
    EXPECT_EQ(c.db_url, "sqlite:/from/file.db");
}

TEST_F(ConfigTest, BadValuesAreNamed) {
    GlobalFlags flags;
    flags.log_format = "xml";
    EXPECT_THROW(resolve_config(flags), UsageError);
    std::ofstream(file_) << "db: [1, 2]\n";
    flags = {};
    flags.config_file = file_.string();
    try {
        resolve_config(flags);
        FAIL();
    } catch (const InvalidInput& e) {
        EXPECT_NE(std::string(e.what()).find("'db' must be a single value"), std::string::npos);
    }
    std::ofstream(file_) << "db: [unclosed\n";
    EXPECT_THROW(resolve_config(flags), InvalidInput);
    flags.config_file = (dir_ / "missing.yaml").string();
    EXPECT_THROW(resolve_config(flags), UsageError);
}

} // namespace
} // namespace btcml
