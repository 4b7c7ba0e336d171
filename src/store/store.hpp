#pragma once
// The store: one interface over SQLite (default) and PostgreSQL. Owns the schema and its migrations.
#include "core/bar.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace btcml::store {

/// A row that ingestion refused, kept with its reason so that nothing is silently lost.
struct RejectedRow {
    std::int64_t line_number = 0;
    std::string raw;
    std::string reason;
};

/// What an ingest run did; written when the run starts and again when it ends.
/// What an ingest counted; shared by the stored run and the summary printed to the user.
struct IngestCounts {
    std::int64_t rows_read = 0;
    std::int64_t rows_inserted = 0;
    std::int64_t rows_duplicate = 0;
    std::int64_t rows_rejected = 0;
    std::optional<std::int64_t> first_time;
    std::optional<std::int64_t> last_time;
    std::int64_t missing_bars = 0;
};

struct IngestRun : IngestCounts {
    std::int64_t id = 0;
    std::string source; // e.g. a file path, `binance:BTCUSDT`, `synthetic:42`
    std::string format; // detected or forced layout
    std::string symbol;
    std::int64_t interval = 0;
    std::string status = "running"; // running | succeeded | failed
    std::string error;
    std::int64_t started_at = 0;
    std::int64_t finished_at = 0;
    std::string summary_json; // the full JSON summary printed to the user
};

/// Counts from one insert_bars call.
struct InsertResult {
    std::int64_t inserted = 0;
    std::int64_t duplicate = 0; // already stored (same symbol, interval and time): left as they were
};

/// One stored series with its extent.
struct SeriesInfo {
    SeriesKey key;
    std::int64_t bars = 0;
    std::int64_t first_time = 0;
    std::int64_t last_time = 0;
    std::string sources; // distinct sources, comma-separated
};

/// One row of schema_migrations.
struct AppliedMigration {
    int version = 0;
    std::string name;
    std::int64_t applied_at = 0; // unix seconds
};

struct BarQuery {
    SeriesKey key;
    std::optional<std::int64_t> from;  // inclusive
    std::optional<std::int64_t> to;    // inclusive
    std::optional<std::int64_t> limit; // the first `limit` bars of the range
};

/// A tracked training run as btcml records it. The store is the run's source of truth; an MLflow server, when one
/// is configured, holds a replica that `btcml tracking sync` brings up to date (see src/tracking/README.md).
struct TrackedRun {
    std::string id;                 // btcml's run id (32 hex digits)
    std::string experiment;         // experiment name, e.g. btcml-BTCUSD-1h
    std::string name;               // run name shown in MLflow
    std::string status = "RUNNING"; // RUNNING | FINISHED | FAILED | KILLED
    std::int64_t start_ms = 0;
    std::optional<std::int64_t> end_ms;
    std::string tracking_uri; // the MLflow server it belongs on; empty: local only
    std::string remote_id;    // MLflow's run id once created there
    std::string remote_experiment_id;
    std::string artifact_uri;  // the MLflow run's artifact_uri
    std::string remote_status; // the status last sent to MLflow
};

struct RunMetric {
    std::string key;
    double value = 0;
    std::int64_t timestamp_ms = 0;
    std::int64_t step = 0;
    std::int64_t seq = 0; // order of logging within the run, assigned by the store
};

/// Key/value pairs (parameters or tags).
using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct RunArtifact {
    std::string path;       // inside the run's artifacts, e.g. model/MLmodel
    std::string local_path; // the file under BTCML_HOME
};

/// What a run logged, or the part of it not yet sent to MLflow.
struct RunData {
    KeyValues params;
    KeyValues tags;
    std::vector<RunMetric> metrics;
    std::vector<RunArtifact> artifacts;
};

/// One kind of run data; `mark_synced` takes which rows reached MLflow.
enum class RunDataKind { param, tag, metric, artifact };

/// A version of a registered model (one per trained model). btcml's version numbers are global (the folder under
/// models/); MLflow numbers versions per registered model, kept in remote_version.
struct ModelVersionRecord {
    int version = 0;
    std::string model_name; // btcml-<symbol>-<interval>
    std::string run_id;
    std::int64_t created_ms = 0;
    std::string gate_json = "{}"; // the promotion gate's decision and numbers
    std::string remote_version;   // MLflow's version number, once registered there
};

/// One change of an alias: `version` null when the alias was removed.
struct AliasChange {
    std::string model_name, alias;
    std::optional<int> version, previous;
    std::int64_t changed_ms = 0;
    std::string reason;
};

/// One stored forecast of one horizon, as the server made it; `realised` is the close of the target bar once it is
/// stored (filled by load_predictions only).
struct Prediction {
    int model_version = 0;
    std::string symbol;
    std::int64_t interval = 0;
    std::int64_t origin_time = 0; // open time of the last input bar
    int horizon = 0;
    std::int64_t target_time = 0;
    double price = 0, lower = 0, upper = 0, log_return = 0;
    std::string input_hash; // identifies the input window: identical requests store one row
    std::int64_t created_at = 0;
    std::string provenance = "client"; // scheduled (the champion's forecast, made by the scheduler) | client
    std::optional<double> realised;
};

struct PredictionQuery {
    std::optional<std::int64_t> from; // target time, inclusive
    std::optional<std::int64_t> to;   // target time, inclusive
    std::string symbol;               // empty: any
    std::int64_t interval = 0;        // 0: any
    std::int64_t limit = 1000;
};

/// A stored forecast whose target bar is stored (`prediction.realised` is set), with its row id.
struct MaturedPrediction {
    std::int64_t id = 0;
    Prediction prediction;
};

/// The live score of one stored forecast (src/monitor/scoring.hpp says how each field is computed).
struct PredictionScore {
    std::int64_t prediction_id = 0;
    SeriesKey series;
    int model_version = 0;
    int horizon = 0;
    std::string provenance;
    std::int64_t target_time = 0;
    double realised_log_return = 0, error = 0, pinball = 0;
    bool inside = false;                    // the realised close lies inside the 80 % interval
    std::optional<double> baseline_pinball; // the unconditional-quantile baseline's; absent without a model card
    std::optional<bool> direction_hit;      // absent when the forecast or the outcome has no direction
    std::int64_t scored_ms = 0;
};

/// Rolling live metrics of one series, model version and horizon over one window, as computed at `computed_ms`.
struct LiveMetric {
    std::int64_t computed_ms = 0;
    SeriesKey series;
    int model_version = 0;
    int horizon = 0;
    std::int64_t window_s = 0;
    std::int64_t scored = 0; // forecasts in the window
    double mae = 0, naive_mae = 0, pinball = 0, coverage_80 = 0;
    std::optional<double> baseline_pinball;   // absent unless every forecast in the window has one
    std::optional<double> direction_accuracy; // absent when no forecast in the window had a direction
};

/// The online interval calibration of one model version's horizon (src/model/calibration.hpp): the log scale
/// factors of the half-widths below and above the median, how many outcomes moved them and the newest one's target.
struct CalibrationStateRow {
    int model_version = 0;
    int horizon = 0;
    double log_scale_low = 0, log_scale_high = 0;
    std::int64_t updates = 0;
    std::int64_t last_target_time = 0;
    std::int64_t updated_ms = 0;
};

/// The population stability index of one input feature of a series' champion over the latest bars.
struct FeatureDrift {
    std::int64_t computed_ms = 0;
    SeriesKey series;
    int model_version = 0;
    std::string feature;
    double psi = 0;
    std::int64_t bars = 0;
};

/// Which table a run lives in: ingest_runs or tracked_runs.
enum class RunKind { ingest, training };

/// One run of a pipeline (src/pipeline): queued by a trigger, then claimed and run by one scheduler.
struct PipelineRun {
    std::int64_t id = 0;
    std::string pipeline;          // e.g. retrain-BTCUSD-1h
    std::string trigger;           // schedule | alert | api | cli
    std::string reason;            // why it runs: the alert, the caller's reason, the tick it belongs to
    std::string status = "queued"; // queued | running | succeeded | failed | cancelled
    std::string error;
    std::string owner;            // the scheduler that claimed it (host:pid)
    std::int64_t queued_ms = 0;   // unix milliseconds (wall time)
    std::int64_t clock_ms = 0;    // the process clock when queued (market time in replay mode): what schedules read
    std::int64_t started_ms = 0;  // 0: not yet
    std::int64_t finished_ms = 0; // 0: not yet
    std::string result_json = "{}";
};

/// One attempt of one task of a pipeline run.
struct PipelineTask {
    std::int64_t run_id = 0;
    std::string task; // e.g. ingest, forecast, score, train, gate, reload
    int attempt = 1;
    std::string status = "running"; // running | succeeded | failed | skipped
    std::string error;
    std::int64_t started_ms = 0;
    std::int64_t finished_ms = 0; // 0: not yet
    std::string detail_json = "{}";
};

/// One alert of one Alertmanager notification, as received; (group_key, fingerprint, starts_at, status) is unique.
struct AlertNotification {
    std::string group_key;
    std::string fingerprint;
    std::string starts_at; // as Alertmanager sent it (RFC 3339)
    std::string status;    // firing | resolved
    std::string alertname;
    std::string labels_json = "{}";
    std::int64_t received_ms = 0;
    std::string outcome;                // what btcml did about it
    std::optional<std::int64_t> run_id; // the pipeline run it started or joined
};

/// Thread-safety: a Store is one connection and is NOT thread-safe; open one per thread.
class Store {
  public:
    virtual ~Store() = default;

    /// Another connection to the same database (open_store with the same URL and home), e.g. for a thread.
    [[nodiscard]] std::unique_ptr<Store> open_another() const;

    /// `sqlite` or `postgresql`.
    [[nodiscard]] virtual std::string backend() const = 0;
    /// False when this connection can no longer serve and must be replaced: the PostgreSQL server closed it (a
    /// restart, a terminated backend), or the SQLite file it opened was removed or replaced. Cheap: no round trip.
    [[nodiscard]] virtual bool healthy() = 0;
    /// The highest migration applied.
    virtual int schema_version() = 0;
    /// The migrations recorded in schema_migrations, by version.
    virtual std::vector<AppliedMigration> applied_migrations() = 0;

    /// Transactions. Ingest writes all its bars and rejected rows inside one, so a failed run leaves no trace
    /// but its ingest_runs row (which is written outside it).
    virtual void begin() = 0;
    virtual void commit() = 0;
    virtual void rollback() = 0;

    /// Creates a run (status running) and returns its id. Must be called outside a transaction.
    virtual std::int64_t create_ingest_run(const IngestRun& run) = 0;
    /// Writes the final state of a run. Must be called outside a transaction.
    virtual void finish_ingest_run(const IngestRun& run) = 0;
    virtual std::optional<IngestRun> ingest_run(std::int64_t id) = 0;

    /// Inserts bars that are not yet stored; bars whose (symbol, interval, time) exists are left untouched.
    virtual InsertResult insert_bars(const SeriesKey& key, std::span<const Bar> bars, const std::string& source) = 0;
    /// Text that is not valid UTF-8, or holds NUL bytes, is stored with each offending byte written as `\xNN`
    /// (PostgreSQL TEXT cannot hold it; SQLite does the same so that both backends return the same rows).
    virtual void insert_rejected(std::int64_t run_id, std::span<const RejectedRow> rows) = 0;
    virtual std::vector<RejectedRow> rejected_rows(std::int64_t run_id) = 0;

    /// Bars in ascending time order.
    virtual std::vector<Bar> load_bars(const BarQuery& query) = 0;
    /// The source recorded for each bar of the query, in the same order as load_bars.
    virtual std::vector<std::string> load_bar_sources(const BarQuery& query) = 0;
    virtual std::optional<std::int64_t> last_bar_time(const SeriesKey& key) = 0;
    virtual std::vector<SeriesInfo> list_series() = 0;

    // Experiment tracking. Writes outside a transaction are atomic on their own.
    /// Inserts or replaces the run row.
    virtual void save_run(const TrackedRun& run) = 0;
    virtual std::optional<TrackedRun> tracked_run(const std::string& id) = 0;
    /// Runs, newest first; `unsynced_only`: those with a tracking URI and something not yet sent.
    virtual std::vector<TrackedRun> tracked_runs(bool unsynced_only) = 0;
    /// Appends data to a run (parameters and tags replace same-key values; metrics get the next seq numbers).
    virtual void log_run_data(const std::string& run_id, const RunData& data) = 0;
    /// Everything a run logged, or only what is not yet marked synced.
    virtual RunData run_data(const std::string& run_id, bool unsynced_only) = 0;
    /// Marks rows as sent to MLflow: keys (params, tags), seq numbers as text (metrics) or paths (artifacts).
    virtual void mark_synced(const std::string& run_id, RunDataKind kind, const std::vector<std::string>& keys) = 0;

    // Model registry.
    /// Inserts or replaces a version (and creates its registered model).
    virtual void save_model_version(const ModelVersionRecord& record) = 0;
    virtual std::optional<ModelVersionRecord> model_version(int version) = 0;
    /// Versions of one registered model (all when empty), ascending.
    virtual std::vector<ModelVersionRecord> model_versions(const std::string& model_name) = 0;
    virtual std::vector<std::string> registered_models() = 0;
    /// alias -> version of a registered model.
    virtual std::map<std::string, int> aliases(const std::string& model_name) = 0;
    /// Sets (or with no version removes) an alias, recording the change in the alias history.
    virtual void set_alias(const AliasChange& change) = 0;
    /// Changes of one alias, newest first.
    virtual std::vector<AliasChange> alias_history(const std::string& model_name, const std::string& alias) = 0;
    /// Opens a transaction that holds the registry's lock until it ends, so that read-modify-writes of the aliases
    /// by concurrent promoters (other connections, other processes) run one after the other. Waits for the lock.
    virtual void begin_registry_change() = 0;

    // Liveness of running runs: a run's process beats (store::Heartbeat) and a run that stopped beating without
    // ending (kill -9, a power cut) is abandoned by the next sweep (store::sweep_abandoned_runs).
    /// Records that a running run is alive now; a no-op once it has ended. Returns false, recording nothing, when
    /// that would wait for another connection's lock (SQLite's write lock). Outside a transaction.
    virtual bool heartbeat(RunKind kind, const std::string& id, std::int64_t now_ms) = 0;
    /// Ends every run still running whose last beat (its start, before the first) is older than `stale_before_ms`:
    /// ingest runs become `failed`, training runs `KILLED` (tag `btcml.abandoned`), with "abandoned: no heartbeat
    /// since TIME". Returns the ids of the training runs it ended. Never waits for a lock held by another
    /// connection (a live SQLite ingest holds the write lock for its whole run, and is thereby alive): then it ends
    /// nothing. Outside a transaction.
    virtual std::vector<std::string> abandon_stale_runs(std::int64_t stale_before_ms) = 0;
    /// The newest ingest runs first, at most `limit`.
    virtual std::vector<IngestRun> list_ingest_runs(std::int64_t limit) = 0;

    /// Stores predictions, skipping any already stored (same model, series, origin, horizon and input); returns
    /// how many were new.
    virtual std::int64_t insert_predictions(std::span<const Prediction> predictions) = 0;
    /// Predictions by target time, each with the realised close where its target bar is stored.
    virtual std::vector<Prediction> load_predictions(const PredictionQuery& query) = 0;
    virtual std::int64_t count_predictions() = 0;

    // Live monitoring (src/monitor). Writes outside a transaction are atomic on their own.
    /// Forecasts of `key` whose target bar is stored and that have no score yet, oldest target first, at most
    /// `limit`.
    virtual std::vector<MaturedPrediction> unscored_predictions(const SeriesKey& key, std::int64_t limit) = 0;
    /// Stores scores, skipping forecasts already scored (by another process); returns how many were new.
    virtual std::int64_t insert_prediction_scores(std::span<const PredictionScore> scores) = 0;
    /// Scores of `key`'s forecasts with the given provenance (any when empty) whose target time is at or after
    /// `from_target_time`, by target time.
    virtual std::vector<PredictionScore> prediction_scores(const SeriesKey& key, const std::string& provenance,
                                                           std::int64_t from_target_time) = 0;
    /// Appends rows to the live metrics history.
    virtual void insert_live_metrics(std::span<const LiveMetric> metrics) = 0;
    /// The newest pass's rows of every series (all series when `key` has an empty symbol).
    virtual std::vector<LiveMetric> latest_live_metrics(const SeriesKey& key) = 0;
    /// The history of one series, newest first, at most `limit` rows.
    virtual std::vector<LiveMetric> live_metrics_history(const SeriesKey& key, std::int64_t limit) = 0;
    /// The online calibration state of a model version, by horizon; horizons never updated are absent.
    virtual std::vector<CalibrationStateRow> calibration_states(int model_version) = 0;
    /// Inserts or replaces the rows, atomically.
    virtual void save_calibration_states(std::span<const CalibrationStateRow> rows) = 0;
    /// Appends one drift measurement per feature.
    virtual void insert_feature_drift(std::span<const FeatureDrift> drift) = 0;
    /// The newest drift measurement of every series (all series when `key` has an empty symbol).
    virtual std::vector<FeatureDrift> latest_feature_drift(const SeriesKey& key) = 0;

    // Pipelines. Writes outside a transaction are atomic on their own.
    /// Queues a run (its status is ignored: queued) unless the pipeline already has a queued or running one, in
    /// any process: then nothing is written. Returns the run now active and whether this call created it.
    virtual std::pair<PipelineRun, bool> enqueue_pipeline_run(const PipelineRun& run) = 0;
    /// Moves the oldest queued run of `pipeline` to running for `owner`; nullopt when none is queued.
    virtual std::optional<PipelineRun> claim_pipeline_run(const std::string& pipeline, const std::string& owner,
                                                          std::int64_t now_ms) = 0;
    /// Writes a run's status, error, finish time and result, only while the run is still running for `run.owner`:
    /// false when it was not (another scheduler took the pipeline over and marked the run abandoned meanwhile).
    virtual bool finish_pipeline_run(const PipelineRun& run) = 0;
    virtual std::optional<PipelineRun> pipeline_run(std::int64_t id) = 0;
    /// Runs of one pipeline (all when empty), newest first, at most `limit`.
    virtual std::vector<PipelineRun> pipeline_runs(const std::string& pipeline, std::int64_t limit) = 0;
    /// Inserts or replaces one attempt of a task.
    virtual void save_pipeline_task(const PipelineTask& task) = 0;
    /// A run's task attempts in the order they started.
    virtual std::vector<PipelineTask> pipeline_tasks(std::int64_t run_id) = 0;
    /// Takes or renews the lease `name` for `owner` until `expires_ms`; false (changing nothing) while another
    /// owner holds an unexpired one. The one-run-at-a-time guard between scheduler processes.
    virtual bool acquire_lease(const std::string& name, const std::string& owner, std::int64_t now_ms,
                               std::int64_t expires_ms) = 0;
    /// Gives a lease back if `owner` holds it.
    virtual void release_lease(const std::string& name, const std::string& owner) = 0;
    /// Records an alert unless this (group key, fingerprint, startsAt, status) was recorded before: false then.
    virtual bool record_alert(const AlertNotification& alert) = 0;
    /// Sets what was done about a recorded alert.
    virtual void set_alert_outcome(const AlertNotification& alert) = 0;
    /// The newest alerts first, at most `limit`.
    virtual std::vector<AlertNotification> alerts(std::int64_t limit) = 0;

    /// The home folder it was opened with (model artifacts live under it).
    [[nodiscard]] const std::filesystem::path& home() const noexcept { return home_; }

  private:
    friend std::unique_ptr<Store> open_store(const std::string& url, const std::filesystem::path& home);
    std::string url_; // what open_store was given, for open_another
    std::filesystem::path home_;
};

/// Opens `sqlite:PATH` (or a bare path) or `postgresql://…` / `postgres://…`, applying pending migrations.
/// An empty url means `sqlite:<home>/btcml.db`. Throws Unavailable when the database cannot be reached and
/// UsageError for an unknown scheme.
std::unique_ptr<Store> open_store(const std::string& url, const std::filesystem::path& home);

/// `sqlite:/path/btcml.db` or the PostgreSQL URL with its password replaced by `***`.
std::string redact_url(const std::string& url);

} // namespace btcml::store
