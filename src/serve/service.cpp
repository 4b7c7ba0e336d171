#include "serve/service.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "features/dataset.hpp"
#include "model/artifact.hpp"
#include "tracking/registry.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <chrono>

namespace btcml::serve {
namespace {

// Repeats of recent forecasts are dropped in memory; beyond this many keys the set starts afresh.
constexpr std::size_t kRecentKeys = 10'000;

std::string forecast_key(const store::Prediction& first) {
    return fmt::format("{}|{}|{}|{}|{}", first.model_version, first.symbol, first.interval, first.origin_time,
                       first.input_hash);
}

} // namespace

int resolve_champion(const std::filesystem::path& home) { return model::resolve_version(home, "champion"); }

std::optional<int> promote_champion(store::Store& store, const ServiceOptions& options, int version) {
    tracking::Registry registry(store, options.home, options.tracking_uri);
    return registry.promote(version, "promoted through POST /api/v1/models/{version}/promote");
}

StorePool::StorePool(std::string url, std::filesystem::path home) : url_(std::move(url)), home_(std::move(home)) {}

StorePool::Lease::~Lease() {
    if (!store_) return;
    try {
        store_->rollback(); // a handler that threw may have left a transaction open
    } catch (const std::exception& e) {
        log::warn("dropping a store connection that failed to roll back", {{"error.message", e.what()}});
        return;
    }
    const std::lock_guard lock(pool_.mutex_);
    pool_.idle_.push_back(std::move(store_));
}

StorePool::Lease StorePool::acquire() {
    {
        const std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            auto store = std::move(idle_.back());
            idle_.pop_back();
            return {*this, std::move(store)};
        }
    }
    return {*this, store::open_store(url_, home_)};
}

PredictionWriter::PredictionWriter(StorePool& pool, Metrics& metrics)
    : pool_(pool), metrics_(metrics), thread_([this] { loop(); }) {}

PredictionWriter::~PredictionWriter() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void PredictionWriter::add(std::vector<store::Prediction> predictions) {
    if (predictions.empty()) return;
    {
        const std::lock_guard lock(mutex_);
        if (recent_.size() >= kRecentKeys) recent_.clear();
        if (!recent_.insert(forecast_key(predictions.front())).second) return;
        queue_.insert(queue_.end(), std::make_move_iterator(predictions.begin()),
                      std::make_move_iterator(predictions.end()));
        ++queued_batches_;
    }
    wake_.notify_one();
}

void PredictionWriter::flush() {
    std::unique_lock lock(mutex_);
    const auto target = queued_batches_;
    written_.wait(lock, [&] { return written_batches_ >= target; });
}

void PredictionWriter::loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) return;
        auto batch = std::move(queue_);
        queue_.clear();
        const auto batches = queued_batches_;
        lock.unlock();
        try {
            auto store = pool_.acquire();
            metrics_.predictions_stored(store->insert_predictions(batch));
        } catch (const std::exception& e) {
            // Losing a prediction loses a monitoring point, never a reply: log it and go on.
            log::error("storing predictions failed", {{"error.message", e.what()}, {"predictions", batch.size()}});
        }
        lock.lock();
        written_batches_ = batches;
        written_.notify_all();
    }
}

Service::Service(ServiceOptions options)
    : options_(std::move(options)), stores_(options_.db_url, options_.home), writer_(stores_, metrics_) {
    // Requests already run in parallel on the server's threads; a forward pass that also forked an OpenMP team
    // for its small matrix products spent most of its time spinning in libgomp (measured: 10x fewer predictions).
    Eigen::setNbThreads(1);
    stores_.acquire(); // fail at start-up, not on the first request, when the store is unreachable
    check_champion();
    check_latest_bar();
    watcher_ = std::thread([this] { watch(); });
}

Service::~Service() {
    {
        const std::lock_guard lock(wake_mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    watcher_.join();
}

std::optional<std::int64_t> Service::latest_bar() const {
    const auto t = latest_bar_.load();
    return t == 0 ? std::nullopt : std::optional(t);
}

void Service::poke() {
    {
        const std::lock_guard lock(wake_mutex_);
        poked_ = true;
    }
    wake_.notify_all();
}

void Service::watch() {
    std::unique_lock lock(wake_mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, options_.poll_interval, [&] { return stopping_ || poked_; });
        if (stopping_) return;
        poked_ = false;
        lock.unlock();
        try {
            check_champion();
            check_latest_bar();
        } catch (const std::exception& e) {
            log::warn("watching the champion and the store failed", {{"error.message", e.what()}});
        }
        lock.lock();
    }
}

void Service::check_champion() {
    int version = 0;
    try {
        version = resolve_champion(options_.home);
    } catch (const NotFound&) {
        return; // no model yet: /readyz says so
    }
    const auto current = model_.load();
    if ((current && current->loaded.version == version) || version == failed_version_) return;
    const auto started = std::chrono::steady_clock::now();
    try {
        auto next = std::make_shared<Model>(Model{model::load_model(options_.home, std::to_string(version)), 0, 0});
        next->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        next->loaded_at = now_unix();
        metrics_.model_loaded(version, next->load_seconds, next->loaded_at);
        log::info("serving model", {{"model.version", version},
                                    {"model.previous_version", current ? current->loaded.version : 0},
                                    {"event.duration", static_cast<std::int64_t>(next->load_seconds * 1e9)}});
        model_.store(std::move(next));
        failed_version_ = 0;
    } catch (const std::exception& e) {
        failed_version_ = version;
        metrics_.model_load_failed();
        log::error("champion failed to load; the previous model keeps serving",
                   {{"model.version", version},
                    {"model.serving_version", current ? current->loaded.version : 0},
                    {"error.message", e.what()}});
    }
}

void Service::check_latest_bar() {
    const auto m = model_.load();
    if (!m) return;
    auto store = stores_.acquire();
    latest_bar_.store(store->last_bar_time(m->loaded.series).value_or(0));
}

void Service::record(const Model& model, const model::Forecast& forecast, std::span<const Bar> bars) {
    const auto& series = model.loaded.series;
    const std::string hash = features::hash_bars(bars);
    const std::int64_t now = now_unix();
    std::vector<store::Prediction> rows;
    for (const auto& h : forecast.horizons)
        rows.push_back({model.loaded.version, series.symbol, series.interval, forecast.as_of, h.horizon, h.target_time,
                        h.price, h.lower, h.upper, h.log_return, hash, now, std::nullopt});
    writer_.add(std::move(rows));
}

std::string Service::current_forecast() {
    const auto m = model();
    if (!m) throw Unavailable("no model is loaded yet (train one with btcml train)");
    const auto last = latest_bar();
    if (const auto cached = cache_.load();
        cached && cached->model_version == m->loaded.version && last && cached->last_bar == *last)
        return cached->body;

    const auto& loaded = m->loaded;
    const std::int64_t interval = loaded.series.interval;
    // Exactly the window the model reads (window returns need window + 1 closes), so that POSTing the same bars to
    // /api/v1/predict is the same input and stores no second prediction.
    const std::int64_t span = static_cast<std::int64_t>(loaded.forecaster.spec().window) * interval;
    std::vector<Bar> bars;
    {
        auto store = stores_.acquire();
        const auto newest = store->last_bar_time(loaded.series);
        if (!newest)
            throw Unavailable(
                fmt::format("no {} {} bars are stored yet", loaded.series.symbol, format_interval(interval)));
        latest_bar_.store(*newest);
        bars = store->load_bars({loaded.series, *newest - span, *newest, {}});
    }
    const auto forecast = model::forecast_latest(loaded.forecaster, bars, interval);
    auto next = std::make_shared<CachedForecast>(
        CachedForecast{loaded.version, bars.back().time,
                       model::to_json(forecast, loaded.version, loaded.series.symbol, interval).dump()});
    metrics_.forecast_made(forecast);
    record(*m, forecast, bars);
    cache_.store(next);
    return next->body;
}

nlohmann::json Service::predict(const Model& m, std::span<const Bar> bars) {
    const auto& loaded = m.loaded;
    const auto forecast = model::forecast_latest(loaded.forecaster, bars, loaded.series.interval);
    record(m, forecast, bars);
    return model::to_json(forecast, loaded.version, loaded.series.symbol, loaded.series.interval);
}

} // namespace btcml::serve
