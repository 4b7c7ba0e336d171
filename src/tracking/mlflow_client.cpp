#include "tracking/mlflow_client.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace btcml::tracking {
namespace {

constexpr std::string_view kApi = "/api/2.0/mlflow/";
constexpr std::string_view kArtifactScheme = "mlflow-artifacts:";

nlohmann::json key_values(const store::KeyValues& kv) {
    auto out = nlohmann::json::array();
    for (const auto& [key, value] : kv)
        out.push_back({{"key", key}, {"value", value}});
    return out;
}

RemoteRun read_run(const nlohmann::json& run) {
    const auto& info = run.at("info");
    return {info.at("run_id").get<std::string>(), info.at("experiment_id").get<std::string>(),
            info.value("artifact_uri", std::string()), info.value("status", std::string())};
}

// A non-empty name with consecutive, leading or trailing slashes or `.`/`..` segments would name another path.
bool path_is_unique(std::string_view name) {
    if (name.front() == '/' || name.back() == '/') return false;
    std::size_t start = 0;
    while (start <= name.size()) {
        const std::size_t end = std::min(name.find('/', start), name.size());
        const auto segment = name.substr(start, end - start);
        if (segment.empty() || segment == "." || segment == "..") return false;
        start = end + 1;
    }
    return true;
}

} // namespace

void check_key(const std::string& key, const char* what) {
    if (key.empty()) throw InvalidInput(fmt::format("MLflow {} key is empty", what));
    if (key.size() > max_key_length)
        throw InvalidInput(
            fmt::format("MLflow {} key '{}…' is longer than {} characters", what, key.substr(0, 40), max_key_length));
    const bool chars_ok = std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
               std::string_view("_-.:/ ").find(c) != std::string_view::npos;
    });
    if (!chars_ok)
        throw InvalidInput(
            fmt::format("MLflow {} key '{}' may hold only alphanumerics, _ - . : / and spaces", what, key));
    if (!path_is_unique(key))
        throw InvalidInput(fmt::format("MLflow {} key '{}' is not a clean path (no leading, trailing or double "
                                       "slashes, no . or .. segments)",
                                       what, key));
}

void check_param(const std::string& key, const std::string& value) {
    check_key(key, "parameter");
    if (value.size() > max_param_value_length)
        throw InvalidInput(fmt::format("MLflow parameter '{}' is {} characters long; the limit is {}", key,
                                       value.size(), max_param_value_length));
}

void check_tag(const std::string& key, const std::string& value) {
    check_key(key, "tag");
    if (value.size() > max_tag_value_length)
        throw InvalidInput(fmt::format("MLflow tag '{}' is {} characters long; the limit is {}", key, value.size(),
                                       max_tag_value_length));
}

std::vector<Batch> split_batches(const store::RunData& data) {
    std::vector<Batch> out;
    const auto room = [&] {
        if (out.empty()) return false;
        const Batch& b = out.back();
        return b.metrics.size() + b.params.size() + b.tags.size() < max_entities_per_batch;
    };
    for (const auto& [key, value] : data.params) {
        check_param(key, value);
        if (!room() || out.back().params.size() >= max_params_tags_per_batch) out.emplace_back();
        out.back().params.emplace_back(key, value);
    }
    for (const auto& [key, value] : data.tags) {
        check_tag(key, value);
        if (!room() || out.back().tags.size() >= max_params_tags_per_batch) out.emplace_back();
        out.back().tags.emplace_back(key, value);
    }
    for (const auto& m : data.metrics) {
        check_key(m.key, "metric");
        if (!room() || out.back().metrics.size() >= max_metrics_per_batch) out.emplace_back();
        out.back().metrics.push_back(m);
    }
    return out;
}

MlflowClient::MlflowClient(std::string uri, net::ClientOptions options)
    : uri_(std::move(uri)), http_(std::move(options)) {
    while (!uri_.empty() && uri_.back() == '/')
        uri_.pop_back();
    if (!uri_.starts_with("http://") && !uri_.starts_with("https://"))
        throw UsageError(fmt::format("--tracking-uri: '{}' is not an MLflow server URL (http://HOST:PORT)", uri_));
}

nlohmann::json MlflowClient::call(const std::string& method, const std::string& endpoint, const nlohmann::json& body) {
    return send(method, endpoint, "", body.dump());
}

nlohmann::json MlflowClient::get(const std::string& endpoint, const std::string& query) {
    return send("GET", endpoint, query, "");
}

nlohmann::json MlflowClient::send(const std::string& method, const std::string& endpoint, const std::string& query,
                                  std::string body) {
    std::string url = uri_ + std::string(kApi) + endpoint;
    if (!query.empty()) url += "?" + query;
    net::Headers headers;
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    const auto response = http_.send({method, url, std::move(headers), std::move(body), std::nullopt});
    const auto json = nlohmann::json::parse(response.body, nullptr, false);
    if (response.ok()) {
        if (json.is_discarded() || !json.is_object())
            throw UsageError(fmt::format("{} is not an MLflow server: {} {} answered HTTP {} with a body that is not "
                                         "JSON",
                                         uri_, method, endpoint, response.status));
        return json;
    }
    if (json.is_object() && json.contains("error_code")) {
        const std::string code = json.value("error_code", "");
        const std::string message =
            fmt::format("MLflow at {}: {} {}: {}: {}", uri_, method, endpoint, code, json.value("message", ""));
        if (code == "RESOURCE_DOES_NOT_EXIST") throw NotFound(message);
        if (code == "RESOURCE_ALREADY_EXISTS") throw Conflict(message);
        if (response.status >= 500) throw Unavailable(message);
        throw InvalidInput(message);
    }
    const std::string gist = net::error_gist(response.body);
    std::string hint;
    if (response.status == 403 && gist.find("Invalid Host header") != std::string::npos)
        hint = fmt::format("; the server refuses the host name {}: start it with --allowed-hosts including it, or "
                           "use an address it allows",
                           net::url_host(uri_));
    else if (response.status == 404)
        hint = "; no MLflow REST API there (is --tracking-uri the address of `mlflow server`?)";
    const std::string message =
        fmt::format("{} did not answer as an MLflow server: {} {} gave HTTP {}{}{}", uri_, method, endpoint,
                    response.status, gist.empty() ? "" : fmt::format(" ({})", gist), hint);
    // A gateway's 5xx page while MLflow restarts is transient; anything else means the URI is not MLflow's.
    if (response.status >= 500) throw Unavailable(message);
    throw UsageError(message);
}

std::string MlflowClient::get_or_create_experiment(const std::string& name) {
    try {
        const auto found = get("experiments/get-by-name", "experiment_name=" + net::url_escape(name));
        const auto& experiment = found.at("experiment");
        const std::string id = experiment.at("experiment_id").get<std::string>();
        if (experiment.value("lifecycle_stage", "active") == "deleted")
            call("POST", "experiments/restore", {{"experiment_id", id}});
        return id;
    } catch (const NotFound&) {
    }
    try {
        return call("POST", "experiments/create", {{"name", name}}).at("experiment_id").get<std::string>();
    } catch (const Conflict&) { // another process created it meanwhile
        return get("experiments/get-by-name", "experiment_name=" + net::url_escape(name))
            .at("experiment")
            .at("experiment_id")
            .get<std::string>();
    }
}

RemoteRun MlflowClient::create_run(const std::string& experiment_id, const std::string& run_name, std::int64_t start_ms,
                                   const store::KeyValues& tags) {
    for (const auto& [key, value] : tags)
        check_tag(key, value);
    std::string user;
    for (const auto& [key, value] : tags)
        if (key == "mlflow.user") user = value;
    const auto out = call("POST", "runs/create",
                          {{"experiment_id", experiment_id},
                           {"run_name", run_name},
                           {"start_time", start_ms},
                           {"user_id", user},
                           {"tags", key_values(tags)}});
    return read_run(out.at("run"));
}

std::optional<RemoteRun> MlflowClient::get_run(const std::string& run_id) {
    try {
        return read_run(get("runs/get", "run_id=" + net::url_escape(run_id)).at("run"));
    } catch (const NotFound&) {
        return std::nullopt;
    }
}

std::optional<RemoteRun> MlflowClient::find_run_by_tag(const std::string& experiment_id, const std::string& key,
                                                       const std::string& value) {
    const auto out = call("POST", "runs/search",
                          {{"experiment_ids", {experiment_id}},
                           {"filter", fmt::format("tags.`{}` = '{}'", key, value)},
                           {"max_results", 1}});
    if (!out.contains("runs") || out["runs"].empty()) return std::nullopt;
    return read_run(out["runs"][0]);
}

void MlflowClient::log_batch(const std::string& run_id, const Batch& batch) {
    auto metrics = nlohmann::json::array();
    for (const auto& m : batch.metrics)
        metrics.push_back({{"key", m.key}, {"value", m.value}, {"timestamp", m.timestamp_ms}, {"step", m.step}});
    call("POST", "runs/log-batch",
         {{"run_id", run_id},
          {"metrics", metrics},
          {"params", key_values(batch.params)},
          {"tags", key_values(batch.tags)}});
}

void MlflowClient::end_run(const std::string& run_id, const std::string& status, std::int64_t end_ms) {
    call("POST", "runs/update", {{"run_id", run_id}, {"status", status}, {"end_time", end_ms}});
}

void MlflowClient::upload_artifact(const std::string& artifact_uri, const std::string& path, std::string bytes) {
    if (!artifact_uri.starts_with(kArtifactScheme))
        throw Conflict(fmt::format("MLflow at {} stores artifacts at '{}', which btcml cannot upload to: start the "
                                   "server with artifact proxying (mlflow server --artifacts-destination DIR)",
                                   uri_, artifact_uri));
    // mlflow-artifacts:/1/<run>/artifacts or mlflow-artifacts://host:port/1/<run>/artifacts
    std::string rest = artifact_uri.substr(kArtifactScheme.size());
    if (rest.starts_with("//")) rest = rest.substr(std::min(rest.find('/', 2), rest.size()));
    while (!rest.empty() && rest.front() == '/')
        rest.erase(0, 1);
    std::string url = uri_ + "/api/2.0/mlflow-artifacts/artifacts/";
    for (const std::string& part : {rest, path}) {
        std::size_t start = 0;
        while (start < part.size()) {
            const std::size_t end = std::min(part.find('/', start), part.size());
            url += net::url_escape(part.substr(start, end - start)) + "/";
            start = end + 1;
        }
    }
    url.pop_back();
    const auto response = http_.put(url, std::move(bytes), {{"Content-Type", "application/octet-stream"}});
    if (!response.ok())
        throw Unavailable(fmt::format("MLflow at {}: uploading artifact {} gave HTTP {} ({})", uri_, path,
                                      response.status, net::error_gist(response.body)));
}

void MlflowClient::ensure_registered_model(const std::string& name, const std::string& description) {
    try {
        call("POST", "registered-models/create", {{"name", name}, {"description", description}});
    } catch (const Conflict&) { // it exists: that is all we need
    }
}

std::string MlflowClient::create_model_version(const std::string& name, const std::string& source,
                                               const std::string& run_id, const store::KeyValues& tags,
                                               const std::string& description) {
    const auto out = call("POST", "model-versions/create",
                          {{"name", name},
                           {"source", source},
                           {"run_id", run_id},
                           {"tags", key_values(tags)},
                           {"description", description}});
    return out.at("model_version").at("version").get<std::string>();
}

std::optional<std::string> MlflowClient::find_model_version(const std::string& name, const std::string& key,
                                                            const std::string& value) {
    const auto out =
        get("model-versions/search",
            "filter=" + net::url_escape(fmt::format("name = '{}' and tags.`{}` = '{}'", name, key, value)));
    if (!out.contains("model_versions") || out["model_versions"].empty()) return std::nullopt;
    return out["model_versions"][0].at("version").get<std::string>();
}

void MlflowClient::set_model_version_tag(const std::string& name, const std::string& version, const std::string& key,
                                         const std::string& value) {
    check_key(key, "model version tag");
    call("POST", "model-versions/set-tag", {{"name", name}, {"version", version}, {"key", key}, {"value", value}});
}

void MlflowClient::set_alias(const std::string& name, const std::string& alias, const std::string& version) {
    call("POST", "registered-models/alias", {{"name", name}, {"alias", alias}, {"version", version}});
}

void MlflowClient::delete_alias(const std::string& name, const std::string& alias) {
    call("DELETE", "registered-models/alias", {{"name", name}, {"alias", alias}});
}

std::map<std::string, std::string> MlflowClient::aliases(const std::string& name) {
    std::map<std::string, std::string> out;
    const auto model = get("registered-models/get", "name=" + net::url_escape(name)).at("registered_model");
    for (const auto& a : model.value("aliases", nlohmann::json::array()))
        out[a.at("alias").get<std::string>()] = a.at("version").get<std::string>();
    return out;
}

} // namespace btcml::tracking
