#include "kernels/residual_cpu.h"

namespace fluxkern {

template <typename T>
void residual_loss_cpu(const MonomialTable<T>& t, const LossSpec<T>& loss, int64_t n, bool paired,
                       int64_t n0, int64_t n1, const T* y, const T* jac, const T* cols, T* c,
                       T* loss_p, T* ybar, T* jbar) {
  const int64_t m = t.m, md = t.m * t.d, k = t.n_cols;
  T r[kMaxResiduals];
  T g[kMaxResiduals];
  for (int64_t p = n0; p < n1; ++p) {
    const int64_t rows[2] = {p, p + n};
    const int sides = paired ? 2 : 1;
    for (int64_t i = 0; i < t.n_res; ++i) r[i] = T(0);
    for (int s = 0; s < sides; ++s) {
      const int64_t q = rows[s];
      residuals_at(t, y + q * m, jac + q * md, cols + q * k, s == 0 ? T(1) : T(-1), r);
    }
    loss_p[p] = loss_at(loss, p, t.n_res, r, c + p * t.n_res, g);
    for (int s = 0; s < sides; ++s) {
      const int64_t q = rows[s];
      T* yb = ybar + q * m;   // [m]
      T* jb = jbar + q * md;  // [m * d]
      for (int64_t o = 0; o < m; ++o) yb[o] = T(0);
      for (int64_t o = 0; o < md; ++o) jb[o] = T(0);
      residuals_backward_at(t, y + q * m, jac + q * md, cols + q * k, g, s == 0 ? T(1) : T(-1), yb,
                            jb);
    }
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
