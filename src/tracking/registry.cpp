#include "tracking/registry.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/time.hpp"
#include "evaluate/scoreboard.hpp"
#include "model/artifact.hpp"
#include "tracking/tracker.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <chrono>

namespace btcml::tracking {
namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Mean over horizons of the model's pinball loss and MAE, of naive's MAE and of the best baseline's pinball loss at
// `origins`.
struct Score {
    double pinball = 0, mae = 0, naive_mae = 0;
    std::size_t points = 0;
    std::string best_baseline; // the baseline with the lowest mean pinball loss
    double best_baseline_pinball = 0;
};

Score score(const features::FeatureTable& table, const model::Forecaster& forecaster,
            const evaluate::Baselines& baselines, std::span<const std::size_t> origins) {
    evaluate::Scoreboard board(forecaster.spec().horizons, true);
    const auto forecasts = forecaster.forecast(table, origins);
    board.add(table, forecaster.scaler(), baselines, origins, &forecasts);
    Score s;
    const auto metrics = board.metrics();
    for (const auto& [horizon, models] : metrics.items()) {
        s.pinball += models["model"]["pinball"].get<double>() / static_cast<double>(metrics.size());
        s.mae += models["model"]["mae"].get<double>() / static_cast<double>(metrics.size());
        s.naive_mae += models["naive"]["mae"].get<double>() / static_cast<double>(metrics.size());
    }
    for (const char* name : evaluate::baseline_names) {
        double pinball = 0;
        for (const auto& [horizon, models] : metrics.items())
            pinball += models[name]["pinball"].get<double>() / static_cast<double>(metrics.size());
        if (s.best_baseline.empty() || pinball < s.best_baseline_pinball) {
            s.best_baseline = name;
            s.best_baseline_pinball = pinball;
        }
    }
    s.points = board.points();
    return s;
}

nlohmann::json score_json(const Score& s) {
    return {{"pinball", s.pinball},
            {"mae", s.mae},
            {"naive_mae", s.naive_mae},
            {"points", s.points},
            {"best_baseline", s.best_baseline},
            {"best_baseline_pinball", s.best_baseline_pinball}};
}

// Says plainly when a simple baseline forecasts the quantiles better than the candidate.
std::string baseline_note(const Score& s) {
    if (s.best_baseline_pinball >= s.pinball) return "";
    return fmt::format("; NOTE: the simple baseline {} beats it on pinball ({:.6g} vs {:.6g})", s.best_baseline,
                       s.best_baseline_pinball, s.pinball);
}

// Holds the registry's locks for one alias change (see registry.hpp): the home's file lock, then a store
// transaction holding the registry lock. Destroyed without commit it rolls the transaction back.
class RegistryChange {
  public:
    RegistryChange(store::Store& store, const std::filesystem::path& home) : lock_(home), store_(store) {
        store_.begin_registry_change();
    }
    ~RegistryChange() {
        if (committed_) return;
        try {
            store_.rollback();
        } catch (const std::exception& e) { // the error that got us here is the one to report
            log::warn("registry change not rolled back", {{"error.message", e.what()}});
        }
    }
    RegistryChange(const RegistryChange&) = delete;
    RegistryChange& operator=(const RegistryChange&) = delete;

    void commit() {
        store_.commit();
        committed_ = true;
    }

  private:
    model::ModelsLock lock_;
    store::Store& store_;
    bool committed_ = false;
};

std::optional<int> parse_int(std::string_view text) {
    int v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v <= 0) return std::nullopt;
    return v;
}

std::string describe(std::span<const SeriesKey> keys) {
    std::string out;
    for (const auto& k : keys)
        out += fmt::format("{}{} {}", out.empty() ? "" : ", ", k.symbol, format_interval(k.interval));
    return out.empty() ? "none" : out;
}

} // namespace

std::optional<SeriesKey> series_of_model(const std::string& model_name) {
    constexpr std::string_view prefix = "btcml-";
    const auto dash = model_name.rfind('-');
    if (!model_name.starts_with(prefix) || dash == std::string::npos || dash <= prefix.size()) return std::nullopt;
    const auto interval = parse_interval(model_name.substr(dash + 1));
    if (!interval) return std::nullopt;
    return SeriesKey{model_name.substr(prefix.size(), dash - prefix.size()), *interval};
}

SeriesKey choose_series(std::span<const SeriesKey> available, const std::optional<std::string>& symbol,
                        std::optional<std::int64_t> interval) {
    std::vector<SeriesKey> matches;
    for (const auto& k : available)
        if ((!symbol || k.symbol == *symbol) && (!interval || k.interval == *interval)) matches.push_back(k);
    const auto named = [&] {
        return fmt::format("{} {}", symbol.value_or("(any symbol)"),
                           interval ? format_interval(*interval) : std::string("(any interval)"));
    };
    if (matches.empty())
        throw NotFound(fmt::format("no model for {} (series with models: {})", named(), describe(available)));
    if (matches.size() == 1) return matches.front();
    const SeriesKey preferred{symbol.value_or(std::string(kDefaultSymbol)), interval.value_or(kDefaultInterval)};
    if (std::find(matches.begin(), matches.end(), preferred) != matches.end()) return preferred;
    throw UsageError(
        fmt::format("several series match {}: {}; name one with symbol and interval", named(), describe(matches)));
}

nlohmann::json GateDecision::to_json() const {
    return {{"decision", promote ? "champion" : "challenger"},
            {"forced", forced},
            {"reason", reason},
            {"numbers", numbers}};
}

GateDecision promotion_gate(const features::FeatureTable& table, const model::FittedModels& candidate,
                            std::span<const std::size_t> test_origins,
                            const std::optional<model::LoadedModel>& champion, bool force) {
    GateDecision d;
    const auto& forecaster = candidate.trained.forecaster;
    const auto decide = [&](bool promote, std::string reason) {
        d.promote = promote || force;
        d.forced = force && !promote;
        d.reason = d.forced ? fmt::format("promoted by --force-promote; the gate alone would not have: {}", reason)
                            : std::move(reason);
        return d;
    };
    const Score own = score(table, forecaster, candidate.baselines, test_origins);
    if (!champion) {
        d.numbers["candidate"] = score_json(own);
        return decide(true, fmt::format("first version of its registered model: no champion to beat (MAE {:.6g} vs "
                                        "naive {:.6g} on its test part){}",
                                        own.mae, own.naive_mae, baseline_note(own)));
    }
    // The window: the candidate's test origins after the last target the champion trained on.
    const auto trained_to = parse_time(champion->card.value("/training_range/to"_json_pointer, std::string()));
    const std::int64_t from = std::max(table.times[test_origins.front()], trained_to.value_or(0));
    const std::int64_t to = table.times[test_origins.back()];
    std::vector<std::size_t> window;
    for (const std::size_t o : test_origins)
        if (table.times[o] >= from) window.push_back(o);
    // The champion reads its own window length and horizons; its origins must have targets inside the data too.
    std::vector<std::size_t> champion_window;
    for (const std::size_t o : features::target_origins(table, champion->forecaster.spec()))
        if (table.times[o] >= from && table.times[o] <= to) champion_window.push_back(o);
    d.numbers["champion_version"] = champion->version;
    d.numbers["window"] = {{"from", format_iso8601(from)}, {"to", format_iso8601(to)}};
    if (window.empty() || champion_window.empty())
        return decide(false, fmt::format("no recent window that champion v{} never trained on (it trained up to {})",
                                         champion->version, format_iso8601(trained_to.value_or(0))));
    const Score mine = score(table, forecaster, candidate.baselines, window);
    const Score theirs = score(table, champion->forecaster, champion->baselines, champion_window);
    d.numbers["candidate"] = score_json(mine);
    d.numbers["champion"] = score_json(theirs);
    const bool lower_pinball = mine.pinball < theirs.pinball;
    const bool beats_naive = mine.mae <= mine.naive_mae;
    const std::string numbers =
        fmt::format("on {} .. {} ({} points): pinball {:.6g} vs champion v{}'s {:.6g}; MAE {:.6g} vs naive {:.6g}",
                    format_iso8601(from), format_iso8601(to), mine.points, mine.pinball, champion->version,
                    theirs.pinball, mine.mae, mine.naive_mae);
    if (lower_pinball && beats_naive)
        return decide(true, "beats the champion and is not worse than naive " + numbers + baseline_note(mine));
    std::string why = !lower_pinball ? "pinball loss not lower than the champion's" : "";
    if (!beats_naive) why += std::string(why.empty() ? "" : " and ") + "point error worse than naive";
    return decide(false, fmt::format("{} {}{}", why, numbers, baseline_note(mine)));
}

Registry::Registry(store::Store& store, std::filesystem::path home, std::string tracking_uri)
    : store_(store), home_(std::move(home)), tracking_uri_(std::move(tracking_uri)) {}

void Registry::add_version(const store::ModelVersionRecord& record, const GateDecision& gate) {
    auto stored = record;
    stored.gate_json = gate.to_json().dump();
    store_.save_model_version(stored);
    RegistryChange change(store_, home_);
    const auto aliases = store_.aliases(record.model_name);
    const auto current = aliases.find("champion");
    if (gate.promote) {
        set_champion(record.model_name, record.version,
                     current == aliases.end() ? std::nullopt : std::optional(current->second), gate.reason);
        change.commit();
    } else {
        const auto old = aliases.find("challenger");
        store_.set_alias({record.model_name, "challenger", record.version,
                          old == aliases.end() ? std::nullopt : std::optional(old->second), now_ms(), gate.reason});
        change.commit();
    }
}

// Inside a RegistryChange.
void Registry::set_champion(const std::string& model_name, int version, std::optional<int> previous,
                            const std::string& reason) {
    store_.set_alias({model_name, "champion", version, previous, now_ms(), reason});
    const auto aliases = store_.aliases(model_name);
    if (const auto it = aliases.find("challenger"); it != aliases.end() && it->second == version)
        store_.set_alias({model_name, "challenger", std::nullopt, version, now_ms(), "promoted to champion"});
}

void Registry::require_loadable(int version) {
    try {
        (void)model::load_model(home_, std::to_string(version));
    } catch (const InvalidInput& e) {
        throw InvalidInput(
            fmt::format("version {} cannot become the champion: it does not load: {}", version, e.what()));
    }
}

store::ModelVersionRecord Registry::version(int version) {
    auto record = store_.model_version(version);
    if (!record) {
        std::string known;
        for (const auto& v : store_.model_versions(""))
            known += fmt::format("{}{}", known.empty() ? "" : ", ", v.version);
        throw NotFound(fmt::format("model version {} is not in the registry (versions: {})", version,
                                   known.empty() ? "none yet: run btcml train" : known));
    }
    return *record;
}

std::string Registry::model_name_or_only(const std::string& name) {
    const auto names = store_.registered_models();
    if (!name.empty()) {
        if (std::find(names.begin(), names.end(), name) == names.end())
            throw NotFound(fmt::format("no registered model '{}' (registered: {})", name,
                                       names.empty() ? "none yet" : fmt::format("{}", fmt::join(names, ", "))));
        return name;
    }
    if (names.size() == 1) return names.front();
    if (names.empty()) throw NotFound("no registered models yet: run btcml train first");
    throw UsageError(fmt::format("several registered models ({}): name one with --name", fmt::join(names, ", ")));
}

std::string Registry::series_model(const std::optional<std::string>& symbol, std::optional<std::int64_t> interval) {
    std::vector<SeriesKey> registered;
    for (const auto& name : store_.registered_models())
        if (const auto key = series_of_model(name)) registered.push_back(*key);
    if (registered.empty()) throw NotFound("no trained models yet: run btcml train first");
    const auto key = choose_series(registered, symbol, interval);
    return series_model_name(key.symbol, format_interval(key.interval));
}

int Registry::resolve(const std::string& model_name, const std::string& spec) {
    if (const auto v = parse_int(spec)) return version(*v).version;
    const std::string alias = spec.starts_with('@') ? spec.substr(1) : spec;
    const std::string name = model_name_or_only(model_name);
    const auto aliases = store_.aliases(name);
    const auto it = aliases.find(alias);
    if (it == aliases.end()) {
        std::string known;
        for (const auto& [a, v] : aliases)
            known += fmt::format("{}{}=v{}", known.empty() ? "" : ", ", a, v);
        throw NotFound(fmt::format("{} has no alias '{}' (aliases: {})", name, alias, known.empty() ? "none" : known));
    }
    return it->second;
}

std::optional<int> Registry::promote(int v, const std::string& reason) {
    const auto record = version(v);
    require_loadable(v); // before the locks: loading takes a while
    RegistryChange change(store_, home_);
    const auto aliases = store_.aliases(record.model_name);
    const auto current = aliases.find("champion");
    const std::optional<int> previous = current == aliases.end() ? std::nullopt : std::optional(current->second);
    if (previous == v) throw Conflict(fmt::format("version {} is already the champion of {}", v, record.model_name));
    set_champion(record.model_name, v, previous, reason);
    change.commit();
    return previous;
}

std::pair<int, int> Registry::rollback(const std::string& model_name) {
    const std::string name = model_name_or_only(model_name);
    // The target as it is now, checked before the locks (loading takes a while) and again under them.
    const auto target_of = [&]() -> std::pair<int, int> {
        const auto history = store_.alias_history(name, "champion");
        if (history.empty() || !history.front().version)
            throw Conflict(fmt::format("{} has no champion to roll back", name));
        const int current = *history.front().version;
        const auto target = history.front().previous;
        if (!target) throw Conflict(fmt::format("{}: champion v{} had no predecessor to roll back to", name, current));
        return {current, *target};
    };
    const int checked = target_of().second;
    require_loadable(checked);
    RegistryChange change(store_, home_);
    const auto [current, target] = target_of();
    if (target != checked) throw Conflict(fmt::format("{}: the champion changed while rolling back; try again", name));
    // The rolled-back-to version's own predecessor, so that a second rollback goes one step further back.
    std::optional<int> before;
    for (const auto& change_of : store_.alias_history(name, "champion"))
        if (change_of.version == target) {
            before = change_of.previous;
            break;
        }
    store_.set_alias({name, "champion", target, before, now_ms(), fmt::format("rollback from v{}", current)});
    change.commit();
    return {target, current};
}

std::string Registry::mirror_aliases(const std::string& model_name) {
    if (tracking_uri_.empty()) return {};
    try {
        MlflowClient client(tracking_uri_);
        Syncer(store_, client).sync_aliases(model_name);
        return {};
    } catch (const Error& e) {
        log::warn("MLflow aliases not updated: run `btcml tracking sync` when the server is back",
                  {{"tracking.uri", tracking_uri_}, {"error.message", e.what()}});
        return e.what();
    }
}

} // namespace btcml::tracking
