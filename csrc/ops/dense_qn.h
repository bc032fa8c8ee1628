// Ops of the dense quasi-Newton optimizers on the upper triangle of a symmetric matrix H [P, P]
// (kernels/dense_qn_cpu.h): the product H x and the rank-2 update H += U W, each reading (and
// writing) only the values with j >= i. CPU only.
#pragma once

#include <ATen/ATen.h>

namespace fluxkern {

// h [P, P] contiguous (upper triangle read), x [P]: returns H x [P].
at::Tensor sym_matvec_cpu(const at::Tensor& h, const at::Tensor& x);

// h [P, P] contiguous, updated in place on j >= i: h_ij += u_i0 w_0j + u_i1 w_1j; u [P, 2],
// w [2, P].
void sym_rank2_update_cpu(at::Tensor& h, const at::Tensor& u, const at::Tensor& w);

// Both in one pass: h updated as by sym_rank2_update_cpu, then returns (the updated H) x [P], the
// same sums as sym_matvec_cpu's.
at::Tensor sym_rank2_update_matvec_cpu(at::Tensor& h, const at::Tensor& u, const at::Tensor& w,
                                       const at::Tensor& x);

}  // namespace fluxkern
