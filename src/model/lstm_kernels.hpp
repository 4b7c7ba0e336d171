#pragma once
// The hot loops of the LSTM (GEMM and the gate nonlinearities), with AVX2+FMA and AVX-512 versions picked at run
// time: the build targets plain x86-64, so the wide instructions are used only where the CPU has them.
#include <cstddef>
#include <string_view>

namespace btcml::model {

enum class KernelIsa { generic, avx2, avx512 };

/// The kernels in use: the widest the CPU supports, unless use_kernels() chose otherwise.
KernelIsa active_kernels() noexcept;
[[nodiscard]] bool kernels_supported(KernelIsa isa) noexcept;
/// Selects the kernels (tests run each); throws UsageError when the CPU lacks the instructions.
void use_kernels(KernelIsa isa);
std::string_view to_string(KernelIsa isa) noexcept;

/// C[m x n] (+)= A * B, with A(i, p) = a[i * a_row + p * a_col] (so A may be a transposed view), B row-major
/// [k x n] with leading dimension ldb, C row-major with leading dimension ldc. Overwrites C unless `accumulate`.
void gemm(int m, int n, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const float* b,
          std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool accumulate);

/// One LSTM cell for one window: `gates` holds the 4H pre-activations (i, f, g, o) without `bias` and receives the
/// activations; writes c = f * c_prev + i * g (c_prev null at the first step), tanh(c) and h = o * tanh(c).
void lstm_cell(int hidden, const float* bias, float* gates, const float* c_prev, float* c, float* tanh_c, float* h);

/// Backward through one LSTM cell for one window, given its forward `gates` (activations), c_{t-1} (null at the
/// first step) and tanh(c_t). On entry `d_h` and `d_c` hold the gradient arriving from step t+1; `d_above` is the
/// gradient into h_t from above (the head or the next layer). Writes d loss / d pre-activations to `d_gates` (4H)
/// and leaves in `d_c` the gradient for c_{t-1}; `d_h` is left holding dL/dh_t.
void lstm_cell_backward(int hidden, const float* gates, const float* c_prev, const float* tanh_c, const float* d_above,
                        float* d_h, float* d_c, float* d_gates);

} // namespace btcml::model
