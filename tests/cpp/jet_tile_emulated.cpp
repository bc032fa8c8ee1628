// The tile kernel of the jet (csrc/kernels/jet_tile_kernel.cuh) compiled by the host compiler
// through csrc/kernels/cuda_emulation.h, behind a C entry point for ctypes
// (tests/test_jet_tile_emulated.py builds this file into a temporary shared library):
//   g++ -std=c++20 -O1 -pthread -shared -fPIC -I csrc tests/cpp/jet_tile_emulated.cpp
// clang-format off
#include "kernels/cuda_emulation.h"
// clang-format on
#include <cstdint>

#include "kernels/jet_tile_kernel.cuh"

namespace {

template <typename T, fluxkern::Activation A>
void run(const fluxkern::JetTileArgs<T>& args, unsigned threads, size_t smem_bytes) {
  const unsigned blocks = static_cast<unsigned>((args.n + args.tile - 1) / args.tile);
  fk_emu::launch(blocks, threads, smem_bytes,
                 [&args] { fluxkern::jet_tile_forward_kernel<T, A>(args); });
}

template <typename T>
int forward(int act, int64_t n, int64_t d, int64_t m, int64_t hidden, const int64_t* widths,
            const void* x, const void* shift, const void* scale, const void* const* weights,
            const void* const* biases, void* saved, void* y, void* jac, int max_tile, int min_tile,
            int64_t smem_limit, int threads, int* tile_used) {
  using fluxkern::Activation;
  const int tile = fluxkern::jet_tile_points(d, m, widths, hidden, sizeof(T),
                                             static_cast<size_t>(smem_limit), max_tile, min_tile);
  *tile_used = tile;
  if (tile == 0) return 1;  // not served: the glue would run the GEMM path
  if (threads % 32 != 0 || threads / 32 * fluxkern::kTilePointsPerThread < tile) return -2;
  fluxkern::JetTileArgs<T> args;
  args.n = n;
  args.d = static_cast<int>(d);
  args.m = static_cast<int>(m);
  args.hidden = static_cast<int>(hidden);
  args.tile = tile;
  for (int64_t l = 0; l < hidden; ++l) args.widths[l] = static_cast<int>(widths[l]);
  args.x = static_cast<const T*>(x);
  args.shift = static_cast<const T*>(shift);
  args.scale = static_cast<const T*>(scale);
  for (int64_t l = 0; l <= hidden; ++l) {
    args.weights[l] = static_cast<const T*>(weights[l]);
    args.biases[l] = static_cast<const T*>(biases[l]);
  }
  args.saved = static_cast<T*>(saved);
  args.y = static_cast<T*>(y);
  args.jac = static_cast<T*>(jac);
  if (n == 0) return 0;
  const size_t bytes = fluxkern::jet_tile_layout(d, m, widths, hidden, tile).total() * sizeof(T);
  const unsigned nthreads = static_cast<unsigned>(threads);
  switch (static_cast<Activation>(act)) {
    case Activation::Tanh:
      run<T, Activation::Tanh>(args, nthreads, bytes);
      return 0;
    case Activation::Sin:
      run<T, Activation::Sin>(args, nthreads, bytes);
      return 0;
    case Activation::Silu:
      run<T, Activation::Silu>(args, nthreads, bytes);
      return 0;
  }
  return -1;
}

}  // namespace

// dtype 0: float32, 1: float64; act as fluxkern::Activation. Returns 0 when the kernel ran (or
// N = 0), 1 when the plan refused the shapes (tile_used = 0), < 0 on bad arguments.
extern "C" int fk_jet_tile_forward_emulated(int dtype, int act, int64_t n, int64_t d, int64_t m,
                                            int64_t hidden, const int64_t* widths, const void* x,
                                            const void* shift, const void* scale,
                                            const void* const* weights, const void* const* biases,
                                            void* saved, void* y, void* jac, int max_tile,
                                            int min_tile, int64_t smem_limit, int threads,
                                            int* tile_used) {
  if (dtype == 0) {
    return forward<float>(act, n, d, m, hidden, widths, x, shift, scale, weights, biases, saved, y,
                          jac, max_tile, min_tile, smem_limit, threads, tile_used);
  }
  if (dtype == 1) {
    return forward<double>(act, n, d, m, hidden, widths, x, shift, scale, weights, biases, saved, y,
                           jac, max_tile, min_tile, smem_limit, threads, tile_used);
  }
  return -1;
}
