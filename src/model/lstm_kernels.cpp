#include "model/lstm_kernels.hpp"

#include "core/error.hpp"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>

namespace btcml::model {
namespace {

// ---- Portable versions: plain loops, also the reference the AVX2 ones are tested against. ----

void gemm_generic(int m, int n, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const float* b,
                  std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool accumulate) {
    for (int i = 0; i < m; ++i) {
        float* ci = c + i * ldc;
        if (!accumulate) std::fill(ci, ci + n, 0.0F);
        for (int p = 0; p < k; ++p) {
            const float av = a[i * a_row + p * a_col];
            const float* bp = b + p * ldb;
            for (int j = 0; j < n; ++j) ci[j] += av * bp[j];
        }
    }
}

float sigmoid(float x) { return 0.5F + 0.5F * std::tanh(0.5F * x); }

// Unit j of lstm_cell.
inline void cell_unit(int j, int hidden, float* gates, const float* c_prev, float* c, float* tanh_c, float* h) {
    const float i = sigmoid(gates[j]);
    const float f = sigmoid(gates[hidden + j]);
    const float g = std::tanh(gates[2 * hidden + j]);
    const float o = sigmoid(gates[3 * hidden + j]);
    gates[j] = i;
    gates[hidden + j] = f;
    gates[2 * hidden + j] = g;
    gates[3 * hidden + j] = o;
    c[j] = c_prev != nullptr ? f * c_prev[j] + i * g : i * g;
    tanh_c[j] = std::tanh(c[j]);
    h[j] = o * tanh_c[j];
}

void lstm_cell_generic(int hidden, float* gates, const float* c_prev, float* c, float* tanh_c, float* h) {
    for (int j = 0; j < hidden; ++j) cell_unit(j, hidden, gates, c_prev, c, tanh_c, h);
}

// ---- AVX2 + FMA versions. ----

#define BTCML_AVX2 __attribute__((target("avx2,fma")))

BTCML_AVX2 __m256i tail_mask(int count) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lanes);
}

// MR rows x NV vectors of C over k, kept in registers (the unroll pragmas make sure of that at -O2). With Masked,
// only the first `cols` columns of the single vector are read and written.
template <int MR, int NV, bool Masked>
BTCML_AVX2 inline void micro_kernel(int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col,
                                    const float* b, std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool load_c,
                                    int cols) {
    static_assert(!Masked || NV == 1);
    __m256 acc[MR][NV];
    const __m256i mask = tail_mask(cols);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            if (!load_c) acc[r][v] = _mm256_setzero_ps();
            else if constexpr (Masked) acc[r][v] = _mm256_maskload_ps(c + r * ldc, mask);
            else acc[r][v] = _mm256_loadu_ps(c + r * ldc + 8 * v);
        }
    for (int p = 0; p < k; ++p) {
        __m256 bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            if constexpr (Masked) bv[v] = _mm256_maskload_ps(b + p * ldb, mask);
            else bv[v] = _mm256_loadu_ps(b + p * ldb + 8 * v);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            const __m256 av = _mm256_broadcast_ss(a + r * a_row + p * a_col);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            if constexpr (Masked) _mm256_maskstore_ps(c + r * ldc, mask, acc[r][v]);
            else _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
        }
}

// All rows of one column panel over one block of k: six rows at a time (12 accumulators with NV = 2), then the rest.
template <int NV, bool Masked>
BTCML_AVX2 void panel(int m, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const float* b,
                      std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool load_c, int cols) {
    int i = 0;
    for (; i + 6 <= m; i += 6)
        micro_kernel<6, NV, Masked>(k, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, load_c, cols);
    const float* ai = a + i * a_row;
    float* ci = c + i * ldc;
    switch (m - i) {
    case 5: micro_kernel<5, NV, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, load_c, cols); break;
    case 4: micro_kernel<4, NV, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, load_c, cols); break;
    case 3: micro_kernel<3, NV, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, load_c, cols); break;
    case 2: micro_kernel<2, NV, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, load_c, cols); break;
    case 1: micro_kernel<1, NV, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, load_c, cols); break;
    default: break;
    }
}

BTCML_AVX2 void gemm_avx2(int m, int n, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col,
                          const float* b, std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool accumulate) {
    if (k == 0) {
        if (!accumulate)
            for (int i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0F);
        return;
    }
    // Blocks of k keep a panel of B (kc x 16 floats) in L1 while every row of A passes over it.
    constexpr int kc = 256;
    for (int p0 = 0; p0 < k; p0 += kc) {
        const int kb = std::min(kc, k - p0);
        const bool load_c = accumulate || p0 > 0;
        const float* ap = a + p0 * a_col;
        const float* bp = b + p0 * ldb;
        int j = 0;
        if (m < 4) // one row at a time: eight independent accumulators hide the FMA latency
            for (; j + 64 <= n; j += 64)
                for (int i = 0; i < m; ++i)
                    micro_kernel<1, 8, false>(kb, ap + i * a_row, a_row, a_col, bp + j, ldb, c + i * ldc + j, ldc,
                                              load_c, 64);
        for (; j + 16 <= n; j += 16) panel<2, false>(m, kb, ap, a_row, a_col, bp + j, ldb, c + j, ldc, load_c, 16);
        for (; j + 8 <= n; j += 8) panel<1, false>(m, kb, ap, a_row, a_col, bp + j, ldb, c + j, ldc, load_c, 8);
        if (j < n) panel<1, true>(m, kb, ap, a_row, a_col, bp + j, ldb, c + j, ldc, load_c, n - j);
    }
}

// tanh as Eigen computes it for float: a 13/6 rational approximation on a clamped input.
BTCML_AVX2 inline __m256 tanh8(__m256 x_in) {
    const __m256 clamp = _mm256_set1_ps(7.99881172180175781F);
    const __m256 x = _mm256_max_ps(_mm256_min_ps(x_in, clamp), _mm256_sub_ps(_mm256_setzero_ps(), clamp));
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.76076847742355e-16F), _mm256_set1_ps(2.00018790482477e-13F));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-8.60467152213735e-11F));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(5.12229709037114e-08F));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(1.48572235717979e-05F));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(6.37261928875436e-04F));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(4.89352455891786e-03F));
    p = _mm256_mul_ps(x, p);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(1.19825839466702e-06F), _mm256_set1_ps(1.18534705686654e-04F));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(2.26843463243900e-03F));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(4.89352518554385e-03F));
    const __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0F), x_in), _mm256_set1_ps(0.0004F), _CMP_LT_OQ);
    return _mm256_blendv_ps(_mm256_div_ps(p, q), x_in, tiny);
}

BTCML_AVX2 inline __m256 sigmoid8(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5F);
    return _mm256_fmadd_ps(half, tanh8(_mm256_mul_ps(half, x)), half);
}

BTCML_AVX2 void lstm_cell_avx2(int hidden, float* gates, const float* c_prev, float* c, float* tanh_c, float* h) {
    int j = 0;
    for (; j + 8 <= hidden; j += 8) {
        const __m256 i = sigmoid8(_mm256_loadu_ps(gates + j));
        const __m256 f = sigmoid8(_mm256_loadu_ps(gates + hidden + j));
        const __m256 g = tanh8(_mm256_loadu_ps(gates + 2 * hidden + j));
        const __m256 o = sigmoid8(_mm256_loadu_ps(gates + 3 * hidden + j));
        _mm256_storeu_ps(gates + j, i);
        _mm256_storeu_ps(gates + hidden + j, f);
        _mm256_storeu_ps(gates + 2 * hidden + j, g);
        _mm256_storeu_ps(gates + 3 * hidden + j, o);
        const __m256 ig = _mm256_mul_ps(i, g);
        const __m256 cv = c_prev != nullptr ? _mm256_fmadd_ps(f, _mm256_loadu_ps(c_prev + j), ig) : ig;
        const __m256 tc = tanh8(cv);
        _mm256_storeu_ps(c + j, cv);
        _mm256_storeu_ps(tanh_c + j, tc);
        _mm256_storeu_ps(h + j, _mm256_mul_ps(o, tc));
    }
    for (; j < hidden; ++j) cell_unit(j, hidden, gates, c_prev, c, tanh_c, h);
}

bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

std::atomic<KernelIsa> active{cpu_has_avx2() ? KernelIsa::avx2 : KernelIsa::generic};

} // namespace

KernelIsa active_kernels() noexcept { return active.load(); }

void use_kernels(KernelIsa isa) {
    if (isa == KernelIsa::avx2 && !cpu_has_avx2()) throw UsageError("this CPU lacks AVX2 and FMA");
    active = isa;
}

void gemm(int m, int n, int k, const float* a, std::ptrdiff_t a_row, std::ptrdiff_t a_col, const float* b,
          std::ptrdiff_t ldb, float* c, std::ptrdiff_t ldc, bool accumulate) {
    if (active.load(std::memory_order_relaxed) == KernelIsa::avx2) gemm_avx2(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
    else gemm_generic(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

void lstm_cell(int hidden, float* gates, const float* c_prev, float* c, float* tanh_c, float* h) {
    if (active.load(std::memory_order_relaxed) == KernelIsa::avx2) lstm_cell_avx2(hidden, gates, c_prev, c, tanh_c, h);
    else lstm_cell_generic(hidden, gates, c_prev, c, tanh_c, h);
}

} // namespace btcml::model
