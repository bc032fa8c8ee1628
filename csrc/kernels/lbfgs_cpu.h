// The L-BFGS two-loop recursion (Nocedal and Wright, Algorithm 7.4) on raw pointers: the search
// direction d = -H g from the stored curvature pairs. Host code, no torch headers.
#pragma once

#include <cstdint>

namespace fluxkern {

// History rows are a ring: pair i (0 = oldest) of `count` is row (start + i) % h of s [h, p]
// (steps) and y [h, p] (gradient changes), with rho[row] = 1 / (y . s). alpha: scratch [count].
// Writes d [p] = -H g with H the L-BFGS inverse-Hessian approximation scaled by h_diag.
template <typename T>
void lbfgs_two_loop_cpu(int64_t p, int64_t h, int64_t start, int64_t count, const T* g,
                        const T* s, const T* y, const T* rho, T h_diag, T* alpha, T* d);

}  // namespace fluxkern
