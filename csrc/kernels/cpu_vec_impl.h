// 32-byte vectors of the CPU kernels' variant builds (GCC vector extensions): ymm registers with
// AVX2, pairs of xmm in the baseline build; a build that defines FK_VEC_BYTES as 64 before
// including gets 64-byte vectors (zmm registers with AVX-512). A fragment, not a header: the
// *_impl.h files include it inside their `namespace fluxkern { namespace FK_CPU_VARIANT {
// namespace {`, so that each instruction-set build gets its own copy of these inline helpers (no
// include guard on purpose: one inclusion per translation unit). Needs <cstdint> and
// FK_TILE_INLINE.
#ifndef FK_VEC_BYTES
#define FK_VEC_BYTES 32
#endif

// One FK_VEC_BYTES vector of T (32 bytes: 4 doubles or 8 floats; ymm registers with AVX2, pairs of
// xmm without).
template <typename T>
struct Vec32;
template <>
struct Vec32<double> {
  typedef double type __attribute__((vector_size(FK_VEC_BYTES)));
};
template <>
struct Vec32<float> {
  typedef float type __attribute__((vector_size(FK_VEC_BYTES)));
};
template <typename T>
using vec_t = typename Vec32<T>::type;
template <typename T>
constexpr int64_t kLanes = FK_VEC_BYTES / sizeof(T);

template <typename T>
FK_TILE_INLINE vec_t<T> vload(const T* p) {
  vec_t<T> v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
FK_TILE_INLINE void vstore(T* p, vec_t<T> v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

template <typename T>
FK_TILE_INLINE T hsum(vec_t<T> v) {
  T s = T(0);
  for (int64_t i = 0; i < kLanes<T>; ++i) s += v[i];
  return s;
}
