// Upper-triangle kernels of the dense quasi-Newton optimizers (dense_qn_cpu.h): the run-time
// choice between the baseline build and the AVX2 + FMA build of dense_qn_cpu_impl.h (the loops
// stream the matrix once; the baseline's pairs of SSE registers without FMA do not keep up with
// the memory), and the row split of the triangle.
#define FK_CPU_VARIANT baseline
#include "kernels/cpu_features.h"
#include "kernels/dense_qn_cpu_impl.h"
#undef FK_CPU_VARIANT

#include <algorithm>
#include <cmath>

namespace fluxkern {

#if defined(FLUXKERN_CPU_AVX2)
namespace avx2 {
template <typename T>
void sym_upper_matvec_rows_cpu(int64_t p, const T* h, const T* x, int64_t i0, int64_t i1, T* y);
template <typename T>
void sym_upper_rank2_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1, const T* w1,
                              int64_t i0, int64_t i1);
template <typename T>
void sym_upper_rank2_matvec_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1,
                                     const T* w1, const T* x, int64_t i0, int64_t i1, T* y);
}  // namespace avx2
#endif

template <typename T>
void sym_upper_matvec_rows_cpu(int64_t p, const T* h, const T* x, int64_t i0, int64_t i1, T* y) {
#if defined(FLUXKERN_CPU_AVX2)
  if (cpu_use_avx2()) {
    avx2::sym_upper_matvec_rows_cpu<T>(p, h, x, i0, i1, y);
    return;
  }
#endif
  baseline::sym_upper_matvec_rows_cpu<T>(p, h, x, i0, i1, y);
}

template <typename T>
void sym_upper_rank2_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1, const T* w1,
                              int64_t i0, int64_t i1) {
#if defined(FLUXKERN_CPU_AVX2)
  if (cpu_use_avx2()) {
    avx2::sym_upper_rank2_rows_cpu<T>(p, h, u0, w0, u1, w1, i0, i1);
    return;
  }
#endif
  baseline::sym_upper_rank2_rows_cpu<T>(p, h, u0, w0, u1, w1, i0, i1);
}

template <typename T>
void sym_upper_rank2_matvec_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1,
                                     const T* w1, const T* x, int64_t i0, int64_t i1, T* y) {
#if defined(FLUXKERN_CPU_AVX2)
  if (cpu_use_avx2()) {
    avx2::sym_upper_rank2_matvec_rows_cpu<T>(p, h, u0, w0, u1, w1, x, i0, i1, y);
    return;
  }
#endif
  baseline::sym_upper_rank2_matvec_rows_cpu<T>(p, h, u0, w0, u1, w1, x, i0, i1, y);
}

int64_t triangle_row_split(int64_t p, int64_t parts, int64_t k) {
  if (k <= 0) return 0;
  if (k >= parts) return p;
  // rows [0, i) hold A(i) = i p - i (i - 1) / 2 values; the cut is the first i with
  // A(i) >= k / parts of A(p), from the root of the quadratic, then adjusted by whole rows
  const double total = 0.5 * static_cast<double>(p) * static_cast<double>(p + 1);
  const double want = total * static_cast<double>(k) / static_cast<double>(parts);
  const double b = static_cast<double>(p) + 0.5;
  auto area = [p](int64_t i) {
    return static_cast<double>(i) * static_cast<double>(p) -
           0.5 * static_cast<double>(i) * static_cast<double>(i - 1);
  };
  int64_t i = static_cast<int64_t>(b - std::sqrt(std::max(b * b - 2.0 * want, 0.0)));
  i = i < 0 ? 0 : (i > p ? p : i);
  while (i > 0 && area(i - 1) >= want) --i;
  while (i < p && area(i) < want) ++i;
  return i;
}

template void sym_upper_matvec_rows_cpu<float>(int64_t, const float*, const float*, int64_t,
                                               int64_t, float*);
template void sym_upper_matvec_rows_cpu<double>(int64_t, const double*, const double*, int64_t,
                                                int64_t, double*);
template void sym_upper_rank2_matvec_rows_cpu<float>(int64_t, float*, const float*, const float*,
                                                     const float*, const float*, const float*,
                                                     int64_t, int64_t, float*);
template void sym_upper_rank2_matvec_rows_cpu<double>(int64_t, double*, const double*,
                                                      const double*, const double*, const double*,
                                                      const double*, int64_t, int64_t, double*);
template void sym_upper_rank2_rows_cpu<float>(int64_t, float*, const float*, const float*,
                                              const float*, const float*, int64_t, int64_t);
template void sym_upper_rank2_rows_cpu<double>(int64_t, double*, const double*, const double*,
                                               const double*, const double*, int64_t, int64_t);

}  // namespace fluxkern
