// CPU loop of the fused residual + loss step over points. Raw pointers, no torch headers.
#pragma once

#include <cstdint>

#include "kernels/residual.h"

namespace fluxkern {

// For points p in [n0, n1) of a block of N points (N pairs when `paired`: rows p and p + N of
// y, jac and cols are the two sides, r = e(row p) - e(row p + N)):
//   c [N, R]       constraint values C
//   loss_p [N]     the point's loss contribution
//   ybar [P, m], jbar [P, m, d]   dL/dy and dL/dJ, written for every row of the point (P = N or 2N)
template <typename T>
void residual_loss_cpu(const MonomialTable<T>& table, const LossSpec<T>& loss, int64_t n,
                       bool paired, int64_t n0, int64_t n1, const T* y, const T* jac, const T* cols,
                       T* c, T* loss_p, T* ybar, T* jbar);

}  // namespace fluxkern
