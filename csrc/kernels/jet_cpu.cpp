// CPU elementwise kernels of the jet. See jet_cpu.h for the buffer layout.
#include "kernels/jet_cpu.h"

namespace fluxkern {
namespace {

template <typename T, Activation A>
void activation_forward_rows(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1, T* layer) {
  const int64_t slot = n * w;
  for (int64_t p = n0; p < n1; ++p) {
    T* __restrict__ z_ds = layer + p * w;                     // [W] z -> s'(z)
    T* __restrict__ h = layer + (d + 1) * slot + p * w;       // [W] primitive -> s(z)
    T* __restrict__ p2_d2s = layer + (2 * d + 2) * slot + p * w;  // [W] cos z -> s''(z)
#pragma omp simd
    for (int64_t k = 0; k < w; ++k) {
      const ActivationValue<T> v = activation_from_primitive<T>(A, z_ds[k], h[k], p2_d2s[k]);
      h[k] = v.s;
      z_ds[k] = v.ds;
      p2_d2s[k] = v.d2s;
    }
    for (int64_t j = 0; j < d; ++j) {
      const T* __restrict__ zt = layer + (1 + j) * slot + p * w;  // [W]
      T* __restrict__ t = layer + (d + 2 + j) * slot + p * w;     // [W]
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) t[k] = z_ds[k] * zt[k];
    }
  }
}

}  // namespace

template <typename T>
void jet_activation_forward_cpu(Activation act, int64_t n, int64_t d, int64_t w, int64_t n0,
                                int64_t n1, T* layer) {
  switch (act) {
    case Activation::Tanh:
      activation_forward_rows<T, Activation::Tanh>(n, d, w, n0, n1, layer);
      break;
    case Activation::Sin:
      activation_forward_rows<T, Activation::Sin>(n, d, w, n0, n1, layer);
      break;
    case Activation::Silu:
      activation_forward_rows<T, Activation::Silu>(n, d, w, n0, n1, layer);
      break;
  }
}

template <typename T>
void jet_activation_backward_cpu(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1,
                                 const T* layer, T* grad) {
  const int64_t slot = n * w;
  for (int64_t p = n0; p < n1; ++p) {
    const T* __restrict__ ds = layer + p * w;                     // [W] s'(z)
    const T* __restrict__ d2s = layer + (2 * d + 2) * slot + p * w;  // [W] s''(z)
    T* __restrict__ zbar = grad + p * w;                          // [W] hbar -> zbar
#pragma omp simd
    for (int64_t k = 0; k < w; ++k) zbar[k] *= ds[k];
    for (int64_t j = 0; j < d; ++j) {
      const T* __restrict__ zt = layer + (1 + j) * slot + p * w;  // [W]
      T* __restrict__ tbar = grad + (1 + j) * slot + p * w;       // [W] Tbar_j -> Ztbar_j
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) {
        zbar[k] += tbar[k] * d2s[k] * zt[k];
        tbar[k] *= ds[k];
      }
    }
  }
}

template void jet_activation_forward_cpu<float>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                int64_t, float*);
template void jet_activation_forward_cpu<double>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                 int64_t, double*);
template void jet_activation_backward_cpu<float>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                 const float*, float*);
template void jet_activation_backward_cpu<double>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  const double*, double*);

}  // namespace fluxkern
