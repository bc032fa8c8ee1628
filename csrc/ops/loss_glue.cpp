// Device-independent glue of the fused block loss: argument checks, the jet forward, the device's
// residual + loss step (LossDevice), loss = sum of the per-point losses, the jet backward.
#include <utility>

#include "kernels/residual.h"  // kMaxResiduals, kMonoCols
#include "ops/common.h"
#include "ops/jet.h"
#include "ops/loss.h"
#include "ops/workspace.h"

namespace fluxkern {
namespace {

constexpr const char* kOp = "fluxkern.block_loss";

// Checks the block's tensors against the sizes, the dtype and the device of x, and the table's
// entries (on a copy on the host: a small device-to-host copy, and a wait for the work queued
// before this op, when the table is on a GPU). Returns the number of points (pairs when paired).
int64_t check_block(const MlpShape& s, const at::Tensor& x, const at::Tensor& cols,
                    const at::Tensor& table, const at::Tensor& coef, const at::Tensor& lam,
                    const at::Tensor& mu, const at::Tensor& squared, const at::Tensor& red,
                    int64_t n_res, bool paired) {
  TORCH_CHECK_VALUE(n_res >= 1 && n_res <= kMaxResiduals, kOp, ": n_res = ", n_res,
                    " residual expressions; supported: 1..", kMaxResiduals);
  TORCH_CHECK_VALUE(!paired || s.n % 2 == 0, kOp, ": a paired block needs x = cat(a, b) with an ",
                    "even number of rows, got ", s.n);
  const int64_t n = paired ? s.n / 2 : s.n;
  check_program(kOp, s, x, cols, table, coef, n_res);  // cols, table (every entry), coef
  const std::pair<const at::Tensor*, const char*> named[] = {
      {&lam, "lam"}, {&mu, "mu"}, {&squared, "squared"}, {&red, "red"}};
  for (const auto& [t, name] : named) {
    TORCH_CHECK(t->device() == x.device(), kOp, ": ", name, " is on ", t->device(), " but x is on ",
                x.device(), "; all must be on one device");
  }
  const bool pointwise = lam.dim() == 2;
  TORCH_CHECK_VALUE((pointwise && lam.size(0) == n && lam.size(1) == n_res) ||
                        (lam.dim() == 1 && lam.size(0) == n_res),
                    kOp, ": lam must be [", n, ", ", n_res, "] (pointwise) or [", n_res,
                    "] (global), got ", shape_str(lam));
  TORCH_CHECK_VALUE(mu.dim() == 1 && mu.size(0) == n_res, kOp, ": mu must be [", n_res, "], got ",
                    shape_str(mu));
  TORCH_CHECK_VALUE(squared.dim() == 1 && squared.size(0) == n_res, kOp, ": squared must be [",
                    n_res, "], got ", shape_str(squared));
  TORCH_CHECK_VALUE(red.dim() == 1 && red.size(0) == n_res, kOp, ": red must be [", n_res,
                    "], got ", shape_str(red));
  TORCH_CHECK_TYPE(lam.scalar_type() == x.scalar_type() && mu.scalar_type() == x.scalar_type() &&
                       squared.scalar_type() == x.scalar_type() &&
                       red.scalar_type() == x.scalar_type(),
                   kOp, ": lam, mu, squared and red must have the dtype of x");
  return n;
}

}  // namespace

at::Tensor coef_gradient(const ResidualLossStep& step) {
  if (!step.gcoef.defined()) return at::empty({0}, step.coef.options());  // [0]: not asked for
  return step.gcoef.sum(0);  // [M], fixed-order reduction
}

BlockLossResult block_loss_on(
    const JetDevice& jet_dev, const LossDevice& loss_dev, c10::DeviceType device_type,
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
    const at::Tensor& squared, const at::Tensor& red, int64_t n_res, bool paired, bool coef_grad) {
  const MlpShape s = check_mlp(kOp, x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK(x.device().type() == device_type, kOp, ": the ", c10::DeviceTypeName(device_type),
              " kernel was called with x on ", x.device());
  const int64_t n = check_block(s, x, cols, table, coef, lam, mu, squared, red, n_res, paired);

  ResidualLossStep step;
  step.n = n;
  step.n_res = n_res;
  step.paired = paired;
  step.cols = cols.contiguous();
  step.table = table.contiguous();
  step.coef = coef.contiguous();
  step.lam = lam.contiguous();
  step.mu = mu.contiguous();
  step.squared = squared.contiguous();
  step.red = red.contiguous();
  if (coef_grad) step.gcoef = at::empty({n, table.size(0)}, x.options());  // [N, M]
  if (loss_dev.fused_block != nullptr) {
    auto fused = loss_dev.fused_block(s, x, shift, scale, weights, biases, step);
    if (fused) return *std::move(fused);
  }

  at::Tensor saved = pooled_empty(jet_saved_numel(s), x.options());
  auto [y, jac] = jet_forward(jet_dev, s, x, shift, scale, weights, biases, saved);
  step.y = y.contiguous();
  step.jac = jac.contiguous();
  step.c = at::empty({n, n_res}, x.options());          // [N, R]
  step.loss_p = at::empty({n}, x.options());            // [N]
  step.ybar = at::empty({s.n, s.m}, x.options());       // [P, m]
  step.jbar = at::empty({s.n, s.m, s.d}, x.options());  // [P, m, d]
  loss_dev.residual_loss(step);

  at::Tensor loss = step.loss_p.sum();  // fixed-order reduction: deterministic on every device
  JetGrads g =
      jet_backward(jet_dev, s, step.ybar, step.jbar, x, shift, scale, weights, biases, saved);
  return {loss, step.c, g.weights, g.biases, coef_gradient(step)};
}

}  // namespace fluxkern
