// CPU glue of the jet: the fused elementwise kernels (csrc/kernels/jet_cpu.cpp) parallel over
// points, and the op entry points.
#include "kernels/jet_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "ops/jet.h"

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
  static const JetDevice dev{
      &activation_forward_cpu, &activation_backward_cpu, nullptr, &jet_tile_chosen, &jet_tile_fits,
      &jet_forward_tile_cpu,   &jet_backward_tile_cpu};
  return dev;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation) {
  return mlp_jet_on(cpu_jet_device(), c10::DeviceType::CPU, x, shift, scale, weights, biases,
                    activation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_cpu(const at::Tensor& grad_y, const at::Tensor& grad_J, const at::Tensor& x,
                     const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
                     at::TensorList biases, c10::string_view activation, const at::Tensor& saved) {
  return mlp_jet_backward_on(cpu_jet_device(), c10::DeviceType::CPU, grad_y, grad_J, x, shift,
                             scale, weights, biases, activation, saved);
}

}  // namespace fluxkern
