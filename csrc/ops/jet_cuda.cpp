// CUDA glue of the jet: the fused elementwise kernels (csrc/kernels/jet_cuda.cu) and, when
// enabled, the fused per-tile forward (csrc/kernels/jet_tile_cuda.cu) on the current stream, and
// the op entry points. The GEMMs are the device-independent ATen glue (jet_glue.cpp), which runs
// them through cuBLAS on the same stream.
#include "kernels/jet_cuda.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

#include "kernels/jet_tile_cuda.cuh"
#include "ops/jet.h"
#include "ops/settings.h"

namespace fluxkern {
namespace {

void activation_forward_cuda(const MlpShape& s, const at::Tensor& bias, at::Tensor& layer) {
  const int64_t w = layer.size(2);
  TORCH_CHECK(layer.is_contiguous() && layer.size(0) == 2 * s.d + 3 && layer.size(1) == s.n,
              "fluxkern.mlp_jet: internal error: layer buffer ", shape_str(layer),
              " is not a contiguous [2d + 3, N, W] buffer");
  const at::Tensor bias_c = bias.contiguous();  // [W]
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(layer.device().index());
  AT_DISPATCH_FLOATING_TYPES(layer.scalar_type(), "jet_activation_forward_cuda", [&] {
    C10_CUDA_CHECK(jet_activation_forward_cuda<scalar_t>(
        s.act, s.n, s.d, w, bias_c.data_ptr<scalar_t>(), layer.data_ptr<scalar_t>(), stream));
  });
}

void activation_backward_cuda(const MlpShape& s, const at::Tensor& layer, at::Tensor& grad) {
  const int64_t w = layer.size(2);
  TORCH_CHECK(grad.is_contiguous() && grad.numel() == (s.d + 1) * s.n * w,
              "fluxkern.mlp_jet_backward: internal error: gradient buffer ", shape_str(grad),
              " is not a contiguous [(1+d) N, W] buffer");
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(layer.device().index());
  AT_DISPATCH_FLOATING_TYPES(layer.scalar_type(), "jet_activation_backward_cuda", [&] {
    C10_CUDA_CHECK(jet_activation_backward_cuda<scalar_t>(s.n, s.d, w, layer.data_ptr<scalar_t>(),
                                                          grad.data_ptr<scalar_t>(), stream));
  });
}

// The forward as one tile kernel when set_cuda_kernel("tile") is on and the kernel serves the
// sizes; nullopt otherwise (the GEMM path runs).
std::optional<std::tuple<at::Tensor, at::Tensor>> fused_forward_cuda(
    const MlpShape& s, const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
    at::TensorList weights, at::TensorList biases, const at::Tensor& saved) {
  const int64_t hidden = static_cast<int64_t>(s.widths.size());
  if (cuda_jet_kernel() != CudaJetKernel::Tile ||
      !jet_tile_cuda_supports(s.d, s.m, s.widths.data(), hidden)) {
    return std::nullopt;
  }
  TORCH_CHECK(saved.is_contiguous() && saved.numel() == jet_saved_numel(s),
              "fluxkern.mlp_jet: internal error: saved buffer ", shape_str(saved),
              " is not a contiguous [", jet_saved_numel(s), "] buffer");
  const at::Tensor xc = x.contiguous(), shift_c = shift.contiguous(), scale_c = scale.contiguous();
  std::vector<at::Tensor> ws, bs;  // contiguous [W_l, W_{l-1}] and [W_l]
  for (size_t l = 0; l < weights.size(); ++l) {
    ws.push_back(weights[l].contiguous());
    bs.push_back(biases[l].contiguous());
  }
  at::Tensor y = at::empty({s.n, s.m}, x.options());         // [N, m]
  at::Tensor jac = at::empty({s.n, s.m, s.d}, x.options());  // [N, m, d]
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(x.device().index());
  bool ran = false;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "jet_forward_tile_cuda", [&] {
    std::vector<const scalar_t*> wp, bp;
    for (size_t l = 0; l < ws.size(); ++l) {
      wp.push_back(ws[l].data_ptr<scalar_t>());
      bp.push_back(bs[l].data_ptr<scalar_t>());
    }
    C10_CUDA_CHECK(jet_forward_tile_cuda<scalar_t>(
        s.act, s.n, s.d, s.m, hidden, s.widths.data(), xc.data_ptr<scalar_t>(),
        shift_c.data_ptr<scalar_t>(), scale_c.data_ptr<scalar_t>(), wp.data(), bp.data(),
        saved.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), jac.data_ptr<scalar_t>(), stream,
        &ran));
  });
  if (!ran) return std::nullopt;
  return std::make_tuple(y, jac);
}

}  // namespace

const JetDevice& cuda_jet_device() {
  static const JetDevice dev{&activation_forward_cuda,
                             &activation_backward_cuda,
                             &fused_forward_cuda,
                             nullptr,
                             nullptr,
                             nullptr,
                             nullptr};
  return dev;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mlp_jet_cuda(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation) {
  c10::cuda::OptionalCUDAGuard guard;  // x off CUDA: no guard; the checks name the devices
  if (x.is_cuda()) guard.set_device(x.device());
  return mlp_jet_on(cuda_jet_device(), c10::DeviceType::CUDA, x, shift, scale, weights, biases,
                    activation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>
mlp_jet_backward_cuda(const at::Tensor& grad_y, const at::Tensor& grad_J, const at::Tensor& x,
                      const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
                      at::TensorList biases, c10::string_view activation, const at::Tensor& saved) {
  c10::cuda::OptionalCUDAGuard guard;  // x off CUDA: no guard; the checks name the devices
  if (x.is_cuda()) guard.set_device(x.device());
  return mlp_jet_backward_on(cuda_jet_device(), c10::DeviceType::CUDA, grad_y, grad_J, x, shift,
                             scale, weights, biases, activation, saved);
}

}  // namespace fluxkern
