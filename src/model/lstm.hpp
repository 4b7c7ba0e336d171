#pragma once
// The LSTM forecaster network: stacked LSTM layers (PyTorch semantics and tensor names) and a linear head on the
// top layer's last hidden state, trained with the pinball loss of several quantiles at several horizons.
// Forward and backward are written here, float32, on the kernels of lstm_kernels.hpp; see src/model/README.md.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace btcml::model {

struct LstmConfig {
    int input_size = 0;
    int hidden_size = 0;
    int num_layers = 1;
    int output_size = 0;
    float dropout = 0.0F; // between LSTM layers, training only
};

/// Throws UsageError naming the first field out of range.
void validate(const LstmConfig& config);

/// A named tensor inside the flat parameter vector, row-major; biases have cols == 1.
struct TensorView {
    std::string name;
    int rows = 0;
    int cols = 0;
    std::size_t offset = 0;
    [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(rows) * cols; }
};

/// The tensors of `config` in flat order: per layer k `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
/// `bias_hh_l{k}`, then `head.weight` and `head.bias`.
std::vector<TensorView> lstm_tensors(const LstmConfig& config);

class LstmNetwork {
  public:
    /// Initialises every tensor like PyTorch, U(-1/sqrt(H), 1/sqrt(H)), from `seed`.
    LstmNetwork(const LstmConfig& config, std::uint64_t seed);

    [[nodiscard]] const LstmConfig& config() const noexcept { return config_; }
    [[nodiscard]] const std::vector<TensorView>& tensors() const noexcept { return tensors_; }
    /// Throws InvalidInput when there is no tensor of that name.
    [[nodiscard]] const TensorView& tensor(std::string_view name) const;

    [[nodiscard]] std::span<const float> parameters() const noexcept { return params_; }
    /// Replaces all parameters; throws InvalidInput unless `values` has exactly parameter_count() floats.
    void set_parameters(std::span<const float> values);
    [[nodiscard]] std::size_t parameter_count() const noexcept { return params_.size(); }

    [[nodiscard]] std::span<const float> tensor_values(std::string_view name) const;
    /// Throws InvalidInput on an unknown name or a size mismatch.
    void set_tensor(std::string_view name, std::span<const float> values);

    /// Inference (no dropout). `inputs` is row-major [batch][steps][input_size], `outputs` [batch][output_size].
    /// Safe to call concurrently: workspaces are per thread.
    void forward(const float* inputs, int batch, int steps, float* outputs) const;

  private:
    friend class LstmTrainer;
    // Rebuilds packed_ after any change of params_.
    void pack();

    LstmConfig config_;
    std::vector<TensorView> tensors_;
    std::vector<float> params_;
    // What forward reads: per layer W_ih^T [in x 4H], W_hh^T [H x 4H] in contiguous column panels, b_ih + b_hh [4H];
    // then head.weight^T [H x out]. Transposed so every product streams rows of the weights (see lstm_kernels.hpp).
    std::vector<float> packed_;
};

/// Pinball loss of `outputs` [batch][horizon][quantile] against `targets` [batch][horizon], averaged over batch,
/// horizons and quantiles: max(q (y - yhat), (q - 1) (y - yhat)). `quantiles` are the levels in output order.
double pinball_loss(const float* outputs, const float* targets, int batch, int horizons,
                    std::span<const float> quantiles);

/// Makes the quantile forecasts of every horizon non-crossing by sorting them (the rearrangement of
/// Chernozhukov et al.), for quantile levels given in ascending order. `outputs` is [batch][horizon][quantile].
void sort_quantiles(float* outputs, int batch, int horizons, int quantiles);

struct TrainerConfig {
    std::vector<float> quantiles{0.1F, 0.5F, 0.9F}; // ascending; output_size must be horizons * quantiles.size()
    float learning_rate = 1e-3F;
    float clip_norm = 1.0F; // global gradient norm; 0 disables clipping
    std::uint64_t seed = 1; // dropout masks
    int threads = 0;        // 0: every core OpenMP offers; results are bit-identical for a given count
};

/// Mini-batch training of an LstmNetwork with Adam (beta1 0.9, beta2 0.999, eps 1e-8) and global-norm clipping.
/// Keeps a reference to the network; the network must outlive the trainer.
class LstmTrainer {
  public:
    LstmTrainer(LstmNetwork& network, TrainerConfig config);
    ~LstmTrainer();
    LstmTrainer(const LstmTrainer&) = delete;
    LstmTrainer& operator=(const LstmTrainer&) = delete;

    /// Loss of the batch and its gradient with respect to every parameter (see gradient()), without updating.
    /// `targets` is [batch][horizons]. Dropout applies when `training` is set.
    double compute_gradient(const float* inputs, const float* targets, int batch, int steps, bool training = false);
    /// One training step: gradient with dropout, clipping, Adam update. Returns the loss before the update.
    double step(const float* inputs, const float* targets, int batch, int steps);

    /// The flat gradient of the last compute_gradient() or step() (before clipping), laid out like parameters().
    [[nodiscard]] std::span<const float> gradient() const noexcept { return gradient_; }
    [[nodiscard]] float learning_rate() const noexcept { return config_.learning_rate; }
    void set_learning_rate(float learning_rate);
    [[nodiscard]] std::int64_t steps_taken() const noexcept { return adam_step_; }
    [[nodiscard]] int threads() const noexcept { return threads_; }
    [[nodiscard]] int horizons() const noexcept { return horizons_; }

  private:
    struct Workspace;

    LstmNetwork& network_;
    TrainerConfig config_;
    int threads_ = 1;
    int horizons_ = 0;
    std::vector<float> gradient_;
    std::vector<float> adam_m_;
    std::vector<float> adam_v_;
    std::int64_t adam_step_ = 0;
    std::uint64_t dropout_calls_ = 0;
    std::vector<std::unique_ptr<Workspace>> workspaces_; // one per thread, each with its own gradient
};

} // namespace btcml::model
