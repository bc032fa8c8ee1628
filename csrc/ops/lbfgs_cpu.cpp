// CPU glue of the L-BFGS direction op: argument checks, allocation, the two-loop kernel.
#include "kernels/lbfgs_cpu.h"

#include <ATen/Dispatch.h>

#include "ops/common.h"
#include "ops/lbfgs.h"

namespace fluxkern {

at::Tensor lbfgs_direction_cpu(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& y,
                               const at::Tensor& rho, at::Tensor& sy, at::Tensor& yy, int64_t start,
                               int64_t count, int64_t new_row, double h_diag) {
  constexpr const char* op = "fluxkern.lbfgs_direction";
  TORCH_CHECK_TYPE(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble, op,
                   ": grad must be float32 or float64, got ", grad.scalar_type());
  TORCH_CHECK_VALUE(grad.dim() == 1, op, ": grad must be 1-D [P], got ", shape_str(grad));
  const int64_t p = grad.size(0), h = s.dim() == 2 ? s.size(0) : -1;
  TORCH_CHECK_VALUE(s.dim() == 2 && s.size(1) == p, op, ": s must be [H, ", p, "], got ",
                    shape_str(s));
  TORCH_CHECK_VALUE(y.sizes() == s.sizes(), op, ": y must be like s ", shape_str(s), ", got ",
                    shape_str(y));
  TORCH_CHECK_VALUE(rho.dim() == 1 && rho.size(0) == h, op, ": rho must be [", h, "], got ",
                    shape_str(rho));
  TORCH_CHECK_TYPE(s.scalar_type() == grad.scalar_type() && y.scalar_type() == grad.scalar_type() &&
                       rho.scalar_type() == grad.scalar_type(),
                   op, ": s, y and rho must have the dtype of grad (", grad.scalar_type(), ")");
  TORCH_CHECK(
      s.device() == grad.device() && y.device() == grad.device() && rho.device() == grad.device(),
      op, ": s, y and rho must be on the device of grad (", grad.device(), ")");
  for (const at::Tensor* t : {&sy, &yy}) {
    TORCH_CHECK_VALUE(t->dim() == 2 && t->size(0) == h && t->size(1) == h && t->is_contiguous(), op,
                      ": sy and yy must be contiguous [", h, ", ", h, "], got ", shape_str(*t));
    TORCH_CHECK_TYPE(t->scalar_type() == grad.scalar_type(), op,
                     ": sy and yy must have the dtype of grad");
    TORCH_CHECK(t->device() == grad.device(), op, ": sy and yy must be on the device of grad");
  }
  TORCH_CHECK_VALUE(new_row >= -1 && new_row < h, op, ": new_row = ", new_row,
                    " must be -1 or in [0, ", h, ")");
  TORCH_CHECK_VALUE(count >= 0 && count <= h, op, ": count = ", count, " must be in [0, ", h, "]");
  TORCH_CHECK_VALUE(count == 0 || (start >= 0 && start < h), op, ": start = ", start,
                    " must be in [0, ", h, ")");
  const at::Tensor g = grad.contiguous(), sc = s.contiguous(), yc = y.contiguous();
  const at::Tensor rc = rho.contiguous();
  at::Tensor d = at::empty_like(g);                                         // [P]
  at::Tensor work = at::empty({4 * std::max<int64_t>(h, 1)}, g.options());  // [4 H]
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "lbfgs_direction_cpu", [&] {
    lbfgs_two_loop_cpu<scalar_t>(p, h, start, count, new_row, g.data_ptr<scalar_t>(),
                                 sc.data_ptr<scalar_t>(), yc.data_ptr<scalar_t>(),
                                 rc.data_ptr<scalar_t>(), static_cast<scalar_t>(h_diag),
                                 sy.data_ptr<scalar_t>(), yy.data_ptr<scalar_t>(),
                                 work.data_ptr<scalar_t>(), d.data_ptr<scalar_t>());
  });
  return d;
}

}  // namespace fluxkern
