// CUDA glue of the residual Jacobian: the one-thread-per-point kernel
// (csrc/kernels/jacobian_cuda.cuh) on the current stream, and the op entry point.
#include "kernels/jacobian_cuda.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>

#include "ops/jacobian.h"

namespace fluxkern {
namespace {

// Cap on the per-thread scratch of one launch (bytes); more points than threads run grid-stride.
constexpr int64_t kScratchBytes = int64_t{256} << 20;

}  // namespace

std::tuple<at::Tensor, at::Tensor> residual_jacobian_cuda(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired) {
  c10::cuda::OptionalCUDAGuard guard;  // x off CUDA: no guard; the checks name the devices
  if (x.is_cuda()) guard.set_device(x.device());
  const JacobianCall c =
      prepare_residual_jacobian(c10::DeviceType::CUDA, x, shift, scale, weights, biases, activation,
                                cols, table, coef, n_res, paired);
  if (c.n == 0) return {c.r, c.jac};
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(x.device().index());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "residual_jacobian_cuda", [&] {
    using T = scalar_t;
    const JacobianNet<T> net = jacobian_net<T>(c);
    const JacobianBlock<T> blk = jacobian_block<T>(c);
    const JacobianPlan plan = jacobian_plan(net, c.n_res, c.tangents);
    const int64_t per_thread = plan.scratch * static_cast<int64_t>(sizeof(T));
    const int64_t threads =
        jacobian_cuda_threads(c.n, std::max<int64_t>(128, kScratchBytes / per_thread));
    at::Tensor scratch = at::empty({threads * plan.scratch}, x.options());  // [threads, scratch]
    C10_CUDA_CHECK(
        residual_jacobian_cuda<T>(net, blk, plan, threads, scratch.data_ptr<T>(), stream));
  });
  return {c.r, c.jac};
}

}  // namespace fluxkern
