// Body of the dense quasi-Newton kernels (dense_qn_cpu.h), compiled once per instruction-set
// variant: dense_qn_cpu.cpp includes it for the baseline x86-64 build, dense_qn_cpu_avx2.cpp for
// AVX2 + FMA; the public functions in dense_qn_cpu.cpp pick one at run time. Define
// FK_CPU_VARIANT before including. No include guard on purpose.
#include <algorithm>
#include <cstdint>

#include "kernels/dense_qn_cpu.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in inline helpers of the SSE build

namespace fluxkern {
namespace FK_CPU_VARIANT {
namespace {

#define FK_TILE_INLINE inline __attribute__((always_inline))
#include "kernels/cpu_vec_impl.h"  // vec_t, kLanes, vload, vstore, hsum

}  // namespace

// The first column j >= from of row pointer `row` at which row + j is 32-byte aligned (at most p).
template <typename T>
FK_TILE_INLINE int64_t aligned_from(const T* row, int64_t from, int64_t p) {
  const auto addr = reinterpret_cast<uintptr_t>(row + from);
  const int64_t skip = static_cast<int64_t>(((32 - addr % 32) % 32) / sizeof(T));
  return std::min(p, from + skip);
}

// Rows are taken four at a time: four concurrent read streams instead of one (a single stream
// reached half the memory bandwidth of torch's full product above ~100 MB), and one load and
// store of y (or of w0, w1) per four matrix values. The rows' leftover columns, the 4 x 4
// corner on the diagonal and leftover rows are done one row at a time.
constexpr int64_t kRows = 4;

// Row i over the columns [from, p): with kUpdate first H_ij += a0 w0_j + a1 w1_j (stored); then
// returns sum_j H_ij x_j and adds x_i H_ij to y_j (j > i only: a column at or before i is the
// diagonal or belongs to the corner).
template <bool kUpdate, typename T>
FK_TILE_INLINE T row_part(int64_t p, T* __restrict__ hi, const T* x, int64_t i, int64_t from, T* y,
                          T a0, const T* w0, T a1, const T* w1) {
  T dot = T(0);
  const T xi = x[i];
  for (int64_t j = from; j < p; ++j) {
    T hij = hi[j];
    if constexpr (kUpdate) {
      hij += a0 * w0[j] + a1 * w1[j];
      hi[j] = hij;
    }
    dot += hij * x[j];
    if (j > i) y[j] += xi * hij;
  }
  return dot;
}

// y += H x over the rows [i0, i1), with kUpdate after H_ij += u0_i w0_j + u1_i w1_j in the same
// pass (h is written only then).
template <bool kUpdate, typename T>
void matvec_rows(int64_t p, T* h, const T* x, int64_t i0, int64_t i1, T* y, const T* u0,
                 const T* w0, const T* u1, const T* w1) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  int64_t i = i0;
  for (; i + kRows <= i1 && i + kRows < p; i += kRows) {
    T* r[kRows];
    T xi[kRows], dot[kRows], a0[kRows] = {}, a1[kRows] = {};
    for (int64_t k = 0; k < kRows; ++k) {
      r[k] = h + (i + k) * p;
      xi[k] = x[i + k];
      if constexpr (kUpdate) {
        a0[k] = u0[i + k];
        a1[k] = u1[i + k];
      }
      dot[k] = row_part<kUpdate>(i + kRows, r[k], x, i + k, i + k, y, a0[k], w0, a1[k], w1);
    }
    int64_t j = i + kRows;
    const int64_t a = aligned_from(r[0], j, p);
    for (int64_t k = 0; k < kRows; ++k) {
      dot[k] += row_part<kUpdate>(a, r[k], x, i + k, j, y, a0[k], w0, a1[k], w1);
    }
    j = a;
    V acc[kRows] = {};
    for (; j + L <= p; j += L) {
      const V xv = vload(x + j);
      V yv = vload(y + j);
      V w0v{}, w1v{};
      if constexpr (kUpdate) {
        w0v = vload(w0 + j);
        w1v = vload(w1 + j);
      }
#pragma GCC unroll 4
      for (int64_t k = 0; k < kRows; ++k) {
        V hv = vload(r[k] + j);
        if constexpr (kUpdate) {
          hv = hv + (a0[k] * w0v + a1[k] * w1v);
          vstore(r[k] + j, hv);
        }
        acc[k] += hv * xv;
        yv += xi[k] * hv;
      }
      vstore(y + j, yv);
    }
    for (int64_t k = 0; k < kRows; ++k) {
      dot[k] += hsum<T>(acc[k]) + row_part<kUpdate>(p, r[k], x, i + k, j, y, a0[k], w0, a1[k], w1);
      y[i + k] += dot[k];
    }
  }
  for (; i < i1; ++i) {
    const T b0 = kUpdate ? u0[i] : T(0), b1 = kUpdate ? u1[i] : T(0);
    y[i] += row_part<kUpdate>(p, h + i * p, x, i, i, y, b0, w0, b1, w1);
  }
}

template <typename T>
void sym_upper_matvec_rows_cpu(int64_t p, const T* h, const T* x, int64_t i0, int64_t i1, T* y) {
  // not written: matvec_rows<false> only reads h
  matvec_rows<false>(p, const_cast<T*>(h), x, i0, i1, y, static_cast<const T*>(nullptr),
                     static_cast<const T*>(nullptr), static_cast<const T*>(nullptr),
                     static_cast<const T*>(nullptr));
}

template <typename T>
void sym_upper_rank2_matvec_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1,
                                     const T* w1, const T* x, int64_t i0, int64_t i1, T* y) {
  matvec_rows<true>(p, h, x, i0, i1, y, u0, w0, u1, w1);
}

template <typename T>
void sym_upper_rank2_rows_cpu(int64_t p, T* h, const T* u0, const T* w0, const T* u1, const T* w1,
                              int64_t i0, int64_t i1) {
  using V = vec_t<T>;
  constexpr int64_t L = kLanes<T>;
  int64_t i = i0;
  for (; i + kRows <= i1; i += kRows) {
    T* r[kRows];
    T a0[kRows], a1[kRows];
    for (int64_t k = 0; k < kRows; ++k) {
      r[k] = h + (i + k) * p;
      a0[k] = u0[i + k];
      a1[k] = u1[i + k];
      for (int64_t c = i + k; c < std::min(i + kRows, p); ++c) {  // the corner
        r[k][c] += a0[k] * w0[c] + a1[k] * w1[c];
      }
    }
    int64_t j = i + kRows;
    const int64_t a = j < p ? aligned_from(r[0], j, p) : p;
    for (; j < a; ++j) {
      for (int64_t k = 0; k < kRows; ++k) r[k][j] += a0[k] * w0[j] + a1[k] * w1[j];
    }
    for (; j + L <= p; j += L) {
      const V w0v = vload(w0 + j), w1v = vload(w1 + j);
#pragma GCC unroll 4
      for (int64_t k = 0; k < kRows; ++k) {
        vstore(r[k] + j, vload(r[k] + j) + (a0[k] * w0v + a1[k] * w1v));
      }
    }
    for (; j < p; ++j) {
      for (int64_t k = 0; k < kRows; ++k) r[k][j] += a0[k] * w0[j] + a1[k] * w1[j];
    }
  }
  for (; i < i1; ++i) {
    T* hi = h + i * p;
    for (int64_t j = i; j < p; ++j) hi[j] += u0[i] * w0[j] + u1[i] * w1[j];
  }
}

template void sym_upper_matvec_rows_cpu<float>(int64_t, const float*, const float*, int64_t,
                                               int64_t, float*);
template void sym_upper_matvec_rows_cpu<double>(int64_t, const double*, const double*, int64_t,
                                                int64_t, double*);
template void sym_upper_rank2_matvec_rows_cpu<float>(int64_t, float*, const float*, const float*,
                                                     const float*, const float*, const float*,
                                                     int64_t, int64_t, float*);
template void sym_upper_rank2_matvec_rows_cpu<double>(int64_t, double*, const double*,
                                                      const double*, const double*, const double*,
                                                      const double*, int64_t, int64_t, double*);
template void sym_upper_rank2_rows_cpu<float>(int64_t, float*, const float*, const float*,
                                              const float*, const float*, int64_t, int64_t);
template void sym_upper_rank2_rows_cpu<double>(int64_t, double*, const double*, const double*,
                                               const double*, const double*, int64_t, int64_t);

}  // namespace FK_CPU_VARIANT
}  // namespace fluxkern

#pragma GCC diagnostic pop
