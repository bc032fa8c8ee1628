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

}  // namespace fluxkern
