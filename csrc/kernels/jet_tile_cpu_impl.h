// Body of the per-tile CPU jet kernels (jet_tile_cpu.h), compiled once per instruction-set
// variant: jet_tile_cpu.cpp includes it for the baseline x86-64 build, jet_tile_cpu_avx2.cpp for
// AVX2 + FMA; the public functions in jet_tile_cpu.cpp pick one at run time. Define
// FK_CPU_VARIANT before including. No include guard on purpose.
#include <algorithm>

#include "kernels/jet_tile_cpu.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in inline helpers of the SSE build

namespace fluxkern {
namespace FK_CPU_VARIANT {
namespace {

#define FK_TILE_INLINE inline __attribute__((always_inline))

#include "kernels/cpu_vec_impl.h"     // vec_t, kLanes, vload, vstore, hsum
#include "kernels/tile_micro_impl.h"  // gemm, tanh_vec, activation_*_tile, add_row_sum

// The hidden layers of one tile: points [p0, p0 + P) with their d tangent directions, R = (1 + d)
// P rows (row dir * P + p). Leaves xn [P, d], and per layer zz (s'(z) value rows, Zt tangent
// rows), s2 and h in the scratch (layout of TilePlan). Returns P.
template <Activation A, typename T>
int64_t forward_hidden(const TilePlan& pl, const JetTileInput<T>& in, int64_t tile, T* sc) {
  constexpr int64_t L = kLanes<T>;
  const int64_t d = pl.d, nh = pl.hidden;
  const int64_t p0 = tile * kTilePoints;
  const int64_t np = std::min(kTilePoints, in.n - p0);
  const int64_t rows = (1 + d) * np;
  const T* pk = in.packed;
  T* xn = sc + pl.xn;  // [P, d]
  for (int64_t p = 0; p < np; ++p) {
    for (int64_t i = 0; i < d; ++i) {
      xn[p * d + i] = (in.x[(p0 + p) * d + i] - in.shift[i]) / in.scale[i];
    }
  }
  for (int64_t l = 0; l < nh; ++l) {
    const int64_t wp = pl.wpad[l];
    T* zz = sc + pl.zz[l];  // [R, Wp]
    if (l == 0) {
      gemm<T, false>(np, d, wp / L, xn, d, 1, pk + pl.at[0], wp, zz, wp);
      // Zt_j = A e_j / scale_j at every point (T_0 = diag(1 / scale)).
      for (int64_t dir = 0; dir < d; ++dir) {
        T* zt0 = zz + (1 + dir) * np * wp;
        const T inv = T(1) / in.scale[dir];
        for (int64_t k = 0; k < wp; ++k) zt0[k] = pk[pl.at[0] + dir * wp + k] * inv;
        for (int64_t p = 1; p < np; ++p) std::copy(zt0, zt0 + wp, zt0 + p * wp);
      }
    } else {
      const int64_t wpi = pl.wpad[l - 1];
      gemm<T, false>(rows, pl.width[l - 1], wp / L, sc + pl.h[l - 1], wpi, 1, pk + pl.at[l], wp, zz,
                     wp);
    }
    activation_forward_tile<A, T>(np, d, wp, pk + pl.b[l], zz, sc + pl.s2[l], sc + pl.h[l]);
  }
  return np;
}

template <Activation A, typename T>
void forward_tile(const TilePlan& pl, const JetTileInput<T>& in, int64_t tile, T* y, T* jac,
                  T* sc) {
  constexpr int64_t L = kLanes<T>;
  const int64_t d = pl.d, m = pl.m;
  const int64_t np = forward_hidden<A, T>(pl, in, tile, sc);
  const int64_t p0 = tile * kTilePoints;
  const int64_t wl = pl.wpad[pl.hidden - 1];
  const T* hl = sc + pl.h[pl.hidden - 1];  // [R, Wp_L]
  const T* ao = in.packed + pl.ao;         // [m, Wp_L]
  for (int64_t p = 0; p < np; ++p) {
    for (int64_t o = 0; o < m; ++o) {
      vec_t<T> acc{};
      for (int64_t j = 0; j < wl; j += L) acc += vload(hl + p * wl + j) * vload(ao + o * wl + j);
      y[(p0 + p) * m + o] = hsum<T>(acc) + in.packed[pl.bo + o];
    }
  }
  for (int64_t dir = 0; dir < d; ++dir) {
    for (int64_t p = 0; p < np; ++p) {
      const T* hr = hl + ((1 + dir) * np + p) * wl;  // [Wp_L]
      for (int64_t o = 0; o < m; ++o) {
        vec_t<T> acc{};
        for (int64_t j = 0; j < wl; j += L) acc += vload(hr + j) * vload(ao + o * wl + j);
        jac[((p0 + p) * m + o) * d + dir] = hsum<T>(acc);
      }
    }
  }
}

template <Activation A, typename T>
void backward_tile(const TilePlan& pl, const JetTileInput<T>& in, const T* grad_y, const T* grad_J,
                   int64_t tile, T* grad_x, T* acc, T* sc) {
  constexpr int64_t L = kLanes<T>;
  const int64_t d = pl.d, m = pl.m, nh = pl.hidden;
  const int64_t np = forward_hidden<A, T>(pl, in, tile, sc);
  const int64_t p0 = tile * kTilePoints;
  const int64_t rows = (1 + d) * np;
  const T* pk = in.packed;
  const T* xn = sc + pl.xn;  // [P, d]

  T* gy = sc + pl.gy;  // [R, m]: (ybar, Jbar_1..d) rows
  for (int64_t p = 0; p < np; ++p) {
    for (int64_t o = 0; o < m; ++o) {
      gy[p * m + o] = grad_y[(p0 + p) * m + o];
      for (int64_t dir = 0; dir < d; ++dir) {
        gy[((1 + dir) * np + p) * m + o] = grad_J[((p0 + p) * m + o) * d + dir];
      }
    }
  }
  // Output layer: dA_o += Gy^T H_L, db_o += sum of the value rows of Gy, G = Gy A_o.
  const int64_t wl = pl.wpad[nh - 1];
  const T* hl = sc + pl.h[nh - 1];  // [R, Wp_L]
  gemm<T, true>(m, rows, wl / L, gy, 1, m, hl, wl, acc + pl.ao, wl);
  for (int64_t o = 0; o < m; ++o) {
    T s = T(0);
    for (int64_t p = 0; p < np; ++p) s += gy[p * m + o];
    acc[pl.bo + o] += s;
  }
  int cur = 0;
  T* g = sc + pl.g[cur];  // [R, Wp]
  gemm<T, false>(rows, m, wl / L, gy, m, 1, pk + pl.ao, wl, g, wl);
  for (int64_t l = nh; l-- > 0;) {
    const int64_t wp = pl.wpad[l];
    activation_backward_tile<T>(np, d, wp, sc + pl.zz[l], sc + pl.s2[l], g);
    add_row_sum<T>(np, wp, g, wp, T(1), acc + pl.b[l]);
    if (l > 0) {
      const int64_t wi = pl.width[l - 1], wpi = pl.wpad[l - 1];
      const T* hin = sc + pl.h[l - 1];  // [R, Wp_{l-1}]
      gemm<T, true>(wi, rows, wp / L, hin, 1, wpi, g, wp, acc + pl.at[l], wp);
      cur = 1 - cur;
      T* next = sc + pl.g[cur];
      gemm<T, false>(rows, pl.width[l], wpi / L, g, wp, 1, pk + pl.a[l], wpi, next, wpi);
      g = next;
      continue;
    }
    // First layer: dA_1 += zbar^T xn (the tangent part, sum_p Ztbar_j / scale_j, is added once
    // from the accumulated Ztbar sums by the caller).
    gemm<T, true>(d, np, wp / L, xn, 1, d, g, wp, acc + pl.at[0], wp);
    for (int64_t dir = 0; dir < d; ++dir) {
      add_row_sum<T>(np, wp, g + (1 + dir) * np * wp, wp, T(1),
                     acc + jet_tile_acc_ztbar(pl) + dir * wp);
    }
    // xnbar = A_1^T zbar per point; grad_x = xnbar / scale.
    T* xx = acc + jet_tile_acc_xx(pl);  // [d]
    for (int64_t p = 0; p < np; ++p) {
      for (int64_t i = 0; i < d; ++i) {
        vec_t<T> v{};
        for (int64_t k = 0; k < wp; k += L) {
          v += vload(g + p * wp + k) * vload(pk + pl.at[0] + i * wp + k);
        }
        const T xnbar = hsum<T>(v);
        grad_x[(p0 + p) * d + i] = xnbar / in.scale[i];
        xx[i] += xnbar * xn[p * d + i];
      }
    }
  }
}

}  // namespace

template <typename T>
void jet_forward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                           int64_t tile0, int64_t tile1, T* y, T* jac, T* scratch) {
  for (int64_t t = tile0; t < tile1; ++t) {
    switch (act) {
      case Activation::Tanh:
        forward_tile<Activation::Tanh, T>(plan, in, t, y, jac, scratch);
        break;
      case Activation::Silu:
        forward_tile<Activation::Silu, T>(plan, in, t, y, jac, scratch);
        break;
      case Activation::Sin:
        forward_tile<Activation::Sin, T>(plan, in, t, y, jac, scratch);
        break;
    }
  }
}

template <typename T>
void jet_backward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                            const T* grad_y, const T* grad_J, int64_t tile0, int64_t tile1,
                            T* grad_x, T* acc, T* scratch) {
  for (int64_t t = tile0; t < tile1; ++t) {
    switch (act) {
      case Activation::Tanh:
        backward_tile<Activation::Tanh, T>(plan, in, grad_y, grad_J, t, grad_x, acc, scratch);
        break;
      case Activation::Silu:
        backward_tile<Activation::Silu, T>(plan, in, grad_y, grad_J, t, grad_x, acc, scratch);
        break;
      case Activation::Sin:
        backward_tile<Activation::Sin, T>(plan, in, grad_y, grad_J, t, grad_x, acc, scratch);
        break;
    }
  }
}

#define FK_JET_TILE_INSTANTIATE(T)                                                             \
  template void jet_forward_tiles_cpu<T>(const TilePlan&, Activation, const JetTileInput<T>&,  \
                                         int64_t, int64_t, T*, T*, T*);                        \
  template void jet_backward_tiles_cpu<T>(const TilePlan&, Activation, const JetTileInput<T>&, \
                                          const T*, const T*, int64_t, int64_t, T*, T*, T*);
FK_JET_TILE_INSTANTIATE(float)
FK_JET_TILE_INSTANTIATE(double)
#undef FK_JET_TILE_INSTANTIATE
#undef FK_TILE_INLINE

}  // namespace FK_CPU_VARIANT
}  // namespace fluxkern

#pragma GCC diagnostic pop
