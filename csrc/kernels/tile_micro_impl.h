// Register-blocked micro-kernels and vector activation loops shared by the per-tile CPU kernels
// (the fused loss, loss_tile_cpu_impl.h, and the jet, jet_tile_cpu_impl.h). A fragment, not a
// header: the *_impl.h files include it inside their `namespace fluxkern { namespace
// FK_CPU_VARIANT { namespace {` after kernels/cpu_vec_impl.h, so that each instruction-set build
// gets its own copy (no include guard on purpose: one inclusion per translation unit). Needs
// <algorithm>, kernels/activations.h and FK_TILE_INLINE. Buffers are points-major tiles of rows
// padded to Wp = W rounded up to one vector (32 bytes, or FK_VEC_BYTES; loss_tile_cpu.h).

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
  // 3 vectors per block: 12 accumulators of the 16 ymm registers. With 64-byte vectors (32 zmm
  // registers) blocks of 4 vectors, then one of 3 (W = 50 float64: 7 vectors = 4 + 3, not 3 + 3 +
  // 1, whose last block is bound by its loads).
  constexpr int NR = FK_VEC_BYTES == 64 ? 4 : 3;
  int64_t j = 0;
  for (; j + NR <= nv; j += NR) {
    gemm_rows<T, NR, ACC>(m_len, k_len, a, as, ak, b + j * L, ldb, c + j * L, ldc);
  }
  if (NR == 4 && nv - j == 3) {
    gemm_rows<T, 3, ACC>(m_len, k_len, a, as, ak, b + j * L, ldb, c + j * L, ldc);
  } else if (nv - j == 2) {
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
  typedef int64_t type __attribute__((vector_size(FK_VEC_BYTES)));
  static constexpr int64_t kSign = INT64_MIN, kBias = 1023, kMantissa = 52;
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
};
template <>
struct VecBits<float> {
  typedef int32_t type __attribute__((vector_size(FK_VEC_BYTES)));
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
