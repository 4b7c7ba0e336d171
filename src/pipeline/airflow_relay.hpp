#pragma once
// Relays retrain alerts to Apache Airflow when `airflow_url` is configured: triggers the btcml_retrain DAG through
// Airflow's REST API (v2) instead of queueing the built-in scheduler's run. See docs/airflow.md.
#include "core/config.hpp"
#include "net/http_client.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace btcml::pipeline {

struct AirflowSettings {
    std::string url;      // the API server's base URL, e.g. http://airflow:8080
    std::string username; // for POST /auth/token
    std::string password;
    std::string dag_id = "btcml_retrain";
};

/// The relay configured: `airflow_url` (env BTCML_AIRFLOW_URL, config key airflow_url), credentials from the
/// environment only (BTCML_AIRFLOW_USERNAME, BTCML_AIRFLOW_PASSWORD); null without a URL. UsageError when a URL is
/// given without credentials.
std::shared_ptr<class AirflowRelay> airflow_relay_from_config(const Config& config);

/// The dag_run_id of the retrain an alert asks for: derived from the alert group's key, the alert's start time and
/// the series, so that a repeated notification of the same alert names the same run (Airflow answers 409).
std::string alert_dag_run_id(const std::string& group_key, const std::string& starts_at, const std::string& symbol,
                             const std::string& interval);

/// Thread-safe: one token is cached for all callers and renewed when Airflow answers 401.
class AirflowRelay {
  public:
    explicit AirflowRelay(AirflowSettings settings, net::ClientOptions client = {});

    struct Triggered {
        std::string dag_run_id;
        bool created = false; // false: Airflow already had that run (409), nothing new started
    };
    /// Triggers the DAG with `conf` (logical date null). Unavailable when Airflow cannot be reached or refuses
    /// (naming its status and reason): the caller answers 503 and Alertmanager tries again.
    Triggered trigger(const std::string& dag_run_id, const nlohmann::json& conf);

    [[nodiscard]] const AirflowSettings& settings() const noexcept { return settings_; }

  private:
    std::string token(net::HttpClient& client, bool renew);

    AirflowSettings settings_;
    net::ClientOptions client_options_;
    std::mutex mutex_;
    std::string token_; // guarded by mutex_
};

} // namespace btcml::pipeline
