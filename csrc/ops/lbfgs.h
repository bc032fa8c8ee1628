// The L-BFGS direction op: d = -H g by the two-loop recursion over a ring of curvature pairs.
#pragma once

#include <ATen/ATen.h>

namespace fluxkern {

// grad [P]; s, y [H, P] (pair i of `count`, oldest first, in row (start + i) % H); rho [H].
at::Tensor lbfgs_direction_cpu(const at::Tensor& grad, const at::Tensor& s, const at::Tensor& y,
                               const at::Tensor& rho, int64_t start, int64_t count, double h_diag);

}  // namespace fluxkern
