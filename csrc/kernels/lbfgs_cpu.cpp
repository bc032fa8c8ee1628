#include "kernels/lbfgs_cpu.h"

#include <algorithm>

namespace fluxkern {
namespace {

// Dot product with eight partial sums (vectorisable without reassociation flags).
template <typename T>
T dot(int64_t p, const T* __restrict__ a, const T* __restrict__ b) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= p; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  T sum = T(0);
  for (int k = 0; k < 8; ++k) sum += acc[k];
  for (; i < p; ++i) sum += a[i] * b[i];
  return sum;
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
  T* n_sy = work + 4 * h;    // [count] s_i . y_new
  T* n_ys = work + 5 * h;    // [count] s_new . y_i
  T* n_yy = work + 6 * h;    // [count] y_i . y_new
  auto row = [&](int64_t i) { return (start + i) % h; };
  // Pass 1: one read of every stored pair, in chunks that stay in L1 for all their dot products.
  constexpr int64_t kChunk = 512;
  std::fill(work, work + 7 * h, T(0));
  const T* sn = new_row >= 0 ? s + new_row * p : nullptr;
  const T* yn = new_row >= 0 ? y + new_row * p : nullptr;
  for (int64_t k0 = 0; k0 < p; k0 += kChunk) {
    const int64_t len = std::min(p, k0 + kChunk) - k0;
    for (int64_t i = 0; i < count; ++i) {
      const T* si = s + row(i) * p + k0;
      const T* yi = y + row(i) * p + k0;
      sg[i] += dot(len, si, g + k0);
      yg[i] += dot(len, yi, g + k0);
      if (new_row >= 0) {
        n_sy[i] += dot(len, si, yn + k0);
        n_ys[i] += dot(len, sn + k0, yi);
        n_yy[i] += dot(len, yi, yn + k0);
      }
    }
  }
  if (new_row >= 0) {
    for (int64_t i = 0; i < count; ++i) {
      const int64_t r = row(i);
      sy[r * h + new_row] = n_sy[i];
      sy[new_row * h + r] = n_ys[i];
      yy[r * h + new_row] = yy[new_row * h + r] = n_yy[i];
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
  // Pass 2: d = -gamma g + sum_j (-gamma alpha_j) y_j + (alpha_j - beta_j) s_j, in chunks that
  // stay in L1 while every pair is added.
  for (int64_t k0 = 0; k0 < p; k0 += kChunk) {
    const int64_t k1 = std::min(p, k0 + kChunk);
    for (int64_t k = k0; k < k1; ++k) d[k] = -h_diag * g[k];
    for (int64_t j = 0; j < count; ++j) {
      const int64_t r = row(j);
      const T cy = -h_diag * alpha[j], cs = coef_s[j];
      const T* __restrict__ yj = y + r * p;
      const T* __restrict__ sj = s + r * p;
      for (int64_t k = k0; k < k1; ++k) d[k] += cy * yj[k] + cs * sj[k];
    }
  }
}

template void lbfgs_two_loop_cpu<float>(int64_t, int64_t, int64_t, int64_t, int64_t, const float*,
                                        const float*, const float*, const float*, float, float*,
                                        float*, float*, float*);
template void lbfgs_two_loop_cpu<double>(int64_t, int64_t, int64_t, int64_t, int64_t, const double*,
                                         const double*, const double*, const double*, double,
                                         double*, double*, double*, double*);

}  // namespace fluxkern
