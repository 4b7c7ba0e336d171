#include "model/lstm.hpp"

#include "model/lstm_kernels.hpp"

#include "core/error.hpp"

#include <Eigen/Core>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace btcml::model {
namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<Mat>;
using ConstMatMap = Eigen::Map<const Mat>;
using ArrMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrMap = Eigen::Map<const Eigen::ArrayXf>;

// Pointers to one LSTM layer's tensors inside a flat vector (parameters or gradient).
template <typename T> struct LayerTensors {
    T* w_ih;
    T* w_hh;
    T* b_ih;
    T* b_hh;
};

template <typename T> LayerTensors<T> layer_tensors(T* base, const std::vector<TensorView>& tensors, int layer) {
    const auto k = static_cast<std::size_t>(layer) * 4;
    return {base + tensors[k].offset, base + tensors[k + 1].offset, base + tensors[k + 2].offset,
            base + tensors[k + 3].offset};
}

int layer_input(const LstmConfig& c, int layer) { return layer == 0 ? c.input_size : c.hidden_size; }

// Dropout masks come from a per-window stream so they do not depend on how the batch is split among threads.
std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Forward activations of a slice of the batch, time-major ([step][window][...]) so each step's block is contiguous.
struct Activations {
    int n = 0;
    int steps = 0;
    std::vector<float> x0;                   // [T][n][input]
    std::vector<std::vector<float>> gates;   // per layer [T][n][4H], after the nonlinearities
    std::vector<std::vector<float>> cells;   // per layer [T][n][H]
    std::vector<std::vector<float>> tanh_c;  // per layer [T][n][H]
    std::vector<std::vector<float>> hidden;  // per layer [T][n][H]
    std::vector<std::vector<float>> dropped; // per layer below the top: hidden * mask, the next layer's input
    std::vector<std::vector<float>> masks;   // per layer below the top: 0 or 1/(1-p)

    void resize(const LstmConfig& c, int n_windows, int n_steps, bool dropout) {
        n = n_windows;
        steps = n_steps;
        const auto rows = static_cast<std::size_t>(n) * steps;
        const auto h = static_cast<std::size_t>(c.hidden_size);
        x0.resize(rows * c.input_size);
        gates.resize(c.num_layers);
        cells.resize(c.num_layers);
        tanh_c.resize(c.num_layers);
        hidden.resize(c.num_layers);
        dropped.resize(c.num_layers - 1);
        masks.resize(c.num_layers - 1);
        for (int l = 0; l < c.num_layers; ++l) {
            gates[l].resize(rows * 4 * h);
            cells[l].resize(rows * h);
            tanh_c[l].resize(rows * h);
            hidden[l].resize(rows * h);
            if (dropout && l + 1 < c.num_layers) {
                dropped[l].resize(rows * h);
                masks[l].resize(rows * h);
            }
        }
    }

    // The input sequence of layer `l` as stored for it.
    [[nodiscard]] const float* layer_input(int l, bool dropout) const {
        if (l == 0) return x0.data();
        return dropout ? dropped[l - 1].data() : hidden[l - 1].data();
    }
};

// Pointers into LstmNetwork::packed_ for one layer.
// The recurrent product h_{t-1} W_hh^T runs once per step: for one window it streams all of W_hh (64 KiB at
// H = 64, more than L1) from L2, so the weights are stored as contiguous column panels that stream sequentially
// and can be visited in either order.
constexpr int recurrent_panel = 64;

template <typename T> struct PackedLayer {
    T* w_ih_t; // [in x 4H]
    T* w_hh_t; // [H x 4H] in column panels of recurrent_panel floats, each contiguous [H x panel]
    T* bias;   // [4H]
};

std::size_t packed_layer_size(const LstmConfig& c, int layer) {
    return static_cast<std::size_t>(layer_input(c, layer) + c.hidden_size + 1) * 4 * c.hidden_size;
}

template <typename T> PackedLayer<T> packed_layer(T* packed, const LstmConfig& c, int layer) {
    std::size_t offset = 0;
    for (int l = 0; l < layer; ++l)
        offset += packed_layer_size(c, l);
    const auto g4 = static_cast<std::size_t>(4) * c.hidden_size;
    const auto in = static_cast<std::size_t>(layer_input(c, layer));
    return {packed + offset, packed + offset + in * g4, packed + offset + (in + c.hidden_size) * g4};
}

template <typename T> T* packed_head(T* packed, const LstmConfig& c) {
    std::size_t offset = 0;
    for (int l = 0; l < c.num_layers; ++l)
        offset += packed_layer_size(c, l);
    return packed + offset;
}

// Runs the LSTM stack over `n` windows (row-major [n][steps][input]) and writes the head's outputs [n][out].
// With `dropout_seed` set, applies dropout between layers, masks drawn per window from (seed, first_window + w).
void forward_slice(const LstmConfig& c, const std::vector<TensorView>& tensors, const float* params,
                   const float* packed, const float* inputs, int n, int steps, float* outputs, Activations& a,
                   const std::uint64_t* dropout_seed, std::int64_t first_window) {
    const bool dropout = dropout_seed != nullptr && c.dropout > 0.0F && c.num_layers > 1;
    a.resize(c, n, steps, dropout);
    const int h = c.hidden_size;
    const int in0 = c.input_size;
    for (int w = 0; w < n; ++w)
        for (int t = 0; t < steps; ++t)
            std::copy_n(inputs + (static_cast<std::size_t>(w) * steps + t) * in0, in0,
                        a.x0.data() + (static_cast<std::size_t>(t) * n + w) * in0);
    if (dropout) {
        const float keep = 1.0F - c.dropout;
        const float scale = 1.0F / keep;
        for (int w = 0; w < n; ++w) {
            const auto window = static_cast<std::uint64_t>(first_window + w);
            std::uint64_t state = *dropout_seed ^ (0xd1b54a32d192ed03ULL * window);
            for (int l = 0; l + 1 < c.num_layers; ++l)
                for (int t = 0; t < steps; ++t) {
                    float* m = a.masks[l].data() + (static_cast<std::size_t>(t) * n + w) * h;
                    for (int j = 0; j < h; ++j) {
                        const float u = static_cast<float>(splitmix64(state) >> 40) * 0x1.0p-24F;
                        m[j] = u < keep ? scale : 0.0F;
                    }
                }
        }
    }
    const int rows = n * steps;
    const int g4 = 4 * h;
    for (int l = 0; l < c.num_layers; ++l) {
        const int in = layer_input(c, l);
        const PackedLayer<const float> p = packed_layer(packed, c, l);
        float* gates = a.gates[l].data();
        float* cells = a.cells[l].data();
        float* tanh_c = a.tanh_c[l].data();
        float* hidden = a.hidden[l].data();
        // The input projections of every step in one GEMM; only h_{t-1} W_hh^T remains inside the recurrence.
        gemm(rows, g4, in, a.layer_input(l, dropout), in, 1, p.w_ih_t, g4, gates, g4, false);
        for (int t = 0; t < steps; ++t) {
            const std::size_t row0 = static_cast<std::size_t>(t) * n;
            // Panels alternate direction from step to step, so the step starts on the panels still in L1.
            const int panels = (g4 + recurrent_panel - 1) / recurrent_panel;
            if (t > 0)
                for (int q = 0; q < panels; ++q) {
                    const int j = (t % 2 == 0 ? q : panels - 1 - q) * recurrent_panel;
                    const int width = std::min(recurrent_panel, g4 - j);
                    gemm(n, width, h, hidden + (row0 - n) * h, h, 1, p.w_hh_t + static_cast<std::size_t>(j) * h, width,
                         gates + row0 * g4 + j, g4, true);
                }
            for (int w = 0; w < n; ++w) {
                const std::size_t r = row0 + w;
                lstm_cell(h, p.bias, gates + r * g4, t > 0 ? cells + (r - n) * h : nullptr, cells + r * h,
                          tanh_c + r * h, hidden + r * h);
            }
        }
        if (dropout && l + 1 < c.num_layers)
            ArrMap(a.dropped[l].data(), static_cast<Eigen::Index>(rows) * h) =
                ConstArrMap(hidden, static_cast<Eigen::Index>(rows) * h) *
                ConstArrMap(a.masks[l].data(), static_cast<Eigen::Index>(rows) * h);
    }
    const int out = c.output_size;
    const float* head_bias = params + tensors.back().offset;
    for (int w = 0; w < n; ++w)
        std::copy_n(head_bias, out, outputs + static_cast<std::size_t>(w) * out);
    const float* last = a.hidden.back().data() + static_cast<std::size_t>(steps - 1) * n * h;
    gemm(n, out, h, last, h, 1, packed_head(packed, c), out, outputs, out, true);
}

// Gradient workspace of one slice: per-step derivatives and the running dh, dc of the recurrence.
struct Derivatives {
    std::vector<float> d_gates; // [T][n][4H]
    std::vector<float> d_above; // [T][n][H], gradient from above into this layer's hidden states (reused per layer)
    std::vector<float> d_h;     // [n][H]
    std::vector<float> d_c;     // [n][H]
    std::vector<float> d_out;   // [n][out]
};

// Adds the slice's gradient to `grad` given d loss / d outputs in `d.d_out`. Needs the activations of forward_slice.
void backward_slice(const LstmConfig& c, const std::vector<TensorView>& tensors, const float* params,
                    const Activations& a, bool dropout, Derivatives& d, float* grad) {
    const int n = a.n;
    const int steps = a.steps;
    const int h = c.hidden_size;
    const int g4 = 4 * h;
    const int rows = n * steps;
    const auto nh = static_cast<std::size_t>(n) * h;
    d.d_gates.resize(static_cast<std::size_t>(rows) * g4);
    d.d_above.assign(static_cast<std::size_t>(rows) * h, 0.0F);
    d.d_h.resize(nh);
    d.d_c.resize(nh);

    const auto& head_w = tensors[tensors.size() - 2];
    const auto& head_b = tensors.back();
    const ConstMatMap d_out(d.d_out.data(), n, c.output_size);
    const float* last = a.hidden.back().data() + static_cast<std::size_t>(steps - 1) * n * h;
    const int out = c.output_size;
    gemm(out, h, n, d.d_out.data(), 1, out, last, h, grad + head_w.offset, h, true);
    MatMap(grad + head_b.offset, 1, out) += d_out.colwise().sum();
    gemm(n, h, out, d.d_out.data(), out, 1, params + head_w.offset, h, d.d_above.data() + (steps - 1) * nh, h, false);

    for (int l = c.num_layers - 1; l >= 0; --l) {
        const int in = layer_input(c, l);
        const auto p = layer_tensors(params, tensors, l);
        const auto gp = layer_tensors(grad, tensors, l);
        const float* gates = a.gates[l].data();
        const float* cells = a.cells[l].data();
        const float* tanh_c = a.tanh_c[l].data();
        const float* hidden = a.hidden[l].data();
        float* d_gates = d.d_gates.data();
        std::fill(d.d_h.begin(), d.d_h.end(), 0.0F);
        std::fill(d.d_c.begin(), d.d_c.end(), 0.0F);
        for (int t = steps - 1; t >= 0; --t) {
            const std::size_t row0 = static_cast<std::size_t>(t) * n;
            for (int w = 0; w < n; ++w) {
                const std::size_t r = row0 + w;
                lstm_cell_backward(h, gates + r * g4, t > 0 ? cells + (r - n) * h : nullptr, tanh_c + r * h,
                                   d.d_above.data() + r * h, d.d_h.data() + static_cast<std::size_t>(w) * h,
                                   d.d_c.data() + static_cast<std::size_t>(w) * h, d_gates + r * g4);
            }
            if (t > 0) gemm(n, h, g4, d_gates + row0 * g4, g4, 1, p.w_hh, h, d.d_h.data(), h, false);
        }
        // Weight gradients as dG^T X: one GEMM over all steps and windows, A read transposed in place.
        gemm(g4, h, rows - n, d_gates + nh * 4, 1, g4, hidden, h, gp.w_hh, h, true);
        gemm(g4, in, rows, d_gates, 1, g4, a.layer_input(l, dropout), in, gp.w_ih, in, true);
        // Row by row, so the sum runs along contiguous memory.
        ArrMap d_bias(gp.b_ih, g4);
        for (int r = 0; r < rows; ++r)
            d_bias += ConstArrMap(d_gates + static_cast<std::size_t>(r) * g4, g4);
        ArrMap(gp.b_hh, g4) += d_bias;
        if (l > 0) {
            gemm(rows, in, g4, d_gates, g4, 1, p.w_ih, in, d.d_above.data(), in, false);
            if (dropout)
                ArrMap(d.d_above.data(), static_cast<Eigen::Index>(rows) * h) *=
                    ConstArrMap(a.masks[l - 1].data(), static_cast<Eigen::Index>(rows) * h);
        }
    }
}

// Sum of the pinball losses of `n` windows; with `d_out`, also writes d(scale * sum) / d outputs.
double pinball_sum(const float* outputs, const float* targets, int n, int horizons, std::span<const float> quantiles,
                   float* d_out, float scale) {
    const auto q_count = static_cast<int>(quantiles.size());
    double sum = 0.0;
    for (int w = 0; w < n; ++w)
        for (int k = 0; k < horizons; ++k) {
            const float y = targets[static_cast<std::size_t>(w) * horizons + k];
            for (int j = 0; j < q_count; ++j) {
                const std::size_t i = (static_cast<std::size_t>(w) * horizons + k) * q_count + j;
                const float q = quantiles[j];
                const float diff = y - outputs[i];
                sum += std::max(q * diff, (q - 1.0F) * diff);
                // At a kink the two sides share the gradient, as torch.maximum does.
                if (d_out != nullptr) d_out[i] = scale * (diff > 0.0F ? -q : diff < 0.0F ? 1.0F - q : 0.5F - q);
            }
        }
    return sum;
}

float uniform(std::mt19937_64& rng, float bound) {
    const float u = static_cast<float>(rng() >> 40) * 0x1.0p-24F; // [0, 1)
    return (2.0F * u - 1.0F) * bound;
}

// The largest slice of a batch forward() runs at once, to bound per-thread workspaces.
constexpr int max_forward_slice = 64;

} // namespace

void validate(const LstmConfig& config) {
    if (config.input_size < 1) throw UsageError(fmt::format("input_size must be >= 1, got {}", config.input_size));
    if (config.hidden_size < 1) throw UsageError(fmt::format("hidden_size must be >= 1, got {}", config.hidden_size));
    if (config.num_layers < 1) throw UsageError(fmt::format("num_layers must be >= 1, got {}", config.num_layers));
    if (config.output_size < 1) throw UsageError(fmt::format("output_size must be >= 1, got {}", config.output_size));
    if (!(config.dropout >= 0.0F && config.dropout < 1.0F))
        throw UsageError(fmt::format("dropout must be in [0, 1), got {}", config.dropout));
}

std::vector<TensorView> lstm_tensors(const LstmConfig& config) {
    validate(config);
    std::vector<TensorView> tensors;
    std::size_t offset = 0;
    auto add = [&](std::string name, int rows, int cols) {
        tensors.push_back({std::move(name), rows, cols, offset});
        offset += tensors.back().size();
    };
    const int g4 = 4 * config.hidden_size;
    for (int l = 0; l < config.num_layers; ++l) {
        add(fmt::format("weight_ih_l{}", l), g4, layer_input(config, l));
        add(fmt::format("weight_hh_l{}", l), g4, config.hidden_size);
        add(fmt::format("bias_ih_l{}", l), g4, 1);
        add(fmt::format("bias_hh_l{}", l), g4, 1);
    }
    add("head.weight", config.output_size, config.hidden_size);
    add("head.bias", config.output_size, 1);
    return tensors;
}

LstmNetwork::LstmNetwork(const LstmConfig& config, std::uint64_t seed)
    : config_(config), tensors_(lstm_tensors(config)) {
    params_.resize(tensors_.back().offset + tensors_.back().size());
    std::mt19937_64 rng(seed);
    const float bound = 1.0F / std::sqrt(static_cast<float>(config.hidden_size));
    for (float& p : params_)
        p = uniform(rng, bound);
    pack();
}

void LstmNetwork::pack() {
    const int h = config_.hidden_size;
    const int g4 = 4 * h;
    std::size_t size = 0;
    for (int l = 0; l < config_.num_layers; ++l)
        size += packed_layer_size(config_, l);
    packed_.resize(size + static_cast<std::size_t>(h) * config_.output_size);
    for (int l = 0; l < config_.num_layers; ++l) {
        const int in = layer_input(config_, l);
        const auto src = layer_tensors(params_.data(), tensors_, l);
        const PackedLayer<float> dst = packed_layer(packed_.data(), config_, l);
        MatMap(dst.w_ih_t, in, g4) = ConstMatMap(src.w_ih, g4, in).transpose();
        for (int j = 0; j < g4; j += recurrent_panel) {
            const int width = std::min(recurrent_panel, g4 - j);
            MatMap(dst.w_hh_t + static_cast<std::size_t>(j) * h, h, width) =
                ConstMatMap(src.w_hh + static_cast<std::size_t>(j) * h, width, h).transpose();
        }
        ArrMap(dst.bias, g4) = ConstArrMap(src.b_ih, g4) + ConstArrMap(src.b_hh, g4);
    }
    const auto& head = tensors_[tensors_.size() - 2];
    MatMap(packed_head(packed_.data(), config_), h, config_.output_size) =
        ConstMatMap(params_.data() + head.offset, config_.output_size, h).transpose();
}

const TensorView& LstmNetwork::tensor(std::string_view name) const {
    for (const auto& t : tensors_)
        if (t.name == name) return t;
    throw InvalidInput(fmt::format("the LSTM network has no tensor named '{}'", name));
}

void LstmNetwork::set_parameters(std::span<const float> values) {
    if (values.size() != params_.size())
        throw InvalidInput(fmt::format("expected {} LSTM parameters, got {}", params_.size(), values.size()));
    std::copy(values.begin(), values.end(), params_.begin());
    pack();
}

std::span<const float> LstmNetwork::tensor_values(std::string_view name) const {
    const auto& t = tensor(name);
    return std::span<const float>(params_).subspan(t.offset, t.size());
}

void LstmNetwork::set_tensor(std::string_view name, std::span<const float> values) {
    const auto& t = tensor(name);
    if (values.size() != t.size())
        throw InvalidInput(fmt::format("tensor '{}' is {}x{} ({} values), got {} values", name, t.rows, t.cols,
                                       t.size(), values.size()));
    std::copy(values.begin(), values.end(), params_.begin() + static_cast<std::ptrdiff_t>(t.offset));
    pack();
}

void LstmNetwork::forward(const float* inputs, int batch, int steps, float* outputs) const {
    if (batch < 0 || steps < 1) throw UsageError(fmt::format("bad forward shape: batch {}, steps {}", batch, steps));
    const int slices = (batch + max_forward_slice - 1) / max_forward_slice;
    const auto in_stride = static_cast<std::size_t>(steps) * config_.input_size;
    auto run = [&](int s) {
        thread_local Activations a;
        const int first = s * max_forward_slice;
        const int n = std::min(max_forward_slice, batch - first);
        forward_slice(config_, tensors_, params_.data(), packed_.data(), inputs + first * in_stride, n, steps,
                      outputs + static_cast<std::size_t>(first) * config_.output_size, a, nullptr, 0);
    };
    if (slices <= 1) {
        if (slices == 1) run(0);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < slices; ++s)
        run(s);
}

double pinball_loss(const float* outputs, const float* targets, int batch, int horizons,
                    std::span<const float> quantiles) {
    return pinball_sum(outputs, targets, batch, horizons, quantiles, nullptr, 0.0F) /
           (static_cast<double>(batch) * horizons * static_cast<double>(quantiles.size()));
}

void sort_quantiles(float* outputs, int batch, int horizons, int quantiles) {
    const auto n = static_cast<std::size_t>(batch) * horizons;
    for (std::size_t i = 0; i < n; ++i)
        std::sort(outputs + i * quantiles, outputs + (i + 1) * quantiles);
}

struct LstmTrainer::Workspace {
    Activations activations;
    Derivatives derivatives;
    std::vector<float> gradient;
    std::vector<float> outputs;
    double loss_sum = 0.0;
};

LstmTrainer::LstmTrainer(LstmNetwork& network, TrainerConfig config) : network_(network), config_(std::move(config)) {
    const auto q = static_cast<int>(config_.quantiles.size());
    const int out = network_.config().output_size;
    if (q == 0 || out % q != 0)
        throw UsageError(fmt::format("output_size {} is not a multiple of the {} quantiles", out, q));
    if (!std::is_sorted(config_.quantiles.begin(), config_.quantiles.end()) || config_.quantiles.front() <= 0.0F ||
        config_.quantiles.back() >= 1.0F)
        throw UsageError("quantiles must be ascending and inside (0, 1)");
    if (config_.clip_norm < 0.0F) throw UsageError("clip_norm must be >= 0");
    set_learning_rate(config_.learning_rate);
    horizons_ = out / q;
    threads_ = config_.threads > 0 ? config_.threads : omp_get_max_threads();
    const std::size_t count = network_.parameter_count();
    gradient_.assign(count, 0.0F);
    adam_m_.assign(count, 0.0F);
    adam_v_.assign(count, 0.0F);
    for (int i = 0; i < threads_; ++i)
        workspaces_.push_back(std::make_unique<Workspace>());
}

LstmTrainer::~LstmTrainer() = default;

void LstmTrainer::set_learning_rate(float learning_rate) {
    if (!(learning_rate > 0.0F && std::isfinite(learning_rate)))
        throw UsageError(fmt::format("learning rate must be positive, got {}", learning_rate));
    config_.learning_rate = learning_rate;
}

double LstmTrainer::compute_gradient(const float* inputs, const float* targets, int batch, int steps, bool training) {
    if (batch < 1 || steps < 1) throw UsageError(fmt::format("bad batch shape: batch {}, steps {}", batch, steps));
    const LstmConfig& c = network_.config();
    const std::vector<TensorView>& tensors = network_.tensors();
    const float* params = network_.parameters().data();
    const int out = c.output_size;
    const float scale = 1.0F / (static_cast<float>(batch) * static_cast<float>(out));
    const std::uint64_t seed = config_.seed * 0x9e3779b97f4a7c15ULL + dropout_calls_;
    if (training) ++dropout_calls_;
    const bool dropout = training && c.dropout > 0.0F && c.num_layers > 1;
    // Contiguous slices, one per thread, gradients summed in slice order: bit-identical for a given thread count.
    const int slices = std::min(threads_, batch);
    const auto in_stride = static_cast<std::size_t>(steps) * c.input_size;
#pragma omp parallel for num_threads(slices) schedule(static, 1)
    for (int s = 0; s < slices; ++s) {
        Workspace& ws = *workspaces_[s];
        const int first = static_cast<int>(static_cast<std::int64_t>(batch) * s / slices);
        const int n = static_cast<int>(static_cast<std::int64_t>(batch) * (s + 1) / slices) - first;
        ws.outputs.resize(static_cast<std::size_t>(n) * out);
        forward_slice(c, tensors, params, network_.packed_.data(), inputs + first * in_stride, n, steps,
                      ws.outputs.data(), ws.activations, dropout ? &seed : nullptr, first);
        ws.derivatives.d_out.resize(ws.outputs.size());
        ws.loss_sum = pinball_sum(ws.outputs.data(), targets + static_cast<std::size_t>(first) * horizons_, n,
                                  horizons_, config_.quantiles, ws.derivatives.d_out.data(), scale);
        ws.gradient.assign(gradient_.size(), 0.0F);
        backward_slice(c, tensors, params, ws.activations, dropout, ws.derivatives, ws.gradient.data());
    }
    std::copy(workspaces_[0]->gradient.begin(), workspaces_[0]->gradient.end(), gradient_.begin());
    double loss = workspaces_[0]->loss_sum;
    for (int s = 1; s < slices; ++s) {
        ArrMap(gradient_.data(), static_cast<Eigen::Index>(gradient_.size())) +=
            ConstArrMap(workspaces_[s]->gradient.data(), static_cast<Eigen::Index>(gradient_.size()));
        loss += workspaces_[s]->loss_sum;
    }
    return loss / (static_cast<double>(batch) * out);
}

double LstmTrainer::step(const float* inputs, const float* targets, int batch, int steps) {
    const double loss = compute_gradient(inputs, targets, batch, steps, true);
    const auto count = static_cast<Eigen::Index>(gradient_.size());
    const ConstArrMap g(gradient_.data(), count);
    float clip = 1.0F;
    if (config_.clip_norm > 0.0F) {
        const double norm = std::sqrt(g.cast<double>().square().sum());
        // Same coefficient as torch.nn.utils.clip_grad_norm_.
        if (norm > config_.clip_norm) clip = static_cast<float>(config_.clip_norm / (norm + 1e-6));
    }
    constexpr float beta1 = 0.9F;
    constexpr float beta2 = 0.999F;
    constexpr float eps = 1e-8F;
    ++adam_step_;
    const auto t = static_cast<double>(adam_step_);
    const auto step_size = static_cast<float>(config_.learning_rate / (1.0 - std::pow(beta1, t)));
    const auto v_correction = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
    ArrMap m(adam_m_.data(), count);
    ArrMap v(adam_v_.data(), count);
    ArrMap p(network_.params_.data(), count);
    m = beta1 * m + (1.0F - beta1) * clip * g;
    v = beta2 * v + (1.0F - beta2) * (clip * g).square();
    p -= step_size * m / (v.sqrt() / v_correction + eps);
    network_.pack();
    return loss;
}

} // namespace btcml::model
