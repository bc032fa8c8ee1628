// CUDA glue of the jet: the fused elementwise kernels (csrc/kernels/jet_cuda.cu) on the current
// stream, and the op entry points. The GEMMs are the device-independent ATen glue (jet_glue.cpp),
// which runs them through cuBLAS on the same stream.
#include "kernels/jet_cuda.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "ops/jet.h"

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

}  // namespace

const JetDevice& cuda_jet_device() {
  static const JetDevice dev{&activation_forward_cuda, &activation_backward_cuda};
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
