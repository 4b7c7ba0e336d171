#pragma once
// Experiment tracking. Every run is recorded in the btcml store first (the local backend); with a tracking URI the
// MLflow backend replicates it to an MLflow server as it goes. When the server is unreachable the run carries on
// locally and `btcml tracking sync` sends what is missing later: each row is marked once MLflow has it, so a sync
// resumes where the last one stopped and nothing is sent twice.
#include "store/heartbeat.hpp"
#include "store/store.hpp"
#include "tracking/mlflow_client.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

namespace btcml::tracking {

enum class RunStatus { running, finished, failed, killed };

/// MLflow's names: RUNNING, FINISHED, FAILED, KILLED.
std::string to_string(RunStatus status);

/// Replays what the store holds of a run (and of the registry) onto an MLflow server.
class Syncer {
  public:
    Syncer(store::Store& store, MlflowClient& client) : store_(store), client_(client) {}

    /// Creates the run in MLflow if needed (finding one created before a lost reply by its btcml.run_id tag),
    /// sends every row not yet marked synced, uploads pending artifacts, registers the run's model versions and
    /// ends the run with its final status. Throws what the client throws; what was sent stays marked.
    void sync_run(const std::string& run_id);
    /// Makes MLflow's aliases of a registered model those of the store (for versions registered there).
    void sync_aliases(const std::string& model_name);

  private:
    void register_versions(const store::TrackedRun& run);

    store::Store& store_;
    MlflowClient& client_;
};

/// Ends the runs whose process died without ending them (store::sweep_abandoned_runs) and marks the training runs
/// among them KILLED on their MLflow server too; a server that cannot be reached leaves that for `btcml tracking
/// sync`. Returns the training runs ended. Called when a run starts and when runs are listed.
std::vector<std::string> sweep_abandoned_runs(store::Store& store);

/// Records one run, with a heartbeat while it is running (store::Heartbeat). Not thread-safe.
class Tracker {
  public:
    /// `tracking_uri` empty: local only. Otherwise an MLflow server, which start_run checks first: one that
    /// answers but is not MLflow fails the run before anything is recorded; one that does not answer is noted and
    /// the run is recorded locally, pending sync.
    Tracker(store::Store& store, std::string tracking_uri);
    ~Tracker();
    Tracker(const Tracker&) = delete;
    Tracker& operator=(const Tracker&) = delete;

    void start_run(store::TrackedRun run, const store::RunData& initial);
    /// Non-finite metric values are dropped (MLflow's JSON cannot carry them).
    void log(store::RunData data);
    void end_run(RunStatus status);

    [[nodiscard]] const std::string& run_id() const { return run_.id; }
    [[nodiscard]] bool active() const { return active_; }
    /// {"backend": "local"|"mlflow", "uri", "remote_run_id", "synced": bool, "error"} for reports.
    [[nodiscard]] nlohmann::json summary();

  private:
    void replicate();

    store::Store& store_;
    std::unique_ptr<MlflowClient> client_;
    store::TrackedRun run_;
    bool active_ = false;
    std::string remote_error_; // set once replication failed; later calls skip MLflow until end_run
    std::unique_ptr<store::Heartbeat> heartbeat_;
};

/// The tags every run gets: mlflow.user, mlflow.source.name/type, mlflow.source.git.commit (when btcml was built
/// from a git checkout), mlflow.runName and btcml.run_id.
store::KeyValues standard_tags(const std::string& run_id, const std::string& run_name, const std::string& source);

/// `btcml-<symbol>-<interval>`: the experiment and registered model of a series.
std::string series_model_name(const std::string& symbol, const std::string& interval);

} // namespace btcml::tracking
