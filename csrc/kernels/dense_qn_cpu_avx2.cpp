// The AVX2 + FMA build of the dense quasi-Newton kernels (compiled with -mavx2 -mfma; called only
// when the CPU has both, see dense_qn_cpu.cpp).
#define FK_CPU_VARIANT avx2
#include "kernels/dense_qn_cpu_impl.h"
