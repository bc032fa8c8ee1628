// The residual Jacobian op (issue 13): for the points of a fused group, the raw residuals r [N, R]
// and their Jacobian dr/dtheta [N, R, n_params] with respect to every weight and bias (theta:
// weights[0], biases[0], weights[1], ..., each row-major). Not differentiable.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace fluxkern {

// Op entry point (schema in csrc/registration.cpp).
std::tuple<at::Tensor, at::Tensor> residual_jacobian_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired);

}  // namespace fluxkern
