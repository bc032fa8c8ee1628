// The fused per-block residual + augmented-Lagrangian loss op (DESIGN.md section 4): one call
// computes the jet, the residuals from the compiled monomial table, C, the block's loss and the
// gradient of that loss with respect to every weight and bias.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>
#include <vector>

#include "kernels/residual.h"
#include "ops/jet.h"

namespace fluxkern {

// One residual + loss step over the points of a block, on validated arguments that all live on
// the op's device and are contiguous (kernels/residual.h for the table and loss settings). The
// point count is N (pairs when `paired`: rows p and p + N of y, jac and cols are the two sides).
struct ResidualLossStep {
  int64_t n = 0;      // N
  int64_t n_res = 0;  // R
  bool paired = false;
  at::Tensor y;        // [P, m]
  at::Tensor jac;      // [P, m, d]
  at::Tensor cols;     // [P, K]
  at::Tensor table;    // [M, 5] int32
  at::Tensor coef;     // [M]
  at::Tensor lam;      // [N, R] (pointwise) or [R] (global)
  at::Tensor mu;       // [R]
  at::Tensor squared;  // [R]
  at::Tensor red;      // [R]
  at::Tensor c;        // out [N, R]: C
  at::Tensor loss_p;   // out [N]: each point's loss contribution
  at::Tensor ybar;     // out [P, m]: dL/dy, every row written
  at::Tensor jbar;     // out [P, m, d]: dL/dJ, every row written
  at::Tensor gcoef;    // out [N, M] when the coefficient gradient is asked for, else undefined
};

// The raw-pointer views of a step that the kernels take (shared by the CPU and CUDA glue).
template <typename T>
MonomialTable<T> monomial_table(const ResidualLossStep& st) {
  return MonomialTable<T>{st.table.data_ptr<int32_t>(),
                          st.coef.data_ptr<T>(),
                          st.table.size(0),
                          st.n_res,
                          st.cols.size(1),
                          st.y.size(1),
                          st.jac.size(2)};
}

template <typename T>
LossSpec<T> loss_spec(const ResidualLossStep& st) {
  return LossSpec<T>{st.lam.data_ptr<T>(), st.lam.dim() == 2 ? st.n_res : 0,
                     st.mu.data_ptr<T>(),  st.squared.data_ptr<T>(),
                     st.red.data_ptr<T>(), st.gcoef.defined() ? st.gcoef.data_ptr<T>() : nullptr};
}

// What the op returns: loss (a scalar), C [N, R], the loss's weight and bias gradients, and its
// coefficient gradient dL/dcoef [M] (empty [0] unless asked for with coef_grad).
using BlockLossResult = std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>,
                                   std::vector<at::Tensor>, at::Tensor>;

// The device-specific part of the op: the per-point residual + loss kernel. Everything else
// (checks, jet, loss = sum of loss_p, jet backward) is the device-independent glue.
struct LossDevice {
  void (*residual_loss)(const ResidualLossStep& step);
  // Optional (null where there is none): the whole op in one fused pass, given validated
  // arguments and a step whose block inputs are set (y, jac and the outputs are not). Returns
  // nullopt when it does not serve the call (switched off, or sizes it cannot take): the jet +
  // residual + jet backward path runs instead.
  std::optional<BlockLossResult> (*fused_block)(const MlpShape& s, const at::Tensor& x,
                                                const at::Tensor& shift, const at::Tensor& scale,
                                                at::TensorList weights, at::TensorList biases,
                                                const ResidualLossStep& step);
};

// dL/dcoef [M] of a step (the sum of its gcoef rows), or an empty [0] when it was not asked for.
at::Tensor coef_gradient(const ResidualLossStep& step);

const LossDevice& cpu_loss_device();
#if defined(FLUXKERN_WITH_CUDA)
const LossDevice& cuda_loss_device();
#endif

// The op body shared by every device's entry points (loss_glue.cpp): argument checks (the MLP,
// the block, every tensor on x's device of type `device_type`), the jet forward with `jet_dev`,
// the residual step of `loss_dev`, loss = sum of the per-point losses, the jet backward. The
// entry points add what is device-specific (device guard).
BlockLossResult block_loss_on(
    const JetDevice& jet_dev, const LossDevice& loss_dev, c10::DeviceType device_type,
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
    const at::Tensor& squared, const at::Tensor& red, int64_t n_res, bool paired, bool coef_grad);

// Op entry points (schema in csrc/registration.cpp).
BlockLossResult block_loss_cpu(const at::Tensor& x, const at::Tensor& shift,
                               const at::Tensor& scale, at::TensorList weights,
                               at::TensorList biases, c10::string_view activation,
                               const at::Tensor& cols, const at::Tensor& table,
                               const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
                               const at::Tensor& squared, const at::Tensor& red, int64_t n_res,
                               bool paired, bool coef_grad);

#if defined(FLUXKERN_WITH_CUDA)
BlockLossResult block_loss_cuda(const at::Tensor& x, const at::Tensor& shift,
                                const at::Tensor& scale, at::TensorList weights,
                                at::TensorList biases, c10::string_view activation,
                                const at::Tensor& cols, const at::Tensor& table,
                                const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
                                const at::Tensor& squared, const at::Tensor& red, int64_t n_res,
                                bool paired, bool coef_grad);
#endif

}  // namespace fluxkern
