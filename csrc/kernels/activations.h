// Activation functions and their first two derivatives, written once for CPU and CUDA.
// No torch headers: this file is shared by the C++ and the CUDA kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FK_HD __host__ __device__ __forceinline__
#else
#define FK_HD inline __attribute__((always_inline))  // no out-of-line copy per ISA variant
#endif

namespace fluxkern {

// Hidden-layer activation.
enum class Activation : int32_t { Tanh = 0, Sin = 1, Silu = 2 };

// s(z), s'(z) and s''(z) at one point.
template <typename T>
struct ActivationValue {
  T s;    // s(z)
  T ds;   // s'(z)
  T d2s;  // s''(z)
};

// Constants of exp_poly per type: clamp range, Taylor degree, and the split of ln 2 into a
// short high part (exact in k * ln2_hi) and a low part.
template <typename T>
struct ExpTraits;
template <>
struct ExpTraits<float> {
  using Bits = int32_t;
  static constexpr float kLo = -87.0f, kHi = 88.0f;
  static constexpr int kDegree = 8;
  static constexpr int kMantissa = 23, kBias = 127;
  static constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187e-06f;
};
template <>
struct ExpTraits<double> {
  using Bits = int64_t;
  static constexpr double kLo = -708.0, kHi = 709.0;
  static constexpr int kDegree = 13;
  static constexpr int kMantissa = 52, kBias = 1023;
  static constexpr double kLn2Hi = 0.693147180369123816490, kLn2Lo = 1.90821492927058770002e-10;
};

// exp and expm1 without branches or library calls, so that loops over them vectorise on the
// CPU. x = k ln 2 + r with |r| <= ln 2 / 2; e^r - 1 by its Taylor polynomial (remainder below
// 1e-8 for float and 5e-18 for double, relative), 2^k built in the exponent bits. Inputs are
// clamped to the finite range (the correct limit in every use here: sigmoid and tanh saturate);
// NaN propagates.
// 1 / i! for i <= N, computed at compile time (each step one correctly rounded division).
template <typename T, int N>
struct InvFactorials {
  T c[N + 1];
  FK_HD constexpr InvFactorials() : c{} {
    T f = T(1);
    c[0] = f;
    for (int i = 1; i <= N; ++i) {
      f /= T(i);
      c[i] = f;
    }
  }
};

template <typename T>
struct ExpParts {
  T em1_r;  // e^r - 1
  T two_k;  // 2^k
};

template <typename T>
FK_HD ExpParts<T> exp_parts(T x) {
  using E = ExpTraits<T>;
  x = x < E::kLo ? E::kLo : (x > E::kHi ? E::kHi : x);
  // k = round(x / ln 2) by truncation toward zero of x / ln 2 +- 1/2 (int32 conversion
  // vectorises on every x86-64; floor() would need SSE4.1).
  const T v = x * T(1.4426950408889634);
  const int32_t ki = static_cast<int32_t>(v + (v < T(0) ? T(-0.5) : T(0.5)));
  const T k = static_cast<T>(ki);
  const T r = (x - k * E::kLn2Hi) - k * E::kLn2Lo;
  // (e^r - 1) / r = sum_{i < n} r^i / (i + 1)!, n = kDegree: Horner with one FMA per degree
  // (the coefficients fold to constants), a short dependency chain for the vectorised loops.
  constexpr InvFactorials<T, E::kDegree> kInv{};
  T q = kInv.c[E::kDegree];
  for (int i = E::kDegree - 1; i >= 1; --i) q = q * r + kInv.c[i];
  const typename E::Bits bits = (static_cast<typename E::Bits>(ki) + E::kBias) << E::kMantissa;
  ExpParts<T> out;
  out.em1_r = r * q;
  std::memcpy(&out.two_k, &bits, sizeof(T));
  return out;
}

template <typename T>
FK_HD T exp_poly(T x) {
  const ExpParts<T> e = exp_parts(x);
  return e.two_k + e.two_k * e.em1_r;
}

// expm1 accurate to a few ulp relative, also near 0 (k = 0 there, so no cancellation).
template <typename T>
FK_HD T expm1_poly(T x) {
  const ExpParts<T> e = exp_parts(x);
  return e.two_k * e.em1_r + (e.two_k - T(1));
}

// exp used by the kernels: the hardware routine on the GPU, the vectorisable one on the CPU.
FK_HD float fk_exp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return exp_poly(x);
#endif
}
FK_HD double fk_exp(double x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return exp_poly(x);
#endif
}

FK_HD float fk_expm1(float x) {
#if defined(__CUDA_ARCH__)
  return expm1f(x);
#else
  return expm1_poly(x);
#endif
}
FK_HD double fk_expm1(double x) {
#if defined(__CUDA_ARCH__)
  return expm1(x);
#else
  return expm1_poly(x);
#endif
}

// tanh: s = t,      s' = 1 - t^2,                 s'' = -2 t s'
// SiLU: s = z sig,  s' = sig (1 + z (1 - sig)),   s'' = sig (1 - sig) (2 + z (1 - 2 sig))
// sin:  s = sin z,  s' = cos z,                   s'' = -sin z   (see activation_from_sincos)
// tanh z = sign(z) * (-em) / (2 + em) with em = expm1(-2 |z|) in (-1, 0]: no cancellation, so
// the relative error stays at a few ulp for every z, and no branch.
template <typename T>
FK_HD ActivationValue<T> tanh_eval(T z) {
  const T em = fk_expm1(T(-2) * std::fabs(z));
  const T t = std::copysign(-em / (T(2) + em), z);
  const T ds = T(1) - t * t;
  return ActivationValue<T>{t, ds, T(-2) * t * ds};
}

template <typename T>
FK_HD ActivationValue<T> silu_eval(T z) {
  const T sig = T(1) / (T(1) + fk_exp(-z));
  return ActivationValue<T>{z * sig, sig * (T(1) + z * (T(1) - sig)),
                            sig * (T(1) - sig) * (T(2) + z * (T(1) - T(2) * sig))};
}

template <typename T>
FK_HD ActivationValue<T> activation_from_sincos(T sin_z, T cos_z) {
  return ActivationValue<T>{sin_z, cos_z, -sin_z};
}

FK_HD float fk_sin(float z) { return sinf(z); }
FK_HD double fk_sin(double z) { return sin(z); }
FK_HD float fk_cos(float z) { return cosf(z); }
FK_HD double fk_cos(double z) { return cos(z); }

// Any activation at one point (the CPU kernels evaluate sin through vectorised library calls
// before the fused loop and use activation_from_sincos instead).
template <typename T>
FK_HD ActivationValue<T> activation_eval(Activation act, T z) {
  if (act == Activation::Tanh) return tanh_eval(z);
  if (act == Activation::Silu) return silu_eval(z);
  return activation_from_sincos(fk_sin(z), fk_cos(z));
}

}  // namespace fluxkern
