// Body of the dense quasi-Newton kernels (dense_qn_cpu.h), compiled once per instruction-set
// variant: dense_qn_cpu.cpp includes it for the baseline x86-64 build, dense_qn_cpu_avx2.cpp for
// AVX2 + FMA; the public functions in dense_qn_cpu.cpp pick one at run time. Define
// FK_CPU_VARIANT before including. No include guard on purpose.
#include <algorithm>
#include <cstdint>

#include "kernels/dense_qn_cpu.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in inline helpers of the SSE build

namespace fluxkern {
namespace FK_CPU_VARIANT {
namespace {

#define FK_TILE_INLINE inline __attribute__((always_inline))
#include "kernels/cpu_vec_impl.h"  // vec_t, kLanes, vload, vstore, hsum

}  // namespace

// The first column j >= from of row pointer `row` at which row + j is 32-byte aligned (at most p).
template <typename T>
FK_TILE_INLINE int64_t aligned_from(const T* row, int64_t from, int64_t p) {
  const auto addr = reinterpret_cast<uintptr_t>(row + from);
  const int64_t skip = static_cast<int64_t>(((32 - addr % 32) % 32) / sizeof(T));
  return std::min(p, from + skip);
}

template <typename T>
void sym_upper_matvec_rows_cpu(int64_t p, const T* h, const T* x, int64_t i0, int64_t i1, T* y) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  for (int64_t i = i0; i < i1; ++i) {
    const T* __restrict__ hi = h + i * p;  // row i, read from column i on
    const T xi = x[i];
    T dot = hi[i] * xi;
    int64_t j = i + 1;
    for (const int64_t a = aligned_from(hi, j, p); j < a; ++j) {  // to an aligned address
      dot += hi[j] * x[j];
      y[j] += xi * hi[j];
    }
    V acc[4] = {};
    for (; j + 4 * L <= p; j += 4 * L) {
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const V hv = vload(hi + j + q * L);
        acc[q] += hv * vload(x + j + q * L);
        vstore(y + j + q * L, vload(y + j + q * L) + xi * hv);
      }
    }
    dot += hsum<T>((acc[0] + acc[1]) + (acc[2] + acc[3]));
    for (; j < p; ++j) {
      dot += hi[j] * x[j];
      y[j] += xi * hi[j];
    }
    y[i] += dot;
  }
}

template <typename T>
void sym_upper_rank2_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1, const T* w1,
                              int64_t i0, int64_t i1) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  for (int64_t i = i0; i < i1; ++i) {
    T* __restrict__ hi = h + i * p;
    const T a0 = u0[i], a1 = u1[i];
    int64_t j = i;
    for (const int64_t a = aligned_from(hi, j, p); j < a; ++j) hi[j] += a0 * w0[j] + a1 * w1[j];
    for (; j + 2 * L <= p; j += 2 * L) {
#pragma GCC unroll 2
      for (int q = 0; q < 2; ++q) {
        const int64_t k = j + q * L;
        vstore(hi + k, vload(hi + k) + (a0 * vload(w0 + k) + a1 * vload(w1 + k)));
      }
    }
    for (; j < p; ++j) hi[j] += a0 * w0[j] + a1 * w1[j];
  }
}

template void sym_upper_matvec_rows_cpu<float>(int64_t, const float*, const float*, int64_t,
                                               int64_t, float*);
template void sym_upper_matvec_rows_cpu<double>(int64_t, const double*, const double*, int64_t,
                                                int64_t, double*);
template void sym_upper_rank2_rows_cpu<float>(int64_t, float*, const float*, const float*,
                                              const float*, const float*, int64_t, int64_t);
template void sym_upper_rank2_rows_cpu<double>(int64_t, double*, const double*, const double*,
                                               const double*, const double*, int64_t, int64_t);

}  // namespace FK_CPU_VARIANT
}  // namespace fluxkern

#pragma GCC diagnostic pop
