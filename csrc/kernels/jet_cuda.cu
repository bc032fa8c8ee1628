// CUDA elementwise kernels of the jet: one thread per (point, unit) element of a [N, W] slot,
// grid-stride over the slot, every other slot reached at a fixed offset. Memory-bound: each
// element reads 1 + d values and writes 3 + d (forward), reads 2 + 2d and writes 1 + d
// (backward), all coalesced along the slot.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/jet_cuda.cuh"

namespace fluxkern {
namespace {

constexpr int kThreads = 256;
// Resident blocks per multiprocessor the grid is sized for (2048 threads per SM on sm_80/sm_90);
// the grid-stride loop covers the rest.
constexpr int kBlocksPerSm = 2048 / kThreads;

// Index type: 32-bit offsets when the whole buffer fits (cheaper column index i % w), else 64.
template <typename I, typename T, Activation A>
__global__ void activation_forward_kernel(I slot, I w, int d,
                                          const T* __restrict__ bias,  // bias [W]
                                          T* __restrict__ layer) {     // [2d+3, N, W]
  const I stride = static_cast<I>(gridDim.x) * kThreads;
  for (I i = static_cast<I>(blockIdx.x) * kThreads + threadIdx.x; i < slot; i += stride) {
    const T z = layer[i] + bias[i % w];
    const ActivationValue<T> v = activation_eval(A, z);
    layer[i] = v.ds;
    layer[static_cast<I>(d + 1) * slot + i] = v.s;
    layer[static_cast<I>(2 * d + 2) * slot + i] = v.d2s;
    for (int j = 0; j < d; ++j) {
      layer[static_cast<I>(d + 2 + j) * slot + i] = v.ds * layer[static_cast<I>(1 + j) * slot + i];
    }
  }
}

template <typename I, typename T>
__global__ void activation_backward_kernel(I slot, int d,
                                           const T* __restrict__ layer,  // [2d+3, N, W]
                                           T* __restrict__ grad) {       // [1+d, N, W]
  const I stride = static_cast<I>(gridDim.x) * kThreads;
  for (I i = static_cast<I>(blockIdx.x) * kThreads + threadIdx.x; i < slot; i += stride) {
    const T ds = layer[i];
    const T d2s = layer[static_cast<I>(2 * d + 2) * slot + i];
    T zbar = grad[i] * ds;
    for (int j = 0; j < d; ++j) {
      const I off = static_cast<I>(1 + j) * slot + i;
      const T tbar = grad[off];
      zbar += tbar * d2s * layer[off];
      grad[off] = tbar * ds;
    }
    grad[i] = zbar;
  }
}

// Blocks for `elems` grid-stride elements on the current device.
cudaError_t grid_for(int64_t elems, unsigned* blocks) {
  int dev = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  const int64_t needed = (elems + kThreads - 1) / kThreads;
  *blocks = static_cast<unsigned>(std::min<int64_t>(needed, int64_t{sms} * kBlocksPerSm));
  return cudaSuccess;
}

// True when every offset into a buffer of `slots` slots of `slot` elements, plus one grid
// stride, fits a 32-bit unsigned index.
bool fits_32bit(int64_t slots, int64_t slot, unsigned blocks) {
  return slots * slot + int64_t{blocks} * kThreads < (int64_t{1} << 31);
}

template <typename I, typename T>
void launch_forward(Activation act, int64_t slot, int64_t d, int64_t w, unsigned blocks,
                    const T* bias, T* layer, cudaStream_t stream) {
  const I s = static_cast<I>(slot), ww = static_cast<I>(w);
  const int dd = static_cast<int>(d);
  switch (act) {
    case Activation::Tanh:
      activation_forward_kernel<I, T, Activation::Tanh>
          <<<blocks, kThreads, 0, stream>>>(s, ww, dd, bias, layer);
      break;
    case Activation::Sin:
      activation_forward_kernel<I, T, Activation::Sin>
          <<<blocks, kThreads, 0, stream>>>(s, ww, dd, bias, layer);
      break;
    case Activation::Silu:
      activation_forward_kernel<I, T, Activation::Silu>
          <<<blocks, kThreads, 0, stream>>>(s, ww, dd, bias, layer);
      break;
  }
}

}  // namespace

template <typename T>
cudaError_t jet_activation_forward_cuda(Activation act, int64_t n, int64_t d, int64_t w,
                                        const T* bias, T* layer, cudaStream_t stream) {
  const int64_t slot = n * w;  // elements per [N, W] slot
  if (slot == 0) return cudaSuccess;
  if (act != Activation::Tanh && act != Activation::Sin && act != Activation::Silu) {
    return cudaErrorInvalidValue;
  }
  unsigned blocks = 0;
  cudaError_t err = grid_for(slot, &blocks);
  if (err != cudaSuccess) return err;
  if (fits_32bit(2 * d + 3, slot, blocks)) {
    launch_forward<uint32_t, T>(act, slot, d, w, blocks, bias, layer, stream);
  } else {
    launch_forward<int64_t, T>(act, slot, d, w, blocks, bias, layer, stream);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t jet_activation_backward_cuda(int64_t n, int64_t d, int64_t w, const T* layer, T* grad,
                                         cudaStream_t stream) {
  const int64_t slot = n * w;
  if (slot == 0) return cudaSuccess;
  unsigned blocks = 0;
  cudaError_t err = grid_for(slot, &blocks);
  if (err != cudaSuccess) return err;
  const int dd = static_cast<int>(d);
  if (fits_32bit(2 * d + 3, slot, blocks)) {
    activation_backward_kernel<uint32_t, T>
        <<<blocks, kThreads, 0, stream>>>(static_cast<uint32_t>(slot), dd, layer, grad);
  } else {
    activation_backward_kernel<int64_t, T><<<blocks, kThreads, 0, stream>>>(slot, dd, layer, grad);
  }
  return cudaGetLastError();
}

template cudaError_t jet_activation_forward_cuda<float>(Activation, int64_t, int64_t, int64_t,
                                                        const float*, float*, cudaStream_t);
template cudaError_t jet_activation_forward_cuda<double>(Activation, int64_t, int64_t, int64_t,
                                                         const double*, double*, cudaStream_t);
template cudaError_t jet_activation_backward_cuda<float>(int64_t, int64_t, int64_t, const float*,
                                                         float*, cudaStream_t);
template cudaError_t jet_activation_backward_cuda<double>(int64_t, int64_t, int64_t, const double*,
                                                          double*, cudaStream_t);

}  // namespace fluxkern
