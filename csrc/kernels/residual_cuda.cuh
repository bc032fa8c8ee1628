// CUDA kernel of the fused residual + loss step (DESIGN.md section 4). Raw pointers, no torch
// headers; the per-point math is kernels/residual.h, shared with the CPU loop
// (kernels/residual_cpu.h), and the outputs are the CPU loop's. This header is plain C++ (included
// by the torch glue compiled with the host compiler); the kernel itself is in residual_cuda.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/residual.h"

namespace fluxkern {

// For every point p of a block of N points (N pairs when `paired`: rows p and p + N of y, jac and
// cols are the two sides, r = e(row p) - e(row p + N)), one thread per point, on `stream`:
//   c [N, R]       constraint values C
//   loss_p [N]     the point's loss contribution (the caller sums it: no atomics, deterministic)
//   ybar [P, m], jbar [P, m, d]   dL/dy and dL/dJ, written for every row of the point (P = N or 2N)
// Every pointer is to device memory, including those inside `table` and `loss`; the table's
// entries must have been checked against R, K, m and d. Launches nothing when N == 0. Returns the
// launch error (cudaSuccess when none).
template <typename T>
cudaError_t residual_loss_cuda(const MonomialTable<T>& table, const LossSpec<T>& loss, int64_t n,
                               bool paired, const T* y, const T* jac, const T* cols, T* c,
                               T* loss_p, T* ybar, T* jbar, cudaStream_t stream);

}  // namespace fluxkern
