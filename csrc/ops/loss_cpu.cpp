// CPU glue of the fused block loss: argument checks, the jet forward, the residual + loss kernel
// parallel over points, the jet backward.
#include <ATen/Parallel.h>

#include "kernels/residual_cpu.h"
#include "ops/common.h"
#include "ops/jet.h"
#include "ops/loss.h"
#include "ops/workspace.h"

namespace fluxkern {
namespace {

constexpr const char* kOp = "fluxkern.block_loss";

// Checks the table against the sizes; returns the number of points (pairs when paired).
int64_t check_block(const MlpShape& s, const at::Tensor& cols, const at::Tensor& table,
                    const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
                    const at::Tensor& squared, const at::Tensor& red, int64_t n_res, bool paired) {
  TORCH_CHECK_VALUE(n_res >= 1 && n_res <= kMaxResiduals, kOp, ": n_res = ", n_res,
                    " residual expressions; supported: 1..", kMaxResiduals);
  TORCH_CHECK_VALUE(!paired || s.n % 2 == 0, kOp, ": a paired block needs x = cat(a, b) with an ",
                    "even number of rows, got ", s.n);
  const int64_t n = paired ? s.n / 2 : s.n;
  TORCH_CHECK_VALUE(cols.dim() == 2 && cols.size(0) == s.n, kOp, ": cols must be [", s.n,
                    ", K] (one row per row of x), got ", shape_str(cols));
  TORCH_CHECK_TYPE(table.scalar_type() == at::kInt, kOp, ": table must be int32, got ",
                   table.scalar_type());
  TORCH_CHECK_VALUE(table.dim() == 2 && table.size(1) == kMonoCols, kOp, ": table must be [M, ",
                    kMonoCols, "], got ", shape_str(table));
  TORCH_CHECK_VALUE(coef.dim() == 1 && coef.size(0) == table.size(0), kOp, ": coef must be [",
                    table.size(0), "] (one per table row), got ", shape_str(coef));
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
  TORCH_CHECK_TYPE(
      cols.scalar_type() == coef.scalar_type() && cols.scalar_type() == lam.scalar_type() &&
          cols.scalar_type() == mu.scalar_type() && cols.scalar_type() == squared.scalar_type() &&
          cols.scalar_type() == red.scalar_type(),
      kOp, ": cols, coef, lam, mu, squared and red must have the dtype of x");
  // Table entries index residuals, columns and fields: check them once here.
  const at::Tensor tab = table.cpu();
  const int32_t* ix = tab.data_ptr<int32_t>();
  const int64_t n_fields = s.m + s.m * s.d;
  for (int64_t k = 0; k < table.size(0); ++k) {
    const int32_t* row = ix + k * kMonoCols;
    TORCH_CHECK_VALUE(row[0] >= 0 && row[0] < n_res, kOp, ": table row ", k, " names residual ",
                      row[0], " of ", n_res);
    TORCH_CHECK_VALUE(row[1] >= -1 && row[1] < cols.size(1), kOp, ": table row ", k,
                      " names coefficient column ", row[1], " of ", cols.size(1));
    for (int q = 2; q < kMonoCols; ++q) {
      TORCH_CHECK_VALUE(row[q] >= -1 && row[q] < n_fields, kOp, ": table row ", k, " names field ",
                        row[q], " of ", n_fields, " (m + m d)");
    }
  }
  return n;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> block_loss_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
    const at::Tensor& squared, const at::Tensor& red, int64_t n_res, bool paired) {
  const MlpShape s = check_mlp(kOp, x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK(x.device().is_cpu(), kOp, ": CPU kernel called with x on ", x.device());
  const int64_t n = check_block(s, cols, table, coef, lam, mu, squared, red, n_res, paired);

  at::Tensor saved = pooled_empty(jet_saved_numel(s), x.options());
  auto [y, jac] = jet_forward(cpu_jet_device(), s, x, shift, scale, weights, biases, saved);

  const at::Tensor cols_c = cols.contiguous(), table_c = table.contiguous();
  const at::Tensor coef_c = coef.contiguous(), lam_c = lam.contiguous(), mu_c = mu.contiguous();
  const at::Tensor sq_c = squared.contiguous(), red_c = red.contiguous();
  at::Tensor c = at::empty({n, n_res}, x.options());          // [N, R]
  at::Tensor loss_p = at::empty({n}, x.options());            // [N]
  at::Tensor ybar = at::empty({s.n, s.m}, x.options());       // [P, m]
  at::Tensor jbar = at::empty({s.n, s.m, s.d}, x.options());  // [P, m, d]
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "residual_loss_cpu", [&] {
    MonomialTable<scalar_t> t{table_c.data_ptr<int32_t>(),
                              coef_c.data_ptr<scalar_t>(),
                              table_c.size(0),
                              n_res,
                              cols_c.size(1),
                              s.m,
                              s.d};
    LossSpec<scalar_t> spec{lam_c.data_ptr<scalar_t>(), lam_c.dim() == 2 ? n_res : 0,
                            mu_c.data_ptr<scalar_t>(), sq_c.data_ptr<scalar_t>(),
                            red_c.data_ptr<scalar_t>()};
    const scalar_t* yp = y.data_ptr<scalar_t>();
    const scalar_t* jp = jac.data_ptr<scalar_t>();
    const scalar_t* cp = cols_c.data_ptr<scalar_t>();
    at::parallel_for(0, n, 256, [&](int64_t n0, int64_t n1) {
      residual_loss_cpu<scalar_t>(t, spec, n, paired, n0, n1, yp, jp, cp, c.data_ptr<scalar_t>(),
                                  loss_p.data_ptr<scalar_t>(), ybar.data_ptr<scalar_t>(),
                                  jbar.data_ptr<scalar_t>());
    });
  });
  at::Tensor loss = loss_p.sum();
  JetGrads g =
      jet_backward(cpu_jet_device(), s, ybar, jbar, x, shift, scale, weights, biases, saved);
  return {loss, c, g.weights, g.biases};
}

}  // namespace fluxkern
