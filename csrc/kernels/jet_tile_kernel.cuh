// The fused per-tile forward of the jet (DESIGN.md section 3) for hidden widths <= 128: one thread
// block computes every layer for a tile of P points, with activations, tangents and the current
// layer's weights in shared memory, and writes the same outputs as the GEMM path (y, J and the
// per-layer buffers of kernels/jet_cpu.h). Raw pointers, no torch headers.
//
// This header is the kernel itself. It is compiled by nvcc (kernels/jet_tile_cuda.cu, the
// launcher) and, for tests on machines without a GPU, by the host compiler after
// kernels/cuda_emulation.h, which runs each block as std::threads with a std::barrier
// (tests/test_jet_tile_emulated.py). Hence: only dynamic shared memory (FK_DYNAMIC_SHARED), and
// every thread of a block reaches every __syncthreads().
//
// Tiling. P points per block, (1+d) rows per point (primal h, tangents T_1..T_d), stacked as
//   rows [(1+d) P, S]: row j P + p holds (j = 0) h_p or (j >= 1) T_j of point p,
// with S = max(d, W_1..W_L) rounded up to odd (conflict-free shared-memory banks for rows read by
// one warp). Two such buffers ping-pong: layer l reads `in` [(1+d) P, W_{l-1}] and writes `out`
// [(1+d) P, W_l]. The layer's weights A_l [W_l, W_{l-1}] are staged transposed, At [W_{l-1},
// W_l | 1], and its bias [W_l]. So each hidden layer is the GEMM of DESIGN.md section 3,
//   out [(1+d) P, W_l] = in [(1+d) P, W_{l-1}] x A_l^T,
// followed by the elementwise jet step; the output layer is the same GEMM with W = m.
// Threads: TU lanes along units (32, or 16 / 8 for narrow layers) by TP = threads / TU rows along
// points; thread (tu, tp) owns units u = tu + i TU (i < kTileUnitsPerThread) and points
// p = tp + q TP (q < kTilePointsPerThread) for all 1 + d row types, so z and its Zt_j meet in
// the same thread: s'(z) stays in registers from the primal pass to the tangent passes. Per k,
// a thread reads its units' weights (consecutive lanes, consecutive addresses) and its points'
// inputs (one address per point, broadcast within the warp) and does a 4 x 4 register block of
// FMAs. Layer 0 reads x directly: z = A_0 xn + b with xn = (x - shift) / scale, Zt_j = A_0[:, j] /
// scale_j (T_0 = diag(1 / scale)).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/activations.h"

#if defined(__CUDACC__)
#define FK_DYNAMIC_SHARED(type, name)                                      \
  extern __shared__ __align__(16) unsigned char fk_dynamic_shared_bytes[]; \
  type* name = reinterpret_cast<type*>(fk_dynamic_shared_bytes)
#define FK_UNROLL _Pragma("unroll")
#elif !defined(FK_DYNAMIC_SHARED)
#error "jet_tile_kernel.cuh: compile with nvcc, or include kernels/cuda_emulation.h first"
#else
#define FK_UNROLL
#endif

namespace fluxkern {

// Limits of the tile kernel; other shapes use the GEMM path.
constexpr int kTileMaxWidth = 128;
constexpr int kTileMaxInputs = 8;
constexpr int kTileMaxOutputs = 32;
constexpr int kTileMaxHidden = 16;
// Threads per block, the register block of one thread, and the tile sizes: P <= kTileMaxPoints
// (kTilePointsPerThread rows of TP >= 8 threads); below kTileMinPoints (a device with too little
// shared memory for the shapes) the launcher falls back.
constexpr int kTileThreads = 256;
constexpr int kTileUnitsPerThread = 4;   // kTileMaxWidth / 32 lanes
constexpr int kTilePointsPerThread = 4;  // kTileMaxPoints / (kTileThreads / 32)
constexpr int kTileMaxPoints = 32;
constexpr int kTileMinPoints = 8;

// Arguments of one launch (passed by value). Buffers as in the GEMM path, all contiguous.
template <typename T>
struct JetTileArgs {
  int64_t n = 0;                         // points N
  int d = 0;                             // inputs
  int m = 0;                             // outputs
  int hidden = 0;                        // hidden layers L
  int tile = 0;                          // points per block P (set by the launcher)
  int widths[kTileMaxHidden] = {};       // W_1..W_L
  const T* x = nullptr;                  // [N, d]
  const T* shift = nullptr;              // [d]
  const T* scale = nullptr;              // [d]
  const T* weights[kTileMaxHidden + 1];  // [W_l, W_{l-1}], last [m, W_L]
  const T* biases[kTileMaxHidden + 1];   // [W_l], last [m]
  T* saved = nullptr;                    // per hidden layer [2d + 3, N, W_l], back to back
  T* y = nullptr;                        // [N, m]
  T* jac = nullptr;                      // [N, m, d]
};

// Shared memory of a launch, in elements of T (layout in the comment at the top).
struct JetTileLayout {
  int64_t row_stride = 0;     // S
  int64_t rows_elems = 0;     // one activation buffer, (1+d) P S
  int64_t weights_elems = 0;  // the largest staged At, W_{l-1} (W_l | 1)
  int64_t bias_elems = 0;     // the largest bias
  FK_HD int64_t total() const { return 2 * rows_elems + weights_elems + bias_elems; }
};

// True when the tile kernel serves these sizes (shared memory aside).
FK_HD bool jet_tile_supports(int64_t d, int64_t m, const int64_t* widths, int64_t hidden) {
  if (d < 1 || d > kTileMaxInputs || m < 1 || m > kTileMaxOutputs) return false;
  if (hidden < 1 || hidden > kTileMaxHidden) return false;
  for (int64_t l = 0; l < hidden; ++l) {
    if (widths[l] < 1 || widths[l] > kTileMaxWidth) return false;
  }
  return true;
}

template <typename I>  // int64_t on the host, int in the kernel's arguments
FK_HD JetTileLayout jet_tile_layout(int64_t d, int64_t m, const I* widths, int64_t hidden,
                                    int64_t tile) {
  JetTileLayout lay;
  int64_t s = d, k = d;
  for (int64_t l = 0; l <= hidden; ++l) {
    const int64_t w = l < hidden ? widths[l] : m;
    if (l < hidden && w > s) s = w;
    const int64_t wt = k * (w | 1);
    if (wt > lay.weights_elems) lay.weights_elems = wt;
    if (w > lay.bias_elems) lay.bias_elems = w;
    k = w;
  }
  lay.row_stride = s | 1;
  lay.rows_elems = (1 + d) * tile * lay.row_stride;
  return lay;
}

// The largest tile P in [min_tile, max_tile] whose shared memory fits `smem_limit` bytes, or 0
// when none does (or the sizes are not served).
inline int jet_tile_points(int64_t d, int64_t m, const int64_t* widths, int64_t hidden,
                           size_t scalar_bytes, size_t smem_limit, int max_tile, int min_tile) {
  if (!jet_tile_supports(d, m, widths, hidden)) return 0;
  if (max_tile > kTileMaxPoints) max_tile = kTileMaxPoints;
  if (min_tile < 1) min_tile = 1;
  for (int p = max_tile; p >= min_tile; --p) {
    const int64_t bytes =
        jet_tile_layout(d, m, widths, hidden, p).total() * static_cast<int64_t>(scalar_bytes);
    if (bytes <= static_cast<int64_t>(smem_limit)) return p;
  }
  return 0;
}

namespace tile_detail {

// The thread mapping of one layer of `w` output units (see the top of this file).
struct Mapping {
  int tu, tp;  // this thread's lane along units and row along points
  int lanes;   // TU
  int rows;    // TP
  int nu, np;  // units and points per thread actually used (<= the register block)
};

__device__ __forceinline__ Mapping mapping_for(int w, int tile) {
  Mapping mp;
  mp.lanes = w > 16 ? 32 : (w > 8 ? 16 : 8);
  mp.rows = static_cast<int>(blockDim.x) / mp.lanes;
  mp.tu = static_cast<int>(threadIdx.x) % mp.lanes;
  mp.tp = static_cast<int>(threadIdx.x) / mp.lanes;
  mp.nu = (w + mp.lanes - 1) / mp.lanes;
  mp.np = (tile + mp.rows - 1) / mp.rows;
  return mp;
}

// acc[q][i] = sum_k in[(row0 + p_q) S + k] * at[k ws + u_i] for this thread's points and its
// first NU units (NU = mp.nu; indices clamped into range, the caller writes only valid ones).
template <int NU, typename T>
__device__ __forceinline__ void tile_gemm_nu(const Mapping& mp, const T* in, int64_t s, int row0,
                                             int tile, const T* at, int ws, int w, int k_len,
                                             T (&acc)[kTilePointsPerThread][kTileUnitsPerThread]) {
  const T* rows[kTilePointsPerThread];
  int units[NU];
  FK_UNROLL
  for (int q = 0; q < kTilePointsPerThread; ++q) {
    const int p = mp.tp + q * mp.rows;
    rows[q] = in + (row0 + (p < tile ? p : tile - 1)) * s;
  }
  FK_UNROLL
  for (int i = 0; i < NU; ++i) {
    const int u = mp.tu + i * mp.lanes;
    units[i] = u < w ? u : w - 1;
  }
  FK_UNROLL
  for (int q = 0; q < kTilePointsPerThread; ++q) {
    FK_UNROLL
    for (int i = 0; i < kTileUnitsPerThread; ++i) acc[q][i] = T(0);
  }
  for (int k = 0; k < k_len; ++k) {
    const T* atk = at + k * ws;
    T a[NU];
    FK_UNROLL
    for (int i = 0; i < NU; ++i) a[i] = atk[units[i]];
    FK_UNROLL
    for (int q = 0; q < kTilePointsPerThread; ++q) {
      if (q >= mp.np) break;
      const T v = rows[q][k];
      FK_UNROLL
      for (int i = 0; i < NU; ++i) acc[q][i] += v * a[i];
    }
  }
}

template <typename T>
__device__ __forceinline__ void tile_gemm(const Mapping& mp, const T* in, int64_t s, int row0,
                                          int tile, const T* at, int ws, int w, int k_len,
                                          T (&acc)[kTilePointsPerThread][kTileUnitsPerThread]) {
  static_assert(kTileUnitsPerThread == 4, "one case per units-per-thread count");
  switch (mp.nu) {
    case 1:
      tile_gemm_nu<1>(mp, in, s, row0, tile, at, ws, w, k_len, acc);
      break;
    case 2:
      tile_gemm_nu<2>(mp, in, s, row0, tile, at, ws, w, k_len, acc);
      break;
    case 3:
      tile_gemm_nu<3>(mp, in, s, row0, tile, at, ws, w, k_len, acc);
      break;
    default:
      tile_gemm_nu<4>(mp, in, s, row0, tile, at, ws, w, k_len, acc);
      break;
  }
}

// Stages A [w, k_len] transposed into `at` [k_len, w | 1] and the bias [w] into `bias_s`.
template <typename T>
__device__ __forceinline__ void stage_layer(const T* __restrict__ a, const T* __restrict__ bias,
                                            int w, int k_len, T* at, T* bias_s) {
  const int ws = w | 1;
  for (int e = static_cast<int>(threadIdx.x); e < w * k_len; e += static_cast<int>(blockDim.x)) {
    const int u = e / k_len, k = e % k_len;
    at[k * ws + u] = a[e];
  }
  for (int u = static_cast<int>(threadIdx.x); u < w; u += static_cast<int>(blockDim.x)) {
    bias_s[u] = bias[u];
  }
}

}  // namespace tile_detail

// One block per tile of P = args.tile points; blockDim.x threads (kTileThreads on the GPU; any
// multiple of 32 with blockDim.x / 32 * kTilePointsPerThread >= P works); shared memory
// jet_tile_layout(...).total() elements of T.
template <typename T, Activation A>
__global__ void __launch_bounds__(kTileThreads) jet_tile_forward_kernel(const JetTileArgs<T> args) {
  using tile_detail::Mapping;
  FK_DYNAMIC_SHARED(T, smem);
  const int d = args.d, tile = args.tile, hidden = args.hidden;
  const int64_t n = args.n;
  const JetTileLayout lay = jet_tile_layout(d, args.m, args.widths, hidden, tile);
  const int64_t s = lay.row_stride;
  T* in = smem;                        // [(1+d) P, S]
  T* out = smem + lay.rows_elems;      // [(1+d) P, S]
  T* at = out + lay.rows_elems;        // [W_{l-1}, W_l | 1]
  T* bias_s = at + lay.weights_elems;  // [W_l]
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * tile;
  const int valid = static_cast<int>(n - n0 < tile ? n - n0 : tile);  // points of this tile

  // xn [P, d] into the primal rows of `in`; rows past N get 0 (computed, never written).
  for (int e = static_cast<int>(threadIdx.x); e < tile * d; e += static_cast<int>(blockDim.x)) {
    const int p = e / d, j = e % d;
    in[p * s + j] = p < valid ? (args.x[(n0 + p) * d + j] - args.shift[j]) / args.scale[j] : T(0);
  }

  int64_t layer_offset = 0;  // start of layer l's [2d + 3, N, W_l] buffer in saved
  int k_len = d;             // W_{l-1}
  for (int l = 0; l < hidden; ++l) {
    const int w = args.widths[l];
    const int ws = w | 1;
    tile_detail::stage_layer(args.weights[l], args.biases[l], w, k_len, at, bias_s);
    __syncthreads();
    const Mapping mp = tile_detail::mapping_for(w, tile);
    T* saved = args.saved + layer_offset;  // [2d + 3, N, W]
    const int64_t slot = n * w;            // elements per [N, W] slot
    T acc[kTilePointsPerThread][kTileUnitsPerThread];
    T ds[kTilePointsPerThread][kTileUnitsPerThread] = {};
    // Primal rows: z = A h + b -> h = s(z), s'(z), s''(z).
    tile_detail::tile_gemm(mp, in, s, 0, tile, at, ws, w, k_len, acc);
    FK_UNROLL
    for (int q = 0; q < kTilePointsPerThread; ++q) {
      const int p = mp.tp + q * mp.rows;
      FK_UNROLL
      for (int i = 0; i < kTileUnitsPerThread; ++i) {
        const int u = mp.tu + i * mp.lanes;
        if (q >= mp.np || i >= mp.nu || p >= tile || u >= w) continue;
        const ActivationValue<T> v = activation_eval(A, acc[q][i] + bias_s[u]);
        ds[q][i] = v.ds;
        out[p * s + u] = v.s;
        if (p < valid) {
          const int64_t e = (n0 + p) * w + u;
          saved[e] = v.ds;
          saved[(d + 1) * slot + e] = v.s;
          saved[(2 * d + 2) * slot + e] = v.d2s;
        }
      }
    }
    // Tangent rows j: Zt_j = A T_j (layer 0: A[:, j] / scale_j), T_j = s'(z) Zt_j.
    for (int j = 1; j <= d; ++j) {
      if (l > 0) tile_detail::tile_gemm(mp, in, s, j * tile, tile, at, ws, w, k_len, acc);
      FK_UNROLL
      for (int q = 0; q < kTilePointsPerThread; ++q) {
        const int p = mp.tp + q * mp.rows;
        FK_UNROLL
        for (int i = 0; i < kTileUnitsPerThread; ++i) {
          const int u = mp.tu + i * mp.lanes;
          if (q >= mp.np || i >= mp.nu || p >= tile || u >= w) continue;
          const T zt = l > 0 ? acc[q][i] : at[(j - 1) * ws + u] / args.scale[j - 1];
          const T t = ds[q][i] * zt;
          out[(j * tile + p) * s + u] = t;
          if (p < valid) {
            const int64_t e = (n0 + p) * w + u;
            saved[j * slot + e] = zt;
            saved[(d + 1 + j) * slot + e] = t;
          }
        }
      }
    }
    __syncthreads();  // `out` complete, `at` free for the next layer
    T* tmp = in;
    in = out;
    out = tmp;
    layer_offset += (2 * d + 3) * slot;
    k_len = w;
  }

  // Output layer: y = A_o h_L + b_o, J_j = A_o T_L,j.
  const int m = args.m;
  tile_detail::stage_layer(args.weights[hidden], args.biases[hidden], m, k_len, at, bias_s);
  __syncthreads();
  const Mapping mp = tile_detail::mapping_for(m, tile);
  T acc[kTilePointsPerThread][kTileUnitsPerThread];
  for (int j = 0; j <= d; ++j) {
    tile_detail::tile_gemm(mp, in, s, j * tile, tile, at, m | 1, m, k_len, acc);
    FK_UNROLL
    for (int q = 0; q < kTilePointsPerThread; ++q) {
      const int p = mp.tp + q * mp.rows;
      FK_UNROLL
      for (int i = 0; i < kTileUnitsPerThread; ++i) {
        const int o = mp.tu + i * mp.lanes;
        if (q >= mp.np || i >= mp.nu || p >= valid || o >= m) continue;
        if (j == 0) {
          args.y[(n0 + p) * m + o] = acc[q][i] + bias_s[o];
        } else {
          args.jac[((n0 + p) * m + o) * d + (j - 1)] = acc[q][i];
        }
      }
    }
  }
}

}  // namespace fluxkern
