// Run-time choice of the CPU kernels' instruction-set variant (host code, no torch headers).
#pragma once

#include <cstdlib>

namespace fluxkern {

// True when the AVX2 + FMA builds of the CPU kernels may run: the CPU has both and the
// environment variable FLUXKERN_CPU_BASELINE is unset or "0" (set it to run, and test, the
// baseline x86-64 builds on any machine). Read once per process.
inline bool cpu_use_avx2() {
  static const bool yes = [] {
    const char* env = std::getenv("FLUXKERN_CPU_BASELINE");
    const bool forced_baseline = env != nullptr && env[0] != '\0' && !(env[0] == '0' && !env[1]);
    return !forced_baseline && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

// True when the AVX-512 builds (64-byte vectors; the per-tile jet kernels only) may run: the AVX2
// builds may, the CPU has AVX-512 F and DQ, and the environment variable FLUXKERN_CPU_NO_AVX512
// is unset or "0" (set it to run, and test, the AVX2 builds on an AVX-512 machine).
inline bool cpu_use_avx512() {
  static const bool yes = [] {
    const char* env = std::getenv("FLUXKERN_CPU_NO_AVX512");
    const bool off = env != nullptr && env[0] != '\0' && !(env[0] == '0' && !env[1]);
    return !off && cpu_use_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq");
  }();
  return yes;
}

}  // namespace fluxkern
