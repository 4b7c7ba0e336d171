#include "tracking/tracker.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <pwd.h>
#include <unistd.h>

namespace btcml::tracking {
namespace {

std::vector<std::string> keys_of(const store::KeyValues& kv) {
    std::vector<std::string> out;
    for (const auto& [key, value] : kv)
        out.push_back(key);
    return out;
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw NotFound(fmt::format("artifact file {} is missing", path));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string user_name() {
    if (const char* user = std::getenv("USER"); user && *user) return user;
    if (const passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
    return "unknown";
}

} // namespace

std::string to_string(RunStatus status) {
    switch (status) {
    case RunStatus::running: return "RUNNING";
    case RunStatus::finished: return "FINISHED";
    case RunStatus::failed: return "FAILED";
    case RunStatus::killed: return "KILLED";
    }
    return "FAILED";
}

std::string series_model_name(const std::string& symbol, const std::string& interval) {
    return fmt::format("btcml-{}-{}", symbol, interval);
}

store::KeyValues standard_tags(const std::string& run_id, const std::string& run_name, const std::string& source) {
    store::KeyValues tags{{"mlflow.user", user_name()},    {"mlflow.source.name", source},
                          {"mlflow.source.type", "LOCAL"}, {"mlflow.runName", run_name},
                          {"btcml.run_id", run_id},        {"btcml.version", BTCML_VERSION}};
    if (std::string_view commit = BTCML_GIT_COMMIT; !commit.empty())
        tags.emplace_back("mlflow.source.git.commit", std::string(commit));
    return tags;
}

void Syncer::sync_run(const std::string& run_id) {
    auto run = store_.tracked_run(run_id);
    if (!run) throw NotFound(fmt::format("no tracked run {}", run_id));
    if (run->remote_id.empty()) {
        run->remote_experiment_id = client_.get_or_create_experiment(run->experiment);
        auto remote = client_.find_run_by_tag(run->remote_experiment_id, "btcml.run_id", run->id);
        if (!remote) {
            const auto all = store_.run_data(run->id, false);
            remote = client_.create_run(run->remote_experiment_id, run->name, run->start_ms, all.tags);
        }
        run->remote_id = remote->run_id;
        run->artifact_uri = remote->artifact_uri;
        store_.save_run(*run);
    }
    const auto pending = store_.run_data(run->id, true);
    for (const Batch& batch : split_batches(pending)) {
        client_.log_batch(run->remote_id, batch);
        store_.mark_synced(run->id, store::RunDataKind::param, keys_of(batch.params));
        store_.mark_synced(run->id, store::RunDataKind::tag, keys_of(batch.tags));
        std::vector<std::string> seqs;
        for (const auto& m : batch.metrics)
            seqs.push_back(std::to_string(m.seq));
        store_.mark_synced(run->id, store::RunDataKind::metric, seqs);
    }
    for (const auto& artifact : pending.artifacts) {
        client_.upload_artifact(run->artifact_uri, artifact.path, read_bytes(artifact.local_path));
        store_.mark_synced(run->id, store::RunDataKind::artifact, {artifact.path});
    }
    if (run->status == "RUNNING") return;
    register_versions(*run);
    if (run->remote_status != run->status) {
        client_.end_run(run->remote_id, run->status, run->end_ms.value_or(run->start_ms));
        run->remote_status = run->status;
        store_.save_run(*run);
    }
}

void Syncer::register_versions(const store::TrackedRun& run) {
    for (auto v : store_.model_versions("")) {
        if (v.run_id != run.id || !v.remote_version.empty()) continue;
        client_.ensure_registered_model(v.model_name, "btcml LSTM forecaster of one series: log-return quantiles at "
                                                      "several horizons (ONNX, python_function)");
        const std::string tag_value = std::to_string(v.version);
        auto remote = client_.find_model_version(v.model_name, "btcml.version", tag_value);
        if (!remote) {
            store::KeyValues tags{{"btcml.version", tag_value}, {"btcml.run_id", run.id}};
            const auto gate = nlohmann::json::parse(v.gate_json, nullptr, false);
            if (gate.is_object()) {
                tags.emplace_back("btcml.gate.decision", gate.value("decision", ""));
                tags.emplace_back("btcml.gate.reason", gate.value("reason", ""));
                tags.emplace_back("btcml.gate", v.gate_json.substr(0, max_tag_value_length));
            }
            remote = client_.create_model_version(v.model_name, run.artifact_uri + "/model", run.remote_id, tags,
                                                  fmt::format("btcml model version {}", v.version));
        }
        v.remote_version = *remote;
        store_.save_model_version(v);
        sync_aliases(v.model_name);
    }
}

void Syncer::sync_aliases(const std::string& model_name) {
    std::map<int, std::string> remote_of;
    for (const auto& v : store_.model_versions(model_name))
        if (!v.remote_version.empty()) remote_of[v.version] = v.remote_version;
    const auto local = store_.aliases(model_name);
    auto remote = client_.aliases(model_name);
    for (const auto& [alias, version] : local) {
        const auto it = remote_of.find(version);
        if (it == remote_of.end()) continue; // that version is not in MLflow yet: its run's sync sets the alias
        if (remote[alias] != it->second) client_.set_alias(model_name, alias, it->second);
    }
    for (const auto& [alias, version] : remote)
        if (!version.empty() && !local.contains(alias) && (alias == "champion" || alias == "challenger"))
            client_.delete_alias(model_name, alias);
}

std::vector<std::string> sweep_abandoned_runs(store::Store& store) {
    const auto ended = store::sweep_abandoned_runs(store);
    for (const auto& id : ended) {
        const auto run = store.tracked_run(id);
        if (!run || run->tracking_uri.empty()) continue;
        try {
            MlflowClient client(run->tracking_uri);
            Syncer(store, client).sync_run(id);
        } catch (const Error& e) {
            log::warn("MLflow not told that an abandoned run was killed: run `btcml tracking sync` later",
                      {{"run_id", id}, {"tracking.uri", run->tracking_uri}, {"error.message", e.what()}});
        }
    }
    return ended;
}

Tracker::Tracker(store::Store& store, std::string tracking_uri) : store_(store) {
    if (!tracking_uri.empty()) client_ = std::make_unique<MlflowClient>(std::move(tracking_uri));
}

Tracker::~Tracker() {
    if (!active_) return;
    try { // a run abandoned by an exception that nobody caught ends as failed
        end_run(RunStatus::failed);
    } catch (...) { // NOLINT(bugprone-empty-catch): destructors must not throw
    }
}

void Tracker::start_run(store::TrackedRun run, const store::RunData& initial) {
    if (client_) {
        run.tracking_uri = client_->uri();
        try {
            // A server that answers but is not MLflow (UsageError) fails the run before anything is recorded.
            client_->get_or_create_experiment(run.experiment);
        } catch (const Unavailable& e) {
            remote_error_ = e.what();
            log::warn("MLflow is unreachable: the run is recorded locally; run `btcml tracking sync` later",
                      {{"tracking.uri", run.tracking_uri}, {"error.message", e.what()}});
        }
    }
    tracking::sweep_abandoned_runs(store_); // qualified: ADL would also find store::sweep_abandoned_runs
    run_ = std::move(run);
    store_.save_run(run_);
    store_.log_run_data(run_.id, initial);
    active_ = true;
    heartbeat_ = std::make_unique<store::Heartbeat>(store_, store::RunKind::training, run_.id);
    replicate();
}

void Tracker::log(store::RunData data) {
    std::erase_if(data.metrics, [](const store::RunMetric& m) { return !std::isfinite(m.value); });
    store_.log_run_data(run_.id, data);
    replicate();
}

void Tracker::end_run(RunStatus status) {
    if (!active_) return;
    active_ = false;
    heartbeat_.reset();
    run_.status = to_string(status);
    run_.end_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    store_.save_run(run_);
    remote_error_.clear(); // one more try at the end: the server may be back
    replicate();
}

void Tracker::replicate() {
    if (!client_ || !remote_error_.empty()) return;
    try {
        Syncer(store_, *client_).sync_run(run_.id);
    } catch (const Error& e) {
        remote_error_ = e.what();
        log::warn("MLflow replication failed: the run continues locally; run `btcml tracking sync` later",
                  {{"tracking.uri", client_->uri()}, {"error.message", e.what()}});
    }
    if (const auto stored = store_.tracked_run(run_.id)) { // keep the remote ids the sync recorded
        run_.remote_id = stored->remote_id;
        run_.remote_experiment_id = stored->remote_experiment_id;
        run_.artifact_uri = stored->artifact_uri;
        run_.remote_status = stored->remote_status;
    }
}

nlohmann::json Tracker::summary() {
    nlohmann::json out{{"backend", client_ ? "mlflow" : "local"}, {"run_id", run_.id}, {"status", run_.status}};
    if (!client_) return out;
    out["uri"] = client_->uri();
    out["remote_run_id"] = run_.remote_id;
    out["experiment_id"] = run_.remote_experiment_id;
    out["synced"] = remote_error_.empty() && run_.remote_status == run_.status;
    if (!remote_error_.empty()) out["error"] = remote_error_;
    return out;
}

} // namespace btcml::tracking
