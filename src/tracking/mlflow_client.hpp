#pragma once
// A client of MLflow's REST API 2.0 (tracking, artifact proxy and model registry), over the one HTTP client of
// btcml. MLflow has no C++ client; this speaks the documented JSON endpoints and nothing else.
#include "net/http_client.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <span>
#include <string>

namespace btcml::tracking {

/// MLflow's limits on one runs/log-batch call and on keys and values (mlflow/utils/validation.py).
inline constexpr std::size_t max_metrics_per_batch = 1000;
inline constexpr std::size_t max_params_tags_per_batch = 100;
inline constexpr std::size_t max_entities_per_batch = 1000;
inline constexpr std::size_t max_key_length = 250;
inline constexpr std::size_t max_param_value_length = 6000;
inline constexpr std::size_t max_tag_value_length = 8000;

/// Throws InvalidInput naming the key when MLflow would refuse it: longer than 250 characters, characters other
/// than alphanumerics, `_ - . : / ` and space, or a path that normalises to another name (`a//b`, `../x`, `/x`).
void check_key(const std::string& key, const char* what);
/// check_key, and the value's length against the limit of its kind.
void check_param(const std::string& key, const std::string& value);
void check_tag(const std::string& key, const std::string& value);

/// One log-batch request's worth of run data.
struct Batch {
    std::vector<store::RunMetric> metrics;
    store::KeyValues params, tags;
};
/// Splits data into batches within MLflow's limits, in logging order.
std::vector<Batch> split_batches(const store::RunData& data);

struct RemoteRun {
    std::string run_id, experiment_id, artifact_uri, status;
};

/// Thread-safety: one client per thread (it owns an HttpClient). Errors: a server that cannot be reached throws
/// Unavailable, and so does a 5xx; any other answer that is not MLflow's JSON (a web page, 403 "Invalid Host
/// header") throws UsageError saying what answered and what to change; an MLflow error throws NotFound
/// (RESOURCE_DOES_NOT_EXIST), Conflict (RESOURCE_ALREADY_EXISTS) or InvalidInput (anything else) with MLflow's message.
class MlflowClient {
  public:
    /// `uri`: http(s)://host:port[/prefix] of `mlflow server`.
    explicit MlflowClient(std::string uri, net::ClientOptions options = {});

    [[nodiscard]] const std::string& uri() const { return uri_; }

    /// The id of the experiment of that name, restoring it when it was deleted and creating it when absent.
    std::string get_or_create_experiment(const std::string& name);
    RemoteRun create_run(const std::string& experiment_id, const std::string& run_name, std::int64_t start_ms,
                         const store::KeyValues& tags);
    std::optional<RemoteRun> get_run(const std::string& run_id);
    /// The run of the experiment whose tag `key` equals `value`, if any (finds a run created before a lost reply).
    std::optional<RemoteRun> find_run_by_tag(const std::string& experiment_id, const std::string& key,
                                             const std::string& value);
    void log_batch(const std::string& run_id, const Batch& batch);
    void end_run(const std::string& run_id, const std::string& status, std::int64_t end_ms);
    /// Uploads one file through the artifact proxy: PUT /api/2.0/mlflow-artifacts/artifacts/<path>, the path
    /// taken from the run's `mlflow-artifacts:` artifact_uri. Throws Conflict when the server does not proxy
    /// artifacts (the run's artifact_uri is not mlflow-artifacts:).
    void upload_artifact(const std::string& artifact_uri, const std::string& path, std::string bytes);

    /// Registry.
    void ensure_registered_model(const std::string& name, const std::string& description);
    /// Creates a version of `source` (an artifact URI) for the run; returns MLflow's version number.
    std::string create_model_version(const std::string& name, const std::string& source, const std::string& run_id,
                                     const store::KeyValues& tags, const std::string& description);
    /// MLflow's version number of the version whose tag `key` equals `value`, if any.
    std::optional<std::string> find_model_version(const std::string& name, const std::string& key,
                                                  const std::string& value);
    void set_model_version_tag(const std::string& name, const std::string& version, const std::string& key,
                               const std::string& value);
    void set_alias(const std::string& name, const std::string& alias, const std::string& version);
    void delete_alias(const std::string& name, const std::string& alias);
    /// The aliases of a registered model: alias -> version.
    std::map<std::string, std::string> aliases(const std::string& name);

  private:
    nlohmann::json call(const std::string& method, const std::string& endpoint, const nlohmann::json& body);
    nlohmann::json get(const std::string& endpoint, const std::string& query);
    /// Sends one request and interprets the answer (see the class comment for the errors).
    nlohmann::json send(const std::string& method, const std::string& endpoint, const std::string& query,
                        std::string body);

    std::string uri_;
    net::HttpClient http_;
};

} // namespace btcml::tracking
