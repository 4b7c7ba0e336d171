// POST /api/v1/alerts: Alertmanager's webhook (payload version 4). Firing alerts labelled action="retrain" queue the
// retrain pipeline of the series their labels name; every alert is recorded once. See docs/closed-loop.md.
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "pipeline/airflow_relay.hpp"
#include "pipeline/catalog.hpp"
#include "serve/api.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace btcml::serve {
namespace {

FieldError malformed(std::string field, const std::string& message) {
    return {ErrorKind::invalid, std::move(field), message};
}

std::string string_at(const nlohmann::json& object, const char* name, const std::string& path, bool required) {
    const auto it = object.find(name);
    if (it == object.end() && !required) return {};
    if (it == object.end() || !it->is_string() || (required && it->get_ref<const std::string&>().empty()))
        throw malformed(path, fmt::format("{} must be a non-empty string", path));
    return it->get<std::string>();
}

/// A label set (labels, annotations): an object whose values are strings.
nlohmann::json string_map_at(const nlohmann::json& object, const char* name, const std::string& path, bool required) {
    const auto it = object.find(name);
    if (it == object.end() && !required) return nlohmann::json::object();
    if (it == object.end() || !it->is_object()) throw malformed(path, fmt::format("{} must be an object", path));
    for (const auto& [key, value] : it->items())
        if (!value.is_string()) throw malformed(path + "." + key, fmt::format("{}.{} must be a string", path, key));
    return *it;
}

/// One alert of a notification, checked before anything is written.
struct ReceivedAlert {
    store::AlertNotification record;
    nlohmann::json labels;
    std::string summary; // annotations.summary, else annotations.description
};

std::vector<ReceivedAlert> parse_notification(const nlohmann::json& body, std::int64_t now_ms) {
    const auto version = string_at(body, "version", "version", true);
    if (version != "4")
        throw malformed("version",
                        fmt::format("version must be \"4\" (Alertmanager's webhook payload), got \"{}\"", version));
    const auto group_key = string_at(body, "groupKey", "groupKey", true);
    const auto alerts = body.find("alerts");
    if (alerts == body.end() || !alerts->is_array()) throw malformed("alerts", "alerts must be an array");
    std::vector<ReceivedAlert> out;
    for (std::size_t i = 0; i < alerts->size(); ++i) {
        const auto& a = (*alerts)[i];
        const auto path = fmt::format("alerts[{}]", i);
        if (!a.is_object()) throw malformed(path, fmt::format("{} must be an object", path));
        ReceivedAlert r;
        auto& rec = r.record;
        rec.group_key = group_key;
        rec.status = string_at(a, "status", path + ".status", true);
        if (rec.status != "firing" && rec.status != "resolved")
            throw malformed(path + ".status",
                            fmt::format("{}.status must be firing or resolved, got \"{}\"", path, rec.status));
        r.labels = string_map_at(a, "labels", path + ".labels", true);
        const auto annotations = string_map_at(a, "annotations", path + ".annotations", false);
        r.summary = annotations.value("summary", annotations.value("description", ""));
        rec.starts_at = string_at(a, "startsAt", path + ".startsAt", true);
        if (!parse_iso8601(rec.starts_at))
            throw malformed(path + ".startsAt",
                            fmt::format("{}.startsAt '{}' is not an RFC 3339 time", path, rec.starts_at));
        rec.fingerprint = string_at(a, "fingerprint", path + ".fingerprint", true);
        rec.alertname = r.labels.value("alertname", "");
        rec.labels_json = r.labels.dump();
        rec.received_ms = now_ms;
        out.push_back(std::move(r));
    }
    return out;
}

/// What one alert did, for the reply.
struct Outcome {
    nlohmann::json json;
    bool acted = false; // queued or joined a retrain run
};

std::string names_of(const std::vector<pipeline::PipelineSpec>& pipelines) {
    std::string out;
    for (const auto& p : pipelines)
        if (p.kind == pipeline::PipelineKind::retrain) out += (out.empty() ? "" : ", ") + p.name;
    return out.empty() ? "none" : out;
}

/// Decides and records what one new alert does. Throws only when the store fails (the caller rolls back).
Outcome act_on(store::Store& store, const ServiceOptions& options, ReceivedAlert& alert) {
    auto& rec = alert.record;
    Outcome out;
    out.json = {{"fingerprint", rec.fingerprint}, {"alertname", rec.alertname}, {"status", rec.status}};
    const auto finish = [&](std::string outcome) {
        rec.outcome = std::move(outcome);
        store.set_alert_outcome(rec);
        out.json["outcome"] = rec.outcome;
        return out;
    };
    if (rec.status == "resolved") return finish("recorded: a resolved alert starts nothing");
    if (alert.labels.value("action", "") != "retrain") return finish("recorded: no action=\"retrain\" label");
    const auto symbol = alert.labels.value("symbol", "");
    const auto interval_text = alert.labels.value("interval", "");
    if (symbol.empty() || interval_text.empty())
        return finish("rejected: an action=\"retrain\" alert needs the labels symbol and interval");
    const auto interval = parse_interval(interval_text);
    if (!interval)
        return finish(fmt::format("rejected: label interval '{}' is not an interval like 1h", interval_text));
    const auto name = pipeline::pipeline_name(pipeline::PipelineKind::retrain, {symbol, *interval});
    out.json["pipeline"] = name;
    if (!pipeline::find_pipeline(options.pipelines, name))
        return finish(fmt::format("rejected: no pipeline {} is configured (retrain pipelines: {}); add the series to "
                                  "the config file's series: section",
                                  name, names_of(options.pipelines)));
    auto reason = fmt::format("alert {} firing since {}{}{} (fingerprint {})", rec.alertname, rec.starts_at,
                              alert.summary.empty() ? "" : ": ", alert.summary, rec.fingerprint);
    if (options.airflow) {
        // Airflow runs the retrain instead of the built-in scheduler; it may fail (503), and Alertmanager retries.
        const auto triggered = options.airflow->trigger(
            pipeline::alert_dag_run_id(rec.group_key, rec.starts_at, symbol, interval_text),
            {{"reason", reason}, {"series", {{{"symbol", symbol}, {"interval", interval_text}}}}});
        out.acted = true;
        out.json["airflow_dag_run_id"] = triggered.dag_run_id;
        out.json["created"] = triggered.created;
        return finish(fmt::format("{} Airflow DAG run {} of {}", triggered.created ? "triggered" : "joined",
                                  triggered.dag_run_id, options.airflow->settings().dag_id));
    }
    store::PipelineRun run;
    run.pipeline = name;
    run.trigger = "alert";
    run.reason = std::move(reason);
    run.queued_ms = rec.received_ms;
    run.clock_ms = now_ms();
    const auto [active, created] = store.enqueue_pipeline_run(run);
    rec.run_id = active.id;
    out.acted = true;
    out.json["run_id"] = active.id;
    out.json["created"] = created;
    return finish(created ? fmt::format("queued run {} of {}", active.id, name)
                          : fmt::format("joined run {} of {} ({} already)", active.id, name, active.status));
}

} // namespace

Response post_alerts(Service& service, const Request& request) {
    const auto body = parse_json_body(request);
    const auto now_ms = now_unix() * 1000;
    auto alerts = parse_notification(body, now_ms);
    nlohmann::json reply{{"alerts", nlohmann::json::array()}, {"run_ids", nlohmann::json::array()}};
    bool acted = false;
    {
        auto store = service.stores().acquire();
        // One transaction for the whole notification: when the store fails half-way nothing stays recorded, so
        // Alertmanager's retry (it retries 5xx) is not mistaken for a replay and acts on every alert again.
        store->begin();
        try {
            for (auto& alert : alerts) {
                if (!store->record_alert(alert.record)) {
                    reply["alerts"].push_back({{"fingerprint", alert.record.fingerprint},
                                               {"alertname", alert.record.alertname},
                                               {"status", alert.record.status},
                                               {"outcome", "duplicate: already received, nothing done"}});
                    continue;
                }
                auto outcome = act_on(*store, service.options(), alert);
                acted = acted || outcome.acted;
                // A retrain relayed to Airflow has no run id of ours.
                if (outcome.acted && outcome.json.contains("run_id")) {
                    const auto id = outcome.json["run_id"];
                    if (std::find(reply["run_ids"].begin(), reply["run_ids"].end(), id) == reply["run_ids"].end())
                        reply["run_ids"].push_back(id);
                }
                reply["alerts"].push_back(std::move(outcome.json));
            }
            store->commit();
        } catch (...) {
            try {
                store->rollback();
            } catch (const std::exception&) { // the connection is gone: the transaction died with it
            }
            throw;
        }
    }
    for (const auto& a : reply["alerts"]) {
        // A rejected alert is a routing or configuration mistake that no retry fixes: warn whoever reads the log.
        const auto& outcome = a["outcome"].get_ref<const std::string&>();
        log::write(outcome.starts_with("rejected") ? LogLevel::warn : LogLevel::info, "alert received",
                   {{"alert.name", a["alertname"]},
                    {"alert.status", a["status"]},
                    {"alert.fingerprint", a["fingerprint"]},
                    {"alert.outcome", outcome}});
    }
    return json_response(reply, acted ? 202 : 200);
}

} // namespace btcml::serve
