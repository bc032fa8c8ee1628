#include "kernels/residual_cpu.h"

namespace fluxkern {

template <typename T>
void residual_loss_cpu(const MonomialTable<T>& t, const LossSpec<T>& loss, int64_t n, bool paired,
                       int64_t n0, int64_t n1, const T* y, const T* jac, const T* cols, T* c,
                       T* loss_p, T* ybar, T* jbar) {
  T r[kMaxResiduals];  // scratch
  T g[kMaxResiduals];
  for (int64_t p = n0; p < n1; ++p) {
    residual_loss_point(t, loss, n, paired, p, y, jac, cols, c, loss_p, ybar, jbar, r, g);
  }
}

template void residual_loss_cpu<float>(const MonomialTable<float>&, const LossSpec<float>&, int64_t,
                                       bool, int64_t, int64_t, const float*, const float*,
                                       const float*, float*, float*, float*, float*);
template void residual_loss_cpu<double>(const MonomialTable<double>&, const LossSpec<double>&,
                                        int64_t, bool, int64_t, int64_t, const double*,
                                        const double*, const double*, double*, double*, double*,
                                        double*);

}  // namespace fluxkern
