// Body of the L-BFGS direction kernel (lbfgs_cpu.h), compiled once per instruction-set variant:
// lbfgs_cpu.cpp includes it for the baseline x86-64 build, lbfgs_cpu_avx2.cpp for AVX2 + FMA;
// the public function in lbfgs_cpu.cpp picks one at run time. Define FK_CPU_VARIANT before
// including. No include guard on purpose.
//
// The history (2 h rows of p elements, several MB) is streamed row by row: each row is one long
// contiguous read that the hardware prefetchers follow, while the vectors it meets (g, the new
// pair, d: p elements each) stay in L2. (Chunking over p, so that each step read 200 short row
// pieces, ran at a third of the memory bandwidth.)
#include <algorithm>

#include "kernels/lbfgs_cpu.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in inline helpers of the SSE build

namespace fluxkern {
namespace FK_CPU_VARIANT {
namespace {

#define FK_TILE_INLINE inline __attribute__((always_inline))
#include "kernels/cpu_vec_impl.h"  // vec_t, kLanes, vload, vstore, hsum

// out[j] = a_j . b_j for the N (a_j, b_j) pairs, in one pass over p elements.
template <typename T, int N>
void dots(int64_t p, const T* const (&a)[N], const T* const (&b)[N], T (&out)[N]) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  V acc[N] = {};
  int64_t k = 0;
  for (; k + L <= p; k += L) {
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[j] += vload(a[j] + k) * vload(b[j] + k);
  }
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) {
    T sum = hsum<T>(acc[j]);
    for (int64_t r = k; r < p; ++r) sum += a[j][r] * b[j][r];
    out[j] = sum;
  }
}

// d[k] += c0 u0[k] + c1 u1[k] + c2 u2[k] + c3 u3[k] (d read and written once for four rows).
template <typename T>
void axpy4(int64_t p, const T* __restrict__ u0, T c0, const T* __restrict__ u1, T c1,
           const T* __restrict__ u2, T c2, const T* __restrict__ u3, T c3, T* __restrict__ d) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  int64_t k = 0;
  for (; k + L <= p; k += L) {
    vstore(d + k, vload(d + k) + c0 * vload(u0 + k) + c1 * vload(u1 + k) + c2 * vload(u2 + k) +
                      c3 * vload(u3 + k));
  }
  for (; k < p; ++k) d[k] += c0 * u0[k] + c1 * u1[k] + c2 * u2[k] + c3 * u3[k];
}

}  // namespace

template <typename T>
void lbfgs_two_loop_cpu(int64_t p, int64_t h, int64_t start, int64_t count, int64_t new_row,
                        const T* g, const T* s, const T* y, const T* rho, T h_diag, T* sy, T* yy,
                        T* work, T* d) {
  T* sg = work;              // [count] s_i . g, by chronological index
  T* yg = work + h;          // [count] y_i . g
  T* alpha = work + 2 * h;   // [count]
  T* coef_s = work + 3 * h;  // [count] alpha_i - beta_i
  auto row = [&](int64_t i) { return (start + i) % h; };
  // Pass 1: one read of every stored pair (s_i and y_i streamed together).
  const T* sn = new_row >= 0 ? s + new_row * p : nullptr;
  const T* yn = new_row >= 0 ? y + new_row * p : nullptr;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t r = row(i);
    const T* si = s + r * p;
    const T* yi = y + r * p;
    if (new_row >= 0) {
      T out[5];
      dots<T, 5>(p, {si, yi, si, sn, yi}, {g, g, yn, yi, yn}, out);
      sg[i] = out[0];
      yg[i] = out[1];
      sy[r * h + new_row] = out[2];
      sy[new_row * h + r] = out[3];
      yy[r * h + new_row] = yy[new_row * h + r] = out[4];
    } else {
      T out[2];
      dots<T, 2>(p, {si, yi}, {g, g}, out);
      sg[i] = out[0];
      yg[i] = out[1];
    }
  }
  // The recursion on the Gram entries (O(count^2), no vector reads).
  for (int64_t i = count; i-- > 0;) {
    const int64_t ri = row(i);
    T acc = -sg[i];
    for (int64_t j = i + 1; j < count; ++j) acc -= alpha[j] * sy[ri * h + row(j)];
    alpha[i] = acc * rho[ri];
  }
  for (int64_t i = 0; i < count; ++i) {
    const int64_t ri = row(i);
    T yq = -yg[i];
    for (int64_t j = 0; j < count; ++j) yq -= alpha[j] * yy[ri * h + row(j)];
    T yr = h_diag * yq;
    for (int64_t j = 0; j < i; ++j) yr += coef_s[j] * sy[row(j) * h + ri];
    coef_s[i] = alpha[i] - yr * rho[ri];
  }
  // Pass 2: d = -gamma g + sum_j (-gamma alpha_j) y_j + (alpha_j - beta_j) s_j, two pairs per
  // sweep over d (which stays in L2).
  for (int64_t k = 0; k < p; ++k) d[k] = -h_diag * g[k];
  int64_t j = 0;
  for (; j + 2 <= count; j += 2) {
    const int64_t r0 = row(j), r1 = row(j + 1);
    axpy4<T>(p, y + r0 * p, -h_diag * alpha[j], s + r0 * p, coef_s[j], y + r1 * p,
             -h_diag * alpha[j + 1], s + r1 * p, coef_s[j + 1], d);
  }
  if (j < count) {
    const int64_t r0 = row(j);
    axpy4<T>(p, y + r0 * p, -h_diag * alpha[j], s + r0 * p, coef_s[j], y + r0 * p, T(0), s + r0 * p,
             T(0), d);
  }
}

template void lbfgs_two_loop_cpu<float>(int64_t, int64_t, int64_t, int64_t, int64_t, const float*,
                                        const float*, const float*, const float*, float, float*,
                                        float*, float*, float*);
template void lbfgs_two_loop_cpu<double>(int64_t, int64_t, int64_t, int64_t, int64_t, const double*,
                                         const double*, const double*, const double*, double,
                                         double*, double*, double*, double*);

}  // namespace FK_CPU_VARIANT
}  // namespace fluxkern

#pragma GCC diagnostic pop
