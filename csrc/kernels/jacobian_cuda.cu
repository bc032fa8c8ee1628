// CUDA launch of the residual Jacobian kernel (kernels/jacobian_cuda_kernel.cuh).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/jacobian_cuda.cuh"
#include "kernels/jacobian_cuda_kernel.cuh"

namespace fluxkern {

int64_t jacobian_cuda_threads(int64_t n, int64_t max_threads) {
  return std::max<int64_t>(1, std::min(n, max_threads));
}

template <typename T>
cudaError_t residual_jacobian_cuda(const JacobianNet<T>& net, const JacobianBlock<T>& block,
                                   const JacobianPlan& plan, int64_t threads, T* scratch,
                                   cudaStream_t stream) {
  if (block.n == 0) return cudaSuccess;
  if (threads < 1 || net.hidden < 1 || net.hidden > kJacMaxHidden) return cudaErrorInvalidValue;
  const auto blocks =
      static_cast<unsigned>((threads + kJacobianThreadsPerBlock - 1) / kJacobianThreadsPerBlock);
  residual_jacobian_kernel<T>
      <<<blocks, kJacobianThreadsPerBlock, 0, stream>>>(net, block, plan, threads, scratch);
  return cudaGetLastError();
}

template cudaError_t residual_jacobian_cuda<float>(const JacobianNet<float>&,
                                                   const JacobianBlock<float>&, const JacobianPlan&,
                                                   int64_t, float*, cudaStream_t);
template cudaError_t residual_jacobian_cuda<double>(const JacobianNet<double>&,
                                                    const JacobianBlock<double>&,
                                                    const JacobianPlan&, int64_t, double*,
                                                    cudaStream_t);

}  // namespace fluxkern
