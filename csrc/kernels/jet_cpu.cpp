// CPU elementwise kernels of the jet: run-time choice between the baseline build and the AVX2 +
// FMA build of jet_cpu_impl.h (the transcendental loops run about 3x faster with AVX2).
#define FK_CPU_VARIANT baseline
#include "kernels/cpu_features.h"
#include "kernels/jet_cpu_impl.h"
#undef FK_CPU_VARIANT

namespace fluxkern {

#if defined(FLUXKERN_CPU_AVX2)
namespace avx2 {
template <typename T>
void jet_activation_forward_cpu(Activation act, int64_t n, int64_t d, int64_t w, int64_t n0,
                                int64_t n1, const T* bias, T* layer);
template <typename T>
void jet_activation_backward_cpu(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1,
                                 const T* layer, T* grad);
}  // namespace avx2

static bool use_avx2() { return cpu_use_avx2(); }
#define FK_DISPATCH(fn, ...) (use_avx2() ? avx2::fn<T>(__VA_ARGS__) : baseline::fn<T>(__VA_ARGS__))
#else
#define FK_DISPATCH(fn, ...) baseline::fn<T>(__VA_ARGS__)
#endif

template <typename T>
void jet_activation_forward_cpu(Activation act, int64_t n, int64_t d, int64_t w, int64_t n0,
                                int64_t n1, const T* bias, T* layer) {
  FK_DISPATCH(jet_activation_forward_cpu, act, n, d, w, n0, n1, bias, layer);
}

template <typename T>
void jet_activation_backward_cpu(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1,
                                 const T* layer, T* grad) {
  FK_DISPATCH(jet_activation_backward_cpu, n, d, w, n0, n1, layer, grad);
}

const char* cpu_kernel_variant() {
#if defined(FLUXKERN_CPU_AVX2)
  return use_avx2() ? "avx2+fma" : "baseline x86-64";
#else
  return "baseline";
#endif
}

template void jet_activation_forward_cpu<float>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                int64_t, const float*, float*);
template void jet_activation_forward_cpu<double>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                 int64_t, const double*, double*);
template void jet_activation_backward_cpu<float>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                 const float*, float*);
template void jet_activation_backward_cpu<double>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  const double*, double*);

}  // namespace fluxkern
