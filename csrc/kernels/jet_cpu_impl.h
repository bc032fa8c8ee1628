// Bodies of the CPU elementwise kernels, compiled once per instruction-set variant: jet_cpu.cpp
// includes this file for the baseline x86-64 build and jet_cpu_avx2.cpp for AVX2 + FMA; the
// public functions in jet_cpu.cpp pick one at run time. Define FK_CPU_VARIANT before including.
// No include guard on purpose. See jet_cpu.h for the buffer layout.
#include "kernels/jet_cpu.h"

namespace fluxkern {
namespace FK_CPU_VARIANT {
namespace {

template <Activation A, typename T>
ActivationValue<T> activation_at(T z, T sin_z, T cos_z) {
  if constexpr (A == Activation::Tanh) {
    return tanh_eval(z);
  } else if constexpr (A == Activation::Silu) {
    return silu_eval(z);
  } else {
    return activation_from_sincos(sin_z, cos_z);
  }
}

template <typename T, Activation A>
void activation_forward_rows(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1,
                             const T* __restrict__ bias, T* layer) {
  const int64_t slot = n * w;
  for (int64_t p = n0; p < n1; ++p) {
    T* __restrict__ z_ds = layer + p * w;                         // [W] z -> s'(z)
    T* __restrict__ h = layer + (d + 1) * slot + p * w;           // [W] (sin z) -> s(z)
    T* __restrict__ p2_d2s = layer + (2 * d + 2) * slot + p * w;  // [W] (cos z) -> s''(z)
    if (bias != nullptr) {
#pragma omp simd
      for (int64_t k = 0; k < w; ++k) z_ds[k] += bias[k];
    }
#pragma omp simd
    for (int64_t k = 0; k < w; ++k) {
      const ActivationValue<T> v = activation_at<A, T>(z_ds[k], h[k], p2_d2s[k]);
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
                                int64_t n1, const T* bias, T* layer) {
  switch (act) {
    case Activation::Tanh:
      activation_forward_rows<T, Activation::Tanh>(n, d, w, n0, n1, bias, layer);
      break;
    case Activation::Sin:
      activation_forward_rows<T, Activation::Sin>(n, d, w, n0, n1, bias, layer);
      break;
    case Activation::Silu:
      activation_forward_rows<T, Activation::Silu>(n, d, w, n0, n1, bias, layer);
      break;
  }
}

template <typename T>
void jet_activation_backward_cpu(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1,
                                 const T* layer, T* grad) {
  const int64_t slot = n * w;
  for (int64_t p = n0; p < n1; ++p) {
    const T* __restrict__ ds = layer + p * w;                        // [W] s'(z)
    const T* __restrict__ d2s = layer + (2 * d + 2) * slot + p * w;  // [W] s''(z)
    T* __restrict__ zbar = grad + p * w;                             // [W] hbar -> zbar
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

}  // namespace FK_CPU_VARIANT
}  // namespace fluxkern
