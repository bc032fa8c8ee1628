// The AVX2 + FMA build of the fused per-tile CPU loss kernel (compiled with -mavx2 -mfma; called
// only when the CPU has both, see loss_tile_cpu.cpp).
#define FK_CPU_VARIANT avx2
#include "kernels/loss_tile_cpu_impl.h"
