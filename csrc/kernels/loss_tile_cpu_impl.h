// Body of the fused per-tile CPU loss kernel (loss_tile_cpu.h), compiled once per instruction-set
// variant: loss_tile_cpu.cpp includes it for the baseline x86-64 build, loss_tile_cpu_avx2.cpp
// for AVX2 + FMA; the public function in loss_tile_cpu.cpp picks one at run time. Define
// FK_CPU_VARIANT before including. No include guard on purpose.
#include <algorithm>

#include "kernels/loss_tile_cpu.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in inline helpers of the SSE build

namespace fluxkern {
namespace FK_CPU_VARIANT {
namespace {

#define FK_TILE_INLINE inline __attribute__((always_inline))

#include "kernels/cpu_vec_impl.h"     // vec_t, kLanes, vload, vstore, hsum
#include "kernels/tile_micro_impl.h"  // gemm, tanh_vec, activation_*_tile, add_row_sum

// Does any point row [0, p_rows) of the tile need tangents (see loss_tile_cpu.h)?
template <typename T>
bool tile_needs_tangents(const MonomialTable<T>& t, int64_t p_rows, const T* cols) {
  for (int64_t k = 0; k < t.n_mono; ++k) {
    const int32_t* ix = t.index + k * kMonoCols;
    if (ix[2] < t.m && ix[3] < t.m && ix[4] < t.m) continue;  // reads no entry of J
    if (ix[1] < 0) return true;
    for (int64_t p = 0; p < p_rows; ++p) {
      if (cols[p * t.n_cols + ix[1]] != T(0)) return true;
    }
  }
  return false;
}

template <Activation A, typename T>
void run_tile(const TilePlan& pl, const T* shift, const T* scale, const T* pk,
              const TileBlock<T>& blk, int64_t tile, T* grad, T* sc) {
  constexpr int64_t L = kLanes<T>;
  const int64_t d = pl.d, m = pl.m, nh = pl.hidden, k_cols = pl.n_cols, nt = pl.nt;
  // Points of the tile: np points (pairs), P point rows.
  const int64_t per = blk.paired ? kTilePoints / 2 : kTilePoints;
  const int64_t p0 = tile * per;
  const int64_t np = std::min(per, blk.n - p0);
  const int64_t p_rows = blk.paired ? 2 * np : np;
  auto global_row = [&](int64_t r) { return r < np ? p0 + r : blk.n + p0 + (r - np); };

  T* cols = sc + pl.cols;  // [P, K]
  T* xn = sc + pl.xn;      // [P, d]
  for (int64_t r = 0; r < p_rows; ++r) {
    const int64_t q = global_row(r);
    for (int64_t k = 0; k < k_cols; ++k) cols[r * k_cols + k] = blk.cols[q * k_cols + k];
    for (int64_t i = 0; i < d; ++i) xn[r * d + i] = (blk.x[q * d + i] - shift[i]) / scale[i];
  }
  const int64_t dt = tile_needs_tangents(blk.table, p_rows, cols) ? nt : 0;
  const int64_t rows = (1 + dt) * p_rows;  // R
  // Tangent seeds in standardised input space: u[k][i] = v_k[i] / scale_i.
  T u[kTileMaxInputs][kTileMaxInputs];
  for (int64_t k = 0; k < dt; ++k) {
    for (int64_t i = 0; i < d; ++i) {
      u[k][i] = (blk.dirs != nullptr ? blk.dirs[k * d + i] : T(k == i ? 1 : 0)) / scale[i];
    }
  }

  // ---- forward: hidden layers
  for (int64_t l = 0; l < nh; ++l) {
    const int64_t wp = pl.wpad[l];
    T* zz = sc + pl.zz[l];
    if (l == 0) {
      gemm<T, false>(p_rows, d, wp / L, xn, d, 1, pk + pl.at[0], wp, zz, wp);
      for (int64_t dir = 0; dir < dt; ++dir) {  // Zt_k = A u_k at every point
        T* zt0 = zz + (1 + dir) * p_rows * wp;
        for (int64_t j = 0; j < wp; ++j) {
          T acc = T(0);
          for (int64_t i = 0; i < d; ++i) acc += pk[pl.at[0] + i * wp + j] * u[dir][i];
          zt0[j] = acc;
        }
        for (int64_t p = 1; p < p_rows; ++p) std::copy(zt0, zt0 + wp, zt0 + p * wp);
      }
    } else {
      const int64_t wpi = pl.wpad[l - 1];
      gemm<T, false>(rows, pl.width[l - 1], wp / L, sc + pl.h[l - 1], wpi, 1, pk + pl.at[l], wp, zz,
                     wp);
    }
    activation_forward_tile<A, T>(p_rows, dt, wp, pk + pl.b[l], zz, sc + pl.s2[l], sc + pl.h[l]);
  }

  // ---- output layer: y [R, m] (value rows with the bias, then dy/dx_j rows)
  const int64_t wl = pl.wpad[nh - 1];
  const T* hl = sc + pl.h[nh - 1];  // [R, Wp_L]
  T* y = sc + pl.y;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < m; ++o) {
      vec_t<T> acc{};
      for (int64_t j = 0; j < wl; j += L)
        acc += vload(hl + r * wl + j) * vload(pk + pl.ao + o * wl + j);
      y[r * m + o] = hsum<T>(acc) + (r < p_rows ? pk[pl.bo + o] : T(0));
    }
  }

  // ---- residuals and loss at the tile's points
  T* jac = sc + pl.jac;  // [P, m, nt]
  for (int64_t p = 0; p < p_rows; ++p) {
    for (int64_t o = 0; o < m; ++o) {
      for (int64_t i = 0; i < nt; ++i) {
        jac[(p * m + o) * nt + i] = i < dt ? y[((1 + i) * p_rows + p) * m + o] : T(0);
      }
    }
  }
  T* ybar = sc + pl.ybar;  // [P, m]
  T* jbar = sc + pl.jbar;  // [P, m, nt]
  LossSpec<T> spec = blk.loss;
  spec.lam += p0 * spec.lam_stride;
  if (spec.gcoef != nullptr) spec.gcoef += p0 * blk.table.n_mono;  // [n, M] rows of the tile
  T r_s[kMaxResiduals];
  T g_s[kMaxResiduals];
  for (int64_t q = 0; q < np; ++q) {
    residual_loss_point(blk.table, spec, np, blk.paired, q, y, jac, cols,
                        blk.c + p0 * blk.table.n_res, blk.loss_p + p0, ybar, jbar, r_s, g_s);
  }

  // ---- reverse pass
  T* gy = sc + pl.gy;  // [R, m]
  for (int64_t p = 0; p < p_rows; ++p) {
    for (int64_t o = 0; o < m; ++o) {
      gy[p * m + o] = ybar[p * m + o];
      for (int64_t i = 0; i < dt; ++i) {
        gy[((1 + i) * p_rows + p) * m + o] = jbar[(p * m + o) * nt + i];
      }
    }
  }
  // Output layer: dA_o += Gy^T H_L, db_o += sum of the value rows of Gy, G = Gy A_o.
  gemm<T, true>(m, rows, wl / L, gy, 1, m, hl, wl, grad + pl.ao, wl);
  for (int64_t o = 0; o < m; ++o) {
    T s = T(0);
    for (int64_t p = 0; p < p_rows; ++p) s += gy[p * m + o];
    grad[pl.bo + o] += s;
  }
  int cur = 0;
  T* g = sc + pl.g[cur];
  gemm<T, false>(rows, m, wl / L, gy, m, 1, pk + pl.ao, wl, g, wl);
  for (int64_t l = nh; l-- > 0;) {
    const int64_t wp = pl.wpad[l];
    activation_backward_tile<T>(p_rows, dt, wp, sc + pl.zz[l], sc + pl.s2[l], g);
    add_row_sum<T>(p_rows, wp, g, wp, T(1), grad + pl.b[l]);
    if (l > 0) {
      const int64_t wi = pl.width[l - 1], wpi = pl.wpad[l - 1];
      const T* hin = sc + pl.h[l - 1];  // [R, Wp_{l-1}]
      gemm<T, true>(wi, rows, wp / L, hin, 1, wpi, g, wp, grad + pl.at[l], wp);
      cur = 1 - cur;
      T* next = sc + pl.g[cur];
      gemm<T, false>(rows, pl.width[l], wpi / L, g, wp, 1, pk + pl.a[l], wpi, next, wpi);
      g = next;
    } else {
      gemm<T, true>(d, p_rows, wp / L, xn, 1, d, g, wp, grad + pl.at[0], wp);
      for (int64_t dir = 0; dir < dt; ++dir) {  // Zt_k's input is the constant seed u_k
        for (int64_t i = 0; i < d; ++i) {
          if (u[dir][i] == T(0)) continue;
          add_row_sum<T>(p_rows, wp, g + (1 + dir) * p_rows * wp, wp, u[dir][i],
                         grad + pl.at[0] + i * wp);
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void block_loss_tiles_cpu(const TilePlan& plan, Activation act, const T* shift, const T* scale,
                          const T* packed, const TileBlock<T>& block, int64_t tile0, int64_t tile1,
                          T* grad, T* scratch) {
  for (int64_t t = tile0; t < tile1; ++t) {
    switch (act) {
      case Activation::Tanh:
        run_tile<Activation::Tanh, T>(plan, shift, scale, packed, block, t, grad, scratch);
        break;
      case Activation::Silu:
        run_tile<Activation::Silu, T>(plan, shift, scale, packed, block, t, grad, scratch);
        break;
      case Activation::Sin:
        run_tile<Activation::Sin, T>(plan, shift, scale, packed, block, t, grad, scratch);
        break;
    }
  }
}

template void block_loss_tiles_cpu<float>(const TilePlan&, Activation, const float*, const float*,
                                          const float*, const TileBlock<float>&, int64_t, int64_t,
                                          float*, float*);
template void block_loss_tiles_cpu<double>(const TilePlan&, Activation, const double*,
                                           const double*, const double*, const TileBlock<double>&,
                                           int64_t, int64_t, double*, double*);

}  // namespace FK_CPU_VARIANT
}  // namespace fluxkern

#pragma GCC diagnostic pop
