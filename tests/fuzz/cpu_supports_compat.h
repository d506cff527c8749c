// Forced into src/compress/kernels_scalar.cc in the fuzz build only, when the compiler's
// __builtin_cpu_supports does not know "f16c" (clang 14 and older reject it at compile time;
// GCC, the project's compiler, accepts it). Answers "f16c" from CPUID (leaf 1, ECX bit 29) and
// passes every other feature to the builtin.
#pragma once

#include <cpuid.h>
#include <cstring>

static inline bool xsiteFuzzCpuSupports(const char* feature) {
  if (std::strcmp(feature, "f16c") == 0) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
  }
  if (std::strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2");
  if (std::strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
  if (std::strcmp(feature, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw");
  if (std::strcmp(feature, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl");
  return false;  // a feature this shim does not know: the scalar path
}
#define __builtin_cpu_supports(feature) xsiteFuzzCpuSupports(feature)
