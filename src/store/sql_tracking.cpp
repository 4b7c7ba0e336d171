// The tracking and registry tables of SqlStore: shared SQL, the same in SQLite and PostgreSQL.
#include "store/sql_store.hpp"

#include "core/error.hpp"
#include "core/time.hpp"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace btcml::store {
namespace {

constexpr const char* kTrackedRunColumns = "id, experiment, name, status, start_ms, end_ms, tracking_uri, remote_id, "
                                           "remote_experiment_id, artifact_uri, remote_status";

TrackedRun read_run(const SqlRow& row) {
    TrackedRun r;
    r.id = row.get_text(0);
    r.experiment = row.get_text(1);
    r.name = row.get_text(2);
    r.status = row.get_text(3);
    r.start_ms = row.get_int(4);
    if (!row.is_null(5)) r.end_ms = row.get_int(5);
    r.tracking_uri = row.get_text(6);
    r.remote_id = row.get_text(7);
    r.remote_experiment_id = row.get_text(8);
    r.artifact_uri = row.get_text(9);
    r.remote_status = row.get_text(10);
    return r;
}

constexpr const char* kVersionColumns = "version, model_name, run_id, created_ms, gate_json, remote_version";

ModelVersionRecord read_version(const SqlRow& row) {
    return {static_cast<int>(row.get_int(0)),
            row.get_text(1),
            row.get_text(2),
            row.get_int(3),
            row.get_text(4),
            row.get_text(5)};
}

SqlParam optional_int(std::optional<int> v) { return v ? SqlParam{std::int64_t{*v}} : SqlParam{nullptr}; }

std::optional<int> read_optional(const SqlRow& row, int column) {
    return row.is_null(column) ? std::nullopt : std::optional<int>(static_cast<int>(row.get_int(column)));
}

// Table and key column of each kind of run data.
std::pair<const char*, const char*> data_table(RunDataKind kind) {
    switch (kind) {
    case RunDataKind::param: return {"run_params", "key"};
    case RunDataKind::tag: return {"run_tags", "key"};
    case RunDataKind::metric: return {"run_metrics", "seq"};
    case RunDataKind::artifact: return {"run_artifacts", "path"};
    }
    throw Error(ErrorKind::internal, "unknown run data kind");
}

} // namespace

void SqlStore::save_run(const TrackedRun& r) {
    const std::array<SqlParam, 11> params{
        r.id,           r.experiment,   r.name,
        r.status,       r.start_ms,     r.end_ms ? SqlParam{*r.end_ms} : SqlParam{nullptr},
        r.tracking_uri, r.remote_id,    r.remote_experiment_id,
        r.artifact_uri, r.remote_status};
    query(fmt::format("INSERT INTO tracked_runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                      "ON CONFLICT (id) DO UPDATE SET experiment = $2, name = $3, status = $4, start_ms = $5, "
                      "end_ms = $6, tracking_uri = $7, remote_id = $8, remote_experiment_id = $9, artifact_uri = $10, "
                      "remote_status = $11",
                      kTrackedRunColumns),
          params, {});
}

std::optional<TrackedRun> SqlStore::tracked_run(const std::string& id) {
    std::optional<TrackedRun> out;
    const std::array<SqlParam, 1> params{std::string_view(id)};
    query(fmt::format("SELECT {} FROM tracked_runs WHERE id = $1", kTrackedRunColumns), params,
          [&](const SqlRow& row) { out = read_run(row); });
    return out;
}

std::vector<TrackedRun> SqlStore::tracked_runs(bool unsynced_only) {
    std::vector<TrackedRun> out;
    // A run is synced when MLflow has it, its final status, and every row it logged.
    const std::string where = unsynced_only
                                  ? " WHERE tracking_uri <> '' AND (remote_id = '' OR remote_status <> status"
                                    " OR EXISTS (SELECT 1 FROM run_params p WHERE p.run_id = id AND p.synced = 0)"
                                    " OR EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = id AND t.synced = 0)"
                                    " OR EXISTS (SELECT 1 FROM run_metrics m WHERE m.run_id = id AND m.synced = 0)"
                                    " OR EXISTS (SELECT 1 FROM run_artifacts a WHERE a.run_id = id AND a.synced = 0))"
                                  : "";
    query(fmt::format("SELECT {} FROM tracked_runs{} ORDER BY start_ms DESC, id", kTrackedRunColumns, where), {},
          [&](const SqlRow& row) { out.push_back(read_run(row)); });
    return out;
}

void SqlStore::log_run_data(const std::string& run_id, const RunData& data) {
    ScopedTransaction tx(*this);
    for (const auto& [table, values] : {std::pair{"run_params", &data.params}, std::pair{"run_tags", &data.tags}})
        for (const auto& [key, value] : *values) {
            const std::array<SqlParam, 3> params{std::string_view(run_id), std::string_view(key),
                                                 std::string_view(value)};
            query(fmt::format("INSERT INTO {} (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) "
                              "DO UPDATE SET value = $3, synced = 0",
                              table),
                  params, {});
        }
    std::int64_t seq = 0;
    const std::array<SqlParam, 1> id_param{std::string_view(run_id)};
    query("SELECT COALESCE(MAX(seq), 0) FROM run_metrics WHERE run_id = $1", id_param,
          [&](const SqlRow& row) { seq = row.get_int(0); });
    for (const RunMetric& m : data.metrics) {
        const std::array<SqlParam, 6> params{std::string_view(run_id), ++seq, std::string_view(m.key), m.value,
                                             m.timestamp_ms,           m.step};
        query("INSERT INTO run_metrics (run_id, seq, key, value, timestamp_ms, step) VALUES ($1, $2, $3, $4, $5, $6)",
              params, {});
    }
    for (const RunArtifact& a : data.artifacts) {
        const std::array<SqlParam, 3> params{std::string_view(run_id), std::string_view(a.path),
                                             std::string_view(a.local_path)};
        query("INSERT INTO run_artifacts (run_id, path, local_path) VALUES ($1, $2, $3) ON CONFLICT (run_id, path) "
              "DO UPDATE SET local_path = $3, synced = 0",
              params, {});
    }
    tx.commit();
}

RunData SqlStore::run_data(const std::string& run_id, bool unsynced_only) {
    RunData out;
    const std::array<SqlParam, 1> params{std::string_view(run_id)};
    const char* filter = unsynced_only ? " AND synced = 0" : "";
    for (const auto& [table, values] : {std::pair{"run_params", &out.params}, std::pair{"run_tags", &out.tags}})
        query(fmt::format("SELECT key, value FROM {} WHERE run_id = $1{} ORDER BY key", table, filter), params,
              [&](const SqlRow& row) { values->emplace_back(row.get_text(0), row.get_text(1)); });
    query(
        fmt::format("SELECT key, value, timestamp_ms, step, seq FROM run_metrics WHERE run_id = $1{} ORDER BY seq",
                    filter),
        params, [&](const SqlRow& row) {
            out.metrics.push_back({row.get_text(0), row.get_double(1), row.get_int(2), row.get_int(3), row.get_int(4)});
        });
    query(fmt::format("SELECT path, local_path FROM run_artifacts WHERE run_id = $1{} ORDER BY path", filter), params,
          [&](const SqlRow& row) {
              out.artifacts.push_back({row.get_text(0), row.get_text(1)});
          });
    return out;
}

void SqlStore::mark_synced(const std::string& run_id, RunDataKind kind, const std::vector<std::string>& keys) {
    const auto [table, column] = data_table(kind);
    ScopedTransaction tx(*this);
    for (const std::string& key : keys) {
        std::array<SqlParam, 2> params{std::string_view(run_id), std::string_view(key)};
        if (kind == RunDataKind::metric) params[1] = std::int64_t{std::stoll(key)};
        query(fmt::format("UPDATE {} SET synced = 1 WHERE run_id = $1 AND {} = $2", table, column), params, {});
    }
    tx.commit();
}

void SqlStore::save_model_version(const ModelVersionRecord& v) {
    ScopedTransaction tx(*this);
    const std::array<SqlParam, 2> model{std::string_view(v.model_name), v.created_ms};
    query("INSERT INTO registered_models (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", model, {});
    const std::array<SqlParam, 6> params{std::int64_t{v.version},       std::string_view(v.model_name),
                                         std::string_view(v.run_id),    v.created_ms,
                                         std::string_view(v.gate_json), std::string_view(v.remote_version)};
    query(fmt::format("INSERT INTO model_versions ({}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO UPDATE "
                      "SET model_name = $2, run_id = $3, created_ms = $4, gate_json = $5, remote_version = $6",
                      kVersionColumns),
          params, {});
    tx.commit();
}

std::optional<ModelVersionRecord> SqlStore::model_version(int version) {
    std::optional<ModelVersionRecord> out;
    const std::array<SqlParam, 1> params{std::int64_t{version}};
    query(fmt::format("SELECT {} FROM model_versions WHERE version = $1", kVersionColumns), params,
          [&](const SqlRow& row) { out = read_version(row); });
    return out;
}

std::vector<ModelVersionRecord> SqlStore::model_versions(const std::string& model_name) {
    std::vector<ModelVersionRecord> out;
    const std::array<SqlParam, 1> params{std::string_view(model_name)};
    query(
        fmt::format("SELECT {} FROM model_versions WHERE $1 = '' OR model_name = $1 ORDER BY version", kVersionColumns),
        params, [&](const SqlRow& row) { out.push_back(read_version(row)); });
    return out;
}

std::vector<std::string> SqlStore::registered_models() {
    std::vector<std::string> out;
    query("SELECT name FROM registered_models ORDER BY name", {},
          [&](const SqlRow& row) { out.push_back(row.get_text(0)); });
    return out;
}

std::map<std::string, int> SqlStore::aliases(const std::string& model_name) {
    std::map<std::string, int> out;
    const std::array<SqlParam, 1> params{std::string_view(model_name)};
    query("SELECT alias, version FROM model_aliases WHERE model_name = $1", params,
          [&](const SqlRow& row) { out[row.get_text(0)] = static_cast<int>(row.get_int(1)); });
    return out;
}

void SqlStore::set_alias(const AliasChange& c) {
    ScopedTransaction tx(*this);
    if (c.version) {
        const std::array<SqlParam, 3> params{std::string_view(c.model_name), std::string_view(c.alias),
                                             std::int64_t{*c.version}};
        query("INSERT INTO model_aliases (model_name, alias, version) VALUES ($1, $2, $3) "
              "ON CONFLICT (model_name, alias) DO UPDATE SET version = $3",
              params, {});
    } else {
        const std::array<SqlParam, 2> params{std::string_view(c.model_name), std::string_view(c.alias)};
        query("DELETE FROM model_aliases WHERE model_name = $1 AND alias = $2", params, {});
    }
    const std::array<SqlParam, 6> history{std::string_view(c.model_name),
                                          std::string_view(c.alias),
                                          optional_int(c.version),
                                          optional_int(c.previous),
                                          c.changed_ms,
                                          std::string_view(c.reason)};
    query("INSERT INTO alias_history (model_name, alias, version, previous, changed_ms, reason) "
          "VALUES ($1, $2, $3, $4, $5, $6)",
          history, {});
    tx.commit();
}

std::vector<AliasChange> SqlStore::alias_history(const std::string& model_name, const std::string& alias) {
    std::vector<AliasChange> out;
    const std::array<SqlParam, 2> params{std::string_view(model_name), std::string_view(alias)};
    query("SELECT version, previous, changed_ms, reason FROM alias_history WHERE model_name = $1 AND alias = $2 "
          "ORDER BY id DESC",
          params, [&](const SqlRow& row) {
              out.push_back(
                  {model_name, alias, read_optional(row, 0), read_optional(row, 1), row.get_int(2), row.get_text(3)});
          });
    return out;
}

void SqlStore::begin_registry_change() {
    begin();
    try {
        lock_registry();
    } catch (...) {
        rollback();
        throw;
    }
}

bool SqlStore::heartbeat(RunKind kind, const std::string& id, std::int64_t now_ms) {
    require_no_transaction("heartbeat");
    // A writer holding SQLite's lock (often the run itself, mid-ingest) is alive, and no sweep can write until it
    // ends: skip this beat rather than wait.
    return try_write([&] {
        if (kind == RunKind::ingest) {
            const std::array<SqlParam, 2> params{std::int64_t{std::stoll(id)}, now_ms};
            query("UPDATE ingest_runs SET heartbeat_ms = $2 WHERE id = $1 AND status = 'running'", params, {});
        } else {
            const std::array<SqlParam, 2> params{std::string_view(id), now_ms};
            query("UPDATE tracked_runs SET heartbeat_ms = $2 WHERE id = $1 AND status = 'RUNNING'", params, {});
        }
    });
}

std::vector<std::string> SqlStore::abandon_stale_runs(std::int64_t stale_before_ms) {
    require_no_transaction("abandon_stale_runs");
    // (id, last sign of life in ms) of each stale run; read first so that the common case writes nothing.
    using Stale = std::vector<std::pair<std::string, std::int64_t>>;
    const std::array<SqlParam, 1> params{stale_before_ms};
    const auto stale = [&](const char* sql) {
        Stale out;
        query(sql, params, [&](const SqlRow& row) { out.emplace_back(row.get_text(0), row.get_int(1)); });
        return out;
    };
    const auto stale_ingests = [&] {
        return stale("SELECT CAST(id AS TEXT), COALESCE(heartbeat_ms, started_at * 1000) FROM ingest_runs "
                     "WHERE status = 'running' AND COALESCE(heartbeat_ms, started_at * 1000) < $1");
    };
    const auto stale_trainings = [&] {
        return stale("SELECT id, COALESCE(heartbeat_ms, start_ms) FROM tracked_runs "
                     "WHERE status = 'RUNNING' AND COALESCE(heartbeat_ms, start_ms) < $1");
    };
    if (stale_ingests().empty() && stale_trainings().empty()) return {};
    const auto why = [](std::int64_t last_ms) {
        return fmt::format("abandoned: no heartbeat since {} (its process ended without recording the end, e.g. "
                           "killed with SIGKILL)",
                           format_iso8601(last_ms / 1000));
    };
    std::vector<std::string> ended;
    try_write([&] { // the lists again, inside the transaction: a run may have ended or beaten meanwhile
        for (const auto& [id, last_ms] : stale_ingests()) {
            const std::string error = why(last_ms);
            const std::array<SqlParam, 3> update{std::int64_t{std::stoll(id)}, std::string_view(error), last_ms / 1000};
            query("UPDATE ingest_runs SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1", update, {});
        }
        for (const auto& [id, last_ms] : stale_trainings()) {
            const std::string error = why(last_ms);
            const std::array<SqlParam, 2> update{std::string_view(id), last_ms};
            query("UPDATE tracked_runs SET status = 'KILLED', end_ms = $2 WHERE id = $1", update, {});
            const std::array<SqlParam, 2> tag{std::string_view(id), std::string_view(error)};
            query("INSERT INTO run_tags (run_id, key, value) VALUES ($1, 'btcml.abandoned', $2) "
                  "ON CONFLICT (run_id, key) DO UPDATE SET value = $2, synced = 0",
                  tag, {});
            ended.push_back(id);
        }
    });
    return ended;
}

} // namespace btcml::store
