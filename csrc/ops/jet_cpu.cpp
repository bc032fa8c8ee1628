// CPU glue of the jet: the fused elementwise kernels (csrc/kernels/jet_cpu.cpp) parallel over
// points, and the op entry points.
#include "kernels/jet_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "ops/jet.h"
#include "ops/workspace.h"

namespace fluxkern {
namespace {

// Points per parallel chunk: enough elementwise work per task to amortise scheduling.
int64_t grain_for(int64_t width) {
  return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, width));
}

void activation_forward_cpu(const MlpShape& s, const at::Tensor& bias, at::Tensor& layer) {
  const int64_t n = s.n, d = s.d, w = layer.size(2);
  const bool sin_act = s.act == Activation::Sin;
  if (sin_act) {  // sin and cos through ATen's vectorised routines, then the fused loop
    at::Tensor z = layer[0], h = layer[d + 1], p2 = layer[2 * d + 2];  // [N, W] each
    z.add_(bias);
    at::sin_out(h, z);
    at::cos_out(p2, z);
  }
  const at::Tensor bias_c = bias.contiguous();  // [W]
  AT_DISPATCH_FLOATING_TYPES(layer.scalar_type(), "jet_activation_forward_cpu", [&] {
    scalar_t* ptr = layer.data_ptr<scalar_t>();
    const scalar_t* b = sin_act ? nullptr : bias_c.data_ptr<scalar_t>();
    at::parallel_for(0, n, grain_for(w), [&](int64_t n0, int64_t n1) {
      jet_activation_forward_cpu<scalar_t>(s.act, n, d, w, n0, n1, b, ptr);
    });
  });
}

void activation_backward_cpu(const MlpShape& s, const at::Tensor& layer, at::Tensor& grad) {
  const int64_t n = s.n, d = s.d, w = layer.size(2);
  AT_DISPATCH_FLOATING_TYPES(layer.scalar_type(), "jet_activation_backward_cpu", [&] {
    const scalar_t* lp = layer.data_ptr<scalar_t>();
    scalar_t* gp = grad.data_ptr<scalar_t>();
    at::parallel_for(0, n, grain_for(w), [&](int64_t n0, int64_t n1) {
      jet_activation_backward_cpu<scalar_t>(n, d, w, n0, n1, lp, gp);
    });
  });
}

}  // namespace

const JetDevice& cpu_jet_device() {
  static const JetDevice dev{&activation_forward_cpu, &activation_backward_cpu};
  return dev;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation) {
  const MlpShape s =
      check_mlp("fluxkern.mlp_jet", x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK(x.device().is_cpu(), "fluxkern.mlp_jet: CPU kernel called with x on ", x.device());
  at::Tensor saved = pooled_empty(jet_saved_numel(s), x.options());
  auto [y, jac] = jet_forward(cpu_jet_device(), s, x, shift, scale, weights, biases, saved);
  return {y, jac, saved};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_cpu(const at::Tensor& grad_y, const at::Tensor& grad_J, const at::Tensor& x,
                     const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
                     at::TensorList biases, c10::string_view activation, const at::Tensor& saved) {
  const char* op = "fluxkern.mlp_jet_backward";
  const MlpShape s = check_mlp(op, x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK_VALUE(grad_y.sizes() == at::IntArrayRef({s.n, s.m}), op, ": grad_y must be [", s.n,
                    ", ", s.m, "], got ", shape_str(grad_y));
  TORCH_CHECK_VALUE(grad_J.sizes() == at::IntArrayRef({s.n, s.m, s.d}), op, ": grad_J must be [",
                    s.n, ", ", s.m, ", ", s.d, "], got ", shape_str(grad_J));
  TORCH_CHECK_VALUE(saved.dim() == 1 && saved.numel() == jet_saved_numel(s), op,
                    ": saved must be the buffer returned by mlp_jet for these arguments ([",
                    jet_saved_numel(s), "]), got ", shape_str(saved));
  TORCH_CHECK_TYPE(
      grad_y.scalar_type() == x.scalar_type() && grad_J.scalar_type() == x.scalar_type(), op,
      ": grad_y and grad_J must have the dtype of x");
  JetGrads g = jet_backward(cpu_jet_device(), s, grad_y, grad_J, x, shift, scale, weights, biases,
                            saved.contiguous());
  return {g.x, g.shift, g.scale, g.weights, g.biases};
}

}  // namespace fluxkern
