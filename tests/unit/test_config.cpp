#include "core/config.hpp"
#include "core/error.hpp"

#include <cstdlib>
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
    EXPECT_EQ(c.setting(std::nullopt, "BTCML_TRACKING_URI", "tracking_uri", "local"), "http://file");
    EXPECT_EQ(c.setting(std::nullopt, "BTCML_NOT_SET", "not_in_file", "local"), "local");
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
