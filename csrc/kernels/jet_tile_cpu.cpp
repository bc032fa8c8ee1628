// The per-tile CPU jet kernels: run-time choice between the baseline build and the AVX2 + FMA
// build of jet_tile_cpu_impl.h.
#define FK_CPU_VARIANT baseline
#include "kernels/jet_tile_cpu_impl.h"
#undef FK_CPU_VARIANT

#include "kernels/cpu_features.h"

namespace fluxkern {

#if defined(FLUXKERN_CPU_AVX2)
namespace avx2 {
template <typename T>
void jet_forward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                           int64_t tile0, int64_t tile1, T* y, T* jac, T* scratch);
template <typename T>
void jet_backward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                            const T* grad_y, const T* grad_J, int64_t tile0, int64_t tile1,
                            T* grad_x, T* acc, T* scratch);
}  // namespace avx2
#endif

template <typename T>
void jet_forward_tiles_cpu(const TilePlan& plan, Activation act, const JetTileInput<T>& in,
                           int64_t tile0, int64_t tile1, T* y, T* jac, T* scratch) {
#if defined(FLUXKERN_CPU_AVX2)
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
