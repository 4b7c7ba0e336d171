#pragma once
// What the SQLite and PostgreSQL stores share: every query whose SQL is the same in both dialects, the migration
// procedure and the transaction bookkeeping. A backend supplies the connection primitives and its bulk paths.
// Shared SQL writes parameters as $1, $2, …; the SQLite backend reads them as ?1, ?2, ….
#include "store/store.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace btcml::store {

/// A query parameter. Text is sanitized (see sanitize_text) by the backend before it is bound.
using SqlParam = std::variant<std::nullptr_t, std::int64_t, double, std::string_view>;

/// One result row, valid only inside the callback that receives it.
class SqlRow {
  public:
    [[nodiscard]] virtual bool is_null(int column) const = 0;
    [[nodiscard]] virtual std::int64_t get_int(int column) const = 0;
    [[nodiscard]] virtual double get_double(int column) const = 0;
    [[nodiscard]] virtual bool get_bool(int column) const = 0;
    [[nodiscard]] virtual std::string get_text(int column) const = 0;

  protected:
    ~SqlRow() = default;
};

using RowCallback = std::function<void(const SqlRow&)>;

/// True when `text` is well-formed UTF-8 (RFC 3629, as PostgreSQL checks it) without NUL bytes.
bool is_clean_text(std::string_view text) noexcept;
/// `text` with every byte that is NUL or not part of a well-formed UTF-8 sequence written as `\xNN`.
/// Deterministic and a no-op on clean text; not reversible (a literal `\x41` in clean text stays as it is).
std::string sanitize_text(std::string_view text);

class SqlStore : public Store {
  public:
    int schema_version() override;
    std::vector<AppliedMigration> applied_migrations() override;

    void begin() override;
    void commit() override;
    void rollback() override;

    std::int64_t create_ingest_run(const IngestRun& run) override;
    void finish_ingest_run(const IngestRun& run) override;
    std::optional<IngestRun> ingest_run(std::int64_t id) override;

    std::vector<RejectedRow> rejected_rows(std::int64_t run_id) override;
    std::vector<Bar> load_bars(const BarQuery& query) override;
    std::vector<std::string> load_bar_sources(const BarQuery& query) override;
    std::optional<std::int64_t> last_bar_time(const SeriesKey& key) override;
    std::vector<SeriesInfo> list_series() override;
    std::vector<IngestRun> list_ingest_runs(std::int64_t limit) override;
    std::int64_t insert_predictions(std::span<const Prediction> predictions) override;
    std::vector<Prediction> load_predictions(const PredictionQuery& query) override;
    std::int64_t count_predictions() override;

    std::vector<MaturedPrediction> unscored_predictions(const SeriesKey& key, std::int64_t limit) override;
    std::int64_t insert_prediction_scores(std::span<const PredictionScore> scores) override;
    std::vector<PredictionScore> prediction_scores(const SeriesKey& key, const std::string& provenance,
                                                   std::int64_t from_target_time) override;
    void insert_live_metrics(std::span<const LiveMetric> metrics) override;
    std::vector<LiveMetric> latest_live_metrics(const SeriesKey& key) override;
    std::vector<LiveMetric> live_metrics_history(const SeriesKey& key, std::int64_t limit) override;
    std::vector<CalibrationStateRow> calibration_states(int model_version) override;
    void save_calibration_states(std::span<const CalibrationStateRow> rows) override;
    void insert_feature_drift(std::span<const FeatureDrift> drift) override;
    std::vector<FeatureDrift> latest_feature_drift(const SeriesKey& key) override;

    std::pair<PipelineRun, bool> enqueue_pipeline_run(const PipelineRun& run) override;
    std::optional<PipelineRun> claim_pipeline_run(const std::string& pipeline, const std::string& owner,
                                                  std::int64_t now_ms) override;
    bool finish_pipeline_run(const PipelineRun& run) override;
    std::optional<PipelineRun> pipeline_run(std::int64_t id) override;
    std::vector<PipelineRun> pipeline_runs(const std::string& pipeline, std::int64_t limit) override;
    void save_pipeline_task(const PipelineTask& task) override;
    std::vector<PipelineTask> pipeline_tasks(std::int64_t run_id) override;
    bool acquire_lease(const std::string& name, const std::string& owner, std::int64_t now_ms,
                       std::int64_t expires_ms) override;
    void release_lease(const std::string& name, const std::string& owner) override;
    bool record_alert(const AlertNotification& alert) override;
    void set_alert_outcome(const AlertNotification& alert) override;
    std::vector<AlertNotification> alerts(std::int64_t limit) override;

    void save_run(const TrackedRun& run) override;
    std::optional<TrackedRun> tracked_run(const std::string& id) override;
    std::vector<TrackedRun> tracked_runs(bool unsynced_only) override;
    void log_run_data(const std::string& run_id, const RunData& data) override;
    RunData run_data(const std::string& run_id, bool unsynced_only) override;
    void mark_synced(const std::string& run_id, RunDataKind kind, const std::vector<std::string>& keys) override;

    void save_model_version(const ModelVersionRecord& record) override;
    std::optional<ModelVersionRecord> model_version(int version) override;
    std::vector<ModelVersionRecord> model_versions(const std::string& model_name) override;
    std::vector<std::string> registered_models() override;
    std::map<std::string, int> aliases(const std::string& model_name) override;
    void set_alias(const AliasChange& change) override;
    std::vector<AliasChange> alias_history(const std::string& model_name, const std::string& alias) override;
    void begin_registry_change() override;

    bool heartbeat(RunKind kind, const std::string& id, std::int64_t now_ms) override;
    std::vector<std::string> abandon_stale_runs(std::int64_t stale_before_ms) override;

  protected:
    /// Runs statements without parameters (several, separated by `;`, are allowed).
    virtual void exec(const std::string& sql) = 0;
    /// Runs one statement, calling `on_row` for each result row; returns the number of rows it changed.
    virtual std::int64_t query(const std::string& sql, std::span<const SqlParam> params, const RowCallback& on_row) = 0;
    /// The statement that opens a data transaction.
    [[nodiscard]] virtual std::string begin_sql() const = 0;
    /// Opens a transaction that no other connection can hold at the same time, for migrating.
    virtual void begin_exclusive() = 0;
    [[nodiscard]] virtual bool has_table(const std::string& name) = 0;
    /// Inside a data transaction: takes the registry's lock until the transaction ends.
    virtual void lock_registry() = 0;
    /// Opens a data transaction unless that would mean waiting for another connection's lock; false then.
    [[nodiscard]] virtual bool try_begin_sql() = 0;

    /// Applies pending migrations; the derived constructor calls it once connected.
    void migrate();

    [[nodiscard]] bool in_transaction() const noexcept { return in_transaction_; }

    /// Makes a bulk write atomic and fast when the caller has no transaction of its own.
    class ScopedTransaction {
      public:
        explicit ScopedTransaction(SqlStore& store);
        ~ScopedTransaction();
        ScopedTransaction(const ScopedTransaction&) = delete;
        ScopedTransaction& operator=(const ScopedTransaction&) = delete;
        void commit();

      private:
        SqlStore& store_;
        bool owned_;
    };

  private:
    void require_no_transaction(const char* what) const;
    /// Runs `body` in a transaction and commits, unless opening it would wait for another connection's lock:
    /// then returns false without running it.
    bool try_write(const std::function<void()>& body);
    std::int64_t query_version();
    /// The series of a monitoring history table (live_metrics, feature_drift) matching `key` (an empty symbol or a
    /// zero interval matches any), with the time of each one's newest pass.
    std::vector<std::pair<SeriesKey, std::int64_t>> latest_passes(const char* table, const SeriesKey& key);

    bool in_transaction_ = false;
};

} // namespace btcml::store
