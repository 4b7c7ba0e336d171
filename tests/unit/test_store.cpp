// One suite, run against every backend: SQLite on a temporary file and PostgreSQL on the server named by
// BTCML_TEST_POSTGRES_URL (scripts/pg-test-server.sh), each test in a schema of its own.
#include "core/error.hpp"
#include "store/migrations.hpp"
#include "store/sql_store.hpp"
#include "store/store.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <thread>

namespace btcml::store {
namespace {

enum class Backend { sqlite, postgresql };

void PrintTo(Backend backend, std::ostream* os) { *os << (backend == Backend::sqlite ? "sqlite" : "postgresql"); }

const SeriesKey kKey{"BTCUSD", 3600};

Bar make_bar(std::int64_t time, double close) {
    return {time, close - 1, close + 2, close - 3, close, 10 + close, true};
}

std::vector<Bar> make_bars(std::int64_t first, std::int64_t count, std::int64_t step = 3600) {
    std::vector<Bar> bars;
    bars.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i)
        bars.push_back(make_bar(first + i * step, 100.0 + static_cast<double>(i) * 0.25));
    return bars;
}

BarQuery range(SeriesKey key, std::optional<std::int64_t> from = {}, std::optional<std::int64_t> to = {},
               std::optional<std::int64_t> limit = {}) {
    return {std::move(key), from, to, limit};
}

std::string getenv_or_empty(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "";
}

class StoreTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        static std::atomic<int> counter{0};
        const auto unique = fmt::format("{}_{}_{}", getpid(), counter++, std::random_device{}() % 100000);
        dir_ = std::filesystem::temp_directory_path() / fmt::format("btcml_store_test_{}", unique);
        std::filesystem::create_directories(dir_);
        if (GetParam() == Backend::sqlite) {
            url_ = "sqlite:" + (dir_ / "test.db").string();
            return;
        }
        const auto base = getenv_or_empty("BTCML_TEST_POSTGRES_URL");
        if (base.empty()) {
            constexpr const char* message = "BTCML_TEST_POSTGRES_URL is not set: run scripts/pg-test-server.sh start "
                                            "and export BTCML_TEST_POSTGRES_URL=$(scripts/pg-test-server.sh url)";
            if (!getenv_or_empty("CI").empty()) FAIL() << message;
            GTEST_SKIP() << message;
        }
        // A schema per test, first on the search path of every connection the test opens.
        schema_ = "btcml_test_" + unique;
        exec_raw_url(base, "CREATE SCHEMA " + schema_);
        base_url_ = base;
        url_ = fmt::format("{}{}options=-csearch_path%3D{}", base, base.find('?') == std::string::npos ? '?' : '&',
                           schema_);
    }

    void TearDown() override {
        if (!schema_.empty()) exec_raw_url(base_url_, fmt::format("DROP SCHEMA {} CASCADE", schema_));
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    std::unique_ptr<Store> open() { return open_store(url_, dir_); }

    // SQL behind the store's back, to set up states the API cannot produce.
    void exec_raw(const std::string& sql) {
        if (GetParam() == Backend::postgresql) {
            exec_raw_url(url_, sql);
            return;
        }
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open((dir_ / "test.db").c_str(), &db), SQLITE_OK);
        char* error = nullptr;
        const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
        const std::string message = error ? error : "";
        sqlite3_free(error);
        sqlite3_close(db);
        ASSERT_EQ(rc, SQLITE_OK) << message;
    }

    static void exec_raw_url(const std::string& url, const std::string& sql) {
        PGconn* conn = PQconnectdb(url.c_str());
        ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
        PQsetNoticeProcessor(
            conn, [](void*, const char*) {}, nullptr); // "drop cascades to …"
        PGresult* result = PQexec(conn, sql.c_str());
        const auto status = PQresultStatus(result);
        const std::string message = PQresultErrorMessage(result);
        PQclear(result);
        PQfinish(conn);
        ASSERT_EQ(status, PGRES_COMMAND_OK) << sql << ": " << message;
    }

    std::filesystem::path dir_;
    std::string url_;
    std::string base_url_;
    std::string schema_;
};

TEST_P(StoreTest, MigrationsAreAppliedOnceAndRecorded) {
    const auto all = migrations();
    std::vector<AppliedMigration> first;
    {
        auto store = open();
        EXPECT_EQ(store->backend(), GetParam() == Backend::sqlite ? "sqlite" : "postgresql");
        EXPECT_EQ(store->schema_version(), all.back().version);
        first = store->applied_migrations();
        ASSERT_EQ(first.size(), all.size());
        for (std::size_t i = 0; i < all.size(); ++i) {
            EXPECT_EQ(first[i].version, all[i].version);
            EXPECT_EQ(first[i].name, all[i].name);
            EXPECT_GT(first[i].applied_at, 1'600'000'000);
        }
        store->insert_bars(kKey, make_bars(0, 3), "test");
    }
    // Reopening changes nothing: same records, same data.
    auto again = open();
    const auto second = again->applied_migrations();
    ASSERT_EQ(second.size(), first.size());
    for (std::size_t i = 0; i < first.size(); ++i)
        EXPECT_EQ(second[i].applied_at, first[i].applied_at);
    EXPECT_EQ(again->load_bars(range(kKey)).size(), 3U);
}

TEST_P(StoreTest, ConcurrentOpenersMigrateOnce) {
    constexpr int kOpeners = 4;
    std::vector<std::thread> threads;
    std::atomic<int> opened{0};
    std::vector<std::string> errors(kOpeners);
    for (int i = 0; i < kOpeners; ++i) {
        threads.emplace_back([&, i] {
            try {
                open();
                ++opened;
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(i)] = e.what();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    for (const auto& e : errors)
        EXPECT_EQ(e, "");
    EXPECT_EQ(opened, kOpeners);
    EXPECT_EQ(open()->applied_migrations().size(), migrations().size());
}

TEST_P(StoreTest, NewerSchemaIsRefusedClearly) {
    open();
    exec_raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)");
    try {
        open();
        FAIL() << "opened a database with a newer schema";
    } catch (const Conflict& e) {
        EXPECT_NE(std::string(e.what()).find("schema version 999"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("upgrade btcml"), std::string::npos) << e.what();
    }
}

TEST_P(StoreTest, InsertCountsInsertedAndDuplicateRows) {
    auto store = open();
    const auto bars = make_bars(1'700'000'000, 3);
    auto r = store->insert_bars(kKey, bars, "first");
    EXPECT_EQ(r.inserted, 3);
    EXPECT_EQ(r.duplicate, 0);

    // Two already stored (with other values, which must not overwrite them), one new, one repeated in the batch.
    std::vector<Bar> more{make_bar(bars[1].time, 999), make_bar(bars[2].time, 999), make_bar(bars[2].time + 3600, 7),
                          make_bar(bars[2].time + 3600, 8)};
    r = store->insert_bars(kKey, more, "second");
    EXPECT_EQ(r.inserted, 1);
    EXPECT_EQ(r.duplicate, 3);

    const auto loaded = store->load_bars(range(kKey));
    ASSERT_EQ(loaded.size(), 4U);
    EXPECT_EQ(loaded[1], bars[1]);
    EXPECT_EQ(loaded[2], bars[2]);
    EXPECT_EQ(loaded[3], more[2]);
    EXPECT_EQ(store->load_bar_sources(range(kKey)), (std::vector<std::string>{"first", "first", "first", "second"}));

    // The same times in another series are not duplicates.
    r = store->insert_bars({"BTCUSD", 60}, bars, "first");
    EXPECT_EQ(r.inserted, 3);
    EXPECT_EQ(store->insert_bars(kKey, {}, "empty").inserted, 0);
}

TEST_P(StoreTest, AwkwardDoublesRoundTripBitForBit) {
    const std::vector<double> values{1e-300,
                                     0.1,
                                     12345.678901234567,
                                     1.7976931348623157e308,
                                     -1.7976931348623157e308,
                                     2.2250738585072014e-308, // smallest normal
                                     4.9406564584124654e-324, // smallest subnormal
                                     0.30000000000000004,
                                     1.0 / 3.0,
                                     9007199254740993.0,
                                     -0.5,
                                     68000.01};
    std::vector<Bar> bars;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const double v = values[i];
        bars.push_back({static_cast<std::int64_t>(i) * 3600, v, v, v, v, v, i % 2 == 0});
    }
    auto store = open();
    store->insert_bars(kKey, bars, "doubles");
    const auto loaded = store->load_bars(range(kKey));
    ASSERT_EQ(loaded.size(), bars.size());
    for (std::size_t i = 0; i < bars.size(); ++i) {
        for (const auto& [got, want] :
             {std::pair{loaded[i].open, bars[i].open}, std::pair{loaded[i].high, bars[i].high},
              std::pair{loaded[i].low, bars[i].low}, std::pair{loaded[i].close, bars[i].close},
              std::pair{loaded[i].volume, bars[i].volume}}) {
            EXPECT_EQ(std::bit_cast<std::uint64_t>(got), std::bit_cast<std::uint64_t>(want))
                << fmt::format("{} came back as {}", want, got);
        }
        EXPECT_EQ(loaded[i].complete, bars[i].complete);
    }
}

TEST_P(StoreTest, LoadBarsHonoursRangesLimitAndOrder) {
    auto store = open();
    // Stored out of order, in two batches, beside another series.
    auto bars = make_bars(1'000'000, 10);
    std::vector<Bar> shuffled{bars[7], bars[2], bars[9], bars[0], bars[5]};
    std::vector<Bar> rest{bars[1], bars[8], bars[3], bars[6], bars[4]};
    store->insert_bars(kKey, shuffled, "a");
    store->insert_bars(kKey, rest, "b");
    store->insert_bars({"ETHUSD", 3600}, make_bars(1'000'000, 4), "c");

    EXPECT_EQ(store->load_bars(range(kKey)), bars);
    const auto t = [&](std::size_t i) { return bars[i].time; };
    EXPECT_EQ(store->load_bars(range(kKey, t(2), t(5))), std::vector<Bar>(bars.begin() + 2, bars.begin() + 6));
    EXPECT_EQ(store->load_bars(range(kKey, t(8))), std::vector<Bar>(bars.begin() + 8, bars.end()));
    EXPECT_EQ(store->load_bars(range(kKey, std::nullopt, t(1))), std::vector<Bar>(bars.begin(), bars.begin() + 2));
    EXPECT_EQ(store->load_bars(range(kKey, t(3) + 1, t(4) - 1)), std::vector<Bar>{});
    EXPECT_EQ(store->load_bars(range(kKey, t(3), std::nullopt, 2)),
              std::vector<Bar>(bars.begin() + 3, bars.begin() + 5));
    EXPECT_EQ(store->load_bars(range(kKey, std::nullopt, std::nullopt, 0)), std::vector<Bar>{});
    EXPECT_EQ(store->load_bars(range({"BTCUSD", 60})), std::vector<Bar>{});
    EXPECT_EQ(store->load_bar_sources(range(kKey, t(0), t(3))), (std::vector<std::string>{"a", "b", "a", "b"}));
    EXPECT_THROW(store->load_bars(range(kKey, std::nullopt, std::nullopt, -1)), UsageError);
}

TEST_P(StoreTest, LastBarTimeAndListSeries) {
    auto store = open();
    EXPECT_EQ(store->last_bar_time(kKey), std::nullopt);
    EXPECT_TRUE(store->list_series().empty());

    store->insert_bars(kKey, make_bars(7200, 5), "zeta.csv");
    store->insert_bars(kKey, make_bars(7200 + 5 * 3600, 2), "alpha.csv");
    store->insert_bars({"ETHUSD", 86400}, make_bars(86400, 3, 86400), "synthetic:1");
    EXPECT_EQ(store->last_bar_time(kKey), 7200 + 6 * 3600);
    EXPECT_EQ(store->last_bar_time({"BTCUSD", 60}), std::nullopt);

    const auto series = store->list_series();
    ASSERT_EQ(series.size(), 2U);
    EXPECT_EQ(series[0].key, kKey);
    EXPECT_EQ(series[0].bars, 7);
    EXPECT_EQ(series[0].first_time, 7200);
    EXPECT_EQ(series[0].last_time, 7200 + 6 * 3600);
    EXPECT_EQ(series[0].sources, "alpha.csv,zeta.csv");
    EXPECT_EQ(series[1].key, (SeriesKey{"ETHUSD", 86400}));
    EXPECT_EQ(series[1].bars, 3);
    EXPECT_EQ(series[1].sources, "synthetic:1");
}

TEST_P(StoreTest, RejectedRowsKeepHostileText) {
    auto store = open();
    IngestRun run;
    run.source = "hostile.csv";
    const auto id = store->create_ingest_run(run);

    std::string binaryish;
    for (int c = 1; c < 128; ++c)
        binaryish += static_cast<char>(c);
    const std::string long_line(10 * 1024, 'x');
    // Text that is already valid UTF-8 comes back unchanged, however hostile to COPY or SQL quoting.
    const std::vector<std::string> clean{
        "a\tb\tc",
        "line one\nline two\r\n",
        R"(back\slash \\ \N \t \. end)",
        "\\.",
        "'quoted' \"double\" ''; DROP TABLE bars; --",
        binaryish,
        long_line + "\t" + long_line,
        "UTF-8: \xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9",
        "",
    };
    // Text that is not gets its offending bytes written as \xNN, the same way on every backend.
    const std::vector<std::pair<std::string, std::string>> dirty{
        {"latin-1 caf\xE9", "latin-1 caf\\xE9"},
        {"\xFF\xFE\tBOM", "\\xFF\\xFE\tBOM"},
        {"overlong \xC0\xAF", "overlong \\xC0\\xAF"},
        {"truncated \xE2\x82", "truncated \\xE2\\x82"},
        {"surrogate \xED\xA0\x80", "surrogate \\xED\\xA0\\x80"},
        {std::string("nul\0byte", 8), "nul\\x00byte"},
        {long_line + "\x80", long_line + "\\x80"},
    };
    std::vector<RejectedRow> rows;
    std::vector<RejectedRow> expected;
    std::int64_t line = 1;
    for (const auto& text : clean) {
        rows.push_back({line, text, "reason: " + text.substr(0, 20)});
        expected.push_back(rows.back());
        ++line;
    }
    for (const auto& [text, stored] : dirty) {
        rows.push_back({line, text, "bad\xFF reason"});
        expected.push_back({line, stored, "bad\\xFF reason"});
        ++line;
    }
    store->begin();
    store->insert_rejected(id, rows);
    store->commit();

    const auto loaded = store->rejected_rows(id);
    ASSERT_EQ(loaded.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(loaded[i].line_number, expected[i].line_number);
        EXPECT_EQ(loaded[i].raw, expected[i].raw) << "row " << i;
        EXPECT_EQ(loaded[i].reason, expected[i].reason) << "row " << i;
    }
    EXPECT_TRUE(store->rejected_rows(id + 1).empty());
}

TEST_P(StoreTest, HostileSeriesNamesAndSourcesAreStoredAsGiven) {
    auto store = open();
    const SeriesKey key{"BTC\tUSD\\'x\"", 60};
    const std::string source = "/tmp/a file\twith\nnewline\\and 'quotes'.csv";
    EXPECT_EQ(store->insert_bars(key, make_bars(0, 2, 60), source).inserted, 2);
    EXPECT_EQ(store->load_bars(range(key)).size(), 2U);
    EXPECT_EQ(store->load_bar_sources(range(key)), (std::vector<std::string>{source, source}));
    ASSERT_EQ(store->list_series().size(), 1U);
    EXPECT_EQ(store->list_series()[0].key, key);
}

TEST_P(StoreTest, RollbackLeavesNothing) {
    auto store = open();
    IngestRun run;
    run.source = "rolled-back.csv";
    const auto id = store->create_ingest_run(run);

    store->begin();
    EXPECT_EQ(store->insert_bars(kKey, make_bars(0, 100), "x").inserted, 100);
    store->insert_rejected(id, std::vector<RejectedRow>{{1, "bad", "why"}});
    EXPECT_EQ(store->load_bars(range(kKey)).size(), 100U); // visible inside the transaction
    store->rollback();

    EXPECT_TRUE(store->load_bars(range(kKey)).empty());
    EXPECT_TRUE(store->rejected_rows(id).empty());
    EXPECT_TRUE(store->list_series().empty());
    ASSERT_TRUE(store->ingest_run(id).has_value()); // written outside the data transaction

    // The connection is usable again, and a committed transaction sticks.
    store->begin();
    store->insert_bars(kKey, make_bars(0, 10), "x");
    store->commit();
    EXPECT_EQ(open()->load_bars(range(kKey)).size(), 10U);
}

TEST_P(StoreTest, IngestRunIsCreatedFinishedAndReadBack) {
    auto store = open();
    IngestRun run;
    run.source = "kaggle:mczielinski/bitcoin-historical-data";
    run.format = "kaggle";
    run.symbol = "BTCUSD";
    run.interval = 60;
    run.started_at = 1'700'000'000;
    run.id = store->create_ingest_run(run);
    EXPECT_GT(run.id, 0);
    EXPECT_NE(store->create_ingest_run(run), run.id);

    auto created = store->ingest_run(run.id);
    ASSERT_TRUE(created.has_value());
    EXPECT_EQ(created->status, "running");
    EXPECT_EQ(created->source, run.source);
    EXPECT_EQ(created->started_at, run.started_at);
    EXPECT_EQ(created->finished_at, 0);
    EXPECT_EQ(created->first_time, std::nullopt);

    run.status = "failed";
    run.error = "line 3: \xFF not a number";
    run.finished_at = 1'700'000'100;
    run.rows_read = 1'000'000;
    run.rows_inserted = 999'000;
    run.rows_duplicate = 900;
    run.rows_rejected = 100;
    run.first_time = 1'325'412'060;
    run.last_time = 1'325'999'999;
    run.missing_bars = 42;
    run.summary_json = R"({"rows_read": 1000000, "rejected_reasons": {"bad\tvalue": 100}})";
    store->finish_ingest_run(run);

    const auto finished = store->ingest_run(run.id);
    ASSERT_TRUE(finished.has_value());
    auto expected = run;
    expected.error = "line 3: \\xFF not a number";
    EXPECT_EQ(finished->id, expected.id);
    EXPECT_EQ(finished->source, expected.source);
    EXPECT_EQ(finished->format, expected.format);
    EXPECT_EQ(finished->symbol, expected.symbol);
    EXPECT_EQ(finished->interval, expected.interval);
    EXPECT_EQ(finished->status, expected.status);
    EXPECT_EQ(finished->error, expected.error);
    EXPECT_EQ(finished->started_at, expected.started_at);
    EXPECT_EQ(finished->finished_at, expected.finished_at);
    EXPECT_EQ(finished->rows_read, expected.rows_read);
    EXPECT_EQ(finished->rows_inserted, expected.rows_inserted);
    EXPECT_EQ(finished->rows_duplicate, expected.rows_duplicate);
    EXPECT_EQ(finished->rows_rejected, expected.rows_rejected);
    EXPECT_EQ(finished->first_time, expected.first_time);
    EXPECT_EQ(finished->last_time, expected.last_time);
    EXPECT_EQ(finished->missing_bars, expected.missing_bars);
    EXPECT_EQ(finished->summary_json, expected.summary_json);

    EXPECT_EQ(store->ingest_run(run.id + 1000), std::nullopt);
    auto missing = run;
    missing.id = run.id + 1000;
    EXPECT_THROW(store->finish_ingest_run(missing), NotFound);

    store->begin();
    EXPECT_THROW(store->create_ingest_run(run), Error);
    EXPECT_THROW(store->finish_ingest_run(run), Error);
    store->rollback();
}

TEST_P(StoreTest, BulkInsertInsideATransaction) {
    constexpr std::int64_t kRows = 200'000;
    auto store = open();
    const auto bars = make_bars(1'300'000'000, kRows, 60);
    const SeriesKey key{"BTCUSD", 60};
    store->begin();
    // Two batches in one transaction, as an ingest that streams its input does.
    const auto half = bars.size() / 2;
    auto r1 = store->insert_bars(key, std::span(bars).first(half), "bulk");
    auto r2 = store->insert_bars(key, std::span(bars).subspan(half - 10), "bulk");
    store->commit();
    EXPECT_EQ(r1.inserted + r2.inserted, kRows);
    EXPECT_EQ(r2.duplicate, 10);

    const auto series = store->list_series();
    ASSERT_EQ(series.size(), 1U);
    EXPECT_EQ(series[0].bars, kRows);
    EXPECT_EQ(series[0].first_time, bars.front().time);
    EXPECT_EQ(series[0].last_time, bars.back().time);
    EXPECT_EQ(store->load_bars(range(key)), bars);

    const auto again = store->insert_bars(key, bars, "bulk");
    EXPECT_EQ(again.inserted, 0);
    EXPECT_EQ(again.duplicate, kRows);
}

TEST_P(StoreTest, TrackedRunsKeepTheirDataAndWhatIsSynced) {
    auto store = open();
    TrackedRun run{.id = "r1",
                   .experiment = "btcml-X-1h",
                   .name = "train",
                   .start_ms = 1000,
                   .end_ms = std::nullopt,
                   .tracking_uri = "http://127.0.0.1:1",
                   .remote_id = "",
                   .remote_experiment_id = "",
                   .artifact_uri = "",
                   .remote_status = ""};
    store->save_run(run);
    RunData data;
    data.params = {{"hidden", "8"}, {"lr", "0.001"}};
    data.tags = {{"mlflow.user", "me"}};
    data.metrics = {{"loss", 0.5, 1001, 1, 0}, {"loss", 0.25, 1002, 2, 0}};
    data.artifacts = {{"model/MLmodel", "/tmp/MLmodel"}};
    store->log_run_data("r1", data);
    store->log_run_data("r1", RunData{{}, {}, {{"loss", 0.125, 1003, 3, 0}}, {}});
    const auto all = store->run_data("r1", false);
    ASSERT_EQ(all.metrics.size(), 3U);
    EXPECT_EQ(all.metrics[2].seq, 3);
    EXPECT_EQ(all.metrics[2].step, 3);
    EXPECT_DOUBLE_EQ(all.metrics[1].value, 0.25);
    EXPECT_EQ(all.params, (KeyValues{{"hidden", "8"}, {"lr", "0.001"}}));
    ASSERT_EQ(store->tracked_runs(true).size(), 1U);

    store->mark_synced("r1", RunDataKind::metric, {"1", "2"});
    store->mark_synced("r1", RunDataKind::param, {"hidden", "lr"});
    const auto pending = store->run_data("r1", true);
    ASSERT_EQ(pending.metrics.size(), 1U);
    EXPECT_EQ(pending.metrics[0].seq, 3);
    EXPECT_TRUE(pending.params.empty());
    EXPECT_EQ(pending.tags.size(), 1U);
    store->mark_synced("r1", RunDataKind::metric, {"3"});
    store->mark_synced("r1", RunDataKind::tag, {"mlflow.user"});
    store->mark_synced("r1", RunDataKind::artifact, {"model/MLmodel"});
    run.remote_id = "abc";
    run.status = run.remote_status = "FINISHED";
    run.end_ms = 2000;
    store->save_run(run);
    EXPECT_TRUE(store->tracked_runs(true).empty());
    const auto back = store->tracked_run("r1");
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->end_ms, 2000);
    EXPECT_EQ(back->remote_id, "abc");
    EXPECT_FALSE(store->tracked_run("nope").has_value());
}

TEST_P(StoreTest, RegistryVersionsAliasesAndTheirHistory) {
    auto store = open();
    store->save_model_version({1, "btcml-X-1h", "r1", 10, R"({"decision":"champion"})", ""});
    store->save_model_version({2, "btcml-X-1h", "r2", 20, "{}", "7"});
    store->set_alias({"btcml-X-1h", "champion", 1, std::nullopt, 11, "first"});
    store->set_alias({"btcml-X-1h", "champion", 2, 1, 21, "better"});
    store->set_alias({"btcml-X-1h", "challenger", 1, std::nullopt, 22, "x"});
    store->set_alias({"btcml-X-1h", "challenger", std::nullopt, 1, 23, "removed"});
    EXPECT_EQ(store->registered_models(), std::vector<std::string>{"btcml-X-1h"});
    EXPECT_EQ(store->aliases("btcml-X-1h"), (std::map<std::string, int>{{"champion", 2}}));
    const auto history = store->alias_history("btcml-X-1h", "champion");
    ASSERT_EQ(history.size(), 2U);
    EXPECT_EQ(history[0].version, 2);
    EXPECT_EQ(history[0].previous, 1);
    EXPECT_EQ(history[1].previous, std::nullopt);
    EXPECT_EQ(store->model_versions("btcml-X-1h").size(), 2U);
    EXPECT_EQ(store->model_version(2)->remote_version, "7");
    EXPECT_FALSE(store->model_version(3).has_value());
}

TEST_P(StoreTest, RunsThatStoppedBeatingAreAbandonedAndOnlyThose) {
    auto store = open();
    IngestRun beating, silent;
    beating.source = "beating.csv";
    beating.started_at = silent.started_at = 1000; // unix seconds
    silent.source = "silent.csv";
    beating.id = store->create_ingest_run(beating);
    silent.id = store->create_ingest_run(silent);
    const auto training = [&](const char* id, const char* status, std::int64_t start_ms) {
        TrackedRun r;
        r.id = id;
        r.experiment = "e";
        r.name = "train";
        r.status = status;
        r.start_ms = start_ms;
        store->save_run(r);
    };
    training("t-beating", "RUNNING", 1'000'000);
    training("t-silent", "RUNNING", 1'000'000);
    training("t-ended", "FINISHED", 1);

    EXPECT_TRUE(store->abandon_stale_runs(999'000).empty()); // nothing is older than its start
    // From another connection, as store::Heartbeat does.
    const auto other = store->open_another();
    other->heartbeat(RunKind::ingest, std::to_string(beating.id), 5'000'000);
    other->heartbeat(RunKind::training, "t-beating", 5'000'000);
    other->heartbeat(RunKind::training, "t-ended", 5'000'000); // ended: stays as it was
    EXPECT_EQ(store->abandon_stale_runs(4'000'000), std::vector<std::string>{"t-silent"});

    EXPECT_EQ(store->ingest_run(beating.id)->status, "running");
    const auto abandoned = store->ingest_run(silent.id);
    EXPECT_EQ(abandoned->status, "failed");
    EXPECT_NE(abandoned->error.find("abandoned: no heartbeat since 1970-01-01T00:16:40Z"), std::string::npos)
        << abandoned->error;
    EXPECT_EQ(abandoned->finished_at, 1000);
    EXPECT_EQ(store->tracked_run("t-beating")->status, "RUNNING");
    EXPECT_EQ(store->tracked_run("t-silent")->status, "KILLED");
    EXPECT_EQ(store->tracked_run("t-silent")->end_ms, 1'000'000);
    EXPECT_EQ(store->tracked_run("t-ended")->status, "FINISHED");
    const auto tags = store->run_data("t-silent", true).tags;
    ASSERT_EQ(tags.size(), 1U);
    EXPECT_EQ(tags[0].first, "btcml.abandoned");
    EXPECT_TRUE(store->abandon_stale_runs(4'000'000).empty()); // once
}

TEST_P(StoreTest, TheSweepNeverWaitsForAnotherWriter) {
    auto store = open();
    IngestRun run;
    run.source = "x.csv";
    run.started_at = 1000;
    run.id = store->create_ingest_run(run);
    // A live SQLite ingest holds the write lock for its whole run: the sweep must neither wait for it nor fail.
    const auto writer = store->open_another();
    writer->begin();
    writer->insert_bars({"X", 60}, std::vector<Bar>{{60, 1, 1, 1, 1, 1}}, "x.csv");
    const auto started = std::chrono::steady_clock::now();
    const auto ended = store->abandon_stale_runs(std::numeric_limits<std::int64_t>::max());
    const bool beaten = store->heartbeat(RunKind::ingest, std::to_string(run.id), 5'000'000);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
    EXPECT_TRUE(ended.empty());
    writer->rollback();
    EXPECT_EQ(beaten, GetParam() == Backend::postgresql); // SQLite: skipped while the writer held the lock
    if (GetParam() == Backend::sqlite) {
        EXPECT_EQ(store->ingest_run(run.id)->status, "running"); // the sweep too
        store->abandon_stale_runs(std::numeric_limits<std::int64_t>::max());
    }
    EXPECT_EQ(store->ingest_run(run.id)->status, "failed");
}

TEST_P(StoreTest, RegistryChangesOfTwoConnectionsDoNotInterleave) {
    auto first = open();
    auto second = open();
    first->save_model_version({1, "btcml-X-1h", "r1", 10, "{}", ""});
    first->begin_registry_change();
    const auto before = first->aliases("btcml-X-1h");
    std::atomic<bool> second_done{false};
    std::thread other([&] {
        second->begin_registry_change(); // waits for the first change to end
        second->set_alias({"btcml-X-1h", "champion", 1, std::nullopt, 2, "second"});
        second->commit();
        second_done = true;
    });
    // The second change cannot start while the first one is open, however long that is.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(second_done);
    first->set_alias({"btcml-X-1h", "challenger", 1, std::nullopt, 1, "first"});
    first->commit();
    other.join();
    EXPECT_TRUE(before.empty());
    EXPECT_EQ(first->alias_history("btcml-X-1h", "champion").size(), 1U);
    EXPECT_EQ(first->aliases("btcml-X-1h"), (std::map<std::string, int>{{"challenger", 1}, {"champion", 1}}));
}

TEST_P(StoreTest, CalibrationStateIsUpsertedPerVersionAndHorizon) {
    auto store = open();
    EXPECT_TRUE(store->calibration_states(4).empty());
    const std::vector<CalibrationStateRow> first{{4, 24, 0.1, -0.2, 3, 7200, 1}, {4, 1, 1.0 / 3, 0, 1, 3600, 1},
                                                 {5, 1, 0.5, 0.5, 9, 9000, 1}};
    store->save_calibration_states(first);
    const std::vector<CalibrationStateRow> second{{4, 1, -0.125, 0.25, 2, 7200, 2}};
    store->save_calibration_states(second);
    const auto rows = store->calibration_states(4);
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[0].horizon, 1); // by horizon, the second save replacing the first
    EXPECT_EQ(rows[0].log_scale_low, -0.125);
    EXPECT_EQ(rows[0].log_scale_high, 0.25);
    EXPECT_EQ(rows[0].updates, 2);
    EXPECT_EQ(rows[0].last_target_time, 7200);
    EXPECT_EQ(rows[0].updated_ms, 2);
    EXPECT_EQ(rows[1].horizon, 24);
    EXPECT_EQ(rows[1].log_scale_low, 0.1); // bit for bit
    EXPECT_EQ(store->calibration_states(5).size(), 1U);
}

TEST_P(StoreTest, ScoresLiveMetricsAndDriftRoundTrip) {
    auto store = open();
    store->insert_bars(kKey, make_bars(0, 3), "test"); // closes 100, 100.25, 100.5 at 0, 3600, 7200
    auto prediction = [](std::int64_t target, const char* provenance) {
        Prediction p;
        p.model_version = 2;
        p.symbol = kKey.symbol;
        p.interval = kKey.interval;
        p.origin_time = target - 3600;
        p.horizon = 1;
        p.target_time = target;
        p.price = 101;
        p.lower = 99;
        p.upper = 103;
        p.input_hash = provenance;
        p.provenance = provenance;
        return p;
    };
    const std::vector<Prediction> predictions{prediction(3600, "scheduled"), prediction(7200, "client"),
                                              prediction(10800, "scheduled")}; // the last target is not stored
    ASSERT_EQ(store->insert_predictions(predictions), 3);

    const auto matured = store->unscored_predictions(kKey, 100);
    ASSERT_EQ(matured.size(), 2U);
    EXPECT_EQ(matured[0].prediction.target_time, 3600);
    EXPECT_EQ(*matured[0].prediction.realised, 100.25);
    EXPECT_EQ(matured[1].prediction.provenance, "client");
    EXPECT_TRUE(store->unscored_predictions({"ETHUSD", 3600}, 100).empty());

    std::vector<PredictionScore> scores;
    for (const auto& m : matured) {
        PredictionScore s;
        s.prediction_id = m.id;
        s.series = kKey;
        s.model_version = 2;
        s.horizon = 1;
        s.provenance = m.prediction.provenance;
        s.target_time = m.prediction.target_time;
        s.realised_log_return = 0.25;
        s.error = -0.5;
        s.pinball = 0.125;
        s.inside = true;
        s.scored_ms = 5;
        scores.push_back(s);
    }
    scores[0].baseline_pinball = 0.0625;
    scores[0].direction_hit = false;
    EXPECT_EQ(store->insert_prediction_scores(scores), 2);
    EXPECT_EQ(store->insert_prediction_scores(scores), 0); // scored once, whoever comes second
    EXPECT_TRUE(store->unscored_predictions(kKey, 100).empty());
    const auto scheduled = store->prediction_scores(kKey, "scheduled", 0);
    ASSERT_EQ(scheduled.size(), 1U);
    EXPECT_EQ(scheduled[0].prediction_id, matured[0].id);
    EXPECT_EQ(scheduled[0].baseline_pinball, 0.0625);
    EXPECT_EQ(scheduled[0].direction_hit, false);
    EXPECT_TRUE(scheduled[0].inside);
    EXPECT_EQ(scheduled[0].error, -0.5);
    const auto all = store->prediction_scores(kKey, "", 0);
    ASSERT_EQ(all.size(), 2U);
    EXPECT_FALSE(all[1].baseline_pinball);
    EXPECT_FALSE(all[1].direction_hit);
    EXPECT_TRUE(store->prediction_scores(kKey, "", 3601).size() == 1);

    LiveMetric m;
    m.series = kKey;
    m.model_version = 2;
    m.horizon = 1;
    m.window_s = 86400;
    m.scored = 1;
    m.mae = 0.5;
    m.naive_mae = 0.25;
    m.pinball = 0.125;
    m.coverage_80 = 1;
    for (const std::int64_t at : {1000, 2000}) {
        m.computed_ms = at;
        m.direction_accuracy = at == 2000 ? std::optional<double>{0.75} : std::nullopt;
        const std::vector<LiveMetric> rows{m};
        store->insert_live_metrics(rows);
    }
    const auto latest = store->latest_live_metrics({});
    ASSERT_EQ(latest.size(), 1U);
    EXPECT_EQ(latest[0].computed_ms, 2000);
    EXPECT_EQ(latest[0].direction_accuracy, 0.75);
    EXPECT_FALSE(latest[0].baseline_pinball);
    EXPECT_EQ(latest[0].series, kKey);
    EXPECT_TRUE(store->latest_live_metrics({"ETHUSD", 3600}).empty());
    // Each series has its own newest pass; a key selects one series.
    for (const auto& [symbol, at] : std::vector<std::pair<std::string, std::int64_t>>{{"ETHUSD", 1500}, {"ADAUSD", 500}}) {
        m.series = {symbol, 3600};
        m.computed_ms = at;
        const std::vector<LiveMetric> rows{m};
        store->insert_live_metrics(rows);
    }
    const auto all_series = store->latest_live_metrics({});
    ASSERT_EQ(all_series.size(), 3U);
    EXPECT_EQ(all_series[0].series.symbol, "ADAUSD");
    EXPECT_EQ(all_series[0].computed_ms, 500);
    EXPECT_EQ(all_series[1].series, kKey);
    EXPECT_EQ(all_series[1].computed_ms, 2000);
    EXPECT_EQ(all_series[2].computed_ms, 1500);
    ASSERT_EQ(store->latest_live_metrics({"ETHUSD", 3600}).size(), 1U);
    EXPECT_TRUE(store->latest_live_metrics({"ETHUSD", 60}).empty());
    const auto history = store->live_metrics_history(kKey, 10);
    ASSERT_EQ(history.size(), 2U);
    EXPECT_EQ(history[1].computed_ms, 1000);
    EXPECT_FALSE(history[1].direction_accuracy);

    const std::vector<FeatureDrift> old_drift{{1000, kKey, 2, "log_return", 0.5, 400}};
    const std::vector<FeatureDrift> new_drift{{2000, kKey, 2, "log_return", 0.05, 500},
                                              {2000, kKey, 2, "volume", 0.3, 500}};
    store->insert_feature_drift(old_drift);
    store->insert_feature_drift(new_drift);
    const auto drift = store->latest_feature_drift(kKey);
    ASSERT_EQ(drift.size(), 2U);
    EXPECT_EQ(drift[0].feature, "log_return");
    EXPECT_EQ(drift[0].psi, 0.05);
    EXPECT_EQ(drift[1].bars, 500);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(Backend::sqlite, Backend::postgresql),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                             return info.param == Backend::sqlite ? "sqlite" : "postgresql";
                         });

// URL handling needs no database.
TEST_P(StoreTest, ABrokenConnectionIsNotHealthy) {
    if (GetParam() == Backend::postgresql) {
        // A name of its own, so that only this connection is terminated.
        const auto url = url_ + "&application_name=" + schema_;
        auto store = open_store(url, dir_);
        EXPECT_TRUE(store->healthy());
        exec_raw_url(base_url_, fmt::format("DO $$ BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity "
                                            "WHERE application_name = '{}'; END $$",
                                            schema_));
        // The server closes the connection asynchronously: the check needs no query to notice.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (store->healthy() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        EXPECT_FALSE(store->healthy());
        EXPECT_THROW(store->schema_version(), Unavailable);
        EXPECT_TRUE(open_store(url, dir_)->healthy());
        return;
    }
    auto store = open();
    EXPECT_TRUE(store->healthy());
    store->insert_bars(kKey, make_bars(0, 3), "test");
    // The file removed (a restored backup would replace it): the open connection would read the old one for ever.
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(dir_ / (std::string("test.db") + suffix));
    EXPECT_FALSE(store->healthy());
    auto fresh = open();
    EXPECT_TRUE(fresh->healthy());
    EXPECT_TRUE(fresh->list_series().empty());
    EXPECT_FALSE(store->healthy()) << "a new file at the same path is another database";
}

TEST(StoreUrl, RedactsPasswords) {
    EXPECT_EQ(redact_url("postgresql://btc:s3cr:et@db.example:5432/btcml"),
              "postgresql://btc:***@db.example:5432/btcml");
    EXPECT_EQ(redact_url("postgres://btc@db/btcml"), "postgres://btc@db/btcml");
    EXPECT_EQ(redact_url("postgresql://db/btcml?sslmode=require&password=hunter2&x=1"),
              "postgresql://db/btcml?sslmode=require&password=***&x=1");
    EXPECT_EQ(redact_url("sqlite:/var/lib/btcml.db"), "sqlite:/var/lib/btcml.db");
    EXPECT_EQ(redact_url("/var/lib/btcml.db"), "sqlite:/var/lib/btcml.db");
}

TEST(StoreUrl, OpensTheDefaultAndRefusesUnknownSchemes) {
    const auto home = std::filesystem::temp_directory_path() / fmt::format("btcml_store_home_{}", getpid()) / "nested";
    {
        auto store = open_store("", home);
        EXPECT_EQ(store->backend(), "sqlite");
        EXPECT_TRUE(std::filesystem::exists(home / "btcml.db"));
        EXPECT_EQ(open_store((home / "btcml.db").string(), home)->schema_version(), store->schema_version());
        EXPECT_EQ(open_store("sqlite://" + (home / "btcml.db").string(), home)->schema_version(),
                  store->schema_version());
    }
    std::filesystem::remove_all(home.parent_path());
    EXPECT_THROW(open_store("mysql://root@localhost/btcml", home), UsageError);
    EXPECT_THROW(open_store("sqlite:", home), UsageError);
    EXPECT_THROW(open_store("sqlite:/nonexistent-dir/x/btcml.db", home), Unavailable);
}

TEST(StoreUrl, UnreachablePostgresIsUnavailableWithTheUrlRedacted) {
    try {
        open_store("postgresql://btc:hunter2@127.0.0.1:1/btcml?connect_timeout=5", {});
        FAIL() << "connected to port 1";
    } catch (const Unavailable& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
        EXPECT_NE(message.find("postgresql://btc:***@127.0.0.1:1/btcml"), std::string::npos) << message;
    }
}

TEST(StoreText, SanitizesOnlyWhatPostgresqlRefuses) {
    EXPECT_TRUE(is_clean_text("plain \t\n\\ \xE2\x82\xAC \xF4\x8F\xBF\xBF"));
    EXPECT_FALSE(is_clean_text(std::string("a\0b", 3)));
    EXPECT_FALSE(is_clean_text("\xF4\x90\x80\x80")); // above U+10FFFF
    EXPECT_EQ(sanitize_text("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
    EXPECT_EQ(sanitize_text("\xE2\x82"
                            "A\xC3"),
              "\\xE2\\x82A\\xC3");
}

TEST_P(StoreTest, OnePipelineRunIsActiveAtATimeAcrossConnections) {
    auto a = open();
    auto b = open();
    PipelineRun run;
    run.pipeline = "retrain-BTCUSD-1h";
    run.trigger = "alert";
    run.reason = "first";
    run.queued_ms = 1000;
    run.clock_ms = 1000;
    const auto [first, created] = a->enqueue_pipeline_run(run);
    EXPECT_TRUE(created);
    EXPECT_EQ(first.status, "queued");
    run.reason = "second";
    const auto [joined, created_again] = b->enqueue_pipeline_run(run);
    EXPECT_FALSE(created_again);
    EXPECT_EQ(joined.id, first.id);
    EXPECT_EQ(joined.reason, "first");
    // Another pipeline is independent.
    PipelineRun other = run;
    other.pipeline = "retrain-ETHUSD-1h";
    EXPECT_TRUE(b->enqueue_pipeline_run(other).second);

    auto claimed = b->claim_pipeline_run("retrain-BTCUSD-1h", "host:1", 2000);
    ASSERT_TRUE(claimed);
    EXPECT_EQ(claimed->status, "running");
    EXPECT_EQ(claimed->owner, "host:1");
    EXPECT_FALSE(a->claim_pipeline_run("retrain-BTCUSD-1h", "host:2", 2001)); // nothing queued any more
    EXPECT_FALSE(a->enqueue_pipeline_run(run).second);                        // running counts as active

    a->save_pipeline_task({claimed->id, "train", 1, "failed", "boom", 2100, 2200, "{}"});
    a->save_pipeline_task({claimed->id, "train", 2, "running", "", 2300, 0, "{}"});
    a->save_pipeline_task({claimed->id, "train", 2, "succeeded", "", 2300, 2400, R"({"version":3})"});
    const auto tasks = b->pipeline_tasks(claimed->id);
    ASSERT_EQ(tasks.size(), 2U);
    EXPECT_EQ(tasks[0].status, "failed");
    EXPECT_EQ(tasks[1].finished_ms, 2400);
    EXPECT_EQ(tasks[1].detail_json, R"({"version":3})");

    claimed->status = "succeeded";
    claimed->finished_ms = 2500;
    auto stranger = *claimed;
    stranger.owner = "host:2";
    EXPECT_FALSE(a->finish_pipeline_run(stranger)); // not its run: nothing written
    EXPECT_TRUE(a->finish_pipeline_run(*claimed));
    auto late = *claimed;
    late.status = "failed";
    EXPECT_FALSE(b->finish_pipeline_run(late)); // ended already: the first end stands
    const auto [next, created_next] = b->enqueue_pipeline_run(run);
    EXPECT_TRUE(created_next);
    EXPECT_NE(next.id, first.id);
    const auto history = a->pipeline_runs("retrain-BTCUSD-1h", 10);
    ASSERT_EQ(history.size(), 2U);
    EXPECT_EQ(history[0].id, next.id); // newest first
    EXPECT_EQ(history[1].status, "succeeded");
    EXPECT_EQ(history[1].started_ms, 2000);
    EXPECT_EQ(a->pipeline_runs("", 10).size(), 3U);
    EXPECT_EQ(a->pipeline_run(first.id)->finished_ms, 2500);
}

TEST_P(StoreTest, LeaseIsHeldByOneOwnerUntilItExpires) {
    auto a = open();
    auto b = open();
    EXPECT_TRUE(a->acquire_lease("scheduler", "one", 1000, 5000));
    EXPECT_FALSE(b->acquire_lease("scheduler", "two", 2000, 6000));
    EXPECT_TRUE(a->acquire_lease("scheduler", "one", 3000, 7000)); // renewal
    EXPECT_FALSE(b->acquire_lease("scheduler", "two", 6999, 9000));
    EXPECT_TRUE(b->acquire_lease("scheduler", "two", 7001, 9000)); // expired: taken over
    a->release_lease("scheduler", "one");                          // not its lease any more: no effect
    EXPECT_FALSE(a->acquire_lease("scheduler", "one", 8000, 9000));
    b->release_lease("scheduler", "two");
    EXPECT_TRUE(a->acquire_lease("scheduler", "one", 8000, 9000));
}

TEST_P(StoreTest, AlertsAreRecordedOnce) {
    auto store = open();
    AlertNotification alert{
        "{}:{alertname=\"x\"}", "abc", "2026-01-01T00:00:00Z", "firing", "x", "{}", 1000, "", std::nullopt};
    EXPECT_TRUE(store->record_alert(alert));
    EXPECT_FALSE(store->record_alert(alert));
    alert.status = "resolved";
    EXPECT_TRUE(store->record_alert(alert));
    alert.outcome = "recorded";
    alert.run_id = 7;
    store->set_alert_outcome(alert);
    const auto all = store->alerts(10);
    ASSERT_EQ(all.size(), 2U);
    const auto& resolved = all[0].status == "resolved" ? all[0] : all[1];
    EXPECT_EQ(resolved.outcome, "recorded");
    EXPECT_EQ(resolved.run_id, 7);
}

} // namespace
} // namespace btcml::store
