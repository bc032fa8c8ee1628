// The CUDA kernel of the residual Jacobian, as a header: compiled by nvcc in jacobian_cuda.cu, and
// by the host compiler through kernels/cuda_emulation.h in tests (tests/cpp/jacobian_emulated.cpp).
// One thread per point (grid-stride over `threads` threads), the per-point functions of
// kernels/jacobian.h with the thread's scratch in global memory; each thread writes only its own
// rows of r and jac (no atomics). Not tuned: scratch and output rows are per thread, so the memory
// accesses are not coalesced.
#pragma once

#include <cstdint>

#include "kernels/jacobian.h"

namespace fluxkern {

constexpr int kJacobianThreadsPerBlock = 128;

// scratch: [threads, plan.scratch]; launch with kJacobianThreadsPerBlock threads per block and
// ceil(threads / kJacobianThreadsPerBlock) blocks.
template <typename T>
__global__ void __launch_bounds__(kJacobianThreadsPerBlock)
    residual_jacobian_kernel(JacobianNet<T> net, JacobianBlock<T> block, JacobianPlan plan,
                             int64_t threads, T* __restrict__ scratch) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid >= threads) return;
  T* s = scratch + tid * plan.scratch;  // [plan.scratch]
  for (int64_t p = tid; p < block.n; p += threads) jacobian_point(net, block, plan, p, s);
}

}  // namespace fluxkern
