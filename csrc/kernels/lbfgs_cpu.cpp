#include "kernels/lbfgs_cpu.h"

namespace fluxkern {
namespace {

template <typename T>
T dot(int64_t p, const T* __restrict__ a, const T* __restrict__ b) {
  T acc[8] = {};  // eight partial sums: vectorisable without reassociation flags
  int64_t i = 0;
  for (; i + 8 <= p; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  T sum = T(0);
  for (int k = 0; k < 8; ++k) sum += acc[k];
  for (; i < p; ++i) sum += a[i] * b[i];
  return sum;
}

template <typename T>
void axpy(int64_t p, T a, const T* __restrict__ x, T* __restrict__ y) {
  for (int64_t i = 0; i < p; ++i) y[i] += a * x[i];
}

}  // namespace

template <typename T>
void lbfgs_two_loop_cpu(int64_t p, int64_t h, int64_t start, int64_t count, const T* g,
                        const T* s, const T* y, const T* rho, T h_diag, T* alpha, T* d) {
  for (int64_t i = 0; i < p; ++i) d[i] = -g[i];
  for (int64_t i = count; i-- > 0;) {
    const int64_t row = (start + i) % h;
    alpha[i] = dot(p, s + row * p, d) * rho[row];
    axpy(p, -alpha[i], y + row * p, d);
  }
  for (int64_t i = 0; i < p; ++i) d[i] *= h_diag;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = (start + i) % h;
    const T beta = dot(p, y + row * p, d) * rho[row];
    axpy(p, alpha[i] - beta, s + row * p, d);
  }
}

template void lbfgs_two_loop_cpu<float>(int64_t, int64_t, int64_t, int64_t, const float*,
                                        const float*, const float*, const float*, float, float*,
                                        float*);
template void lbfgs_two_loop_cpu<double>(int64_t, int64_t, int64_t, int64_t, const double*,
                                         const double*, const double*, const double*, double,
                                         double*, double*);

}  // namespace fluxkern
