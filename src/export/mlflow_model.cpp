#include "export/mlflow_model.hpp"

#include "core/error.hpp"
#include "core/time.hpp"
#include "evaluate/metrics.hpp"

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <fstream>
#include <functional>
#include <numbers>
#include <random>

namespace btcml::exporting {
namespace {

namespace fs = std::filesystem;

constexpr int quantile_count = static_cast<int>(evaluate::quantile_levels.size());

// Adds nodes and constants to one graph with fresh names.
class GraphBuilder {
  public:
    explicit GraphBuilder(onnx::GraphProto& graph) : graph_(graph) {}

    /// One node; returns its first output (named `output` when given).
    std::string op(const std::string& type, const std::vector<std::string>& inputs, const std::string& output = {},
                   const std::function<void(onnx::NodeProto&)>& attributes = {}) {
        onnx::NodeProto* node = graph_.add_node();
        node->set_op_type(type);
        node->set_name(fmt::format("{}_{}", type, ++counter_));
        for (const auto& input : inputs)
            node->add_input(input);
        const std::string out = output.empty() ? fmt::format("{}_{}_out", type, counter_) : output;
        node->add_output(out);
        if (attributes) attributes(*node);
        return out;
    }

    std::string doubles(const std::vector<std::int64_t>& shape, const std::vector<double>& values) {
        onnx::TensorProto* t = add_constant(shape, onnx::TensorProto::DOUBLE);
        for (const double v : values)
            t->add_double_data(v);
        return t->name();
    }
    std::string floats(const std::vector<std::int64_t>& shape, const std::vector<float>& values) {
        onnx::TensorProto* t = add_constant(shape, onnx::TensorProto::FLOAT);
        for (const float v : values)
            t->add_float_data(v);
        return t->name();
    }
    std::string ints(const std::vector<std::int64_t>& shape, const std::vector<std::int64_t>& values) {
        onnx::TensorProto* t = add_constant(shape, onnx::TensorProto::INT64);
        for (const std::int64_t v : values)
            t->add_int64_data(v);
        return t->name();
    }

    /// x[..., start:end, ...] along one axis.
    std::string slice(const std::string& x, std::int64_t start, std::int64_t end, std::int64_t axis) {
        return op("Slice", {x, ints({1}, {start}), ints({1}, {end}), ints({1}, {axis})});
    }
    std::string cast(const std::string& x, onnx::TensorProto::DataType to) {
        return op("Cast", {x}, {}, [&](onnx::NodeProto& n) { int_attribute(n, "to", to); });
    }
    /// Ascending sort along the last axis of [N, horizons, 3].
    std::string sort_quantiles(const std::string& x, const std::string& output = {}) {
        onnx::NodeProto* node = graph_.add_node();
        node->set_op_type("TopK");
        node->set_name(fmt::format("TopK_{}", ++counter_));
        node->add_input(x);
        node->add_input(ints({1}, {quantile_count}));
        const std::string out = output.empty() ? fmt::format("TopK_{}_values", counter_) : output;
        node->add_output(out);
        node->add_output(fmt::format("TopK_{}_indices", counter_));
        int_attribute(*node, "axis", 2);
        int_attribute(*node, "largest", 0);
        int_attribute(*node, "sorted", 1);
        return out;
    }

    static void int_attribute(onnx::NodeProto& node, const std::string& name, std::int64_t value) {
        auto* a = node.add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(value);
    }

  private:
    onnx::TensorProto* add_constant(const std::vector<std::int64_t>& shape, onnx::TensorProto::DataType type) {
        onnx::TensorProto* t = graph_.add_initializer();
        t->set_name(fmt::format("const_{}", ++counter_));
        t->set_data_type(type);
        for (const auto d : shape)
            t->add_dims(d);
        return t;
    }

    onnx::GraphProto& graph_;
    int counter_ = 0;
};

void add_value_info(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
                    onnx::TensorProto::DataType type, const std::vector<std::int64_t>& shape) {
    onnx::ValueInfoProto* v = list->Add();
    v->set_name(name);
    auto* tensor = v->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(type);
    for (const auto d : shape) {
        auto* dim = tensor->mutable_shape()->add_dim();
        if (d < 0)
            dim->set_dim_param("batch");
        else
            dim->set_dim_value(d);
    }
}

// PyTorch stacks the gates i, f, g, o; ONNX's LSTM wants i, o, f, c (c is PyTorch's g).
std::vector<float> onnx_gate_order(std::span<const float> values) {
    const std::size_t block = values.size() / 4;
    std::vector<float> out;
    out.reserve(values.size());
    for (const int gate : {0, 3, 1, 2})
        out.insert(out.end(), values.begin() + static_cast<std::ptrdiff_t>(gate * block),
                   values.begin() + static_cast<std::ptrdiff_t>((gate + 1) * block));
    return out;
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out.flush()) throw Unavailable(fmt::format("cannot write {}", path.string()));
}

} // namespace

std::string forecaster_onnx(const model::Forecaster& forecaster, const std::string& doc) {
    const auto& spec = forecaster.spec();
    const auto& scaler = forecaster.scaler();
    const auto& net = forecaster.network();
    const auto& config = net.config();
    const auto window = static_cast<std::int64_t>(spec.window);
    const auto horizons = static_cast<std::int64_t>(spec.horizons.size());
    const auto hidden = static_cast<std::int64_t>(config.hidden_size);

    onnx::ModelProto model;
    model.set_ir_version(8);
    model.set_producer_name("btcml");
    model.set_producer_version(BTCML_VERSION);
    model.set_doc_string(doc);
    auto* opset = model.add_opset_import();
    opset->set_domain("");
    opset->set_version(onnx_opset);
    onnx::GraphProto& graph = *model.mutable_graph();
    graph.set_name("btcml_forecaster");
    add_value_info(graph.mutable_input(), "time", onnx::TensorProto::INT64, {-1, window + 1});
    add_value_info(graph.mutable_input(), "ohlcv", onnx::TensorProto::DOUBLE, {-1, window + 1, 5});
    add_value_info(graph.mutable_output(), "log_return", onnx::TensorProto::DOUBLE, {-1, horizons, quantile_count});
    add_value_info(graph.mutable_output(), "price", onnx::TensorProto::DOUBLE, {-1, horizons, quantile_count});
    GraphBuilder g(graph);

    // Features of the last `window` bars, as features::compute_features computes them (see dataset.cpp).
    const std::string closes = g.slice("ohlcv", 3, 4, 2); // [N, W+1, 1]
    const std::string log_return =
        g.op("Log", {g.op("Div", {g.slice(closes, 1, window + 1, 1), g.slice(closes, 0, window, 1)})});
    const std::string bars = g.slice("ohlcv", 1, window + 1, 1); // [N, W, 5]
    const auto column = [&](std::int64_t c) { return g.slice(bars, c, c + 1, 2); };
    const std::string log_high_low = g.op("Log", {g.op("Div", {column(1), column(2)})});
    const std::string log_close_open = g.op("Log", {g.op("Div", {column(3), column(0)})});
    const std::string log1p_volume = g.op("Log", {g.op("Add", {column(4), g.doubles({}, {1.0})})});
    const std::string times = g.slice("time", 1, window + 1, 1); // [N, W]
    const std::string day_seconds = g.ints({}, {86400});
    const std::string second_of_day = g.op("Mod", {times, day_seconds}); // sign of the divisor: never negative
    const std::string day = g.op("Div", {g.op("Sub", {times, second_of_day}), day_seconds});
    const std::string weekday = g.op("Mod", {g.op("Add", {day, g.ints({}, {3})}), g.ints({}, {7})}); // Monday 0
    constexpr double two_pi = 2 * std::numbers::pi;
    const std::string hour_angle =
        g.op("Mul", {g.cast(second_of_day, onnx::TensorProto::DOUBLE), g.doubles({}, {two_pi / 86400.0})});
    const std::string weekday_angle =
        g.op("Mul", {g.cast(weekday, onnx::TensorProto::DOUBLE), g.doubles({}, {two_pi / 7.0})});
    const std::string last_axis = g.ints({1}, {2});
    // ONNX Runtime has no float64 Cos: the cyclic features go through float32, as they do into the network anyway.
    const auto cyclic = [&](const char* fn, const std::string& angle) {
        const std::string value = g.op(fn, {g.cast(angle, onnx::TensorProto::FLOAT)});
        return g.op("Unsqueeze", {g.cast(value, onnx::TensorProto::DOUBLE), last_axis});
    };
    const std::string features =
        g.op("Concat",
             {log_return, log_high_low, log_close_open, log1p_volume, cyclic("Sin", hour_angle),
              cyclic("Cos", hour_angle), cyclic("Sin", weekday_angle), cyclic("Cos", weekday_angle)},
             {}, [](onnx::NodeProto& n) { GraphBuilder::int_attribute(n, "axis", 2); });
    const auto n_features = static_cast<std::int64_t>(features::feature_count);
    const std::string scaled = g.cast(g.op("Div", {g.op("Sub", {features, g.doubles({n_features}, scaler.mean)}),
                                                   g.doubles({n_features}, scaler.stddev)}),
                                      onnx::TensorProto::FLOAT);

    // The LSTM layers take [steps, batch, inputs].
    std::string x = g.op("Transpose", {scaled}, {}, [](onnx::NodeProto& n) {
        auto* a = n.add_attribute();
        a->set_name("perm");
        a->set_type(onnx::AttributeProto::INTS);
        for (const int p : {1, 0, 2})
            a->add_ints(p);
    });
    std::string last_hidden;
    for (int k = 0; k < config.num_layers; ++k) {
        const auto inputs = static_cast<std::int64_t>(k == 0 ? config.input_size : config.hidden_size);
        const auto w = onnx_gate_order(net.tensor_values(fmt::format("weight_ih_l{}", k)));
        const auto r = onnx_gate_order(net.tensor_values(fmt::format("weight_hh_l{}", k)));
        auto b = onnx_gate_order(net.tensor_values(fmt::format("bias_ih_l{}", k)));
        const auto b_hh = onnx_gate_order(net.tensor_values(fmt::format("bias_hh_l{}", k)));
        b.insert(b.end(), b_hh.begin(), b_hh.end());
        onnx::NodeProto* lstm = graph.add_node();
        lstm->set_op_type("LSTM");
        lstm->set_name(fmt::format("lstm_l{}", k));
        for (const auto& input : {x, g.floats({1, 4 * hidden, inputs}, w), g.floats({1, 4 * hidden, hidden}, r),
                                  g.floats({1, 8 * hidden}, b)})
            lstm->add_input(input);
        lstm->add_output(fmt::format("lstm_l{}_y", k));   // [steps, 1, batch, hidden]
        lstm->add_output(fmt::format("lstm_l{}_y_h", k)); // [1, batch, hidden]
        GraphBuilder::int_attribute(*lstm, "hidden_size", hidden);
        x = g.op("Squeeze", {fmt::format("lstm_l{}_y", k), g.ints({1}, {1})});
        last_hidden = fmt::format("lstm_l{}_y_h", k);
    }
    const std::string h = g.op("Squeeze", {last_hidden, g.ints({1}, {0})}); // [batch, hidden]
    const auto output_size = static_cast<std::int64_t>(config.output_size);
    const auto head_w = net.tensor_values("head.weight");
    const auto head_b = net.tensor_values("head.bias");
    const std::string head = g.op("Gemm",
                                  {h, g.floats({output_size, hidden}, {head_w.begin(), head_w.end()}),
                                   g.floats({output_size}, {head_b.begin(), head_b.end()})},
                                  {}, [](onnx::NodeProto& n) { GraphBuilder::int_attribute(n, "transB", 1); });
    const std::string quantiles = g.op("Reshape", {head, g.ints({3}, {-1, horizons, quantile_count})});

    // As Forecaster::forecast: sort, scale to log returns, widen by the calibration, sort again.
    std::vector<double> offsets;
    for (const double o : forecaster.interval_offsets())
        offsets.insert(offsets.end(), {-o, 0.0, o});
    const std::string unit = g.cast(g.sort_quantiles(quantiles), onnx::TensorProto::DOUBLE);
    const std::string returns = g.op("Add", {g.op("Mul", {unit, g.doubles({1, horizons, 1}, scaler.target_stddev)}),
                                             g.doubles({1, horizons, quantile_count}, offsets)});
    g.sort_quantiles(returns, "log_return");
    g.op("Mul", {g.slice(closes, window, window + 1, 1), g.op("Exp", {"log_return"})}, "price");

    try {
        onnx::checker::check_model(model);
    } catch (const std::exception& e) {
        throw Error(ErrorKind::internal, fmt::format("the exported ONNX graph does not check: {}", e.what()));
    }
    std::string bytes;
    if (!model.SerializeToString(&bytes)) throw Error(ErrorKind::internal, "cannot serialize the ONNX model");
    return bytes;
}

nlohmann::json input_example(const model::Forecaster& forecaster, std::span<const Bar> bars, std::int64_t interval) {
    const std::size_t window = forecaster.spec().window;
    const features::FeatureTable table = features::compute_features(bars, interval);
    // The newest bar that ends a gap-free window.
    std::size_t last = table.size();
    while (last > 0 && !features::can_end_window(table, last - 1, window))
        --last;
    if (last == 0)
        throw InvalidInput(fmt::format("no {} consecutive {} bars for the model's input example", window + 1,
                                       format_interval(interval)));
    nlohmann::json times = nlohmann::json::array(), ohlcv = nlohmann::json::array();
    for (const Bar& b : bars.subspan(last - 1 - window, window + 1)) {
        times.push_back(b.time);
        ohlcv.push_back({b.open, b.high, b.low, b.close, b.volume});
    }
    return {{"time", nlohmann::json::array({times})}, {"ohlcv", nlohmann::json::array({ohlcv})}};
}

std::vector<std::string> write_mlflow_model(const fs::path& home, int version, const fs::path& dir,
                                            const std::string& run_id, std::span<const Bar> bars) {
    const auto loaded = model::load_model(home, std::to_string(version));
    const nlohmann::json example = input_example(loaded.forecaster, bars, loaded.series.interval);
    const auto& spec = loaded.forecaster.spec();
    const std::string onnx_bytes = forecaster_onnx(
        loaded.forecaster, fmt::format("btcml model version {} of {} {}: quantile forecasts of log returns and prices",
                                       version, loaded.series.symbol, format_interval(loaded.series.interval)));
    const auto w = spec.window + 1;
    const auto h = spec.horizons.size();
    const std::string inputs = fmt::format(
        R"([{{"type": "tensor", "tensor-spec": {{"dtype": "int64", "shape": [-1, {0}]}}, "name": "time"}}, )"
        R"({{"type": "tensor", "tensor-spec": {{"dtype": "float64", "shape": [-1, {0}, 5]}}, "name": "ohlcv"}}])",
        w);
    const std::string outputs = fmt::format(
        R"([{{"type": "tensor", "tensor-spec": {{"dtype": "float64", "shape": [-1, {0}, 3]}}, "name": "log_return"}}, )"
        R"({{"type": "tensor", "tensor-spec": {{"dtype": "float64", "shape": [-1, {0}, 3]}}, "name": "price"}}])",
        h);
    std::mt19937_64 rng(std::random_device{}());
    const std::int64_t now = now_unix();
    std::string mlmodel = fmt::format(R"(artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.12.0
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.2
model_size_bytes: {}
model_uuid: {:016x}{:016x}
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: ndarray
signature:
  inputs: '{}'
  outputs: '{}'
  params: null
utc_time_created: '{}'
metadata:
  btcml_version: {}
  btcml_model_version: {}
  symbol: {}
  interval: {}
  horizons: '{}'
)",
                                      onnx_bytes.size(), rng(), rng(), inputs, outputs,
                                      format_iso8601(now).replace(10, 1, " ").substr(0, 19) + ".000000", BTCML_VERSION,
                                      version, loaded.series.symbol, format_interval(loaded.series.interval),
                                      nlohmann::json(spec.horizons).dump());
    if (!run_id.empty()) mlmodel += fmt::format("run_id: {}\n", run_id);

    // Written beside the target and renamed over it, so a reader never sees half a model.
    const fs::path tmp = dir.string() + ".tmp";
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    const std::vector<std::pair<std::string, std::string>> files{
        {"model.onnx", onnx_bytes},
        {"MLmodel", mlmodel},
        {"python_env.yaml", "python: 3.11.2\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n"},
        {"requirements.txt", "mlflow\nonnx\nonnxruntime\nnumpy\n"},
        {"input_example.json", example.dump()},
        {"serving_input_example.json", nlohmann::json{{"inputs", example}}.dump(2)}};
    std::vector<std::string> names;
    for (const auto& [name, text] : files) {
        write_text(tmp / name, text);
        names.push_back(name);
    }
    fs::remove_all(dir);
    fs::rename(tmp, dir);
    return names;
}

} // namespace btcml::exporting
