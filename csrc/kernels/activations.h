// Activation functions and their first two derivatives, written once for CPU and CUDA.
// No torch headers: this file is shared by the C++ and the CUDA kernels.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FK_HD __host__ __device__ __forceinline__
#else
#define FK_HD inline
#endif

namespace fluxkern {

// Hidden-layer activation. The integer values are part of the op ABI (see csrc/ops/common.h).
enum class Activation : int32_t { Tanh = 0, Sin = 1, Silu = 2 };

// s(z), s'(z) and s''(z) at one point.
template <typename T>
struct ActivationValue {
  T s;    // s(z)
  T ds;   // s'(z)
  T d2s;  // s''(z)
};

FK_HD float fk_tanh(float z) { return tanhf(z); }
FK_HD double fk_tanh(double z) { return tanh(z); }
FK_HD float fk_sin(float z) { return sinf(z); }
FK_HD double fk_sin(double z) { return sin(z); }
FK_HD float fk_cos(float z) { return cosf(z); }
FK_HD double fk_cos(double z) { return cos(z); }
FK_HD float fk_exp(float z) { return expf(z); }
FK_HD double fk_exp(double z) { return exp(z); }

// The "primitive" of an activation is the transcendental part that is expensive to evaluate:
// tanh(z) for tanh, sin(z) and cos(z) for sin, sigmoid(z) for SiLU. CPU code evaluates primitives
// with vectorised library routines and then calls activation_from_primitive; CUDA code calls
// activation_eval, which evaluates the primitive itself.
//
// tanh: s = t,          s' = 1 - t^2,                 s'' = -2 t s'
// sin:  s = sin z,      s' = cos z,                   s'' = -sin z
// SiLU: s = z sig,      s' = sig (1 + z (1 - sig)),   s'' = sig (1 - sig) (2 + z (1 - 2 sig))
template <typename T>
FK_HD ActivationValue<T> activation_from_primitive(Activation act, T z, T p, T p2) {
  ActivationValue<T> v;
  if (act == Activation::Tanh) {
    v.s = p;
    v.ds = T(1) - p * p;
    v.d2s = T(-2) * p * v.ds;
  } else if (act == Activation::Sin) {
    v.s = p;
    v.ds = p2;
    v.d2s = -p;
  } else {
    const T sig = p;
    v.s = z * sig;
    v.ds = sig * (T(1) + z * (T(1) - sig));
    v.d2s = sig * (T(1) - sig) * (T(2) + z * (T(1) - T(2) * sig));
  }
  return v;
}

template <typename T>
FK_HD ActivationValue<T> activation_eval(Activation act, T z) {
  if (act == Activation::Tanh) return activation_from_primitive(act, z, fk_tanh(z), T(0));
  if (act == Activation::Sin) return activation_from_primitive(act, z, fk_sin(z), fk_cos(z));
  return activation_from_primitive(act, z, T(1) / (T(1) + fk_exp(-z)), T(0));
}

}  // namespace fluxkern
