#include "monitor/log_sink.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "serve/assets.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace btcml::monitor {
namespace {

std::size_t positive_setting(const Config& config, Setting setting) {
    const auto text = config.value(setting);
    std::size_t value = 0;
    const auto res = std::from_chars(text.data(), text.data() + text.size(), value);
    if (res.ec != std::errc{} || res.ptr != text.data() + text.size() || value == 0)
        throw UsageError(fmt::format("{}: '{}' is not a positive whole number", spec(setting).key, text));
    return value;
}

} // namespace

std::optional<LogSinkOptions> log_sink_options(const Config& config) {
    LogSinkOptions options;
    options.url = config.value(Setting::log_sink);
    if (options.url.empty()) return std::nullopt;
    if (!options.url.starts_with("http://") && !options.url.starts_with("https://"))
        throw UsageError(fmt::format("log_sink: '{}' is not an http:// or https:// URL (the base URL of an "
                                     "Elasticsearch or OpenSearch server)",
                                     options.url));
    while (options.url.ends_with('/'))
        options.url.pop_back();
    options.index = config.value(Setting::log_sink_index);
    if (options.index.empty() || options.index.find_first_of("/*?\"<>| ,#:\\") != std::string::npos)
        throw UsageError(fmt::format("log_sink_index: '{}' is not a valid data stream name", options.index));
    options.queue_limit = positive_setting(config, Setting::log_sink_queue);
    options.flush_interval = std::chrono::milliseconds(positive_setting(config, Setting::log_sink_flush_ms));
    // Credentials never come from the config file, which is often readable by more people than the secret.
    if (const auto user = env_value(Setting::log_sink_user))
        options.auth = net::BasicAuth{*user, env_value(Setting::log_sink_password).value_or("")};
    options.api_key = env_value(Setting::log_sink_api_key).value_or("");
    return options;
}

LogSink::LogSink(LogSinkOptions options) : options_(std::move(options)), thread_([this] { run(); }) {}

LogSink::~LogSink() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void LogSink::enqueue(std::string document) {
    {
        const std::lock_guard lock(mutex_);
        if (queue_.size() >= options_.queue_limit) {
            dropped_queue_full_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        queue_.push_back(std::move(document));
        if (queue_.size() < options_.batch_size) return;
    }
    wake_.notify_one();
}

LogSinkStats LogSink::stats() const {
    LogSinkStats s;
    s.shipped = shipped_.load();
    s.dropped_queue_full = dropped_queue_full_.load();
    s.dropped_rejected = dropped_rejected_.load();
    s.dropped_shutdown = dropped_shutdown_.load();
    s.failed_requests = failed_requests_.load();
    const std::lock_guard lock(mutex_);
    s.queued = queue_.size();
    return s;
}

void LogSink::render(std::string& out) const {
    const auto s = stats();
    out += "# HELP btcml_log_events_shipped_total Log events the log store accepted.\n"
           "# TYPE btcml_log_events_shipped_total counter\n";
    out += fmt::format("btcml_log_events_shipped_total {}\n", s.shipped);
    out += "# HELP btcml_log_events_dropped_total Log events never shipped: the queue was full (the store was "
           "unreachable or slow), the store refused them, or the process stopped first.\n"
           "# TYPE btcml_log_events_dropped_total counter\n";
    out += fmt::format("btcml_log_events_dropped_total{{reason=\"queue_full\"}} {}\n", s.dropped_queue_full);
    out += fmt::format("btcml_log_events_dropped_total{{reason=\"rejected\"}} {}\n", s.dropped_rejected);
    out += fmt::format("btcml_log_events_dropped_total{{reason=\"shutdown\"}} {}\n", s.dropped_shutdown);
    out += "# HELP btcml_log_sink_failed_requests_total Bulk requests to the log store that failed (each is retried).\n"
           "# TYPE btcml_log_sink_failed_requests_total counter\n";
    out += fmt::format("btcml_log_sink_failed_requests_total {}\n", s.failed_requests);
    out += "# HELP btcml_log_events_queued Log events waiting to be shipped.\n"
           "# TYPE btcml_log_events_queued gauge\n";
    out += fmt::format("btcml_log_events_queued {}\n", s.queued);
}

net::Headers LogSink::headers(std::string_view content_type) const {
    net::Headers h{{"Content-Type", std::string(content_type)}};
    if (!options_.api_key.empty()) h.emplace_back("Authorization", "ApiKey " + options_.api_key);
    return h;
}

bool LogSink::install_template(net::HttpClient& client) {
    const auto body = serve::asset("btcml-logs-template.json");
    auto document = nlohmann::json::parse(*body);
    document["index_patterns"] = nlohmann::json::array({options_.index + "*"});
    try {
        const auto r = client.send({"PUT", fmt::format("{}/_index_template/{}", options_.url, options_.index),
                                    headers("application/json"), document.dump(), options_.auth});
        if (r.ok()) return true;
        log::warn("log sink: the index template was not installed; retrying",
                  {{"http.response.status_code", r.status}, {"error.message", net::error_gist(r.body)}});
    } catch (const std::exception&) {
        // Unreachable: the caller reports it once, when shipping starts to fail.
    }
    return false;
}

bool LogSink::send(net::HttpClient& client, const std::deque<std::string>& batch) {
    std::string body;
    for (const auto& document : batch) {
        body += R"({"create":{}})"; // data streams accept only `create`
        body += '\n';
        body += document;
        body += '\n';
    }
    net::HttpResponse r;
    try {
        r = client.send({"POST", fmt::format("{}/{}/_bulk", options_.url, options_.index),
                         headers("application/x-ndjson"), std::move(body), options_.auth});
    } catch (const std::exception&) {
        return false;
    }
    if (net::is_retryable_status(r.status)) return false;
    if (!r.ok()) {
        // 400, 401, 403, 404: the same batch would fail again; drop it and say why.
        dropped_rejected_.fetch_add(batch.size());
        log::warn("log sink: the log store refused a batch; its events are dropped",
                  {{"http.response.status_code", r.status}, {"error.message", net::error_gist(r.body)}});
        return true;
    }
    // A bulk reply is 200 even when some documents failed: count those one by one.
    std::size_t rejected = 0;
    nlohmann::json first_error;
    const auto reply = nlohmann::json::parse(r.body, nullptr, false);
    if (reply.is_object() && reply.value("errors", false) && reply.contains("items")) {
        for (const auto& item : reply["items"]) {
            const auto& result = item.begin().value();
            if (!result.contains("error")) continue;
            ++rejected;
            if (first_error.is_null()) first_error = result["error"];
        }
    }
    shipped_.fetch_add(batch.size() - rejected);
    if (rejected > 0) {
        dropped_rejected_.fetch_add(rejected);
        // The store's own error type (mapper_parsing_exception, …) and reason, of the first refused event.
        const auto part = [&first_error](const char* key) {
            const auto it = first_error.is_object() ? first_error.find(key) : first_error.end();
            return it != first_error.end() && it->is_string() ? it->get<std::string>() : std::string();
        };
        const auto reason = part("reason");
        log::warn("log sink: the log store refused some events",
                  {{"events", rejected},
                   {"error.type", part("type")},
                   {"error.message", reason.empty() ? first_error.dump() : reason}});
    }
    return true;
}

void LogSink::run() {
    const log::LocalOnly local; // our own failures go to stderr, never back into the queue
    net::ClientOptions client_options;
    client_options.retry.max_attempts = 1; // retried here, with the queue in mind
    client_options.timeout = options_.request_timeout;
    client_options.connect_timeout = std::min(options_.request_timeout, std::chrono::milliseconds(2000));
    net::HttpClient client(client_options);
    bool template_installed = false;
    bool failing = false;
    std::chrono::milliseconds backoff{0};
    std::deque<std::string> batch;
    std::optional<std::chrono::steady_clock::time_point> give_up; // set once stopping
    std::unique_lock lock(mutex_);
    while (true) {
        if (!stopping_ && batch.empty())
            wake_.wait_for(lock, options_.flush_interval,
                           [this] { return stopping_ || queue_.size() >= options_.batch_size; });
        else if (!stopping_ && backoff.count() > 0)
            wake_.wait_for(lock, backoff, [this] { return stopping_; });
        if (stopping_ && !give_up) give_up = std::chrono::steady_clock::now() + options_.shutdown_grace;
        if (give_up && std::chrono::steady_clock::now() >= *give_up) {
            dropped_shutdown_.fetch_add(batch.size() + queue_.size());
            return;
        }
        // A batch that failed is retried as it is: the queue alone holds what came after, so its limit is the bound.
        if (batch.empty() && !queue_.empty()) {
            const auto end = queue_.begin() + static_cast<std::ptrdiff_t>(std::min(options_.batch_size, queue_.size()));
            batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
            queue_.erase(queue_.begin(), end);
        }
        if (batch.empty()) {
            if (stopping_) return;
            continue;
        }
        lock.unlock();
        template_installed = template_installed || install_template(client);
        const bool sent = template_installed && send(client, batch);
        if (sent && failing) log::info("log sink: shipping again", {{"url.full", options_.url}});
        if (!sent && !failing)
            log::warn("log sink: the log store is unreachable; events queue and are retried (dropped once the queue is "
                      "full)",
                      {{"url.full", options_.url}, {"queue_limit", options_.queue_limit}});
        failing = !sent;
        lock.lock();
        if (sent) {
            batch.clear();
            backoff = {};
            continue;
        }
        failed_requests_.fetch_add(1);
        if (stopping_) { // no time to wait for the store to come back
            dropped_shutdown_.fetch_add(batch.size() + queue_.size());
            return;
        }
        backoff = std::clamp(backoff * 2, std::chrono::milliseconds(250), options_.max_backoff);
    }
}

} // namespace btcml::monitor
