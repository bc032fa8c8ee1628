// The one TORCH_LIBRARY block: every fluxkern op schema and its CPU / CUDA implementations.
#include <torch/library.h>

#include "ops/dense_qn.h"
#include "ops/jacobian.h"
#include "ops/jet.h"
#include "ops/lbfgs.h"
#include "ops/loss.h"

TORCH_LIBRARY(fluxkern, m) {
  // y [N, m], J [N, m, d] and the saved per-layer buffer of a tanh / sin / silu MLP.
  m.def(
      "mlp_jet(Tensor x, Tensor shift, Tensor scale, Tensor[] weights, Tensor[] biases, "
      "str activation) -> (Tensor y, Tensor J, Tensor saved)");
  m.def(
      "mlp_jet_backward(Tensor grad_y, Tensor grad_J, Tensor x, Tensor shift, Tensor scale, "
      "Tensor[] weights, Tensor[] biases, str activation, Tensor saved) -> "
      "(Tensor grad_x, Tensor grad_shift, Tensor grad_scale, Tensor[] grad_weights, "
      "Tensor[] grad_biases)");
  // The augmented-Lagrangian loss of the blocks on one point set: its value, C [N, R] for the
  // dual update, and the gradient of the value with respect to every weight and bias (eager,
  // DESIGN.md section 4). squared [R] and red [R] (1/N or 1) are per residual. With coef_grad,
  // grad_coef [M] is dL/dcoef (trainable unknowns in the coefficients), else it is empty [0].
  m.def(
      "block_loss(Tensor x, Tensor shift, Tensor scale, Tensor[] weights, Tensor[] biases, "
      "str activation, Tensor cols, Tensor table, Tensor coef, Tensor lam, Tensor mu, "
      "Tensor squared, Tensor red, int n_res, bool paired, bool coef_grad=False) -> "
      "(Tensor loss, Tensor C, Tensor[] grad_weights, Tensor[] grad_biases, Tensor grad_coef)");
  // The L-BFGS search direction -H grad by the two-loop recursion over a ring of curvature pairs
  // (s, y [H, P], rho [H]; pair i of count, oldest first, in row (start + i) % H), on the pairs'
  // Gram matrices sy, yy [H, H], whose row and column new_row (a newly stored pair, or -1) it
  // fills in. CPU only.
  m.def(
      "lbfgs_direction(Tensor grad, Tensor s, Tensor y, Tensor rho, Tensor(a!) sy, "
      "Tensor(b!) yy, int start, int count, int new_row, float h_diag) -> Tensor");
  // The dense quasi-Newton optimizers' symmetric H [P, P] kept as its upper triangle (j >= i;
  // the strictly lower triangle is neither read nor written): H x [P], and the rank-2 update
  // H_ij += u_i0 w_0j + u_i1 w_1j (u [P, 2], w [2, P]) in place. CPU only.
  m.def("sym_matvec(Tensor h, Tensor x) -> Tensor");
  m.def("sym_rank2_update_(Tensor(a!) h, Tensor u, Tensor w) -> ()");
  // Both in one pass over the triangle: the update, then the product with the updated H.
  m.def("sym_rank2_update_matvec_(Tensor(a!) h, Tensor u, Tensor w, Tensor x) -> Tensor");
  // The raw residuals r [N, R] of a fused group (as block_loss evaluates them, before squaring
  // and reduction) and their Jacobian [N, R, n_params] with respect to every weight and bias,
  // flattened as weights[0], biases[0], weights[1], ... (each row-major). Not differentiable.
  m.def(
      "residual_jacobian(Tensor x, Tensor shift, Tensor scale, Tensor[] weights, "
      "Tensor[] biases, str activation, Tensor cols, Tensor table, Tensor coef, int n_res, "
      "bool paired) -> (Tensor r, Tensor jac)");
}

TORCH_LIBRARY_IMPL(fluxkern, CPU, m) {
  m.impl("mlp_jet", &fluxkern::mlp_jet_cpu);
  m.impl("mlp_jet_backward", &fluxkern::mlp_jet_backward_cpu);
  m.impl("block_loss", &fluxkern::block_loss_cpu);
  m.impl("lbfgs_direction", &fluxkern::lbfgs_direction_cpu);
  m.impl("sym_matvec", &fluxkern::sym_matvec_cpu);
  m.impl("sym_rank2_update_", &fluxkern::sym_rank2_update_cpu);
  m.impl("sym_rank2_update_matvec_", &fluxkern::sym_rank2_update_matvec_cpu);
  m.impl("residual_jacobian", &fluxkern::residual_jacobian_cpu);
}

// CUDA implementations. A build without CUDA kernels registers, for every op, one boxed function
// that says so: a cuda tensor then gets a clear error instead of the dispatcher's generic one.
#if defined(FLUXKERN_WITH_CUDA)
TORCH_LIBRARY_IMPL(fluxkern, CUDA, m) {
  m.impl("mlp_jet", &fluxkern::mlp_jet_cuda);
  m.impl("mlp_jet_backward", &fluxkern::mlp_jet_backward_cuda);
  m.impl("block_loss", &fluxkern::block_loss_cuda);
  m.impl("residual_jacobian", &fluxkern::residual_jacobian_cuda);
}
#else
namespace {

void no_cuda_kernels(const c10::OperatorHandle& op, torch::jit::Stack* /*stack*/) {
  TORCH_CHECK(false, op.schema().name(),
              " got cuda tensors, but fluxkern was built without CUDA kernels; rebuild with a CUDA "
              "build of torch and nvcc, or use backend='torch'");
}

}  // namespace

TORCH_LIBRARY_IMPL(fluxkern, CUDA, m) {
  m.impl("mlp_jet", torch::CppFunction::makeFromBoxedFunction<&no_cuda_kernels>());
  m.impl("mlp_jet_backward", torch::CppFunction::makeFromBoxedFunction<&no_cuda_kernels>());
  m.impl("block_loss", torch::CppFunction::makeFromBoxedFunction<&no_cuda_kernels>());
  m.impl("residual_jacobian", torch::CppFunction::makeFromBoxedFunction<&no_cuda_kernels>());
}
#endif
