// The pipeline, lease and alert tables of SqlStore: shared SQL, the same in SQLite and PostgreSQL.
#include "store/sql_store.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace btcml::store {
namespace {

constexpr const char* kRunColumns = "id, pipeline, trigger_kind, reason, status, error, owner, queued_ms, started_ms, "
                                    "finished_ms, result_json, clock_ms";

PipelineRun read_run(const SqlRow& row) {
    PipelineRun r;
    r.id = row.get_int(0);
    r.pipeline = row.get_text(1);
    r.trigger = row.get_text(2);
    r.reason = row.get_text(3);
    r.status = row.get_text(4);
    r.error = row.get_text(5);
    r.owner = row.get_text(6);
    r.queued_ms = row.get_int(7);
    r.started_ms = row.is_null(8) ? 0 : row.get_int(8);
    r.finished_ms = row.is_null(9) ? 0 : row.get_int(9);
    r.result_json = row.get_text(10);
    r.clock_ms = row.get_int(11);
    return r;
}

SqlParam optional_ms(std::int64_t ms) { return ms == 0 ? SqlParam{nullptr} : SqlParam{ms}; }

constexpr const char* kAlertColumns =
    "group_key, fingerprint, starts_at, status, alertname, labels_json, received_ms, outcome, run_id";

} // namespace

std::pair<PipelineRun, bool> SqlStore::enqueue_pipeline_run(const PipelineRun& run) {
    // The partial unique index on active runs makes the insert a no-op while one is queued or running; that run
    // may end between the insert and the read, hence the loop (a handful of rounds at most, in practice one).
    for (int round = 0; round < 100; ++round) {
        std::optional<PipelineRun> created;
        const std::array<SqlParam, 5> params{std::string_view(run.pipeline), std::string_view(run.trigger),
                                             std::string_view(run.reason), run.queued_ms, run.clock_ms};
        query(fmt::format("INSERT INTO pipeline_runs (pipeline, trigger_kind, reason, status, queued_ms, clock_ms) "
                          "VALUES ($1, $2, $3, 'queued', $4, $5) ON CONFLICT DO NOTHING RETURNING {}",
                          kRunColumns),
              params, [&](const SqlRow& row) { created = read_run(row); });
        if (created) return {*created, true};
        std::optional<PipelineRun> active;
        const std::array<SqlParam, 1> name{std::string_view(run.pipeline)};
        query(fmt::format("SELECT {} FROM pipeline_runs WHERE pipeline = $1 AND status IN ('queued', 'running')",
                          kRunColumns),
              name, [&](const SqlRow& row) { active = read_run(row); });
        if (active) return {*active, false};
    }
    throw Unavailable(fmt::format("pipeline {}: could not queue a run (its active run kept changing)", run.pipeline));
}

std::optional<PipelineRun> SqlStore::claim_pipeline_run(const std::string& pipeline, const std::string& owner,
                                                        std::int64_t now_ms) {
    std::optional<PipelineRun> claimed;
    const std::array<SqlParam, 3> params{std::string_view(pipeline), std::string_view(owner), now_ms};
    query(fmt::format("UPDATE pipeline_runs SET status = 'running', owner = $2, started_ms = $3 WHERE pipeline = $1 "
                      "AND status = 'queued' RETURNING {}",
                      kRunColumns),
          params, [&](const SqlRow& row) { claimed = read_run(row); });
    return claimed;
}

bool SqlStore::finish_pipeline_run(const PipelineRun& run) {
    const std::array<SqlParam, 6> params{run.id,
                                         std::string_view(run.status),
                                         std::string_view(run.error),
                                         optional_ms(run.finished_ms),
                                         std::string_view(run.result_json),
                                         std::string_view(run.owner)};
    bool written = false;
    query("UPDATE pipeline_runs SET status = $2, error = $3, finished_ms = $4, result_json = $5 WHERE id = $1 AND "
          "status = 'running' AND owner = $6 RETURNING id",
          params, [&](const SqlRow&) { written = true; });
    return written;
}

std::optional<PipelineRun> SqlStore::pipeline_run(std::int64_t id) {
    std::optional<PipelineRun> out;
    const std::array<SqlParam, 1> params{id};
    query(fmt::format("SELECT {} FROM pipeline_runs WHERE id = $1", kRunColumns), params,
          [&](const SqlRow& row) { out = read_run(row); });
    return out;
}

std::vector<PipelineRun> SqlStore::pipeline_runs(const std::string& pipeline, std::int64_t limit) {
    std::vector<PipelineRun> out;
    const std::array<SqlParam, 2> params{std::string_view(pipeline), limit};
    query(fmt::format("SELECT {} FROM pipeline_runs WHERE $1 = '' OR pipeline = $1 ORDER BY id DESC LIMIT $2",
                      kRunColumns),
          params, [&](const SqlRow& row) { out.push_back(read_run(row)); });
    return out;
}

void SqlStore::save_pipeline_task(const PipelineTask& t) {
    const std::array<SqlParam, 8> params{t.run_id,
                                         std::string_view(t.task),
                                         std::int64_t{t.attempt},
                                         std::string_view(t.status),
                                         std::string_view(t.error),
                                         t.started_ms,
                                         optional_ms(t.finished_ms),
                                         std::string_view(t.detail_json)};
    query("INSERT INTO pipeline_tasks (run_id, task, attempt, status, error, started_ms, finished_ms, detail_json) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id, task, attempt) DO UPDATE SET status = "
          "excluded.status, error = excluded.error, started_ms = excluded.started_ms, finished_ms = "
          "excluded.finished_ms, detail_json = excluded.detail_json",
          params, {});
}

std::vector<PipelineTask> SqlStore::pipeline_tasks(std::int64_t run_id) {
    std::vector<PipelineTask> out;
    const std::array<SqlParam, 1> params{run_id};
    query("SELECT run_id, task, attempt, status, error, started_ms, finished_ms, detail_json FROM pipeline_tasks "
          "WHERE run_id = $1 ORDER BY started_ms, attempt",
          params, [&](const SqlRow& row) {
              out.push_back({row.get_int(0), row.get_text(1), static_cast<int>(row.get_int(2)), row.get_text(3),
                             row.get_text(4), row.get_int(5), row.is_null(6) ? 0 : row.get_int(6), row.get_text(7)});
          });
    return out;
}

bool SqlStore::acquire_lease(const std::string& name, const std::string& owner, std::int64_t now_ms,
                             std::int64_t expires_ms) {
    const std::array<SqlParam, 4> params{std::string_view(name), std::string_view(owner), now_ms, expires_ms};
    return query("INSERT INTO pipeline_leases (name, owner, expires_ms) VALUES ($1, $2, $4) ON CONFLICT (name) DO "
                 "UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms WHERE pipeline_leases.owner = "
                 "excluded.owner OR pipeline_leases.expires_ms < $3",
                 params, {}) == 1;
}

void SqlStore::release_lease(const std::string& name, const std::string& owner) {
    const std::array<SqlParam, 2> params{std::string_view(name), std::string_view(owner)};
    query("DELETE FROM pipeline_leases WHERE name = $1 AND owner = $2", params, {});
}

bool SqlStore::record_alert(const AlertNotification& a) {
    const std::array<SqlParam, 9> params{std::string_view(a.group_key),
                                         std::string_view(a.fingerprint),
                                         std::string_view(a.starts_at),
                                         std::string_view(a.status),
                                         std::string_view(a.alertname),
                                         std::string_view(a.labels_json),
                                         a.received_ms,
                                         std::string_view(a.outcome),
                                         a.run_id ? SqlParam{*a.run_id} : SqlParam{nullptr}};
    return query(fmt::format("INSERT INTO alert_notifications ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON "
                             "CONFLICT DO NOTHING",
                             kAlertColumns),
                 params, {}) == 1;
}

void SqlStore::set_alert_outcome(const AlertNotification& a) {
    const std::array<SqlParam, 6> params{std::string_view(a.group_key), std::string_view(a.fingerprint),
                                         std::string_view(a.starts_at), std::string_view(a.status),
                                         std::string_view(a.outcome),
                                         a.run_id ? SqlParam{*a.run_id} : SqlParam{nullptr}};
    query("UPDATE alert_notifications SET outcome = $5, run_id = $6 WHERE group_key = $1 AND fingerprint = $2 AND "
          "starts_at = $3 AND status = $4",
          params, {});
}

std::vector<AlertNotification> SqlStore::alerts(std::int64_t limit) {
    std::vector<AlertNotification> out;
    const std::array<SqlParam, 1> params{limit};
    query(fmt::format("SELECT {} FROM alert_notifications ORDER BY received_ms DESC LIMIT $1", kAlertColumns), params,
          [&](const SqlRow& row) {
              AlertNotification a{row.get_text(0), row.get_text(1), row.get_text(2),
                                  row.get_text(3), row.get_text(4), row.get_text(5),
                                  row.get_int(6),  row.get_text(7), std::nullopt};
              if (!row.is_null(8)) a.run_id = row.get_int(8);
              out.push_back(std::move(a));
          });
    return out;
}

} // namespace btcml::store
