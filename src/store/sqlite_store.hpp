#pragma once
// The SQLite backend: one file in WAL mode, shared with other processes (busy timeout), statements cached.
#include "store/sql_store.hpp"

#include <memory>
#include <optional>
#include <sys/types.h>
#include <utility>
#include <string>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace btcml::store {

class SqliteStore final : public SqlStore {
  public:
    /// Opens (creating it if needed) the database file at `path` and migrates it. Throws Unavailable.
    explicit SqliteStore(const std::string& path);
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    [[nodiscard]] std::string backend() const override { return "sqlite"; }
    [[nodiscard]] bool healthy() override;
    InsertResult insert_bars(const SeriesKey& key, std::span<const Bar> bars, const std::string& source) override;
    void insert_rejected(std::int64_t run_id, std::span<const RejectedRow> rows) override;

  protected:
    void exec(const std::string& sql) override;
    std::int64_t query(const std::string& sql, std::span<const SqlParam> params, const RowCallback& on_row) override;
    [[nodiscard]] std::string begin_sql() const override { return "BEGIN IMMEDIATE"; }
    void begin_exclusive() override;
    [[nodiscard]] bool has_table(const std::string& name) override;
    void lock_registry() override {} // BEGIN IMMEDIATE already holds the database's only write lock
    [[nodiscard]] bool try_begin_sql() override;

  private:
    struct StatementDeleter {
        void operator()(sqlite3_stmt* statement) const noexcept;
    };
    using StatementPtr = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

    /// The prepared statement for `sql` (shared $N syntax), prepared once per connection.
    sqlite3_stmt* statement(const std::string& sql);
    /// Runs a statement that returns no rows; returns the rows it changed.
    std::int64_t step_done(sqlite3_stmt* statement);
    [[noreturn]] void fail(int rc, std::string_view what) const;
    void set_journal_mode_wal();

    std::string path_;
    std::optional<std::pair<dev_t, ino_t>> file_; // the file opened (none for :memory: and the like)
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, StatementPtr> statements_;
};

} // namespace btcml::store
