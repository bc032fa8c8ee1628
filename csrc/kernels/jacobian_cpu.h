// CPU kernel of the residual Jacobian (issue 13): for each point (pair) the residuals r [R] and
// their Jacobian dr/dtheta [R, n_params] with respect to every weight and bias, in one pass per
// point: the jet forward (DESIGN.md section 3) with its per-layer values kept in a small scratch,
// dr_i/dy and dr_i/dJ by the product rule on the monomial table (kernels/residual.h), then for
// each residual the jet's reverse pass seeded with them, written straight into the point's row
// (n, i, :) of the output. No per-point graph and no [P, R, W, W] temporaries: the scratch holds
// one point's layers. Raw pointers, no torch headers.
//
// Parameter order of a row (theta): weights[0], biases[0], weights[1], biases[1], ..., each
// weight row-major [out, in] (fluxkern.ops.parameter_layout).
#pragma once

#include <cstdint>

#include "kernels/activations.h"
#include "kernels/residual.h"

namespace fluxkern {

// The MLP, as raw views of contiguous tensors.
template <typename T>
struct JacobianNet {
  int64_t d = 0;                    // inputs
  int64_t m = 0;                    // outputs
  int64_t hidden = 0;               // hidden layers L
  const int64_t* widths = nullptr;  // [L] hidden widths
  const T* const* weights;          // L + 1 pointers, [W_l, W_{l-1}] row-major (W_{-1} = d)
  const T* const* biases;           // L + 1 pointers, [W_l]
  const T* shift;                   // [d]
  const T* scale;                   // [d]
  Activation act = Activation::Tanh;
};

// The block of points and the outputs.
template <typename T>
struct JacobianBlock {
  const T* x;              // [P, d] (paired: side a rows, then side b rows)
  const T* cols;           // [P, K]
  MonomialTable<T> table;  // residuals (its m, d are the net's)
  int64_t n = 0;           // points (pairs when paired)
  bool paired = false;     //
  int64_t n_params = 0;    // sum of the weights' and biases' sizes
  T* r;                    // out [n, R]
  T* jac;                  // out [n, R, n_params]
};

// Scratch elements one thread needs (one point's layers and adjoints).
int64_t residual_jacobian_scratch(int64_t d, int64_t m, int64_t hidden, const int64_t* widths,
                                  int64_t n_res);

// Points (pairs) [n0, n1) of the block: writes their rows of r and jac (each point's jac rows
// are zeroed, then accumulated while they are in cache).
// Residual rows whose seed dr_i/d(y, J) is zero at a point (e.g. another block's residuals in a
// segmented group) are skipped, and so is the tangent part of the reverse pass where dr_i/dJ is
// zero. scratch: [residual_jacobian_scratch(...)].
template <typename T>
void residual_jacobian_cpu(const JacobianNet<T>& net, const JacobianBlock<T>& block, int64_t n0,
                           int64_t n1, T* scratch);

}  // namespace fluxkern
