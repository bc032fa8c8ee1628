// The fused per-block residual + augmented-Lagrangian loss op (DESIGN.md section 4): one call
// computes the jet, the residuals from the compiled monomial table, C, the block's loss and the
// gradient of that loss with respect to every weight and bias.
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

namespace fluxkern {

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> block_loss_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
    const at::Tensor& squared, const at::Tensor& red, int64_t n_res, bool paired);

}  // namespace fluxkern
