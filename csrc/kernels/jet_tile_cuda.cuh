// Launcher of the fused per-tile jet forward (kernels/jet_tile_kernel.cuh) on a GPU. Plain C++
// (included by the torch glue compiled with the host compiler); the launch is in jet_tile_cuda.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/activations.h"

namespace fluxkern {

// The jet forward for N points of an MLP with hidden `widths` [hidden] on `stream`, as one kernel
// over tiles of points: writes y [N, m], jac [N, m, d] and the per-layer buffers `saved`
// (kernels/jet_cpu.h layout, slots as jet_activation_forward_cuda writes them). `weights[l]`
// [W_l, W_{l-1}] (last [m, W_L]), `biases[l]` [W_l] (last [m]); every buffer contiguous.
// Sets *ran to false, launching nothing, when the kernel does not serve the sizes (d > 8,
// m > 32, a width > 128) or the tile that fits the device's opt-in shared memory would be under
// kTileMinPoints points: the caller then runs the GEMM path. N = 0 launches nothing and sets
// *ran. Returns the first CUDA error (cudaSuccess when none).
// True when the tile kernel serves these sizes (d <= 8, m <= 32, 1..16 hidden widths <= 128);
// the device's shared memory may still refuse the launch (see below).
bool jet_tile_cuda_supports(int64_t d, int64_t m, const int64_t* widths, int64_t hidden);

template <typename T>
cudaError_t jet_forward_tile_cuda(Activation act, int64_t n, int64_t d, int64_t m, int64_t hidden,
                                  const int64_t* widths, const T* x, const T* shift, const T* scale,
                                  const T* const* weights, const T* const* biases, T* saved, T* y,
                                  T* jac, cudaStream_t stream, bool* ran);

}  // namespace fluxkern
