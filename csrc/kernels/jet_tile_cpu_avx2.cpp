// The AVX2 + FMA build of the per-tile CPU jet kernels (compiled with -mavx2 -mfma; called only
// when the CPU has both, see jet_tile_cpu.cpp).
#define FK_CPU_VARIANT avx2
#include "kernels/jet_tile_cpu_impl.h"
