// The jet op: MLP values y [N, m] and input Jacobian J [N, m, d] in one forward-mode pass.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>
#include <vector>

#include "ops/common.h"

namespace fluxkern {

// Gradients of a scalar l(y, J) with respect to every input of the jet.
struct JetGrads {
  at::Tensor x;                     // [N, d]
  at::Tensor shift;                 // [d]
  at::Tensor scale;                 // [d]
  std::vector<at::Tensor> weights;  // like weights
  std::vector<at::Tensor> biases;   // like biases
};

// The device-specific fused elementwise steps of the jet (layer buffer layout in
// kernels/jet_cpu.h). Everything else (GEMMs, reductions) is device-independent ATen.
struct JetDevice {
  // Adds `bias` [W] to z and applies the activation to one layer buffer [2d + 3, N, W].
  void (*activation_forward)(const MlpShape& s, const at::Tensor& bias, at::Tensor& layer);
  // (hbar, Tbar) -> (zbar, Ztbar) in place in `grad` [(1+d) N, W].
  void (*activation_backward)(const MlpShape& s, const at::Tensor& layer, at::Tensor& grad);
  // Optional (null on CPU): the whole forward as one fused kernel. Writes every layer buffer of
  // `saved` as the GEMM path does and returns (y [N, m], J [N, m, d]), or nullopt when it does
  // not serve the call (not enabled, or sizes it cannot take): the GEMM path runs instead.
  std::optional<std::tuple<at::Tensor, at::Tensor>> (*fused_forward)(
      const MlpShape& s, const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
      at::TensorList weights, at::TensorList biases, const at::Tensor& saved);
};

const JetDevice& cpu_jet_device();
#if defined(FLUXKERN_WITH_CUDA)
const JetDevice& cuda_jet_device();
#endif

// Forward on validated arguments. Writes the per-layer buffers (kernels/jet_cpu.h) into
// `saved` [jet_saved_numel(shape)] and returns (y [N, m], J [N, m, d]).
std::tuple<at::Tensor, at::Tensor> jet_forward(const JetDevice& dev, const MlpShape& shape,
                                               const at::Tensor& x, const at::Tensor& shift,
                                               const at::Tensor& scale, at::TensorList weights,
                                               at::TensorList biases, const at::Tensor& saved);

// Reverse pass on validated arguments, given dl/dy [N, m] and dl/dJ [N, m, d].
JetGrads jet_backward(const JetDevice& dev, const MlpShape& shape, const at::Tensor& grad_y,
                      const at::Tensor& grad_J, const at::Tensor& x, const at::Tensor& shift,
                      const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
                      const at::Tensor& saved);

// The op bodies shared by every device's entry points: argument checks (check_mlp plus x on a
// `device_type` device), allocation, then jet_forward / jet_backward with `dev`. The entry points
// add what is device-specific (device guard).
std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_on(
    const JetDevice& dev, c10::DeviceType device_type, const at::Tensor& x, const at::Tensor& shift,
    const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
    c10::string_view activation);

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_on(const JetDevice& dev, c10::DeviceType device_type, const at::Tensor& grad_y,
                    const at::Tensor& grad_J, const at::Tensor& x, const at::Tensor& shift,
                    const at::Tensor& scale, at::TensorList weights, at::TensorList biases,
                    c10::string_view activation, const at::Tensor& saved);

// Op entry points (schemas in csrc/registration.cpp).
std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation);

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_cpu(const at::Tensor& grad_y, const at::Tensor& grad_J, const at::Tensor& x,
                     const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
                     at::TensorList biases, c10::string_view activation, const at::Tensor& saved);

#if defined(FLUXKERN_WITH_CUDA)
std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_cuda(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation);

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_cuda(const at::Tensor& grad_y, const at::Tensor& grad_J, const at::Tensor& x,
                      const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
                      at::TensorList biases, c10::string_view activation, const at::Tensor& saved);
#endif

}  // namespace fluxkern
