// The per-tile CPU jet kernels: run-time choice between the baseline build, the AVX2 + FMA build
// and the AVX-512 build (64-byte vectors) of jet_tile_cpu_impl.h.
#define FK_CPU_VARIANT baseline
#include "kernels/jet_tile_cpu_impl.h"
#undef FK_CPU_VARIANT

#include "kernels/cpu_features.h"

namespace fluxkern {

#if defined(FLUXKERN_CPU_AVX2)
#define FK_JET_TILE_DECLARE                                                                    \
  template <typename T>                                                                        \
  void jet_forward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,  \
                             int64_t tile0, int64_t tile1, T* y, T* jac, T* scratch);          \
  template <typename T>                                                                        \
  void jet_backward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in, \
                              const T* grad_y, const T* grad_J, int64_t tile0, int64_t tile1,  \
                              T* grad_x, T* acc, T* scratch);
namespace avx2 {
FK_JET_TILE_DECLARE
}  // namespace avx2
namespace avx512 {
FK_JET_TILE_DECLARE
}  // namespace avx512
#undef FK_JET_TILE_DECLARE
#endif

int64_t jet_tile_vector_bytes(int64_t hidden, const int64_t* widths, int64_t elem_size) {
#if defined(FLUXKERN_CPU_AVX2)
  if (!cpu_use_avx512()) return 32;
  // Padded feature counts with 64- and 32-byte vectors. 64-byte vectors run about twice the FMAs
  // per cycle; measured on a 2-core Xeon (float64 W = 20: 24 vs 20 columns, 16% faster; float32
  // W = 20: 32 vs 24, 5% slower), so they are taken up to 5/4 of the 32-byte work.
  int64_t p64 = 0, p32 = 0;
  for (int64_t l = 0; l < hidden; ++l) {
    const int64_t l64 = 64 / elem_size, l32 = 32 / elem_size;
    p64 += (widths[l] + l64 - 1) / l64 * l64;
    p32 += (widths[l] + l32 - 1) / l32 * l32;
  }
  if (4 * p64 <= 5 * p32) return 64;
#else
  (void)hidden;
  (void)widths;
  (void)elem_size;
#endif
  return 32;
}

template <typename T>
void jet_forward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                           int64_t tile0, int64_t tile1, T* y, T* jac, T* scratch) {
#if defined(FLUXKERN_CPU_AVX2)
  if (plan.pad * static_cast<int64_t>(sizeof(T)) == 64 && cpu_use_avx512()) {
    avx512::jet_forward_tiles_cpu<T>(plan, act, in, tile0, tile1, y, jac, scratch);
    return;
  }
  if (cpu_use_avx2()) {
    avx2::jet_forward_tiles_cpu<T>(plan, act, in, tile0, tile1, y, jac, scratch);
    return;
  }
#endif
  baseline::jet_forward_tiles_cpu<T>(plan, act, in, tile0, tile1, y, jac, scratch);
}

template <typename T>
void jet_backward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                            const T* grad_y, const T* grad_J, int64_t tile0, int64_t tile1,
                            T* grad_x, T* acc, T* scratch) {
#if defined(FLUXKERN_CPU_AVX2)
  if (plan.pad * static_cast<int64_t>(sizeof(T)) == 64 && cpu_use_avx512()) {
    avx512::jet_backward_tiles_cpu<T>(plan, act, in, grad_y, grad_J, tile0, tile1, grad_x, acc,
                                      scratch);
    return;
  }
  if (cpu_use_avx2()) {
    avx2::jet_backward_tiles_cpu<T>(plan, act, in, grad_y, grad_J, tile0, tile1, grad_x, acc,
                                    scratch);
    return;
  }
#endif
  baseline::jet_backward_tiles_cpu<T>(plan, act, in, grad_y, grad_J, tile0, tile1, grad_x, acc,
                                      scratch);
}

#define FK_JET_TILE_INSTANTIATE(T)                                                             \
  template void jet_forward_tiles_cpu<T>(const TilePlan&, Activation, const JetTileInput<T>&,  \
                                         int64_t, int64_t, T*, T*, T*);                        \
  template void jet_backward_tiles_cpu<T>(const TilePlan&, Activation, const JetTileInput<T>&, \
                                          const T*, const T*, int64_t, int64_t, T*, T*, T*);
FK_JET_TILE_INSTANTIATE(float)
FK_JET_TILE_INSTANTIATE(double)
#undef FK_JET_TILE_INSTANTIATE

}  // namespace fluxkern
