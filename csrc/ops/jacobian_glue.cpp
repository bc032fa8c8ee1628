// Device-independent glue of the residual Jacobian: argument checks and allocation. The entry
// points (jacobian_cpu.cpp, jacobian_cuda.cpp) run their device's kernel on the prepared call.
#include <string>
#include <utility>

#include "kernels/residual.h"  // kMonoCols
#include "ops/common.h"
#include "ops/jacobian.h"

namespace fluxkern {
namespace {

constexpr const char* kOp = "fluxkern.residual_jacobian";

// Checks the group's tensors against x (device, dtype, sizes) and the table's entries (on a host
// copy: a small device-to-host copy when the table is on a GPU). Returns the number of points
// (pairs when paired); *tangents: whether some monomial reads J.
int64_t check_group(const MlpShape& s, const at::Tensor& x, const at::Tensor& cols,
                    const at::Tensor& table, const at::Tensor& coef, int64_t n_res, bool paired,
                    bool* tangents) {
  TORCH_CHECK_VALUE(n_res >= 1, kOp, ": n_res must be at least 1, got ", n_res);
  TORCH_CHECK_VALUE(!paired || s.n % 2 == 0, kOp, ": a paired group needs x = cat(a, b) with an ",
                    "even number of rows, got ", s.n);
  const at::Tensor tab = check_program(kOp, s, x, cols, table, coef, n_res);  // [M, 5], host
  const int32_t* ix = tab.data_ptr<int32_t>();
  *tangents = false;
  for (int64_t k = 0; k < tab.size(0); ++k) {
    for (int q = 2; q < kMonoCols; ++q) *tangents = *tangents || ix[k * kMonoCols + q] >= s.m;
  }
  return paired ? s.n / 2 : s.n;
}

}  // namespace

JacobianCall prepare_residual_jacobian(c10::DeviceType device_type, const at::Tensor& x,
                                       const at::Tensor& shift, const at::Tensor& scale,
                                       at::TensorList weights, at::TensorList biases,
                                       c10::string_view activation, const at::Tensor& cols,
                                       const at::Tensor& table, const at::Tensor& coef,
                                       int64_t n_res, bool paired) {
  JacobianCall c;
  c.s = check_mlp(kOp, x, shift, scale, weights, biases, std::string(activation));
  TORCH_CHECK(x.device().type() == device_type, kOp, ": the ", c10::DeviceTypeName(device_type),
              " kernel was called with x on ", x.device());
  c.n = check_group(c.s, x, cols, table, coef, n_res, paired, &c.tangents);
  c.n_res = n_res;
  c.paired = paired;
  for (size_t l = 0; l < weights.size(); ++l) {
    c.weights.push_back(weights[l].contiguous());
    c.biases.push_back(biases[l].contiguous());
    c.n_params += weights[l].numel() + biases[l].numel();
  }
  c.x = x.contiguous();                                      // [P, d]
  c.shift = shift.contiguous();                              // [d]
  c.scale = scale.contiguous();                              // [d]
  c.cols = cols.contiguous();                                // [P, K]
  c.table = table.contiguous();                              // [M, 5]
  c.coef = coef.contiguous();                                // [M]
  c.r = at::empty({c.n, n_res}, x.options());                // [N, R]
  c.jac = at::empty({c.n, n_res, c.n_params}, x.options());  // [N, R, n_params]
  return c;
}

}  // namespace fluxkern
