// CUDA kernel of the fused residual + loss step: one thread per point (grid-stride), the per-point
// functions of kernels/residual.h, each thread writing only its own rows of C, loss_p, ybar and
// jbar (no atomics). The monomial table, its coefficients and the per-residual loss settings are
// read by every thread in the same order: each block stages them in shared memory when they fit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/residual_cuda.cuh"

namespace fluxkern {
namespace {

constexpr int kThreads = 128;
// Resident blocks per multiprocessor the grid is sized for (2048 threads per SM on sm_80/sm_90);
// the grid-stride loop covers the rest.
constexpr int kBlocksPerSm = 2048 / kThreads;
// Largest staged table (bytes of dynamic shared memory a block may use without opting in).
constexpr size_t kMaxStagedBytes = 48 * 1024;

// Bytes of shared memory that stage the table of M monomials and R residuals: coef [M], mu [R],
// squared [R], red [R] (type T), then index [M, 5] (int32).
template <typename T>
size_t staged_bytes(int64_t n_mono, int64_t n_res) {
  return static_cast<size_t>(n_mono + 3 * n_res) * sizeof(T) +
         static_cast<size_t>(n_mono * kMonoCols) * sizeof(int32_t);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    residual_loss_kernel(MonomialTable<T> t, LossSpec<T> loss, int64_t n, bool paired, bool staged,
                         const T* __restrict__ y,     // [P, m]
                         const T* __restrict__ jac,   // [P, m, d]
                         const T* __restrict__ cols,  // [P, K]
                         T* __restrict__ c,           // [N, R]
                         T* __restrict__ loss_p,      // [N]
                         T* __restrict__ ybar,        // [P, m]
                         T* __restrict__ jbar) {      // [P, m, d]
  extern __shared__ __align__(16) unsigned char smem[];
  if (staged) {  // uniform over the block: every thread reaches the barrier
    T* s_coef = reinterpret_cast<T*>(smem);                          // [M]
    T* s_mu = s_coef + t.n_mono;                                     // [R]
    T* s_sq = s_mu + t.n_res;                                        // [R]
    T* s_red = s_sq + t.n_res;                                       // [R]
    int32_t* s_index = reinterpret_cast<int32_t*>(s_red + t.n_res);  // [M, 5]
    for (int64_t i = threadIdx.x; i < t.n_mono; i += blockDim.x) s_coef[i] = t.coef[i];
    for (int64_t i = threadIdx.x; i < t.n_mono * kMonoCols; i += blockDim.x) {
      s_index[i] = t.index[i];
    }
    for (int64_t i = threadIdx.x; i < t.n_res; i += blockDim.x) {
      s_mu[i] = loss.mu[i];
      s_sq[i] = loss.squared[i];
      s_red[i] = loss.red[i];
    }
    __syncthreads();
    t.coef = s_coef;
    t.index = s_index;
    loss.mu = s_mu;
    loss.squared = s_sq;
    loss.red = s_red;
  }
  T r[kMaxResiduals];  // scratch
  T g[kMaxResiduals];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
       p += stride) {
    residual_loss_point(t, loss, n, paired, p, y, jac, cols, c, loss_p, ybar, jbar, r, g);
  }
}

}  // namespace

template <typename T>
cudaError_t residual_loss_cuda(const MonomialTable<T>& table, const LossSpec<T>& loss, int64_t n,
                               bool paired, const T* y, const T* jac, const T* cols, T* c,
                               T* loss_p, T* ybar, T* jbar, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (table.n_res < 1 || table.n_res > kMaxResiduals || table.n_mono < 0) {
    return cudaErrorInvalidValue;
  }
  int dev = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  const int64_t needed = (n + kThreads - 1) / kThreads;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(needed, int64_t{sms} * kBlocksPerSm));
  const size_t bytes = staged_bytes<T>(table.n_mono, table.n_res);
  const bool staged = bytes <= kMaxStagedBytes;
  residual_loss_kernel<T><<<blocks, kThreads, staged ? bytes : 0, stream>>>(
      table, loss, n, paired, staged, y, jac, cols, c, loss_p, ybar, jbar);
  return cudaGetLastError();
}

template cudaError_t residual_loss_cuda<float>(const MonomialTable<float>&, const LossSpec<float>&,
                                               int64_t, bool, const float*, const float*,
                                               const float*, float*, float*, float*, float*,
                                               cudaStream_t);
template cudaError_t residual_loss_cuda<double>(const MonomialTable<double>&,
                                                const LossSpec<double>&, int64_t, bool,
                                                const double*, const double*, const double*,
                                                double*, double*, double*, double*, cudaStream_t);

}  // namespace fluxkern
