// The AVX-512 build of the fused per-tile CPU loss kernel: 64-byte vectors (compiled with
// -mavx512f -mavx512dq; called only when the CPU has both, see loss_tile_cpu.cpp, with a plan
// padded to 64 bytes).
#define FK_CPU_VARIANT avx512
#define FK_VEC_BYTES 64
#include "kernels/loss_tile_cpu_impl.h"
