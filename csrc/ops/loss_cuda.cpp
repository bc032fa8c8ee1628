// CUDA glue of the fused block loss: the residual + loss kernel (csrc/kernels/residual_cuda.cu) on
// the current stream, and the op entry point. The rest is the device-independent glue
// (loss_glue.cpp), whose jet runs its GEMMs through cuBLAS on the same stream.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/residual_cuda.cuh"
#include "ops/jet.h"
#include "ops/loss.h"

namespace fluxkern {
namespace {

void residual_loss_step_cuda(const ResidualLossStep& st) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(st.y.device().index());
  AT_DISPATCH_FLOATING_TYPES(st.y.scalar_type(), "residual_loss_cuda", [&] {
    const MonomialTable<scalar_t> t = monomial_table<scalar_t>(st);
    const LossSpec<scalar_t> spec = loss_spec<scalar_t>(st);
    C10_CUDA_CHECK(residual_loss_cuda<scalar_t>(
        t, spec, st.n, st.paired, st.y.data_ptr<scalar_t>(), st.jac.data_ptr<scalar_t>(),
        st.cols.data_ptr<scalar_t>(), st.c.data_ptr<scalar_t>(), st.loss_p.data_ptr<scalar_t>(),
        st.ybar.data_ptr<scalar_t>(), st.jbar.data_ptr<scalar_t>(), stream));
  });
}

}  // namespace

const LossDevice& cuda_loss_device() {
  static const LossDevice dev{&residual_loss_step_cuda, nullptr};
  return dev;
}

BlockLossResult block_loss_cuda(const at::Tensor& x, const at::Tensor& shift,
                                const at::Tensor& scale, at::TensorList weights,
                                at::TensorList biases, c10::string_view activation,
                                const at::Tensor& cols, const at::Tensor& table,
                                const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
                                const at::Tensor& squared, const at::Tensor& red, int64_t n_res,
                                bool paired, bool coef_grad) {
  c10::cuda::OptionalCUDAGuard guard;  // x off CUDA: no guard; the checks name the devices
  if (x.is_cuda()) guard.set_device(x.device());
  return block_loss_on(cuda_jet_device(), cuda_loss_device(), c10::DeviceType::CUDA, x, shift,
                       scale, weights, biases, activation, cols, table, coef, lam, mu, squared, red,
                       n_res, paired, coef_grad);
}

}  // namespace fluxkern
