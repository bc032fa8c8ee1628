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
  // Optional (null on CUDA): the jet that saves nothing and whose backward recomputes the forward
  // (CPU: the per-tile kernels, kernels/jet_tile_cpu.h). `recompute_chosen`: the forward takes
  // this path for the shape (settings and sizes); `recompute_fits`: the kernels can serve the
  // shape (the backward of a forward that took this path).
  bool (*recompute_chosen)(const MlpShape& s);
  bool (*recompute_fits)(const MlpShape& s);
  std::tuple<at::Tensor, at::Tensor> (*recompute_forward)(const MlpShape& s, const at::Tensor& x,
                                                          const at::Tensor& shift,
                                                          const at::Tensor& scale,
                                                          at::TensorList weights,
                                                          at::TensorList biases);
  JetGrads (*recompute_backward)(const MlpShape& s, const at::Tensor& grad_y,
                                 const at::Tensor& grad_J, const at::Tensor& x,
                                 const at::Tensor& shift, const at::Tensor& scale,
                                 at::TensorList weights, at::TensorList biases);
};

const JetDevice& cpu_jet_device();
#if defined(FLUXKERN_WITH_CUDA)
const JetDevice& cuda_jet_device();
#endif

// The per-tile CPU jet (ops/jet_tile_cpu.cpp): whether its kernels serve the shape (hidden
// widths <= 128, <= 16 hidden layers), whether the forward takes it (also the CPU kernel setting
// is "tile"), the forward (y [N, m], J [N, m, d]; saves nothing) and the backward (recomputes the
// forward per tile).
bool jet_tile_fits(const MlpShape& s);
bool jet_tile_chosen(const MlpShape& s);
std::tuple<at::Tensor, at::Tensor> jet_forward_tile_cpu(const MlpShape& s, const at::Tensor& x,
                                                        const at::Tensor& shift,
                                                        const at::Tensor& scale,
                                                        at::TensorList weights,
                                                        at::TensorList biases);
JetGrads jet_backward_tile_cpu(const MlpShape& s, const at::Tensor& grad_y,
                               const at::Tensor& grad_J, const at::Tensor& x,
                               const at::Tensor& shift, const at::Tensor& scale,
                               at::TensorList weights, at::TensorList biases);

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
