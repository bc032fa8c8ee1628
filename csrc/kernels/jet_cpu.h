// CPU elementwise kernels of the jet (DESIGN.md section 3). Raw pointers, no torch headers.
//
// Every hidden layer l keeps one buffer of (2d + 3) slots, each slot [N, W] row-major:
//   slot 0          z (the GEMM output, primal rows); the forward kernel replaces it by s'(z)
//   slots 1..d      Zt_j = A_l T_{l-1, j}, the tangent pre-activations
//   slot d+1        on entry the activation's primitive (tanh z, sin z or sigmoid z); on exit h =
//   s(z) slots d+2..2d+1 T_j = s'(z) * Zt_j, the tangents dh/dx_j slot 2d+2       on entry cos z
//   (sin activation only); on exit s''(z)
// Slots 0..d form the [(1+d) N, W] GEMM output and slots d+1..2d+1 the [(1+d) N, W] input of the
// next layer's GEMM, so both GEMMs run on stacked primal and tangent rows.
#pragma once

#include <cstdint>

#include "kernels/activations.h"

namespace fluxkern {

// Slot count per hidden layer for d input dimensions.
inline int64_t jet_layer_slots(int64_t d) { return 2 * d + 3; }

// Adds the bias to z (unless `bias` is null: already added) and applies the activation to points
// [n0, n1) of one layer buffer (layout above). tanh and SiLU are evaluated here; for sin the
// caller has put sin z and cos z of the biased z into slots d+1 and 2d+2 and passes bias = null.
template <typename T>
void jet_activation_forward_cpu(Activation act, int64_t n, int64_t d, int64_t w, int64_t n0,
                                int64_t n1, const T* bias, T* layer);

// Reverse of jet_activation_forward_cpu for points [n0, n1). `grad` holds (hbar, Tbar_1..d) as
// (1+d) slots [N, W] on entry and (zbar, Ztbar_1..d) on exit:
//   zbar = hbar s'(z) + sum_j Tbar_j s''(z) Zt_j,   Ztbar_j = Tbar_j s'(z).
template <typename T>
void jet_activation_backward_cpu(int64_t n, int64_t d, int64_t w, int64_t n0, int64_t n1,
                                 const T* layer, T* grad);

// The instruction-set variant the CPU kernels run with on this machine ("avx2+fma", ...).
const char* cpu_kernel_variant();

}  // namespace fluxkern
