// CPU glue of the fused block loss: the residual + loss kernel (csrc/kernels/residual_cpu.cpp)
// parallel over points, and the op entry point. The rest is the device-independent glue
// (loss_glue.cpp).
#include <ATen/Parallel.h>

#include "kernels/residual_cpu.h"
#include "ops/jet.h"
#include "ops/loss.h"

namespace fluxkern {
namespace {

void residual_loss_step_cpu(const ResidualLossStep& st) {
  AT_DISPATCH_FLOATING_TYPES(st.y.scalar_type(), "residual_loss_cpu", [&] {
    const MonomialTable<scalar_t> t = monomial_table<scalar_t>(st);
    const LossSpec<scalar_t> spec = loss_spec<scalar_t>(st);
    const scalar_t* yp = st.y.data_ptr<scalar_t>();
    const scalar_t* jp = st.jac.data_ptr<scalar_t>();
    const scalar_t* cp = st.cols.data_ptr<scalar_t>();
    scalar_t* c = st.c.data_ptr<scalar_t>();
    scalar_t* loss_p = st.loss_p.data_ptr<scalar_t>();
    scalar_t* ybar = st.ybar.data_ptr<scalar_t>();
    scalar_t* jbar = st.jbar.data_ptr<scalar_t>();
    at::parallel_for(0, st.n, 256, [&](int64_t n0, int64_t n1) {
      residual_loss_cpu<scalar_t>(t, spec, st.n, st.paired, n0, n1, yp, jp, cp, c, loss_p, ybar,
                                  jbar);
    });
  });
}

}  // namespace

const LossDevice& cpu_loss_device() {
  static const LossDevice dev{&residual_loss_step_cpu};
  return dev;
}

std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> block_loss_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, const at::Tensor& lam, const at::Tensor& mu,
    const at::Tensor& squared, const at::Tensor& red, int64_t n_res, bool paired) {
  return block_loss_on(cpu_jet_device(), cpu_loss_device(), c10::DeviceType::CPU, x, shift, scale,
                       weights, biases, activation, cols, table, coef, lam, mu, squared, red, n_res,
                       paired);
}

}  // namespace fluxkern
