#include "model/lstm_kernels.hpp"

#include "core/error.hpp"

#include <fmt/format.h>

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>

namespace btcml::model {
namespace {
namespace generic {

// ---- Portable versions: plain loops, also the reference the AVX2 ones are tested against. ----

void gemm_generic(int m, int n, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const float* b,
                  std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool accumulate) {
    for (int i = 0; i < m; ++i) {
        float* ci = c + i * ldc;
        if (!accumulate) std::fill(ci, ci + n, 0.0F);
        for (int p = 0; p < k; ++p) {
            const float av = a[i * a_row + p * a_col];
            const float* bp = b + p * ldb;
            for (int j = 0; j < n; ++j)
                ci[j] += av * bp[j];
        }
    }
}

float sigmoid(float x) { return 0.5F + 0.5F * std::tanh(0.5F * x); }

// Unit j of lstm_cell.
inline void cell_unit(int j, int hidden, const float* bias, float* gates, const float* c_prev, float* c, float* tanh_c,
                      float* h) {
    const float i = sigmoid(gates[j] + bias[j]);
    const float f = sigmoid(gates[hidden + j] + bias[hidden + j]);
    const float g = std::tanh(gates[2 * hidden + j] + bias[2 * hidden + j]);
    const float o = sigmoid(gates[3 * hidden + j] + bias[3 * hidden + j]);
    gates[j] = i;
    gates[hidden + j] = f;
    gates[2 * hidden + j] = g;
    gates[3 * hidden + j] = o;
    c[j] = c_prev != nullptr ? f * c_prev[j] + i * g : i * g;
    tanh_c[j] = std::tanh(c[j]);
    h[j] = o * tanh_c[j];
}

void lstm_cell_generic(int hidden, const float* bias, float* gates, const float* c_prev, float* c, float* tanh_c,
                       float* h) {
    for (int j = 0; j < hidden; ++j)
        cell_unit(j, hidden, bias, gates, c_prev, c, tanh_c, h);
}

inline void cell_backward_unit(int j, int hidden, const float* gates, const float* c_prev, const float* tanh_c,
                               const float* d_above, float* d_h, float* d_c, float* d_gates) {
    const float i = gates[j];
    const float f = gates[hidden + j];
    const float g = gates[2 * hidden + j];
    const float o = gates[3 * hidden + j];
    const float tc = tanh_c[j];
    const float dh = d_h[j] + d_above[j];
    d_h[j] = dh;
    const float dc = d_c[j] + dh * o * (1.0F - tc * tc);
    d_gates[j] = dc * g * i * (1.0F - i);
    d_gates[hidden + j] = c_prev != nullptr ? dc * c_prev[j] * f * (1.0F - f) : 0.0F;
    d_gates[2 * hidden + j] = dc * i * (1.0F - g * g);
    d_gates[3 * hidden + j] = dh * tc * o * (1.0F - o);
    d_c[j] = dc * f;
}

void lstm_cell_backward_generic(int hidden, const float* gates, const float* c_prev, const float* tanh_c,
                                const float* d_above, float* d_h, float* d_c, float* d_gates) {
    for (int j = 0; j < hidden; ++j)
        cell_backward_unit(j, hidden, gates, c_prev, tanh_c, d_above, d_h, d_c, d_gates);
}

} // namespace generic

// ---- SIMD versions: the same source compiled for AVX2 + FMA and for AVX-512. ----

namespace avx2 {
#define BTCML_TARGET __attribute__((target("avx2,fma")))
using V = __m256;
constexpr int W = 8;
BTCML_TARGET inline __m256i tail_mask(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
BTCML_TARGET inline V vzero() { return _mm256_setzero_ps(); }
BTCML_TARGET inline V vset1(float x) { return _mm256_set1_ps(x); }
BTCML_TARGET inline V vload(const float* p) { return _mm256_loadu_ps(p); }
BTCML_TARGET inline V vload_tail(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
BTCML_TARGET inline void vstore(float* p, V x) { _mm256_storeu_ps(p, x); }
BTCML_TARGET inline void vstore_tail(float* p, V x, int n) { _mm256_maskstore_ps(p, tail_mask(n), x); }
BTCML_TARGET inline V vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
BTCML_TARGET inline V vfmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
BTCML_TARGET inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
BTCML_TARGET inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
BTCML_TARGET inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
// 1/x from the 12-bit estimate and one Newton step (a division costs several times more in the cell).
BTCML_TARGET inline V vrecip(V x) {
    const V r = _mm256_rcp_ps(x);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(x, r, _mm256_set1_ps(2.0F)));
}
BTCML_TARGET inline V vmin(V a, V b) { return _mm256_min_ps(a, b); }
BTCML_TARGET inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
BTCML_TARGET inline V vkeep_tiny(V x, V y) {
    const V tiny = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0F), x), _mm256_set1_ps(0.0004F), _CMP_LT_OQ);
    return _mm256_blendv_ps(y, x, tiny);
}
using generic::cell_backward_unit;
using generic::cell_unit;
#include "model/lstm_kernels_simd.inc"
#undef BTCML_TARGET
} // namespace avx2

// GCC 12 warns about the deliberately undefined pass-through operand inside _mm512_min_ps and _mm512_max_ps.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
#define BTCML_TARGET __attribute__((target("avx512f,avx2,fma")))
using V = __m512;
constexpr int W = 16;
BTCML_TARGET inline __mmask16 tail_mask(int count) { return static_cast<__mmask16>((1U << count) - 1U); }
BTCML_TARGET inline V vzero() { return _mm512_setzero_ps(); }
BTCML_TARGET inline V vset1(float x) { return _mm512_set1_ps(x); }
BTCML_TARGET inline V vload(const float* p) { return _mm512_loadu_ps(p); }
BTCML_TARGET inline V vload_tail(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
BTCML_TARGET inline void vstore(float* p, V x) { _mm512_storeu_ps(p, x); }
BTCML_TARGET inline void vstore_tail(float* p, V x, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), x); }
BTCML_TARGET inline V vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
BTCML_TARGET inline V vfmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
BTCML_TARGET inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
BTCML_TARGET inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
BTCML_TARGET inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
BTCML_TARGET inline V vrecip(V x) {
    const V r = _mm512_rcp14_ps(x);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.0F)));
}
BTCML_TARGET inline V vmin(V a, V b) { return _mm512_min_ps(a, b); }
BTCML_TARGET inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
BTCML_TARGET inline V vkeep_tiny(V x, V y) {
    const __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(0.0004F), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(tiny, y, x);
}
using generic::cell_backward_unit;
using generic::cell_unit;
#include "model/lstm_kernels_simd.inc"
#undef BTCML_TARGET
} // namespace avx512
#pragma GCC diagnostic pop

bool cpu_supports(KernelIsa isa) {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (isa) {
    case KernelIsa::generic: return true;
    case KernelIsa::avx2: return avx2;
    case KernelIsa::avx512: return avx2 && __builtin_cpu_supports("avx512f");
    }
    return false;
}

KernelIsa best_kernels() {
    for (KernelIsa isa : {KernelIsa::avx512, KernelIsa::avx2})
        if (cpu_supports(isa)) return isa;
    return KernelIsa::generic;
}

std::atomic<KernelIsa> active{best_kernels()};

} // namespace

KernelIsa active_kernels() noexcept { return active.load(); }

bool kernels_supported(KernelIsa isa) noexcept { return cpu_supports(isa); }

void use_kernels(KernelIsa isa) {
    if (!cpu_supports(isa)) throw UsageError(fmt::format("this CPU lacks the {} instructions", to_string(isa)));
    active = isa;
}

std::string_view to_string(KernelIsa isa) noexcept {
    switch (isa) {
    case KernelIsa::generic: return "generic";
    case KernelIsa::avx2: return "avx2";
    case KernelIsa::avx512: return "avx512";
    }
    return "?";
}

void gemm(int m, int n, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const float* b,
          std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool accumulate) {
    switch (active.load(std::memory_order_relaxed)) {
    case KernelIsa::avx512: avx512::gemm(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    case KernelIsa::avx2: avx2::gemm(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    case KernelIsa::generic: generic::gemm_generic(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    }
}

void lstm_cell(int hidden, const float* bias, float* gates, const float* c_prev, float* c, float* tanh_c, float* h) {
    switch (active.load(std::memory_order_relaxed)) {
    case KernelIsa::avx512: avx512::lstm_cell(hidden, bias, gates, c_prev, c, tanh_c, h); break;
    case KernelIsa::avx2: avx2::lstm_cell(hidden, bias, gates, c_prev, c, tanh_c, h); break;
    case KernelIsa::generic: generic::lstm_cell_generic(hidden, bias, gates, c_prev, c, tanh_c, h); break;
    }
}

void lstm_cell_backward(int hidden, const float* gates, const float* c_prev, const float* tanh_c, const float* d_above,
                        float* d_h, float* d_c, float* d_gates) {
    switch (active.load(std::memory_order_relaxed)) {
    case KernelIsa::avx512:
        avx512::lstm_cell_backward(hidden, gates, c_prev, tanh_c, d_above, d_h, d_c, d_gates);
        break;
    case KernelIsa::avx2: avx2::lstm_cell_backward(hidden, gates, c_prev, tanh_c, d_above, d_h, d_c, d_gates); break;
    case KernelIsa::generic:
        generic::lstm_cell_backward_generic(hidden, gates, c_prev, tanh_c, d_above, d_h, d_c, d_gates);
        break;
    }
}

} // namespace btcml::model
