#pragma once
// The PostgreSQL backend (libpq): bulk writes go through COPY, the rest through the shared SQL of SqlStore.
#include "store/sql_store.hpp"

#include <string>
#include <string_view>

struct pg_conn;

namespace btcml::store {

class PostgresStore final : public SqlStore {
  public:
    /// Connects to `url` (postgresql://…) and migrates the database. Throws Unavailable, naming the URL redacted.
    explicit PostgresStore(const std::string& url);
    ~PostgresStore() override;
    PostgresStore(const PostgresStore&) = delete;
    PostgresStore& operator=(const PostgresStore&) = delete;

    [[nodiscard]] std::string backend() const override { return "postgresql"; }
    [[nodiscard]] bool healthy() override;
    InsertResult insert_bars(const SeriesKey& key, std::span<const Bar> bars, const std::string& source) override;
    void insert_rejected(std::int64_t run_id, std::span<const RejectedRow> rows) override;

  protected:
    void exec(const std::string& sql) override;
    std::int64_t query(const std::string& sql, std::span<const SqlParam> params, const RowCallback& on_row) override;
    [[nodiscard]] std::string begin_sql() const override { return "BEGIN"; }
    void begin_exclusive() override;
    [[nodiscard]] bool has_table(const std::string& name) override;
    void lock_registry() override;
    [[nodiscard]] bool try_begin_sql() override;

  private:
    class CopyIn;

    /// COPYs the bars, as rows of the `bars` table, into `table`.
    void copy_bars(std::string_view table, const SeriesKey& key, std::span<const Bar> bars, std::string_view source);
    /// True when no stored bar of the series lies between the first and last of these bars, sorted by time.
    bool is_new_range(const SeriesKey& key, std::span<const Bar> sorted);

    std::string url_; // redacted: for messages only
    pg_conn* conn_ = nullptr;
};

} // namespace btcml::store
