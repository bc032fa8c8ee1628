// CPU glue of the residual Jacobian: the per-point kernel (csrc/kernels/jacobian_cpu.h) parallel
// over points, each thread with its own scratch, and the op entry point.
#include "kernels/jacobian_cpu.h"

#include <ATen/Parallel.h>

#include <vector>

#include "ops/jacobian.h"

namespace fluxkern {

std::tuple<at::Tensor, at::Tensor> residual_jacobian_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired) {
  const JacobianCall c =
      prepare_residual_jacobian(c10::DeviceType::CPU, x, shift, scale, weights, biases, activation,
                                cols, table, coef, n_res, paired);
  if (c.n == 0) return {c.r, c.jac};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "residual_jacobian_cpu", [&] {
    using T = scalar_t;
    const JacobianNet<T> net = jacobian_net<T>(c);
    const JacobianBlock<T> blk = jacobian_block<T>(c);
    const JacobianPlan plan = jacobian_plan(net, c.n_res, c.tangents);
    at::parallel_for(0, c.n, 16, [&](int64_t n0, int64_t n1) {
      std::vector<T> scratch(static_cast<size_t>(plan.scratch));
      residual_jacobian_cpu<T>(net, blk, plan, n0, n1, scratch.data());
    });
  });
  return {c.r, c.jac};
}

}  // namespace fluxkern
