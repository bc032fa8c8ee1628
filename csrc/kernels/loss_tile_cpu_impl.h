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

#include "kernels/cpu_vec_impl.h"  // vec_t, kLanes, vload, vstore, hsum

// C[i, 0:NR lanes-vectors] (+)= sum_k a(i, k) B[k, :] for i < MR, where a(i, k) = a[i * as + k *
// ak]: an MR x NR block of vector accumulators held in registers over the whole k loop.
template <typename T, int MR, int NR, bool ACC>
FK_TILE_INLINE void gemm_block(int64_t k_len, const T* __restrict__ a, int64_t as, int64_t ak,
                               const T* __restrict__ b, int64_t ldb, T* __restrict__ c,
                               int64_t ldc) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  V acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = ACC ? vload(c + i * ldc + j * L) : V{};
  }
  for (int64_t k = 0; k < k_len; ++k) {
    V bv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) bv[j] = vload(b + k * ldb + j * L);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i * as + k * ak];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bv[j];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) vstore(c + i * ldc + j * L, acc[i][j]);
  }
}

template <typename T, int NR, bool ACC>
FK_TILE_INLINE void gemm_rows(int64_t m_len, int64_t k_len, const T* a, int64_t as, int64_t ak,
                              const T* b, int64_t ldb, T* c, int64_t ldc) {
  constexpr int MR = 4;
  int64_t i = 0;
  for (; i + MR <= m_len; i += MR) {
    gemm_block<T, MR, NR, ACC>(k_len, a + i * as, as, ak, b, ldb, c + i * ldc, ldc);
  }
  switch (m_len - i) {
    case 3:
      gemm_block<T, 3, NR, ACC>(k_len, a + i * as, as, ak, b, ldb, c + i * ldc, ldc);
      break;
    case 2:
      gemm_block<T, 2, NR, ACC>(k_len, a + i * as, as, ak, b, ldb, c + i * ldc, ldc);
      break;
    case 1:
      gemm_block<T, 1, NR, ACC>(k_len, a + i * as, as, ak, b, ldb, c + i * ldc, ldc);
      break;
    default:
      break;
  }
}

// C [M, nv vectors] (+)= a [M, K] (strides as, ak) times B [K, nv vectors] (row stride ldb).
template <typename T, bool ACC>
void gemm(int64_t m_len, int64_t k_len, int64_t nv, const T* a, int64_t as, int64_t ak, const T* b,
          int64_t ldb, T* c, int64_t ldc) {
  constexpr int64_t L = kLanes<T>;
  constexpr int NR = 3;
  int64_t j = 0;
  for (; j + NR <= nv; j += NR) {
    gemm_rows<T, NR, ACC>(m_len, k_len, a, as, ak, b + j * L, ldb, c + j * L, ldc);
  }
  if (nv - j == 2) {
    gemm_rows<T, 2, ACC>(m_len, k_len, a, as, ak, b + j * L, ldb, c + j * L, ldc);
  } else if (nv - j == 1) {
    gemm_rows<T, 1, ACC>(m_len, k_len, a, as, ak, b + j * L, ldb, c + j * L, ldc);
  }
}

template <Activation A, typename T>
FK_TILE_INLINE ActivationValue<T> act_at(T z) {
  if constexpr (A == Activation::Tanh) {
    return tanh_eval(z);
  } else if constexpr (A == Activation::Silu) {
    return silu_eval(z);
  } else {
    return activation_from_sincos(std::sin(z), std::cos(z));
  }
}

// Integer vector of the width and lane size of vec_t<T> (for bit operations).
template <typename T>
struct VecBits;
template <>
struct VecBits<double> {
  typedef int64_t type __attribute__((vector_size(32)));
  static constexpr int64_t kSign = INT64_MIN, kBias = 1023, kMantissa = 52;
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
};
template <>
struct VecBits<float> {
  typedef int32_t type __attribute__((vector_size(32)));
  static constexpr int32_t kSign = INT32_MIN, kBias = 127, kMantissa = 23;
  static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
};

// tanh and its first two derivatives on one vector, the same formula as tanh_eval
// (activations.h) written on vectors so that the loop has no blends or spills: tanh z =
// sign(z) (-em) / (2 + em), em = expm1(x), x = -2 |z| clamped at -40 (tanh is 1 to the last bit
// beyond |z| = 20; NaN passes the clamp and propagates). x = k ln 2 + r with k rounded by the
// 1.5 * 2^mantissa trick (its low bits are k as an integer), e^r - 1 by the Taylor polynomial
// of exp_parts.
template <typename T>
FK_TILE_INLINE void tanh_vec(vec_t<T> z, vec_t<T>& s, vec_t<T>& ds, vec_t<T>& d2s) {
  using V = vec_t<T>;
  using B = VecBits<T>;
  using I = typename B::type;
  using E = ExpTraits<T>;
  const I zb = reinterpret_cast<I>(z);
  const I sign = zb & B::kSign;
  V x = reinterpret_cast<V>(zb ^ sign) * T(-2);  // -2 |z|
  x = x < T(-40) ? V{} + T(-40) : x;
  const V t = x * T(1.4426950408889634) + B::kMagic;
  const V k = t - B::kMagic;
  const V r = (x - k * E::kLn2Hi) - k * E::kLn2Lo;
  constexpr InvFactorials<T, E::kDegree> kInv{};
  V q = V{} + kInv.c[E::kDegree];
#pragma GCC unroll 16
  for (int i = E::kDegree - 1; i >= 1; --i) q = q * r + kInv.c[i];
  const I kbits = reinterpret_cast<I>(t) - reinterpret_cast<I>(V{} + B::kMagic);
  const V two_k = reinterpret_cast<V>((kbits + B::kBias) << B::kMantissa);
  const V em = two_k * (r * q) + (two_k - T(1));
  const V th = -em / (em + T(2));
  s = reinterpret_cast<V>(reinterpret_cast<I>(th) | sign);
  ds = T(1) - s * s;
  d2s = T(-2) * s * ds;
}

// Value rows of zz [P, Wp]: z + b -> s'(z); h [P, Wp] <- s(z); s2 [P, Wp] <- s''(z). Tangent
// rows: h[(1 + j) P + p] = s'(z) * Zt (zz keeps Zt).
template <Activation A, typename T>
void activation_forward_tile(int64_t p_rows, int64_t dt, int64_t wp, const T* __restrict__ bias,
                             T* __restrict__ zz, T* __restrict__ s2, T* __restrict__ h) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  for (int64_t p = 0; p < p_rows; ++p) {
    T* __restrict__ z = zz + p * wp;
    T* __restrict__ hp = h + p * wp;
    T* __restrict__ s2p = s2 + p * wp;
    if constexpr (A == Activation::Tanh) {
      for (int64_t j = 0; j < wp; j += L) {
        V sv, dsv, d2sv;
        tanh_vec<T>(vload(z + j) + vload(bias + j), sv, dsv, d2sv);
        vstore(hp + j, sv);
        vstore(z + j, dsv);
        vstore(s2p + j, d2sv);
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < wp; ++j) {
        const ActivationValue<T> v = act_at<A, T>(z[j] + bias[j]);
        hp[j] = v.s;
        z[j] = v.ds;
        s2p[j] = v.d2s;
      }
    }
  }
  for (int64_t dir = 0; dir < dt; ++dir) {
    for (int64_t p = 0; p < p_rows; ++p) {
      const T* ds = zz + p * wp;
      const T* zt = zz + ((1 + dir) * p_rows + p) * wp;
      T* ht = h + ((1 + dir) * p_rows + p) * wp;
      for (int64_t j = 0; j < wp; j += L) vstore(ht + j, vload(ds + j) * vload(zt + j));
    }
  }
}

// (hbar, Tbar) -> (zbar, Ztbar) in place in g [R, Wp]:
//   zbar = hbar s'(z) + sum_j Tbar_j s''(z) Zt_j,  Ztbar_j = Tbar_j s'(z).
template <typename T>
void activation_backward_tile(int64_t p_rows, int64_t dt, int64_t wp, const T* zz, const T* s2,
                              T* g) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  for (int64_t p = 0; p < p_rows; ++p) {
    const T* ds = zz + p * wp;
    const T* d2s = s2 + p * wp;
    T* gp = g + p * wp;
    for (int64_t j = 0; j < wp; j += L) {
      const V s1 = vload(ds + j);
      const V sd = vload(d2s + j);
      V zb = vload(gp + j) * s1;
      for (int64_t dir = 0; dir < dt; ++dir) {
        const int64_t row = ((1 + dir) * p_rows + p) * wp + j;
        const V tb = vload(g + row);
        zb += tb * sd * vload(zz + row);
        vstore(g + row, tb * s1);
      }
      vstore(gp + j, zb);
    }
  }
}

// out [wp] += sum over rows r < n of m [r, wp] (row stride ld).
template <typename T>
FK_TILE_INLINE void add_row_sum(int64_t n, int64_t wp, const T* m, int64_t ld, T scale, T* out) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  for (int64_t j = 0; j < wp; j += L) {
    V acc{};
    for (int64_t r = 0; r < n; ++r) acc += vload(m + r * ld + j);
    vstore(out + j, vload(out + j) + acc * scale);
  }
}

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
