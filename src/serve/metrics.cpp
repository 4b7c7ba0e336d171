#include "serve/metrics.hpp"

#include "core/time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>
#include <vector>

namespace btcml::serve {
namespace {

std::string_view intern_method(std::string_view method) {
    static constexpr std::string_view known[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    for (const auto m : known)
        if (m == method) return m;
    return method.empty() ? "unknown" : "other";
}

std::string escape_label(std::string_view value) {
    std::string out;
    for (const char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        out += c == '\n' ? 'n' : c;
    }
    return out;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

struct ProcessStats {
    double cpu_seconds = 0;
    double resident_bytes = 0;
    double open_fds = 0;
    double start_time = 0;
};

ProcessStats process_stats() {
    ProcessStats s;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    if (std::ifstream stat("/proc/self/stat"); stat) {
        std::string line;
        std::getline(stat, line);
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15, starttime 22.
        std::istringstream rest(line.substr(line.rfind(')') + 2));
        std::vector<std::string> f{std::istream_iterator<std::string>(rest), {}};
        if (f.size() > 19) {
            s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
            double boot = 0;
            if (std::ifstream proc_stat("/proc/stat"); proc_stat)
                for (std::string key; proc_stat >> key;)
                    if (key == "btime") {
                        proc_stat >> boot;
                        break;
                    }
            s.start_time = boot + std::stod(f[19]) / ticks;
        }
    }
    if (std::ifstream statm("/proc/self/statm"); statm) {
        double size = 0, resident = 0;
        statm >> size >> resident;
        s.resident_bytes = resident * static_cast<double>(sysconf(_SC_PAGESIZE));
    }
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != decltype(it){};
         it.increment(ec))
        ++s.open_fds;
    return s;
}

} // namespace

void Metrics::observe(const Exchange& e) {
    const std::lock_guard lock(mutex_);
    auto& s = requests_[{e.route, intern_method(e.method), e.status}];
    ++s.count;
    s.sum += e.seconds;
    const auto bucket = std::lower_bound(kBuckets.begin(), kBuckets.end(), e.seconds) - kBuckets.begin();
    if (bucket < static_cast<std::ptrdiff_t>(kBuckets.size())) ++s.buckets[static_cast<std::size_t>(bucket)];
}

void Metrics::model_loaded(const SeriesKey& series, int version, double load_seconds, std::int64_t loaded_at) {
    const std::lock_guard lock(mutex_);
    auto& s = series_[{series.symbol, series.interval}];
    s.model_version = version;
    s.load_seconds = load_seconds;
    s.loaded_at = loaded_at;
}

void Metrics::model_load_failed(const SeriesKey& series) {
    const std::lock_guard lock(mutex_);
    ++series_[{series.symbol, series.interval}].load_failures;
}

void Metrics::forecast_made(const SeriesKey& series, const model::Forecast& forecast) {
    const std::lock_guard lock(mutex_);
    auto& s = series_[{series.symbol, series.interval}];
    s.forecast_as_of = forecast.as_of;
    s.forecast = forecast.horizons;
}

void Metrics::latest_bar_seen(const SeriesKey& series, std::int64_t time) {
    const std::lock_guard lock(mutex_);
    series_[{series.symbol, series.interval}].latest_bar = time;
}

void Metrics::predictions_stored(std::int64_t count) { predictions_stored_.fetch_add(count); }

void Metrics::predictions_not_stored(NotStoredReason reason, std::int64_t count) {
    predictions_not_stored_.at(static_cast<std::size_t>(reason)).fetch_add(count);
}

void Metrics::count_in_flight_with(std::function<int()> in_flight) { in_flight_ = std::move(in_flight); }

void Metrics::count_server_with(std::function<ServerStats()> stats) { server_stats_ = std::move(stats); }

void Metrics::append_with(std::function<void(std::string&)> render) { append_ = std::move(render); }

std::string Metrics::render() const {
    std::string out;
    out.reserve(8192);
    const std::lock_guard lock(mutex_);

    header(out, "btcml_http_requests_total", "counter", "HTTP requests answered, by route pattern, method and status.");
    for (const auto& [key, s] : requests_) {
        const auto& [route, method, status] = key;
        out += fmt::format("btcml_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                           escape_label(route), method, status, s.count);
    }
    header(out, "btcml_http_request_duration_seconds", "histogram",
           "Time from a parsed request to its response being ready, by route pattern, method and status.");
    for (const auto& [key, s] : requests_) {
        const auto& [route, method, status] = key;
        const auto labels =
            fmt::format("route=\"{}\",method=\"{}\",status=\"{}\"", escape_label(route), method, status);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < kBuckets.size(); ++i) {
            cumulative += s.buckets[i];
            out += fmt::format("btcml_http_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels, kBuckets[i],
                               cumulative);
        }
        out += fmt::format("btcml_http_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, s.count);
        out += fmt::format("btcml_http_request_duration_seconds_sum{{{}}} {}\n", labels, s.sum);
        out += fmt::format("btcml_http_request_duration_seconds_count{{{}}} {}\n", labels, s.count);
    }
    header(out, "btcml_http_requests_in_flight", "gauge", "Requests being handled or written now.");
    out += fmt::format("btcml_http_requests_in_flight {}\n", in_flight_ ? in_flight_() : 0);
    const auto server = server_stats_ ? server_stats_() : ServerStats{};
    header(out, "btcml_http_accept_errors_total", "counter",
           "Failed accepts (e.g. EMFILE: out of file descriptors), each followed by a back-off of 0.1 to 1 s.");
    out += fmt::format("btcml_http_accept_errors_total {}\n", server.accept_errors);
    header(out, "btcml_http_auth_failures_total", "counter", "Requests with a wrong API key.");
    out += fmt::format("btcml_http_auth_failures_total {}\n", server.auth_failures);
    header(out, "btcml_http_auth_rate_limited_total", "counter",
           "Requests refused with 429 because their address sent too many wrong API keys.");
    out += fmt::format("btcml_http_auth_rate_limited_total {}\n", server.auth_rate_limited);
    header(out, "btcml_http_worker_queue_rejected_total", "counter",
           "Requests refused with 503 because the worker pool's queue was full.");
    out += fmt::format("btcml_http_worker_queue_rejected_total {}\n", server.pool_rejected);
    header(out, "btcml_http_worker_queue_requests", "gauge",
           "Requests waiting for or running on the worker pool (store, disk and model work).");
    out += fmt::format("btcml_http_worker_queue_requests {}\n", server.pool_queued);

    // Every series with a champion, labelled symbol and interval: each is loaded and reloaded on its own.
    const auto labels = [](const auto& key) {
        return fmt::format("symbol=\"{}\",interval=\"{}\"", escape_label(key.first), format_interval(key.second));
    };
    header(out, "btcml_model_info", "gauge", "The model serving a series; its version is a label (0: none loaded).");
    for (const auto& [key, s] : series_)
        out += fmt::format("btcml_model_info{{{},version=\"{}\"}} 1\n", labels(key), s.model_version);
    header(out, "btcml_model_version", "gauge", "The version of the model serving a series (0: none loaded).");
    for (const auto& [key, s] : series_)
        out += fmt::format("btcml_model_version{{{}}} {}\n", labels(key), s.model_version);
    header(out, "btcml_model_load_duration_seconds", "gauge", "How long loading a series' serving model took.");
    for (const auto& [key, s] : series_)
        out += fmt::format("btcml_model_load_duration_seconds{{{}}} {}\n", labels(key), s.load_seconds);
    header(out, "btcml_model_loaded_timestamp_seconds", "gauge",
           "When a series' serving model was swapped in (unix time).");
    for (const auto& [key, s] : series_)
        out += fmt::format("btcml_model_loaded_timestamp_seconds{{{}}} {}\n", labels(key), s.loaded_at);
    header(out, "btcml_model_load_failures_total", "counter",
           "Champions of a series that failed to load (its previous model, if any, kept serving).");
    for (const auto& [key, s] : series_)
        out += fmt::format("btcml_model_load_failures_total{{{}}} {}\n", labels(key), s.load_failures);

    static constexpr std::pair<const char*, double model::HorizonForecast::*> kForecastFields[] = {
        {"price", &model::HorizonForecast::price},
        {"lower", &model::HorizonForecast::lower},
        {"upper", &model::HorizonForecast::upper},
    };
    header(out, "btcml_forecast_price", "gauge",
           "A series' champion's latest forecast per horizon (bars): median price and the 80% interval's bounds.");
    for (const auto& [key, s] : series_)
        for (const auto& h : s.forecast)
            for (const auto& [name, field] : kForecastFields)
                out += fmt::format("btcml_forecast_price{{{},horizon=\"{}\",quantity=\"{}\"}} {}\n", labels(key),
                                   h.horizon, name, h.*field);
    header(out, "btcml_forecast_log_return", "gauge",
           "A series' champion's latest median log-return forecast per horizon.");
    for (const auto& [key, s] : series_)
        for (const auto& h : s.forecast)
            out += fmt::format("btcml_forecast_log_return{{{},horizon=\"{}\"}} {}\n", labels(key), h.horizon,
                               h.log_return);
    header(out, "btcml_forecast_as_of_timestamp_seconds", "gauge",
           "Open time of the last bar a series' latest forecast used (0: none yet).");
    for (const auto& [key, s] : series_)
        out += fmt::format("btcml_forecast_as_of_timestamp_seconds{{{}}} {}\n", labels(key), s.forecast_as_of);

    header(out, "btcml_latest_bar_age_seconds", "gauge",
           "Seconds since the open time of the latest stored bar of a served series (absent: none stored).");
    for (const auto& [key, s] : series_)
        if (s.latest_bar != 0)
            out += fmt::format("btcml_latest_bar_age_seconds{{{}}} {}\n", labels(key), now_unix() - s.latest_bar);
    header(out, "btcml_predictions_stored_total", "counter", "Predictions (one per horizon) this server stored.");
    out += fmt::format("btcml_predictions_stored_total {}\n", predictions_stored_.load());
    header(out, "btcml_predictions_not_stored_total", "counter",
           "Predictions (one per horizon) answered but not stored: over the anonymous budget, or lost to a long "
           "store outage.");
    out += fmt::format("btcml_predictions_not_stored_total{{reason=\"anonymous_budget\"}} {}\n",
                       predictions_not_stored_[static_cast<std::size_t>(NotStoredReason::anonymous_budget)].load());
    out += fmt::format("btcml_predictions_not_stored_total{{reason=\"store_unavailable\"}} {}\n",
                       predictions_not_stored_[static_cast<std::size_t>(NotStoredReason::store_unavailable)].load());

    const auto p = process_stats();
    header(out, "btcml_process_cpu_seconds_total", "counter", "User and system CPU time of the server process.");
    out += fmt::format("btcml_process_cpu_seconds_total {}\n", p.cpu_seconds);
    header(out, "btcml_process_resident_memory_bytes", "gauge", "Resident memory of the server process.");
    out += fmt::format("btcml_process_resident_memory_bytes {}\n", p.resident_bytes);
    header(out, "btcml_process_open_fds", "gauge", "Open file descriptors of the server process.");
    out += fmt::format("btcml_process_open_fds {}\n", p.open_fds);
    header(out, "btcml_process_start_time_seconds", "gauge", "When the server process started (unix time).");
    out += fmt::format("btcml_process_start_time_seconds {}\n", p.start_time);
    if (append_) append_(out);
    return out;
}

} // namespace btcml::serve
