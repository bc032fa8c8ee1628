// The L-BFGS search direction d = -H g (Nocedal and Wright, Algorithm 7.4) on raw pointers,
// with the two-loop recursion rewritten on Gram matrices so that the history is read twice per
// call instead of four times (the history is several MB: the recursion is memory-bound). Host
// code, no torch headers.
//
// With q0 = -g, the two-loop recursion is
//   alpha_i = rho_i s_i . q_i,  q_{i-1} = q_i - alpha_i y_i      (i = k-1 .. 0)
//   r_0 = gamma q,  beta_i = rho_i y_i . r_i,  r_{i+1} = r_i + (alpha_i - beta_i) s_i  (i = 0 ..
//   k-1)
// and with the Gram entries SY[i][j] = s_i . y_j, YY[i][j] = y_i . y_j and sg_i = s_i . g,
// yg_i = y_i . g it becomes
//   alpha_i = rho_i (-sg_i - sum_{j>i} alpha_j SY[i][j])
//   y_i . r_i = gamma (-yg_i - sum_j alpha_j YY[i][j]) + sum_{j<i} (alpha_j - beta_j) SY[j][i]
//   d = -gamma g - gamma sum_j alpha_j y_j + sum_j (alpha_j - beta_j) s_j.
// Pass 1 reads every stored pair once (sg, yg, and the Gram entries of a newly stored pair);
// pass 2 reads them once more to form d.
#pragma once

#include <cstdint>

namespace fluxkern {

// History rows are a ring: pair i (0 = oldest) of `count` is row (start + i) % h of s [h, p]
// (steps) and y [h, p] (gradient changes), with rho[row] = 1 / (y . s). sy [h, h] and yy [h, h]
// hold the Gram entries by row; when new_row >= 0 the pair in that row was just stored and its
// row and column of sy and yy are computed here (for every stored pair). work: scratch [4 h].
// Writes d [p] = -H g with H the L-BFGS inverse-Hessian approximation scaled by h_diag.
template <typename T>
void lbfgs_two_loop_cpu(int64_t p, int64_t h, int64_t start, int64_t count, int64_t new_row,
                        const T* g, const T* s, const T* y, const T* rho, T h_diag, T* sy, T* yy,
                        T* work, T* d);

}  // namespace fluxkern
