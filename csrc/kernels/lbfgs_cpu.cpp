// The L-BFGS direction kernel: the run-time choice between the baseline build and the AVX2 + FMA
// build of lbfgs_cpu_impl.h.
#define FK_CPU_VARIANT baseline
#include "kernels/cpu_features.h"
#include "kernels/lbfgs_cpu_impl.h"
#undef FK_CPU_VARIANT

namespace fluxkern {

#if defined(FLUXKERN_CPU_AVX2)
namespace avx2 {
template <typename T>
void lbfgs_two_loop_cpu(int64_t p, int64_t h, int64_t start, int64_t count, int64_t new_row,
                        const T* g, const T* s, const T* y, const T* rho, T h_diag, T* sy, T* yy,
                        T* work, T* d);
}  // namespace avx2

static bool lbfgs_use_avx2() { return cpu_use_avx2(); }
#endif

template <typename T>
void lbfgs_two_loop_cpu(int64_t p, int64_t h, int64_t start, int64_t count, int64_t new_row,
                        const T* g, const T* s, const T* y, const T* rho, T h_diag, T* sy, T* yy,
                        T* work, T* d) {
#if defined(FLUXKERN_CPU_AVX2)
  if (lbfgs_use_avx2()) {
    avx2::lbfgs_two_loop_cpu<T>(p, h, start, count, new_row, g, s, y, rho, h_diag, sy, yy, work, d);
    return;
  }
#endif
  baseline::lbfgs_two_loop_cpu<T>(p, h, start, count, new_row, g, s, y, rho, h_diag, sy, yy, work,
                                  d);
}

template void lbfgs_two_loop_cpu<float>(int64_t, int64_t, int64_t, int64_t, int64_t, const float*,
                                        const float*, const float*, const float*, float, float*,
                                        float*, float*, float*);
template void lbfgs_two_loop_cpu<double>(int64_t, int64_t, int64_t, int64_t, int64_t, const double*,
                                         const double*, const double*, const double*, double,
                                         double*, double*, double*, double*);

}  // namespace fluxkern
