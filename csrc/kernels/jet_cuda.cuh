// CUDA elementwise kernels of the jet (DESIGN.md section 3). Raw pointers, no torch headers; the
// layer buffer layout is the CPU kernels' (kernels/jet_cpu.h):
//   [2d + 3 slots, N, W]: z -> s'(z) | Zt_1..d | h = s(z) | T_1..d = s'(z) Zt_j | s''(z)
// This header is plain C++ (included by the torch glue compiled with the host compiler); the
// kernels themselves are in jet_cuda.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/activations.h"

namespace fluxkern {

// Adds `bias` [W] to z and applies the activation to every point of one layer buffer `layer`
// [2d + 3, N, W] on `stream`: writes h, T_j = s'(z) Zt_j, s'(z) into slot 0 and s''(z) into
// slot 2d + 2 (sin and cos are evaluated here for every activation, so unlike the CPU kernel
// nothing is precomputed and `bias` is never null). Launches nothing when N * W == 0. Returns the
// launch error (cudaSuccess when none).
template <typename T>
cudaError_t jet_activation_forward_cuda(Activation act, int64_t n, int64_t d, int64_t w,
                                        const T* bias, T* layer, cudaStream_t stream);

// Reverse of jet_activation_forward_cuda, in place on `grad` [(1+d), N, W] on `stream`:
//   (hbar, Tbar_1..d) -> (zbar, Ztbar_1..d),
//   zbar = hbar s'(z) + sum_j Tbar_j s''(z) Zt_j,   Ztbar_j = Tbar_j s'(z),
// reading s'(z), Zt_j and s''(z) from the forward's `layer` [2d + 3, N, W]. Returns the launch
// error.
template <typename T>
cudaError_t jet_activation_backward_cuda(int64_t n, int64_t d, int64_t w, const T* layer, T* grad,
                                         cudaStream_t stream);

}  // namespace fluxkern
