// CPU loop of the residual Jacobian over points (per-point math: kernels/jacobian.h, shared with
// the CUDA kernel). Raw pointers, no torch headers.
#pragma once

#include <cstdint>

#include "kernels/jacobian.h"

namespace fluxkern {

// Points (pairs) [n0, n1) of the block: their rows of r and jac, written whole, one point after
// another through one scratch [plan.scratch] (a few KB: it stays in cache).
template <typename T>
void residual_jacobian_cpu(const JacobianNet<T>& net, const JacobianBlock<T>& block,
                           const JacobianPlan& plan, int64_t n0, int64_t n1, T* scratch);

}  // namespace fluxkern
