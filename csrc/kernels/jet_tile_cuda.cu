// Launcher of the fused per-tile jet forward: plans the tile from the device's opt-in shared
// memory, raises the kernel's dynamic shared memory limit to it, launches one block of
// kTileThreads threads per tile of points.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/jet_tile_cuda.cuh"
#include "kernels/jet_tile_kernel.cuh"

namespace fluxkern {
namespace {

template <typename T, Activation A>
cudaError_t launch(const JetTileArgs<T>& args, size_t smem_bytes, cudaStream_t stream) {
  const auto kernel = &jet_tile_forward_kernel<T, A>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem_bytes));
  if (err != cudaSuccess) return err;
  const int64_t blocks = (args.n + args.tile - 1) / args.tile;
  jet_tile_forward_kernel<T, A>
      <<<static_cast<unsigned>(blocks), kTileThreads, smem_bytes, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace

bool jet_tile_cuda_supports(int64_t d, int64_t m, const int64_t* widths, int64_t hidden) {
  return jet_tile_supports(d, m, widths, hidden);
}

template <typename T>
cudaError_t jet_forward_tile_cuda(Activation act, int64_t n, int64_t d, int64_t m, int64_t hidden,
                                  const int64_t* widths, const T* x, const T* shift, const T* scale,
                                  const T* const* weights, const T* const* biases, T* saved, T* y,
                                  T* jac, cudaStream_t stream, bool* ran) {
  *ran = false;
  if (!jet_tile_supports(d, m, widths, hidden)) return cudaSuccess;
  int dev = 0, optin = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) {
    err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  }
  if (err != cudaSuccess) return err;
  const int tile = jet_tile_points(d, m, widths, hidden, sizeof(T), static_cast<size_t>(optin),
                                   kTileMaxPoints, kTileMinPoints);
  if (tile == 0) return cudaSuccess;
  // Blocks are a 32-bit grid dimension: 2^31 - 1 tiles of >= 8 points is far beyond any buffer.
  if ((n + tile - 1) / tile > int64_t{0x7fffffff}) return cudaSuccess;
  *ran = true;
  if (n == 0) return cudaSuccess;
  JetTileArgs<T> args;
  args.n = n;
  args.d = static_cast<int>(d);
  args.m = static_cast<int>(m);
  args.hidden = static_cast<int>(hidden);
  args.tile = tile;
  for (int64_t l = 0; l < hidden; ++l) args.widths[l] = static_cast<int>(widths[l]);
  args.x = x;
  args.shift = shift;
  args.scale = scale;
  for (int64_t l = 0; l <= hidden; ++l) {
    args.weights[l] = weights[l];
    args.biases[l] = biases[l];
  }
  args.saved = saved;
  args.y = y;
  args.jac = jac;
  const size_t bytes =
      static_cast<size_t>(jet_tile_layout(d, m, widths, hidden, tile).total()) * sizeof(T);
  switch (act) {
    case Activation::Tanh:
      return launch<T, Activation::Tanh>(args, bytes, stream);
    case Activation::Sin:
      return launch<T, Activation::Sin>(args, bytes, stream);
    case Activation::Silu:
      return launch<T, Activation::Silu>(args, bytes, stream);
  }
  *ran = false;
  return cudaErrorInvalidValue;
}

template cudaError_t jet_forward_tile_cuda<float>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                  const int64_t*, const float*, const float*,
                                                  const float*, const float* const*,
                                                  const float* const*, float*, float*, float*,
                                                  cudaStream_t, bool*);
template cudaError_t jet_forward_tile_cuda<double>(Activation, int64_t, int64_t, int64_t, int64_t,
                                                   const int64_t*, const double*, const double*,
                                                   const double*, const double* const*,
                                                   const double* const*, double*, double*, double*,
                                                   cudaStream_t, bool*);

}  // namespace fluxkern
