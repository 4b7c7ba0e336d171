#include "serve/service.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "features/dataset.hpp"
#include "model/artifact.hpp"
#include "pipeline/forecast.hpp"
#include "tracking/registry.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <tuple>

namespace btcml::serve {
namespace {

// Repeats of recent forecasts are dropped in memory; beyond this many keys the set starts afresh.
constexpr std::size_t kRecentKeys = 10'000;
// Retries of a failed prediction write while the store is unreachable: doubling up to the cap, so that storing
// resumes within a few seconds of the database coming back.
constexpr std::chrono::milliseconds kFirstWriteRetry{250}, kMaxWriteRetry{4000};
// Retries of a champion that failed to load (its files may be repaired in place): doubling up to the cap.
constexpr std::chrono::seconds kFirstLoadRetry{1}, kMaxLoadRetry{60};

template <class Duration> Duration backoff(Duration first, Duration cap, int attempt) {
    return attempt >= 16 ? cap : std::min(cap, first * (1 << (attempt - 1)));
}

std::string forecast_key(const store::Prediction& first) {
    return fmt::format("{}|{}|{}|{}|{}", first.model_version, first.symbol, first.interval, first.origin_time,
                       first.input_hash);
}

} // namespace

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
    if (!store_->healthy()) return; // broken (the database restarted): the next acquire opens a new one
    const std::lock_guard lock(pool_.mutex_);
    pool_.idle_.push_back(std::move(store_));
}

StorePool::Lease StorePool::acquire() {
    for (;;) {
        std::unique_ptr<store::Store> store;
        {
            const std::lock_guard lock(mutex_);
            if (idle_.empty()) break;
            store = std::move(idle_.back());
            idle_.pop_back();
        }
        // Idle connections break too (a restart closes them all): check before handing one out.
        if (store->healthy()) return {*this, std::move(store)};
        log::warn("dropping a broken store connection", {{"db.system", store->backend()}});
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

void PredictionWriter::add(std::vector<store::Prediction> predictions, const std::function<bool()>& admit) {
    if (predictions.empty()) return;
    {
        const std::lock_guard lock(mutex_);
        const auto key = forecast_key(predictions.front());
        if (recent_.contains(key)) return;
        if (admit && !admit()) return;
        if (recent_.size() >= kRecentKeys) recent_.clear();
        recent_.insert(key);
        queue_.insert(queue_.end(), std::make_move_iterator(predictions.begin()),
                      std::make_move_iterator(predictions.end()));
        if (queue_.size() > kMaxQueuedPredictions) { // the store has been away for long: keep the newest
            const auto excess = queue_.size() - kMaxQueuedPredictions;
            queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(excess));
            metrics_.predictions_not_stored(NotStoredReason::store_unavailable, static_cast<std::int64_t>(excess));
        }
        ++queued_batches_;
    }
    wake_.notify_one();
}

void PredictionWriter::flush() {
    std::unique_lock lock(mutex_);
    const auto target = queued_batches_;
    drain_until_ = std::max(drain_until_, target);
    wake_.notify_all();
    written_.wait(lock, [&] { return written_batches_ >= target; });
}

void PredictionWriter::loop() {
    std::unique_lock lock(mutex_);
    int failures = 0;
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) return;
        auto batch = std::move(queue_);
        queue_.clear();
        const auto batches = queued_batches_;
        lock.unlock();
        bool retry = false;
        try {
            auto store = pool_.acquire();
            metrics_.predictions_stored(store->insert_predictions(batch));
            if (failures > 0) log::info("storing predictions again", {{"predictions", batch.size()}});
            failures = 0;
        } catch (const Unavailable& e) {
            retry = true;
            if (failures++ == 0)
                log::warn("the store is unreachable; predictions are queued and retried",
                          {{"error.message", e.what()}, {"predictions", batch.size()}});
        } catch (const std::exception& e) {
            // Not the store's absence: retrying would fail the same way. A lost prediction is a lost monitoring
            // point, never a lost reply.
            log::error("storing predictions failed", {{"error.message", e.what()}, {"predictions", batch.size()}});
        }
        lock.lock();
        // Retried unless the server stops or a flush waits for this batch.
        const auto give_up = [&] { return stopping_ || drain_until_ > written_batches_; };
        if (retry && !give_up()) {
            // Back in front of what arrived meanwhile, then wait (a stop or a flush cuts the wait short).
            queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
            wake_.wait_for(lock, backoff(kFirstWriteRetry, kMaxWriteRetry, failures), give_up);
            continue;
        }
        if (retry) {
            const auto lost = static_cast<std::int64_t>(batch.size());
            metrics_.predictions_not_stored(NotStoredReason::store_unavailable, lost);
            log::error("dropping predictions: the store is unreachable while stopping", {{"predictions", lost}});
        }
        written_batches_ = batches;
        written_.notify_all();
    }
}

bool SlidingWindowLimit::admit(std::chrono::steady_clock::time_point now) {
    const std::lock_guard lock(mutex_);
    while (!admitted_.empty() && now - admitted_.front() >= period_)
        admitted_.pop_front();
    if (admitted_.size() >= limit_) return false;
    admitted_.push_back(now);
    return true;
}

Service::Service(ServiceOptions options)
    : options_(std::move(options)), stores_(options_.db_url, options_.home), writer_(stores_, metrics_),
      anonymous_budget_(static_cast<std::size_t>(std::max(0, options_.anonymous_predictions_per_hour)),
                        std::chrono::hours(1)) {
    // Requests already run in parallel on the server's threads; a forward pass that also forked an OpenMP team
    // for its small matrix products spent most of its time spinning in libgomp (measured: 10x fewer predictions).
    Eigen::setNbThreads(1);
    served_.store(std::make_shared<const ServedList>());
    check_champions(); // fails at start-up, not on the first request, when the store is unreachable
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

std::shared_ptr<ServedSeries> Service::choose(const std::optional<std::string>& symbol,
                                              std::optional<std::int64_t> interval) const {
    const auto list = served();
    if (list->empty()) throw Unavailable("no model is loaded yet (train one with btcml train)");
    // The common requests, answered without copying keys: every forecast goes through here.
    if (!symbol && !interval && list->size() == 1) return list->front();
    for (const auto& s : *list)
        if (symbol && interval && s->key.symbol == *symbol && s->key.interval == *interval) return s;
    std::vector<SeriesKey> keys;
    for (const auto& s : *list)
        keys.push_back(s->key);
    const auto key = tracking::choose_series(keys, symbol, interval);
    return *std::find_if(list->begin(), list->end(), [&](const auto& s) { return s->key == key; });
}

void Service::poke() {
    {
        const std::lock_guard lock(wake_mutex_);
        poked_ = true;
    }
    wake_.notify_all();
}

void Service::watch() {
    std::string failing; // the last error, so that an outage is logged once, not on every poll
    std::unique_lock lock(wake_mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, options_.poll_interval, [&] { return stopping_ || poked_; });
        if (stopping_) return;
        poked_ = false;
        lock.unlock();
        try {
            check_champions();
            if (!failing.empty()) log::info("watching the champions and the store works again");
            failing.clear();
        } catch (const std::exception& e) {
            if (failing != e.what())
                log::warn("watching the champions and the store failed", {{"error.message", e.what()}});
            failing = e.what();
        }
        lock.lock();
    }
}

std::shared_ptr<const Model> Service::require_model(const ServedSeries& series) {
    if (auto m = series.model.load()) return m;
    if (const auto failure = series.failure.load()) throw Unavailable(describe(*failure));
    throw Unavailable(fmt::format("the champion of {} {} is not loaded yet", series.key.symbol,
                                  format_interval(series.key.interval)));
}

std::string Service::describe(const ChampionFailure& failure) {
    const auto wait = std::chrono::ceil<std::chrono::seconds>(failure.retry_at - std::chrono::steady_clock::now());
    return fmt::format("champion version {} failed to load: {}; retrying in {} s", failure.version, failure.reason,
                       std::max<std::int64_t>(0, wait.count()));
}

// One pass of the watcher: every registered model's champion (the store's alias table), each series on its own.
void Service::check_champions() {
    auto store = stores_.acquire();
    auto list = served();
    std::vector<std::pair<std::shared_ptr<ServedSeries>, int>> champions;
    for (const auto& name : store->registered_models()) {
        const auto key = tracking::series_of_model(name);
        if (!key) continue; // not a series' registry: nothing here serves it
        const auto aliases = store->aliases(name);
        const auto champion = aliases.find("champion");
        if (champion == aliases.end()) continue;
        auto it = std::find_if(list->begin(), list->end(), [&](const auto& s) { return s->key == *key; });
        if (it == list->end()) { // a series' first champion: a new list with it, in order
            auto next = std::make_shared<ServedList>(*list);
            const auto at = std::find_if(next->begin(), next->end(), [&](const auto& s) {
                return std::tie(s->key.symbol, s->key.interval) > std::tie(key->symbol, key->interval);
            });
            it = next->insert(at, std::make_shared<ServedSeries>(*key));
            champions.emplace_back(*it, champion->second);
            list = std::move(next);
            served_.store(list);
            continue;
        }
        champions.emplace_back(*it, champion->second);
    }
    for (const auto& [series, version] : champions) {
        check_champion(*series, version);
        if (!series->model.load()) continue;
        const auto latest = store->last_bar_time(series->key).value_or(0);
        series->latest_bar.store(latest);
        metrics_.latest_bar_seen(series->key, latest);
    }
}

void Service::check_champion(ServedSeries& series, int version) {
    const auto current = series.model.load();
    if (current && current->loaded.version == version) {
        series.failure.store(nullptr); // the champion moved back to the serving version
        return;
    }
    const auto failed = series.failure.load();
    const auto started = std::chrono::steady_clock::now();
    // The same version is retried with backoff (its files may be repaired in place); a new champion at once.
    if (failed && failed->version == version && started < failed->retry_at) return;
    const auto& key = series.key;
    try {
        auto next = std::make_shared<Model>(Model{model::load_model(options_.home, std::to_string(version)), 0, 0});
        if (!(next->loaded.series == key))
            throw InvalidInput(fmt::format("it forecasts {} {}, not {} {}", next->loaded.series.symbol,
                                           format_interval(next->loaded.series.interval), key.symbol,
                                           format_interval(key.interval)));
        next->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        next->loaded_at = now_unix();
        metrics_.model_loaded(key, version, next->load_seconds, next->loaded_at);
        log::info("serving model", {{"model.version", version},
                                    {"model.symbol", key.symbol},
                                    {"model.interval", format_interval(key.interval)},
                                    {"model.previous_version", current ? current->loaded.version : 0},
                                    {"event.duration", static_cast<std::int64_t>(next->load_seconds * 1e9)}});
        series.model.store(std::move(next));
        series.failure.store(nullptr);
    } catch (const std::exception& e) {
        const int attempts = failed && failed->version == version ? failed->attempts + 1 : 1;
        const auto wait = backoff(kFirstLoadRetry, kMaxLoadRetry, attempts);
        series.failure.store(
            std::make_shared<const ChampionFailure>(ChampionFailure{version, e.what(), attempts, started + wait}));
        metrics_.model_load_failed(key);
        log::error(current ? "champion failed to load; the previous model keeps serving" : "champion failed to load",
                   {{"model.version", version},
                    {"model.symbol", key.symbol},
                    {"model.interval", format_interval(key.interval)},
                    {"model.serving_version", current ? current->loaded.version : 0},
                    {"error.message", e.what()},
                    {"retry_in_seconds", static_cast<std::int64_t>(wait.count())}});
    }
}

void Service::record(const Model& model, const model::Forecast& forecast, std::span<const Bar> bars, bool anonymous) {
    auto rows = pipeline::prediction_rows(model.loaded.version, model.loaded.series, forecast, bars, "client");
    const auto count = static_cast<std::int64_t>(rows.size());
    // Only anonymous forecasts spend the budget; the admission check runs after the repeat check, under its lock.
    const auto within_budget = [&] {
        if (anonymous_budget_.admit(std::chrono::steady_clock::now())) return true;
        metrics_.predictions_not_stored(NotStoredReason::anonymous_budget, count);
        return false;
    };
    writer_.add(std::move(rows), anonymous ? std::function<bool()>(within_budget) : nullptr);
}

std::string Service::current_forecast(ServedSeries& series) {
    const auto m = require_model(series);
    const auto last = series.latest_bar.load();
    if (const auto cached = series.cache.load();
        cached && cached->model_version == m->loaded.version && last != 0 && cached->last_bar == last)
        return cached->body;

    const auto& loaded = m->loaded;
    const std::int64_t interval = loaded.series.interval;
    // Exactly the window the model reads (window returns need window + 1 closes), so that POSTing the same bars to
    // /api/v1/predict is the same input and stores no second prediction.
    const std::int64_t span = static_cast<std::int64_t>(loaded.forecaster.spec().window) * interval;
    std::vector<Bar> bars;
    std::vector<model::IntervalState> states;
    {
        auto store = stores_.acquire();
        const auto newest = store->last_bar_time(loaded.series);
        if (!newest)
            throw Unavailable(
                fmt::format("no {} {} bars are stored yet", loaded.series.symbol, format_interval(interval)));
        series.latest_bar.store(*newest);
        metrics_.latest_bar_seen(series.key, *newest);
        bars = store->load_bars({loaded.series, *newest - span, *newest, {}});
        states = pipeline::interval_states(*store, loaded);
    }
    const auto forecast = model::forecast_latest(loaded.forecaster, bars, interval, states);
    auto next = std::make_shared<CachedForecast>(
        CachedForecast{loaded.version, bars.back().time,
                       model::to_json(forecast, loaded.version, loaded.series.symbol, interval).dump()});
    metrics_.forecast_made(series.key, forecast);
    record(*m, forecast, bars, false); // the server's own forecasts: at most one per bar and champion
    series.cache.store(next);
    return next->body;
}

std::vector<model::IntervalState> Service::calibration_of(const model::LoadedModel& loaded) {
    try {
        auto states = pipeline::interval_states(*stores_.acquire(), loaded);
        const std::lock_guard lock(calibration_mutex_);
        last_calibration_[loaded.version] = states;
        return states;
    } catch (const Unavailable& e) {
        // Predictions are answered while the store is down (and stored once it is back): the interval keeps the
        // calibration last read for this version, or the model's own when none was read yet.
        log::warn("online calibration not read; using the last known", {{"error.message", e.what()}});
        const std::lock_guard lock(calibration_mutex_);
        const auto it = last_calibration_.find(loaded.version);
        return it != last_calibration_.end() ? it->second : std::vector<model::IntervalState>{};
    }
}

nlohmann::json Service::predict(const Model& m, std::span<const Bar> bars, bool anonymous) {
    const auto& loaded = m.loaded;
    const auto forecast = model::forecast_latest(loaded.forecaster, bars, loaded.series.interval, calibration_of(loaded));
    record(m, forecast, bars, anonymous);
    return model::to_json(forecast, loaded.version, loaded.series.symbol, loaded.series.interval);
}

} // namespace btcml::serve
