// The AVX2 + FMA build of the L-BFGS direction kernel (compiled with -mavx2 -mfma; called only
// when the CPU has both, see lbfgs_cpu.cpp).
#define FK_CPU_VARIANT avx2
#include "kernels/lbfgs_cpu_impl.h"
