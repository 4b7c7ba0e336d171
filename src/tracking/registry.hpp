#pragma once
// The model registry: a registered model per series (`btcml-BTCUSD-1h`), a version per trained model, aliases
// `champion` and `challenger`, and the promotion gate that decides between them. The store holds the registry;
// with a tracking URI every change is mirrored to MLflow's registry. The store's alias table is the one source of
// truth for which version is a series' champion: `resolve(model_name, "champion")` (model version folders on disk are
// immutable and hold no state).
#include "core/bar.hpp"
#include "features/dataset.hpp"
#include "model/forecaster.hpp"
#include "store/store.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace btcml::tracking {

/// The series a command or request means when it names none (a documented default).
inline constexpr std::string_view kDefaultSymbol = "BTCUSD";
inline constexpr std::int64_t kDefaultInterval = 3600;

/// The series of a registered model named `btcml-SYMBOL-INTERVAL` (series_model_name); nullopt for other names.
std::optional<SeriesKey> series_of_model(const std::string& model_name);

/// Which of `available` (e.g. the series with a champion) a request means. What is given narrows the choice; of
/// several matches the one with the defaults (kDefaultSymbol, kDefaultInterval) in what was not given. NotFound
/// when nothing matches, UsageError when several do and none is the default; both messages name the choices.
/// Thread-safe.
SeriesKey choose_series(std::span<const SeriesKey> available, const std::optional<std::string>& symbol,
                        std::optional<std::int64_t> interval);

/// What the promotion gate decided, and the numbers behind it.
struct GateDecision {
    bool promote = false;
    bool forced = false;
    std::string reason;
    nlohmann::json numbers = nlohmann::json::object(); // window, candidate and champion pinball/mae, naive mae

    [[nodiscard]] nlohmann::json to_json() const;
};

/// The candidate (the model just trained, with its test origins in `table`) against the current champion:
/// on the candidate's test origins that lie after everything the champion trained on, the candidate is promoted
/// when its pinball loss (mean over horizons) is lower than the champion's and its MAE is not worse than naive's.
/// Without a champion the candidate is promoted. `force` promotes whatever the numbers say, and says so.
GateDecision promotion_gate(const features::FeatureTable& table, const model::FittedModels& candidate,
                            std::span<const std::size_t> test_origins,
                            const std::optional<model::LoadedModel>& champion, bool force);

class Registry {
  public:
    /// `tracking_uri` empty: the store only.
    Registry(store::Store& store, std::filesystem::path home, std::string tracking_uri);

    // Every alias change runs under two locks, taken in this order: the home's ModelsLock (models/.lock) and a
    // store transaction holding the registry's lock (Store::begin_registry_change). So concurrent promoters (CLI
    // processes, server threads) apply one after the other. Thread-safe across Registry objects with their own
    // store connections.

    /// Records a new version with the gate's decision and moves the aliases: champion when promoted (the old
    /// champion keeps no alias), challenger otherwise.
    void add_version(const store::ModelVersionRecord& record, const GateDecision& gate);
    /// The version `spec` names in a registered model: a number, `champion`, `challenger` or `@alias`; NotFound
    /// for an unknown alias or version, naming what exists.
    int resolve(const std::string& model_name, const std::string& spec);
    /// Makes `version` its registered model's champion after checking that it loads (InvalidInput naming the
    /// version and why not, changing nothing); returns the previous champion. Conflict when it already is.
    /// The one promotion path of the CLI (`models promote`) and the API (POST /api/v1/models/{version}/promote).
    std::optional<int> promote(int version, const std::string& reason);
    /// Gives the champion alias back to the version that held it before the current one, after checking that it
    /// loads; returns {the new champion, the champion it replaced}. Conflict when there is nothing to roll back to.
    std::pair<int, int> rollback(const std::string& model_name);

    /// The registered model of a version; NotFound when the version is not registered.
    store::ModelVersionRecord version(int version);
    /// The registered model name when `name` is empty and exactly one exists; UsageError otherwise.
    std::string model_name_or_only(const std::string& name);
    /// The registered model of a series chosen by choose_series among the registered ones (`symbol`, `interval`:
    /// what the caller named, if anything).
    std::string series_model(const std::optional<std::string>& symbol, std::optional<std::int64_t> interval);
    /// Mirrors a registered model's aliases to MLflow (when configured); a failure is a warning, fixed by
    /// `btcml tracking sync`. Returns the error, empty on success.
    std::string mirror_aliases(const std::string& model_name);

  private:
    void set_champion(const std::string& model_name, int version, std::optional<int> previous,
                      const std::string& reason);
    /// InvalidInput "version V cannot become the champion: …" unless the version's artifact loads.
    void require_loadable(int version);

    store::Store& store_;
    std::filesystem::path home_;
    std::string tracking_uri_;
};

} // namespace btcml::tracking
