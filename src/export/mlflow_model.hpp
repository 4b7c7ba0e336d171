#pragma once
// Export for everyone else: a stored model as an ONNX graph of the whole forecaster (features, scaler, standard
// ONNX LSTM layers, head, quantile sorting, target scale, calibration, prices), built with libonnx, inside an
// MLflow model directory (MLmodel with the onnx and python_function flavors and a signature), so that
// `mlflow.pyfunc.load_model(...).predict({"time": ..., "ohlcv": ...})` gives what `btcml predict` gives.
#include "model/forecaster.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace btcml::exporting {

/// ONNX opset of the exported graphs.
inline constexpr int onnx_opset = 14;

/// The serialized ONNX model of a forecaster. Inputs: `time` int64 [N, window+1] (open times, unix seconds,
/// oldest first, consecutive bars) and `ohlcv` float64 [N, window+1, 5]. Outputs, float64 [N, horizons, 3] (the
/// 10%, 50% and 90% quantiles): `log_return` and `price` (the last close times exp(log_return)). Checked with
/// onnx::checker before it is returned.
std::string forecaster_onnx(const model::Forecaster& forecaster, const std::string& doc);

/// The model's input for the latest window+1 consecutive bars of `bars` (ascending, one series): {"time":
/// [[…]], "ohlcv": [[[open, high, low, close, volume], …]]}, a batch of one. InvalidInput when no window+1
/// consecutive bars exist.
nlohmann::json input_example(const model::Forecaster& forecaster, std::span<const Bar> bars, std::int64_t interval);

/// Writes `dir` (created, replaced if it exists): model.onnx, MLmodel, python_env.yaml, requirements.txt and, in
/// MLflow's format for a dict of arrays (MLmodel `saved_input_example_info`, type ndarray), input_example.json
/// (input_example() of `bars`, the model's series) and serving_input_example.json ({"inputs": …}, the body of a
/// request to `mlflow models serve`). Returns the file names written. `run_id` goes into MLmodel when not empty.
std::vector<std::string> write_mlflow_model(const std::filesystem::path& home, int version,
                                            const std::filesystem::path& dir, const std::string& run_id,
                                            std::span<const Bar> bars);

} // namespace btcml::exporting
