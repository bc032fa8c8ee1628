// CUDA kernel of the residual Jacobian (issue 13). The per-point math is kernels/jacobian.h,
// shared with the CPU loop (kernels/jacobian_cpu.h); the outputs are the CPU loop's. This header
// is plain C++ (included by the torch glue compiled with the host compiler); the kernel itself is
// in jacobian_cuda.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/jacobian.h"

namespace fluxkern {

// Threads the launch uses for a block of n points: one per point, at most `max_threads`. Each
// thread needs plan.scratch elements of scratch.
int64_t jacobian_cuda_threads(int64_t n, int64_t max_threads);

// Every point (pair) of the block, one thread per point (grid-stride over `threads` threads), on
// `stream`: writes all of r and jac. scratch: [threads, plan.scratch] device memory. Every pointer
// (also inside net and block) is to device memory; the table's entries must have been checked.
// Launches nothing when n == 0. Returns the launch error (cudaSuccess when none).
template <typename T>
cudaError_t residual_jacobian_cuda(const JacobianNet<T>& net, const JacobianBlock<T>& block,
                                   const JacobianPlan& plan, int64_t threads, T* scratch,
                                   cudaStream_t stream);

}  // namespace fluxkern
