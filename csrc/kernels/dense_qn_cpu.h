// Kernels of the dense quasi-Newton optimizers (fluxkern.optim.SSBFGS / SSBroyden) on their
// inverse-Hessian approximation H [P, P], a symmetric matrix of which only the upper triangle
// (j >= i, row-major) is read or written: the product H x and the symmetric rank-2 update each
// pass over half of the P^2 values instead of all of them (the matrix is tens of MB and the
// iteration is memory-bound). Host code, no torch headers.
#pragma once

#include <cstdint>

namespace fluxkern {

// y [P] += H x for the rows [i0, i1) of the upper triangle: y_i += sum_{j >= i} H_ij x_j and
// y_j += H_ij x_i for j > i (the strictly lower triangle of h is not read). h [P, P] row-major.
template <typename T>
void sym_upper_matvec_rows_cpu(int64_t p, const T* h, const T* x, int64_t i0, int64_t i1, T* y);

// H_ij += u0_i w0_j + u1_i w1_j for j >= i and the rows [i0, i1) (the strictly lower triangle of
// h is not written). u0, u1, w0, w1 [P].
template <typename T>
void sym_upper_rank2_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1, const T* w1,
                              int64_t i0, int64_t i1);

// Both in one pass over the rows [i0, i1): H_ij += u0_i w0_j + u1_i w1_j for j >= i, then
// y += (the updated H) x as sym_upper_matvec_rows_cpu does (the same sums in the same order).
template <typename T>
void sym_upper_rank2_matvec_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1,
                                     const T* w1, const T* x, int64_t i0, int64_t i1, T* y);

// The first row of part k of `parts` row ranges that split the upper triangle of a [P, P] matrix
// into pieces of about equal area (row i holds P - i values); k = parts gives P.
int64_t triangle_row_split(int64_t p, int64_t parts, int64_t k);

}  // namespace fluxkern
