#include "pipeline/airflow_relay.hpp"

#include "core/error.hpp"
#include "core/settings.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <array>
#include <cstdlib>

namespace btcml::pipeline {
namespace {

// Airflow accepts run ids matching ^[A-Za-z0-9_.~:+-]+$ (its allowed_run_id_pattern): anything else becomes '-'.
std::string run_id_safe(const std::string& text) {
    std::string out = text;
    for (char& c : out)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '~' && c != ':' && c != '+' &&
            c != '-')
            c = '-';
    return out;
}

std::string refused(const std::string& what, const net::HttpResponse& response) {
    const auto gist = net::error_gist(response.body);
    return fmt::format("Airflow at {} refused {}: HTTP {}{}{}", net::url_host(response.url), what, response.status,
                       gist.empty() ? "" : ": ", gist);
}

} // namespace

std::shared_ptr<AirflowRelay> airflow_relay_from_config(const Config& config) {
    AirflowSettings settings;
    settings.url = config.value(Setting::airflow_url);
    if (settings.url.empty()) return nullptr;
    while (settings.url.ends_with('/'))
        settings.url.pop_back();
    settings.username = env_value(Setting::airflow_username).value_or("");
    settings.password = env_value(Setting::airflow_password).value_or("");
    if (settings.username.empty() || settings.password.empty())
        throw UsageError(fmt::format("airflow_url is {} but BTCML_AIRFLOW_USERNAME or BTCML_AIRFLOW_PASSWORD is not "
                                     "set: credentials come from the environment only",
                                     settings.url));
    // The alert's store transaction waits for Airflow: fail fast (503) and let Alertmanager retry the notification.
    net::ClientOptions client;
    client.connect_timeout = std::chrono::seconds(5);
    client.timeout = std::chrono::seconds(15);
    client.retry.max_attempts = 2;
    return std::make_shared<AirflowRelay>(std::move(settings), client);
}

std::string alert_dag_run_id(const std::string& group_key, const std::string& starts_at, const std::string& symbol,
                             const std::string& interval) {
    // The group key is long and full of label syntax: a digest keeps the id short and within Airflow's pattern.
    std::array<unsigned char, 32> digest{};
    if (EVP_Digest(group_key.data(), group_key.size(), digest.data(), nullptr, EVP_sha256(), nullptr) != 1)
        throw Error(ErrorKind::internal, "SHA-256 failed (libcrypto)");
    return run_id_safe(fmt::format("alert__{}-{}__{}__{:02x}", symbol, interval, starts_at,
                                   fmt::join(digest.begin(), digest.begin() + 8, "")));
}

AirflowRelay::AirflowRelay(AirflowSettings settings, net::ClientOptions client)
    : settings_(std::move(settings)), client_options_(std::move(client)) {}

std::string AirflowRelay::token(net::HttpClient& client, bool renew) {
    std::lock_guard lock(mutex_);
    if (!token_.empty() && !renew) return token_;
    const nlohmann::json body{{"username", settings_.username}, {"password", settings_.password}};
    const auto response =
        client.post(settings_.url + "/auth/token", body.dump(), {{"Content-Type", "application/json"}});
    if (!response.ok()) throw Unavailable(refused(fmt::format("a token for user '{}'", settings_.username), response));
    const auto reply = nlohmann::json::parse(response.body, nullptr, false);
    if (!reply.is_object() || !reply.contains("access_token") || !reply["access_token"].is_string())
        throw Unavailable(fmt::format("Airflow at {} answered POST /auth/token without an access_token",
                                      net::url_host(response.url)));
    token_ = reply["access_token"].get<std::string>();
    return token_;
}

AirflowRelay::Triggered AirflowRelay::trigger(const std::string& dag_run_id, const nlohmann::json& conf) {
    net::HttpClient client(client_options_);
    const auto url = fmt::format("{}/api/v2/dags/{}/dagRuns", settings_.url, net::url_escape(settings_.dag_id));
    const nlohmann::json body{{"dag_run_id", dag_run_id}, {"logical_date", nullptr}, {"conf", conf}};
    net::HttpResponse response;
    // A cached token may have expired: renew it once on 401.
    for (const bool renew : {false, true}) {
        response =
            client.post(url, body.dump(),
                        {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + token(client, renew)}});
        if (response.status != 401) break;
    }
    if (response.ok()) return {dag_run_id, true};
    if (response.status == 409) return {dag_run_id, false};
    throw Unavailable(refused(fmt::format("a run of DAG {}", settings_.dag_id), response));
}

} // namespace btcml::pipeline
