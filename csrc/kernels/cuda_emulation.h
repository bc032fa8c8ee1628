// Runs CUDA kernel source on the host, for tests on machines without a GPU: include this before a
// kernel header (e.g. kernels/jet_tile_kernel.cuh) and compile with a C++20 host compiler and
// -pthread. Each block runs as blockDim.x std::threads that share one dynamic shared memory
// buffer; __syncthreads() is a std::barrier across them; blocks run one after another.
// threadIdx, blockIdx, blockDim and gridDim are thread_local. Covers what the fluxkern kernels
// use: 1-D grids and blocks, dynamic shared memory only (FK_DYNAMIC_SHARED), __syncthreads().
// Not for production builds: the build never includes it (tests/cpp/ does).
#pragma once

#if defined(__CUDACC__)
#error "cuda_emulation.h is for host compilers; nvcc compiles the kernels as CUDA"
#endif

#include <barrier>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace fk_emu {

inline thread_local unsigned char* dynamic_shared = nullptr;
inline thread_local std::barrier<>* block_barrier = nullptr;

// Runs kernel() as a grid of `grid` blocks of `block` threads with `shared_bytes` of dynamic
// shared memory per block. The buffer starts filled with 0xFF bytes (NaN in float and double), so
// that a kernel reading shared memory it never wrote gets NaN in its results.
template <typename Kernel>
void launch(unsigned grid, unsigned block, size_t shared_bytes, const Kernel& kernel) {
  for (unsigned b = 0; b < grid; ++b) {
    std::vector<unsigned char> shared(shared_bytes + 16, 0xFF);  // new[] is 16-byte aligned
    std::barrier<> sync(static_cast<std::ptrdiff_t>(block));
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t) {
      threads.emplace_back([&, b, t] {
        threadIdx = dim3{t, 1, 1};
        blockIdx = dim3{b, 1, 1};
        blockDim = dim3{block, 1, 1};
        gridDim = dim3{grid, 1, 1};
        dynamic_shared = shared.data();
        block_barrier = &sync;
        kernel();
      });
    }
    for (std::thread& th : threads) th.join();
  }
}

}  // namespace fk_emu

inline void __syncthreads() { fk_emu::block_barrier->arrive_and_wait(); }

#define FK_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(fk_emu::dynamic_shared)
