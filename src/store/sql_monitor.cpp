// The live monitoring tables of SqlStore (prediction_scores, live_metrics, feature_drift): shared SQL, the same in
// SQLite and PostgreSQL.
#include "store/sql_store.hpp"

#include <fmt/format.h>

#include <array>
#include <optional>
#include <utility>

namespace btcml::store {
namespace {

SqlParam optional_param(const std::optional<double>& value) { return value ? SqlParam{*value} : SqlParam{nullptr}; }

std::optional<double> optional_double(const SqlRow& row, int column) {
    return row.is_null(column) ? std::nullopt : std::optional{row.get_double(column)};
}

constexpr const char* kLiveColumns = "computed_ms, symbol, interval_s, model_version, horizon, window_s, scored, mae, "
                                     "naive_mae, pinball, baseline_pinball, coverage_80, direction_accuracy";

LiveMetric read_live(const SqlRow& row) {
    LiveMetric m;
    m.computed_ms = row.get_int(0);
    m.series = {row.get_text(1), row.get_int(2)};
    m.model_version = static_cast<int>(row.get_int(3));
    m.horizon = static_cast<int>(row.get_int(4));
    m.window_s = row.get_int(5);
    m.scored = row.get_int(6);
    m.mae = row.get_double(7);
    m.naive_mae = row.get_double(8);
    m.pinball = row.get_double(9);
    m.baseline_pinball = optional_double(row, 10);
    m.coverage_80 = row.get_double(11);
    m.direction_accuracy = optional_double(row, 12);
    return m;
}

} // namespace

std::vector<MaturedPrediction> SqlStore::unscored_predictions(const SeriesKey& key, std::int64_t limit) {
    const std::array<SqlParam, 3> params{std::string_view(key.symbol), key.interval, limit};
    std::vector<MaturedPrediction> out;
    query("SELECT p.id, p.model_version, p.origin_time, p.horizon, p.target_time, p.price, p.lower, p.upper, "
          "p.log_return, p.input_hash, p.created_at, b.close, p.provenance FROM predictions p "
          "JOIN bars b ON b.symbol = p.symbol AND b.interval_s = p.interval_s AND b.open_time = p.target_time "
          "LEFT JOIN prediction_scores s ON s.prediction_id = p.id "
          "WHERE p.symbol = $1 AND p.interval_s = $2 AND s.prediction_id IS NULL "
          "ORDER BY p.target_time, p.horizon, p.id LIMIT $3",
          params, [&](const SqlRow& row) {
              MaturedPrediction m;
              m.id = row.get_int(0);
              Prediction& p = m.prediction;
              p.symbol = key.symbol;
              p.interval = key.interval;
              p.model_version = static_cast<int>(row.get_int(1));
              p.origin_time = row.get_int(2);
              p.horizon = static_cast<int>(row.get_int(3));
              p.target_time = row.get_int(4);
              p.price = row.get_double(5);
              p.lower = row.get_double(6);
              p.upper = row.get_double(7);
              p.log_return = row.get_double(8);
              p.input_hash = row.get_text(9);
              p.created_at = row.get_int(10);
              p.realised = row.get_double(11);
              p.provenance = row.get_text(12);
              out.push_back(std::move(m));
          });
    return out;
}

std::int64_t SqlStore::insert_prediction_scores(std::span<const PredictionScore> scores) {
    ScopedTransaction transaction(*this);
    std::int64_t inserted = 0;
    for (const auto& s : scores) {
        const SqlParam direction =
            s.direction_hit ? SqlParam{std::int64_t{*s.direction_hit ? 1 : 0}} : SqlParam{nullptr};
        const std::array<SqlParam, 14> params{s.prediction_id,
                                              std::string_view(s.series.symbol),
                                              s.series.interval,
                                              std::int64_t{s.model_version},
                                              std::int64_t{s.horizon},
                                              std::string_view(s.provenance),
                                              s.target_time,
                                              s.realised_log_return,
                                              s.error,
                                              std::int64_t{s.inside ? 1 : 0},
                                              s.pinball,
                                              optional_param(s.baseline_pinball),
                                              direction,
                                              s.scored_ms};
        inserted += query("INSERT INTO prediction_scores (prediction_id, symbol, interval_s, model_version, horizon, "
                          "provenance, target_time, realised_log_return, error, inside, pinball, baseline_pinball, "
                          "direction_hit, scored_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                          "$14) ON CONFLICT DO NOTHING",
                          params, {});
    }
    transaction.commit();
    return inserted;
}

std::vector<PredictionScore> SqlStore::prediction_scores(const SeriesKey& key, const std::string& provenance,
                                                         std::int64_t from_target_time) {
    const std::array<SqlParam, 4> params{std::string_view(key.symbol), key.interval, std::string_view(provenance),
                                         from_target_time};
    std::vector<PredictionScore> out;
    query("SELECT prediction_id, model_version, horizon, provenance, target_time, realised_log_return, error, inside, "
          "pinball, baseline_pinball, direction_hit, scored_ms FROM prediction_scores "
          "WHERE symbol = $1 AND interval_s = $2 AND ($3 = '' OR provenance = $3) AND target_time >= $4 "
          "ORDER BY target_time, horizon, prediction_id",
          params, [&](const SqlRow& row) {
              PredictionScore s;
              s.prediction_id = row.get_int(0);
              s.series = key;
              s.model_version = static_cast<int>(row.get_int(1));
              s.horizon = static_cast<int>(row.get_int(2));
              s.provenance = row.get_text(3);
              s.target_time = row.get_int(4);
              s.realised_log_return = row.get_double(5);
              s.error = row.get_double(6);
              s.inside = row.get_int(7) != 0;
              s.pinball = row.get_double(8);
              s.baseline_pinball = optional_double(row, 9);
              if (!row.is_null(10)) s.direction_hit = row.get_int(10) != 0;
              s.scored_ms = row.get_int(11);
              out.push_back(std::move(s));
          });
    return out;
}

void SqlStore::insert_live_metrics(std::span<const LiveMetric> metrics) {
    ScopedTransaction transaction(*this);
    for (const auto& m : metrics) {
        const std::array<SqlParam, 13> params{m.computed_ms,
                                              std::string_view(m.series.symbol),
                                              m.series.interval,
                                              std::int64_t{m.model_version},
                                              std::int64_t{m.horizon},
                                              m.window_s,
                                              m.scored,
                                              m.mae,
                                              m.naive_mae,
                                              m.pinball,
                                              optional_param(m.baseline_pinball),
                                              m.coverage_80,
                                              optional_param(m.direction_accuracy)};
        // A second pass within the same millisecond (another process) computed the same rows: keep the first.
        query(fmt::format("INSERT INTO live_metrics ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                          "$13) ON CONFLICT DO NOTHING",
                          kLiveColumns),
              params, {});
    }
    transaction.commit();
}

std::vector<std::pair<SeriesKey, std::int64_t>> SqlStore::latest_passes(const char* table, const SeriesKey& key) {
    // Both tables keep one row per pass for ever, keyed (symbol, interval_s, computed_ms, ...). A DISTINCT or a
    // correlated MAX over them reads the whole history on every /metrics refresh; stepping from one series to the
    // next and asking each for its MAX are index seeks, so the cost follows the number of series, not of passes.
    std::vector<std::pair<SeriesKey, std::int64_t>> out;
    SeriesKey cursor{"", 0};
    for (;;) {
        std::optional<SeriesKey> next;
        const std::array<SqlParam, 2> after{std::string_view(cursor.symbol), cursor.interval};
        query(fmt::format("SELECT symbol, interval_s FROM {} WHERE (symbol, interval_s) > ($1, $2) ORDER BY symbol, "
                          "interval_s LIMIT 1",
                          table),
              after, [&](const SqlRow& row) { next = SeriesKey{row.get_text(0), row.get_int(1)}; });
        if (!next) return out;
        cursor = *next;
        if ((!key.symbol.empty() && cursor.symbol != key.symbol) || (key.interval != 0 && cursor.interval != key.interval))
            continue;
        const std::array<SqlParam, 2> series{std::string_view(cursor.symbol), cursor.interval};
        query(fmt::format("SELECT MAX(computed_ms) FROM {} WHERE symbol = $1 AND interval_s = $2", table), series,
              [&](const SqlRow& row) { out.emplace_back(cursor, row.get_int(0)); });
    }
}

std::vector<CalibrationStateRow> SqlStore::calibration_states(int model_version) {
    const std::array<SqlParam, 1> params{std::int64_t{model_version}};
    std::vector<CalibrationStateRow> out;
    query("SELECT horizon, log_scale_low, log_scale_high, updates, last_target_time, updated_ms "
          "FROM calibration_state WHERE model_version = $1 ORDER BY horizon",
          params, [&](const SqlRow& row) {
              CalibrationStateRow r;
              r.model_version = model_version;
              r.horizon = static_cast<int>(row.get_int(0));
              r.log_scale_low = row.get_double(1);
              r.log_scale_high = row.get_double(2);
              r.updates = row.get_int(3);
              r.last_target_time = row.get_int(4);
              r.updated_ms = row.get_int(5);
              out.push_back(r);
          });
    return out;
}

void SqlStore::save_calibration_states(std::span<const CalibrationStateRow> rows) {
    ScopedTransaction transaction(*this);
    for (const auto& r : rows) {
        const std::array<SqlParam, 7> params{std::int64_t{r.model_version},
                                             std::int64_t{r.horizon},
                                             r.log_scale_low,
                                             r.log_scale_high,
                                             r.updates,
                                             r.last_target_time,
                                             r.updated_ms};
        query("INSERT INTO calibration_state (model_version, horizon, log_scale_low, log_scale_high, updates, "
              "last_target_time, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model_version, horizon) "
              "DO UPDATE SET log_scale_low = excluded.log_scale_low, log_scale_high = excluded.log_scale_high, "
              "updates = excluded.updates, last_target_time = excluded.last_target_time, "
              "updated_ms = excluded.updated_ms",
              params, {});
    }
    transaction.commit();
}

std::vector<LiveMetric> SqlStore::latest_live_metrics(const SeriesKey& key) {
    std::vector<LiveMetric> out;
    for (const auto& [series, computed_ms] : latest_passes("live_metrics", key)) {
        const std::array<SqlParam, 3> params{std::string_view(series.symbol), series.interval, computed_ms};
        query(fmt::format("SELECT {} FROM live_metrics WHERE symbol = $1 AND interval_s = $2 AND computed_ms = $3 "
                          "ORDER BY model_version, horizon, window_s",
                          kLiveColumns),
              params, [&](const SqlRow& row) { out.push_back(read_live(row)); });
    }
    return out;
}

std::vector<LiveMetric> SqlStore::live_metrics_history(const SeriesKey& key, std::int64_t limit) {
    const std::array<SqlParam, 3> params{std::string_view(key.symbol), key.interval, limit};
    std::vector<LiveMetric> out;
    query(fmt::format("SELECT {} FROM live_metrics WHERE symbol = $1 AND interval_s = $2 ORDER BY computed_ms DESC, "
                      "model_version, horizon, window_s LIMIT $3",
                      kLiveColumns),
          params, [&](const SqlRow& row) { out.push_back(read_live(row)); });
    return out;
}

void SqlStore::insert_feature_drift(std::span<const FeatureDrift> drift) {
    ScopedTransaction transaction(*this);
    for (const auto& d : drift) {
        const std::array<SqlParam, 7> params{d.computed_ms,
                                             std::string_view(d.series.symbol),
                                             d.series.interval,
                                             std::int64_t{d.model_version},
                                             std::string_view(d.feature),
                                             d.psi,
                                             d.bars};
        query("INSERT INTO feature_drift (computed_ms, symbol, interval_s, model_version, feature, psi, bars) VALUES "
              "($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
              params, {});
    }
    transaction.commit();
}

std::vector<FeatureDrift> SqlStore::latest_feature_drift(const SeriesKey& key) {
    std::vector<FeatureDrift> out;
    for (const auto& [series, computed_ms] : latest_passes("feature_drift", key)) {
        const std::array<SqlParam, 3> params{std::string_view(series.symbol), series.interval, computed_ms};
        query("SELECT computed_ms, symbol, interval_s, model_version, feature, psi, bars FROM feature_drift "
              "WHERE symbol = $1 AND interval_s = $2 AND computed_ms = $3 ORDER BY feature",
              params, [&](const SqlRow& row) {
                  out.push_back({row.get_int(0),
                                 {row.get_text(1), row.get_int(2)},
                                 static_cast<int>(row.get_int(3)),
                                 row.get_text(4),
                                 row.get_double(5),
                                 row.get_int(6)});
              });
    }
    return out;
}

} // namespace btcml::store
