// CPU glue of the residual Jacobian: argument checks, allocation, the per-point kernel
// (csrc/kernels/jacobian_cpu.h) parallel over points, each thread with its own scratch.
#include "kernels/jacobian_cpu.h"

#include <ATen/Parallel.h>

#include <utility>
#include <vector>

#include "kernels/residual.h"  // kMonoCols
#include "ops/common.h"
#include "ops/jacobian.h"

namespace fluxkern {
namespace {

constexpr const char* kOp = "fluxkern.residual_jacobian";

// Checks the group's tensors against x (device, dtype, sizes) and the table's entries. Returns
// the number of points (pairs when paired).
int64_t check_program(const MlpShape& s, const at::Tensor& x, const at::Tensor& cols,
                      const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired) {
  TORCH_CHECK(x.device().type() == c10::DeviceType::CPU, kOp, ": the CPU kernel was called with ",
              "x on ", x.device());
  TORCH_CHECK_VALUE(n_res >= 1, kOp, ": n_res must be at least 1, got ", n_res);
  TORCH_CHECK_VALUE(!paired || s.n % 2 == 0, kOp, ": a paired group needs x = cat(a, b) with an ",
                    "even number of rows, got ", s.n);
  const std::pair<const at::Tensor*, const char*> named[] = {
      {&cols, "cols"}, {&table, "table"}, {&coef, "coef"}};
  for (const auto& [t, name] : named) {
    TORCH_CHECK(t->device() == x.device(), kOp, ": ", name, " is on ", t->device(), " but x is on ",
                x.device(), "; all must be on one device");
  }
  TORCH_CHECK_VALUE(cols.dim() == 2 && cols.size(0) == s.n, kOp, ": cols must be [", s.n,
                    ", K] (one row per row of x), got ", shape_str(cols));
  TORCH_CHECK_TYPE(table.scalar_type() == at::kInt, kOp, ": table must be int32, got ",
                   table.scalar_type());
  TORCH_CHECK_VALUE(table.dim() == 2 && table.size(1) == kMonoCols, kOp, ": table must be [M, ",
                    kMonoCols, "], got ", shape_str(table));
  TORCH_CHECK_VALUE(coef.dim() == 1 && coef.size(0) == table.size(0), kOp, ": coef must be [",
                    table.size(0), "] (one per table row), got ", shape_str(coef));
  TORCH_CHECK_TYPE(cols.scalar_type() == x.scalar_type() && coef.scalar_type() == x.scalar_type(),
                   kOp, ": cols and coef must have the dtype of x (", x.scalar_type(), "), got ",
                   cols.scalar_type(), " and ", coef.scalar_type());
  const at::Tensor tab = table.contiguous();  // [M, 5]
  const int32_t* ix = tab.data_ptr<int32_t>();
  const int64_t n_fields = s.m + s.m * s.d;
  for (int64_t k = 0; k < tab.size(0); ++k) {
    const int32_t* row = ix + k * kMonoCols;
    TORCH_CHECK_VALUE(row[0] >= 0 && row[0] < n_res, kOp, ": table row ", k, " names residual ",
                      row[0], " of n_res = ", n_res);
    TORCH_CHECK_VALUE(row[1] >= -1 && row[1] < cols.size(1), kOp, ": table row ", k,
                      " names coefficient column ", row[1], " of ", cols.size(1), " in cols");
    for (int q = 2; q < kMonoCols; ++q) {
      TORCH_CHECK_VALUE(row[q] >= -1 && row[q] < n_fields, kOp, ": table row ", k, " names field ",
                        row[q], " of ", n_fields, " (m + m d)");
    }
  }
  return paired ? s.n / 2 : s.n;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> residual_jacobian_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired) {
  const MlpShape s = check_mlp(kOp, x, shift, scale, weights, biases, std::string(activation));
  const int64_t n = check_program(s, x, cols, table, coef, n_res, paired);
  int64_t n_params = 0;
  for (size_t l = 0; l < weights.size(); ++l) n_params += weights[l].numel() + biases[l].numel();
  const at::TensorOptions opts = x.options();
  at::Tensor r = at::empty({n, n_res}, opts);              // [N, R]
  at::Tensor jac = at::empty({n, n_res, n_params}, opts);  // [N, R, n_params]
  if (n == 0) return {r, jac};
  const at::Tensor xc = x.contiguous();                                         // [P, d]
  const at::Tensor cols_c = cols.contiguous();                                  // [P, K]
  const at::Tensor table_c = table.contiguous();                                // [M, 5]
  const at::Tensor coef_c = coef.contiguous();                                  // [M]
  const at::Tensor shift_c = shift.contiguous(), scale_c = scale.contiguous();  // [d]
  const int64_t hidden = static_cast<int64_t>(s.widths.size());
  const int64_t scratch_size = residual_jacobian_scratch(s.d, s.m, hidden, s.widths.data(), n_res);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "residual_jacobian_cpu", [&] {
    using T = scalar_t;
    std::vector<at::Tensor> wc, bc;  // contiguous parameters
    std::vector<const T*> wp, bp;
    for (size_t l = 0; l < weights.size(); ++l) {
      wc.push_back(weights[l].contiguous());
      bc.push_back(biases[l].contiguous());
      wp.push_back(wc.back().data_ptr<T>());
      bp.push_back(bc.back().data_ptr<T>());
    }
    JacobianNet<T> net{s.d,
                       s.m,
                       hidden,
                       s.widths.data(),
                       wp.data(),
                       bp.data(),
                       shift_c.data_ptr<T>(),
                       scale_c.data_ptr<T>(),
                       s.act};
    JacobianBlock<T> blk{xc.data_ptr<T>(),
                         cols_c.data_ptr<T>(),
                         MonomialTable<T>{table_c.data_ptr<int32_t>(), coef_c.data_ptr<T>(),
                                          table_c.size(0), n_res, cols_c.size(1), s.m, s.d},
                         n,
                         paired,
                         n_params,
                         r.data_ptr<T>(),
                         jac.data_ptr<T>()};
    at::parallel_for(0, n, 16, [&](int64_t n0, int64_t n1) {
      std::vector<T> scratch(static_cast<size_t>(scratch_size));
      residual_jacobian_cpu<T>(net, blk, n0, n1, scratch.data());
    });
  });
  return {r, jac};
}

}  // namespace fluxkern
