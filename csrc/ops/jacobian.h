// The residual Jacobian op (issue 13): for the points of a fused group, the raw residuals r [N, R]
// and their Jacobian dr/dtheta [N, R, n_params] with respect to every weight and bias (theta:
// weights[0], biases[0], weights[1], ..., each row-major). Not differentiable.
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

#include "kernels/jacobian.h"
#include "ops/common.h"

namespace fluxkern {

// Validated, contiguous arguments of one call and its allocated outputs (jacobian_glue.cpp).
struct JacobianCall {
  MlpShape s;
  int64_t n = 0;         // points (pairs when paired)
  int64_t n_res = 0;     // R
  int64_t n_params = 0;  // sum of the weights' and biases' sizes
  bool paired = false;
  bool tangents = false;                          // some monomial reads J
  at::Tensor x, shift, scale, cols, table, coef;  // contiguous
  std::vector<at::Tensor> weights, biases;        // contiguous
  at::Tensor r;                                   // out [N, R]
  at::Tensor jac;                                 // out [N, R, n_params]
};

// Checks every argument (the MLP, the table's entries on a host copy, devices: all on x's
// device, of type `device_type`) and allocates the outputs (uninitialised).
JacobianCall prepare_residual_jacobian(c10::DeviceType device_type, const at::Tensor& x,
                                       const at::Tensor& shift, const at::Tensor& scale,
                                       at::TensorList weights, at::TensorList biases,
                                       c10::string_view activation, const at::Tensor& cols,
                                       const at::Tensor& table, const at::Tensor& coef,
                                       int64_t n_res, bool paired);

// The kernels' raw views of a prepared call.
template <typename T>
JacobianNet<T> jacobian_net(const JacobianCall& c) {
  JacobianNet<T> net;
  net.d = c.s.d;
  net.m = c.s.m;
  net.hidden = static_cast<int64_t>(c.s.widths.size());
  for (int64_t l = 0; l < net.hidden; ++l) net.widths[l] = c.s.widths[l];
  for (int64_t l = 0; l <= net.hidden; ++l) {
    net.weights[l] = c.weights[l].data_ptr<T>();
    net.biases[l] = c.biases[l].data_ptr<T>();
  }
  net.shift = c.shift.data_ptr<T>();
  net.scale = c.scale.data_ptr<T>();
  net.act = c.s.act;
  return net;
}

template <typename T>
JacobianBlock<T> jacobian_block(const JacobianCall& c) {
  JacobianBlock<T> b;
  b.x = c.x.data_ptr<T>();
  b.cols = c.cols.data_ptr<T>();
  b.table = MonomialTable<T>{c.table.data_ptr<int32_t>(),
                             c.coef.data_ptr<T>(),
                             c.table.size(0),
                             c.n_res,
                             c.cols.size(1),
                             c.s.m,
                             c.s.d};
  b.n = c.n;
  b.paired = c.paired;
  b.n_params = c.n_params;
  b.r = c.r.data_ptr<T>();
  b.jac = c.jac.data_ptr<T>();
  return b;
}

// Op entry points (schema in csrc/registration.cpp).
std::tuple<at::Tensor, at::Tensor> residual_jacobian_cpu(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired);

#if defined(FLUXKERN_WITH_CUDA)
std::tuple<at::Tensor, at::Tensor> residual_jacobian_cuda(
    const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, at::TensorList weights,
    at::TensorList biases, c10::string_view activation, const at::Tensor& cols,
    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired);
#endif

}  // namespace fluxkern
