// The CUDA kernel of the residual Jacobian (csrc/kernels/jacobian_cuda_kernel.cuh) compiled by the
// host compiler through csrc/kernels/cuda_emulation.h, behind a C entry point for ctypes
// (tests/test_residual_jacobian.py builds this file into a temporary shared library):
//   g++ -std=c++20 -O1 -pthread -shared -fPIC -I csrc tests/cpp/jacobian_emulated.cpp
// clang-format off
#include "kernels/cuda_emulation.h"
// clang-format on
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/jacobian_cuda_kernel.cuh"

namespace {

template <typename T>
void run(int act, int64_t n, int64_t d, int64_t m, int64_t hidden, const int64_t* widths,
         const void* x, const void* shift, const void* scale, const void* const* weights,
         const void* const* biases, const void* cols, int64_t k, const int32_t* table,
         const void* coef, int64_t n_mono, int64_t n_res, bool paired, int64_t threads, void* r,
         void* jac) {
  using namespace fluxkern;
  JacobianNet<T> net;
  net.d = d;
  net.m = m;
  net.hidden = hidden;
  int64_t n_params = 0, win = d;
  for (int64_t l = 0; l <= hidden; ++l) {
    if (l < hidden) net.widths[l] = widths[l];
    const int64_t w = l < hidden ? widths[l] : m;
    net.weights[l] = static_cast<const T*>(weights[l]);
    net.biases[l] = static_cast<const T*>(biases[l]);
    n_params += w * win + w;
    win = w;
  }
  net.shift = static_cast<const T*>(shift);
  net.scale = static_cast<const T*>(scale);
  net.act = static_cast<Activation>(act);
  bool tangents = false;
  for (int64_t i = 0; i < n_mono; ++i) {
    for (int q = 2; q < kMonoCols; ++q) tangents = tangents || table[i * kMonoCols + q] >= m;
  }
  JacobianBlock<T> block;
  block.x = static_cast<const T*>(x);
  block.cols = static_cast<const T*>(cols);
  block.table = MonomialTable<T>{table, static_cast<const T*>(coef), n_mono, n_res, k, m, d};
  block.n = n;
  block.paired = paired;
  block.n_params = n_params;
  block.r = static_cast<T*>(r);
  block.jac = static_cast<T*>(jac);
  const JacobianPlan plan = jacobian_plan(net, n_res, tangents);
  // NaN scratch: a read of scratch the kernel never wrote shows in the results
  std::vector<T> scratch(static_cast<size_t>(threads * plan.scratch),
                         std::numeric_limits<T>::quiet_NaN());
  const unsigned blocks =
      static_cast<unsigned>((threads + kJacobianThreadsPerBlock - 1) / kJacobianThreadsPerBlock);
  T* sp = scratch.data();
  fk_emu::launch(blocks, kJacobianThreadsPerBlock, 0,
                 [&] { residual_jacobian_kernel<T>(net, block, plan, threads, sp); });
}

}  // namespace

// dtype 0: float32, 1: float64. Writes r [n, n_res] and jac [n, n_res, n_params].
extern "C" int fk_jacobian_emulated(int dtype, int act, int64_t n, int64_t d, int64_t m,
                                    int64_t hidden, const int64_t* widths, const void* x,
                                    const void* shift, const void* scale,
                                    const void* const* weights, const void* const* biases,
                                    const void* cols, int64_t k, const int32_t* table,
                                    const void* coef, int64_t n_mono, int64_t n_res, int paired,
                                    int64_t threads, void* r, void* jac) {
  if (n == 0) return 0;
  if (dtype == 0) {
    run<float>(act, n, d, m, hidden, widths, x, shift, scale, weights, biases, cols, k, table, coef,
               n_mono, n_res, paired != 0, threads, r, jac);
  } else {
    run<double>(act, n, d, m, hidden, widths, x, shift, scale, weights, biases, cols, k, table,
                coef, n_mono, n_res, paired != 0, threads, r, jac);
  }
  return 0;
}
