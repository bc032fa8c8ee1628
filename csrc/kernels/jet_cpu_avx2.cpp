// The AVX2 + FMA build of the CPU elementwise kernels (compiled with -mavx2 -mfma; called only
// when the CPU has both, see jet_cpu.cpp).
#define FK_CPU_VARIANT avx2
#include "kernels/jet_cpu_impl.h"

namespace fluxkern {
namespace avx2 {
template void jet_activation_forward_cpu<float>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                int64_t, const float*, float*);
template void jet_activation_forward_cpu<double>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                 int64_t, const double*, double*);
template void jet_activation_backward_cpu<float>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                 const float*, float*);
template void jet_activation_backward_cpu<double>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  const double*, double*);
}  // namespace avx2
}  // namespace fluxkern
