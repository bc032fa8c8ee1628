// The L-BFGS direction op: d = -H g by the two-loop recursion over a ring of curvature pairs
// (kernels/lbfgs_cpu.h), keeping the Gram matrices sy and yy of the pairs up to date.
#pragma once

#include <ATen/ATen.h>

namespace fluxkern {

// grad [P]; s, y [H, P] (pair i of `count`, oldest first, in row (start + i) % H); rho [H];
// sy, yy [H, H] (updated in place for new_row, the row of a pair stored since the last call, or
// -1).
at::Tensor lbfgs_direction_cpu(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& y,
                               const at::Tensor& rho, at::Tensor& sy, at::Tensor& yy, int64_t start,
                               int64_t count, int64_t new_row, double h_diag);

}  // namespace fluxkern
