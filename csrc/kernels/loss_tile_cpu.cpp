// The fused per-tile CPU loss kernel: the plan and the packing of the parameters (host code),
// and the run-time choice between the baseline build, the AVX2 + FMA build and the AVX-512 build
// (64-byte vectors, for a plan padded to 64 bytes) of loss_tile_cpu_impl.h.
#define FK_CPU_VARIANT baseline
#include "kernels/loss_tile_cpu_impl.h"
#undef FK_CPU_VARIANT

#include <cmath>
#include <vector>

#include "kernels/cpu_features.h"

namespace fluxkern {

TilePlan tile_plan(int64_t d, int64_t nt, int64_t m, int64_t hidden, const int64_t* widths,
                   int64_t n_cols, int64_t pad) {
  TilePlan pl;
  pl.d = d;
  pl.nt = nt;
  pl.m = m;
  pl.hidden = hidden;
  pl.n_cols = n_cols;
  pl.pad = pad;
  int64_t wpmax = pad;
  for (int64_t l = 0; l < hidden; ++l) {
    pl.width[l] = widths[l];
    pl.wpad[l] = (widths[l] + pad - 1) / pad * pad;
    wpmax = std::max(wpmax, pl.wpad[l]);
  }
  // Every region starts on a vector boundary (offsets are multiples of pad).
  auto up = [pad](int64_t n) { return (n + pad - 1) / pad * pad; };
  int64_t off = 0;
  for (int64_t l = 0; l < hidden; ++l) {
    const int64_t w_in = l == 0 ? d : widths[l - 1];
    const int64_t wp_in = l == 0 ? 0 : pl.wpad[l - 1];
    pl.at[l] = off;
    off += up(w_in * pl.wpad[l]);
    pl.a[l] = off;
    off += up(widths[l] * wp_in);
    pl.b[l] = off;
    off += pl.wpad[l];
  }
  pl.ao = off;
  off += up(m * pl.wpad[hidden - 1]);
  pl.bo = off;
  off += up(m);
  pl.packed_size = off;

  const int64_t p_max = kTilePoints, r_max = (1 + nt) * kTilePoints;
  off = 0;
  for (int64_t l = 0; l < hidden; ++l) {
    pl.zz[l] = off;
    off += r_max * pl.wpad[l];
    pl.s2[l] = off;
    off += p_max * pl.wpad[l];
    pl.h[l] = off;
    off += r_max * pl.wpad[l];
  }
  for (int i = 0; i < 2; ++i) {
    pl.g[i] = off;
    off += r_max * wpmax;
  }
  pl.y = off;
  off += up(r_max * m);
  pl.gy = off;
  off += up(r_max * m);
  pl.xn = off;
  off += up(p_max * d);
  pl.jac = off;
  off += up(p_max * m * nt);
  pl.ybar = off;
  off += up(p_max * m);
  pl.jbar = off;
  off += up(p_max * m * nt);
  pl.cols = off;
  off += up(p_max * std::max<int64_t>(n_cols, 1));
  pl.scratch_size = off;
  return pl;
}

template <typename T>
bool one_direction_table(const int32_t* index, const T* coef, int64_t n_mono, int64_t m, int64_t d,
                         T* dir, int32_t* index_out, T* coef_out, int64_t* n_out) {
  struct Family {
    int32_t key[5];  // residual, column, the two other fields (sorted), output o
    T c[kTileMaxInputs];
  };
  std::vector<Family> fams;
  int64_t n = 0;
  for (int64_t k = 0; k < n_mono; ++k) {
    const int32_t* ix = index + k * kMonoCols;
    int jf = -1, n_j = 0;
    for (int q = 2; q < kMonoCols; ++q) {
      if (ix[q] >= m) {
        jf = q;
        ++n_j;
      }
    }
    if (n_j > 1) return false;  // products of derivatives: no single direction
    if (n_j == 0) {             // reads y only: kept as it is
      for (int q = 0; q < kMonoCols; ++q) index_out[n * kMonoCols + q] = ix[q];
      coef_out[n++] = coef[k];
      continue;
    }
    int32_t other[2];
    for (int q = 2, i = 0; q < kMonoCols; ++q) {
      if (q != jf) other[i++] = ix[q];
    }
    const int32_t o = (ix[jf] - static_cast<int32_t>(m)) / static_cast<int32_t>(d);
    const int32_t j = (ix[jf] - static_cast<int32_t>(m)) % static_cast<int32_t>(d);
    const int32_t key[5] = {ix[0], ix[1], std::min(other[0], other[1]),
                            std::max(other[0], other[1]), o};
    Family* f = nullptr;
    for (Family& g : fams) {
      if (std::equal(key, key + 5, g.key)) f = &g;
    }
    if (f == nullptr) {
      fams.emplace_back();
      f = &fams.back();
      std::copy(key, key + 5, f->key);
      std::fill(f->c, f->c + kTileMaxInputs, T(0));
    }
    f->c[j] += coef[k];
  }
  // v: the first nonzero family vector; every other family must be alpha v (to 2^-50).
  const Family* first = nullptr;
  for (const Family& f : fams) {
    for (int64_t j = 0; j < d && first == nullptr; ++j) {
      if (f.c[j] != T(0)) first = &f;
    }
  }
  if (first == nullptr) return false;
  int64_t jmax = 0;
  for (int64_t j = 1; j < d; ++j) {
    if (std::abs(first->c[j]) > std::abs(first->c[jmax])) jmax = j;
  }
  for (int64_t j = 0; j < d; ++j) dir[j] = first->c[j];
  for (const Family& f : fams) {
    const T alpha = f.c[jmax] / dir[jmax];
    T big = T(0);
    for (int64_t j = 0; j < d; ++j) big = std::max(big, std::abs(f.c[j]));
    for (int64_t j = 0; j < d; ++j) {
      if (std::abs(f.c[j] - alpha * dir[j]) > big * T(8.9e-16)) return false;
    }
    if (alpha == T(0)) continue;  // a family whose coefficients cancel reads nothing
    int32_t* row = index_out + n * kMonoCols;
    row[0] = f.key[0];
    row[1] = f.key[1];
    row[2] = f.key[2];
    row[3] = f.key[3];
    row[4] = static_cast<int32_t>(m) + f.key[4];  // (J v)_o
    coef_out[n++] = alpha;
  }
  *n_out = n;
  return true;
}

template <typename T>
void tile_pack(const TilePlan& pl, const T* const* weights, const T* const* biases, T* packed) {
  std::fill(packed, packed + pl.packed_size, T(0));
  for (int64_t l = 0; l < pl.hidden; ++l) {
    const int64_t w = pl.width[l], wp = pl.wpad[l];
    const int64_t w_in = l == 0 ? pl.d : pl.width[l - 1];
    const T* a = weights[l];  // [W, W_in]
    for (int64_t j = 0; j < w; ++j) {
      for (int64_t k = 0; k < w_in; ++k) {
        packed[pl.at[l] + k * wp + j] = a[j * w_in + k];
        if (l > 0) packed[pl.a[l] + j * pl.wpad[l - 1] + k] = a[j * w_in + k];
      }
      packed[pl.b[l] + j] = biases[l][j];
    }
  }
  const int64_t wl = pl.width[pl.hidden - 1], wpl = pl.wpad[pl.hidden - 1];
  const T* ao = weights[pl.hidden];  // [m, W_L]
  for (int64_t o = 0; o < pl.m; ++o) {
    for (int64_t k = 0; k < wl; ++k) packed[pl.ao + o * wpl + k] = ao[o * wl + k];
    packed[pl.bo + o] = biases[pl.hidden][o];
  }
}

template <typename T>
void tile_unpack_grads(const TilePlan& pl, const T* grad, T* const* grad_w, T* const* grad_b) {
  for (int64_t l = 0; l < pl.hidden; ++l) {
    const int64_t w = pl.width[l], wp = pl.wpad[l];
    const int64_t w_in = l == 0 ? pl.d : pl.width[l - 1];
    for (int64_t j = 0; j < w; ++j) {
      for (int64_t k = 0; k < w_in; ++k) grad_w[l][j * w_in + k] = grad[pl.at[l] + k * wp + j];
      grad_b[l][j] = grad[pl.b[l] + j];
    }
  }
  const int64_t wl = pl.width[pl.hidden - 1], wpl = pl.wpad[pl.hidden - 1];
  for (int64_t o = 0; o < pl.m; ++o) {
    for (int64_t k = 0; k < wl; ++k) grad_w[pl.hidden][o * wl + k] = grad[pl.ao + o * wpl + k];
    grad_b[pl.hidden][o] = grad[pl.bo + o];
  }
}

#if defined(FLUXKERN_CPU_AVX2)
#define FK_LOSS_TILE_DECLARE                                                                      \
  template <typename T>                                                                           \
  void block_loss_tiles_cpu(const TilePlan& plan, Activation act, const T* shift, const T* scale, \
                            const T* packed, const TileBlock<T>& block, int64_t tile0,            \
                            int64_t tile1, T* grad, T* scratch);
namespace avx2 {
FK_LOSS_TILE_DECLARE
}  // namespace avx2
namespace avx512 {
FK_LOSS_TILE_DECLARE
}  // namespace avx512
#undef FK_LOSS_TILE_DECLARE
#endif

template <typename T>
void block_loss_tiles_cpu(const TilePlan& plan, Activation act, const T* shift, const T* scale,
                          const T* packed, const TileBlock<T>& block, int64_t tile0, int64_t tile1,
                          T* grad, T* scratch) {
#if defined(FLUXKERN_CPU_AVX2)
  if (plan.pad * static_cast<int64_t>(sizeof(T)) == 64 && cpu_use_avx512()) {
    avx512::block_loss_tiles_cpu<T>(plan, act, shift, scale, packed, block, tile0, tile1, grad,
                                    scratch);
    return;
  }
  if (cpu_use_avx2()) {
    avx2::block_loss_tiles_cpu<T>(plan, act, shift, scale, packed, block, tile0, tile1, grad,
                                  scratch);
    return;
  }
#endif
  baseline::block_loss_tiles_cpu<T>(plan, act, shift, scale, packed, block, tile0, tile1, grad,
                                    scratch);
}

#define FK_TILE_INSTANTIATE(T)                                                                     \
  template bool one_direction_table<T>(const int32_t*, const T*, int64_t, int64_t, int64_t, T*,    \
                                       int32_t*, T*, int64_t*);                                    \
  template void tile_pack<T>(const TilePlan&, const T* const*, const T* const*, T*);               \
  template void tile_unpack_grads<T>(const TilePlan&, const T*, T* const*, T* const*);             \
  template void block_loss_tiles_cpu<T>(const TilePlan&, Activation, const T*, const T*, const T*, \
                                        const TileBlock<T>&, int64_t, int64_t, T*, T*);
FK_TILE_INSTANTIATE(float)
FK_TILE_INSTANTIATE(double)
#undef FK_TILE_INSTANTIATE

}  // namespace fluxkern
