// Residuals from a monomial table, the augmented-Lagrangian loss per point, and the product-rule
// gradients dl/dy, dl/dJ (DESIGN.md sections 1 and 4). Written once for CPU and CUDA; no torch
// headers.
#pragma once

#include <cstdint>

#include "kernels/activations.h"

namespace fluxkern {

// Largest number of residual expressions in one block.
constexpr int kMaxResiduals = 32;
// Columns of one monomial-table row.
constexpr int kMonoCols = 5;

// One block's compiled residuals: residual r_i = sum over rows with index[0] == i of
//   coef * cols[index[1]] * F(index[2]) * F(index[3]) * F(index[4])
// where a column index of -1 means 1, and a field index f means y_f for f < m and J_{(f-m)/d,
// (f-m)%d} (i.e. element f - m of the row-major [m, d] Jacobian) otherwise; -1 means 1.
template <typename T>
struct MonomialTable {
  const int32_t* index;  // [M, 5]: residual, coefficient column, field 1, field 2, field 3
  const T* coef;         // [M]
  int64_t n_mono;        // M
  int64_t n_res;         // R
  int64_t n_cols;        // K, columns of the per-point coefficient matrix
  int64_t m;             // network outputs
  int64_t d;             // inputs
};

template <typename T>
FK_HD T field_value(int32_t f, int64_t m, const T* y, const T* jac) {
  return f < 0 ? T(1) : (f < m ? y[f] : jac[f - m]);
}

// r[R] += residuals at one point; y [m], jac [m * d], cols [K].
template <typename T>
FK_HD void residuals_at(const MonomialTable<T>& t, const T* y, const T* jac, const T* cols, T sign,
                        T* r) {
  for (int64_t k = 0; k < t.n_mono; ++k) {
    const int32_t* ix = t.index + k * kMonoCols;
    T v = sign * t.coef[k] * (ix[1] < 0 ? T(1) : cols[ix[1]]);
    v *= field_value(ix[2], t.m, y, jac) * field_value(ix[3], t.m, y, jac) *
         field_value(ix[4], t.m, y, jac);
    r[ix[0]] += v;
  }
}

// ybar [m] and jbar [m * d] += sign * sum_i g_i dr_i/d(y, J) at one point, by the product rule.
// gcoef [M] (null: not wanted) += sign * g_i * (monomial k without its coefficient), i.e. the
// point's share of dL/dcoef_k.
template <typename T>
FK_HD void residuals_backward_at(const MonomialTable<T>& t, const T* y, const T* jac, const T* cols,
                                 const T* g, T sign, T* ybar, T* jbar, T* gcoef = nullptr) {
  for (int64_t k = 0; k < t.n_mono; ++k) {
    const int32_t* ix = t.index + k * kMonoCols;
    const T unit = sign * g[ix[0]] * (ix[1] < 0 ? T(1) : cols[ix[1]]);
    const T base = unit * t.coef[k];
    const T f1 = field_value(ix[2], t.m, y, jac);
    const T f2 = field_value(ix[3], t.m, y, jac);
    const T f3 = field_value(ix[4], t.m, y, jac);
    if (gcoef != nullptr) gcoef[k] += unit * f1 * f2 * f3;
    const T partial[3] = {base * f2 * f3, base * f1 * f3, base * f1 * f2};
    for (int q = 0; q < 3; ++q) {
      const int32_t f = ix[2 + q];
      if (f < 0) continue;
      if (f < t.m) {
        ybar[f] += partial[q];
      } else {
        jbar[f - t.m] += partial[q];
      }
    }
  }
}

// Loss settings of a group of blocks on the same points:
//   L = sum_points sum_i red_i (lam_i C_i + mu_i / 2 C_i^2),  C_i = r_i^2 if squared_i else r_i,
// red_i = 1 / N for a "mean" block, 1 for "sum". An objective is lam = w, mu = 0, squared.
template <typename T>
struct LossSpec {
  const T* lam;        // [N, R] (lam_stride = R) or [R] (lam_stride = 0)
  int64_t lam_stride;  // 0 or R
  const T* mu;         // [R]
  const T* squared;    // [R], 1 or 0
  const T* red;        // [R]
  // out [N, M] or null: row p gets sum_i dL/dr_i(p) dr_i(p)/dcoef_k, the point's share of the
  // coefficient gradient (the caller sums the rows: no atomics, deterministic)
  T* gcoef = nullptr;
};

// Point p: C_i into c [R], the loss contribution returned, g_i = dL/dr_i into g [R].
template <typename T>
FK_HD T loss_at(const LossSpec<T>& s, int64_t p, int64_t n_res, const T* r, T* c, T* g) {
  T total = T(0);
  const T* lam = s.lam + p * s.lam_stride;
  for (int64_t i = 0; i < n_res; ++i) {
    const bool sq = s.squared[i] != T(0);
    const T ci = sq ? r[i] * r[i] : r[i];
    c[i] = ci;
    total += s.red[i] * (lam[i] * ci + T(0.5) * s.mu[i] * ci * ci);
    const T dl_dc = s.red[i] * (lam[i] + s.mu[i] * ci);
    g[i] = sq ? dl_dc * T(2) * r[i] : dl_dc;
  }
  return total;
}

// The whole fused step at point p of a block of n points (n pairs when `paired`: rows p and p + n
// are the two sides, r = e(row p) - e(row p + n)): C [n, R] and loss_p [n] at p, and dl/dy, dl/dJ
// written for the point's rows of ybar [P, m] and jbar [P, m, d] (and row p of loss.gcoef
// [n, M] when set). r and g are scratch [R].
template <typename T>
FK_HD void residual_loss_point(const MonomialTable<T>& t, const LossSpec<T>& loss, int64_t n,
                               bool paired, int64_t p, const T* y, const T* jac, const T* cols,
                               T* c, T* loss_p, T* ybar, T* jbar, T* r, T* g) {
  const int64_t m = t.m, md = t.m * t.d, k = t.n_cols;
  const int64_t rows[2] = {p, p + n};
  const int sides = paired ? 2 : 1;
  for (int64_t i = 0; i < t.n_res; ++i) r[i] = T(0);
  for (int s = 0; s < sides; ++s) {
    const int64_t q = rows[s];
    residuals_at(t, y + q * m, jac + q * md, cols + q * k, s == 0 ? T(1) : T(-1), r);
  }
  loss_p[p] = loss_at(loss, p, t.n_res, r, c + p * t.n_res, g);
  T* gc = loss.gcoef == nullptr ? nullptr : loss.gcoef + p * t.n_mono;  // [M]
  if (gc != nullptr) {
    for (int64_t k2 = 0; k2 < t.n_mono; ++k2) gc[k2] = T(0);
  }
  for (int s = 0; s < sides; ++s) {
    const int64_t q = rows[s];
    T* yb = ybar + q * m;   // [m]
    T* jb = jbar + q * md;  // [m * d]
    for (int64_t o = 0; o < m; ++o) yb[o] = T(0);
    for (int64_t o = 0; o < md; ++o) jb[o] = T(0);
    residuals_backward_at(t, y + q * m, jac + q * md, cols + q * k, g, s == 0 ? T(1) : T(-1), yb,
                          jb, gc);
  }
}

}  // namespace fluxkern
