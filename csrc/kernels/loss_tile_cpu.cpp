// The fused per-tile CPU loss kernel: the plan and the packing of the parameters (host code),
// and the run-time choice between the baseline build and the AVX2 + FMA build of
// loss_tile_cpu_impl.h.
#define FK_CPU_VARIANT baseline
#include "kernels/loss_tile_cpu_impl.h"
#undef FK_CPU_VARIANT

namespace fluxkern {

TilePlan tile_plan(int64_t d, int64_t m, int64_t hidden, const int64_t* widths, int64_t n_cols,
                   int64_t pad) {
  TilePlan pl;
  pl.d = d;
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

  const int64_t p_max = kTilePoints, r_max = (1 + d) * kTilePoints;
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
  off += up(p_max * m * d);
  pl.ybar = off;
  off += up(p_max * m);
  pl.jbar = off;
  off += up(p_max * m * d);
  pl.cols = off;
  off += up(p_max * std::max<int64_t>(n_cols, 1));
  pl.scratch_size = off;
  return pl;
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
namespace avx2 {
template <typename T>
void block_loss_tiles_cpu(const TilePlan& plan, Activation act, const T* shift, const T* scale,
                          const T* packed, const TileBlock<T>& block, int64_t tile0, int64_t tile1,
                          T* grad, T* scratch);
}  // namespace avx2

static bool tile_use_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

template <typename T>
void block_loss_tiles_cpu(const TilePlan& plan, Activation act, const T* shift, const T* scale,
                          const T* packed, const TileBlock<T>& block, int64_t tile0, int64_t tile1,
                          T* grad, T* scratch) {
#if defined(FLUXKERN_CPU_AVX2)
  if (tile_use_avx2()) {
    avx2::block_loss_tiles_cpu<T>(plan, act, shift, scale, packed, block, tile0, tile1, grad,
                                  scratch);
    return;
  }
#endif
  baseline::block_loss_tiles_cpu<T>(plan, act, shift, scale, packed, block, tile0, tile1, grad,
                                    scratch);
}

#define FK_TILE_INSTANTIATE(T)                                                                     \
  template void tile_pack<T>(const TilePlan&, const T* const*, const T* const*, T*);               \
  template void tile_unpack_grads<T>(const TilePlan&, const T*, T* const*, T* const*);             \
  template void block_loss_tiles_cpu<T>(const TilePlan&, Activation, const T*, const T*, const T*, \
                                        const TileBlock<T>&, int64_t, int64_t, T*, T*);
FK_TILE_INSTANTIATE(float)
FK_TILE_INSTANTIATE(double)
#undef FK_TILE_INSTANTIATE

}  // namespace fluxkern
