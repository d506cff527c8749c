// The per-element math of the lossy codecs: one definition that the scalar host kernels, the
// SIMD kernels' tails and the CUDA kernels all call, so every path rounds the same way.
//
// Block-scaled codecs (QMAX = 127 for int8, 7 for int4, 448 for fp8 e4m3), per block:
//   any element NaN or Inf -> scale = NaN (bits kScaleNaNBits), every code 0; the block decodes
//                             to NaN
//   else                   -> amax = max |x|, scale = amax / QMAX,
//                             inv = amax > 0 ? min(QMAX / amax, FLT_MAX) : 0
//                             (the min only matters for amax < ~1e-36, where QMAX / amax
//                             overflows: such blocks quantize toward 0 instead of to NaN)
//   int8/int4: q = roundEven(clamp(x * inv, -QMAX, QMAX))   decode: q * scale
//   fp8:       c = e4m3(x * inv), round to nearest even, saturating at +-448; decode e4m3(c) * scale
// Every operation is one IEEE operation rounded to nearest even: no contraction (the host files
// build with -ffp-contract=off; device code uses the __f*_rn intrinsics).
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/half.h"
#include "xsite/types.h"

#if defined(__CUDACC__)
#define XSITE_ELEMENT_INLINE __host__ __device__ __forceinline__
#else
// Always inlined: the SIMD files build with -mavx2/-mavx512f, and an out-of-line copy of a
// header function compiled there could be the one the linker keeps for every caller.
#define XSITE_ELEMENT_INLINE inline __attribute__((always_inline))
#endif

namespace xsite::compress::element {

inline constexpr float kInt8Max = 127.0f;
inline constexpr float kInt4Max = 7.0f;
inline constexpr float kFp8Max = 448.0f;
inline constexpr uint32_t kScaleNaNBits = 0x7fc00000u;  // the one NaN the encoder writes
inline constexpr float kFloatMax = 3.40282347e38f;
inline constexpr uint8_t kFp8MaxCode = 0x7e;  // 448

// The codecs' shapes: int8, fp8 and int4 are block-scaled with QMAX qmaxOf(); bf16 and fp16
// are casts to castFormat().
XSITE_ELEMENT_INLINE bool blockScaled(::xsite::Codec c) {
  return c == ::xsite::Codec::kInt8 || c == ::xsite::Codec::kFp8 || c == ::xsite::Codec::kInt4;
}
XSITE_ELEMENT_INLINE float qmaxOf(::xsite::Codec c) {
  return c == ::xsite::Codec::kInt8 ? kInt8Max : c == ::xsite::Codec::kInt4 ? kInt4Max : kFp8Max;
}
XSITE_ELEMENT_INLINE DataType castFormat(::xsite::Codec c) {
  return c == ::xsite::Codec::kBf16 ? DataType::kBfloat16 : DataType::kFloat16;
}

XSITE_ELEMENT_INLINE float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

XSITE_ELEMENT_INLINE float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// Round to the nearest integer, ties to even (|x| < 2^22 here; larger values are integers).
XSITE_ELEMENT_INLINE float roundEven(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it leaves no fraction bits
  if (!(x < 4194304.0f && x > -4194304.0f)) return x;
  return (x + kMagic) - kMagic;
#endif
}

XSITE_ELEMENT_INLINE bool isFinite(float x) {
  return (floatToBits(x) & 0x7f800000u) != 0x7f800000u;
}
XSITE_ELEMENT_INLINE float absolute(float x) { return bitsToFloat(floatToBits(x) & 0x7fffffffu); }
XSITE_ELEMENT_INLINE bool isScaleNaN(float s) { return floatToBits(s) == kScaleNaNBits; }

struct BlockScale {
  float scale;  // stored in the encoding
  float inv;    // what the encoder multiplies by
};

XSITE_ELEMENT_INLINE BlockScale blockScale(float amax, bool nonFinite, float qmax) {
  if (nonFinite) return {bitsToFloat(kScaleNaNBits), 0.0f};
  float inv = amax > 0.0f ? div(qmax, amax) : 0.0f;
  if (inv > kFloatMax) inv = kFloatMax;
  return {div(amax, qmax), inv};
}

// int8 / int4: the integer code of x (finite) in [-qmax, qmax].
XSITE_ELEMENT_INLINE int quantizeInt(float x, float inv, float qmax) {
  float v = mul(x, inv);
  v = v < -qmax ? -qmax : v;
  v = v > qmax ? qmax : v;
  return static_cast<int>(roundEven(v));
}

// float (finite) -> fp8 e4m3 (bias 7, no Inf, 0x7f/0xff NaN), nearest even, saturating at 448.
XSITE_ELEMENT_INLINE uint8_t floatToE4m3(float v) {
  const uint32_t u = floatToBits(v);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x43e00000u) return static_cast<uint8_t>(sign | kFp8MaxCode);  // >= 448
  if (a < 0x3c800000u) {  // below 2^-6, the smallest normal: subnormal steps of 2^-9
    const float m = roundEven(mul(bitsToFloat(a), 512.0f));
    return static_cast<uint8_t>(sign | static_cast<uint32_t>(m));  // m == 8 is 2^-6, code 0x08
  }
  const uint32_t r = a + 0x7ffffu + ((a >> 20) & 1u);  // round to nearest even at bit 20
  return static_cast<uint8_t>(sign | ((r >> 20) - (120u << 3)));
}

XSITE_ELEMENT_INLINE float e4m3ToFloat(uint8_t c) {
  const uint32_t e = (c >> 3) & 0xfu;
  const uint32_t m = c & 7u;
  // exact: a normal float for every code, no subnormal arithmetic
  const float mag = e != 0 ? bitsToFloat(((e + 120u) << 23) | (m << 20))
                           : mul(static_cast<float>(m), 0.001953125f);  // m * 2^-9
  return (c & 0x80u) ? -mag : mag;
}
XSITE_ELEMENT_INLINE bool isE4m3NaN(uint8_t c) { return (c & 0x7fu) == 0x7fu; }

XSITE_ELEMENT_INLINE uint8_t quantizeFp8(float x, float inv) { return floatToE4m3(mul(x, inv)); }

// q * scale; the encoder's NaN scale gives exactly kScaleNaNBits (as x86 multiplication does).
XSITE_ELEMENT_INLINE float dequantize(float q, float scale) {
  return isScaleNaN(scale) ? bitsToFloat(kScaleNaNBits) : mul(q, scale);
}

XSITE_ELEMENT_INLINE int int4FromNibble(uint32_t nibble) {
  return static_cast<int>(nibble ^ 8u) - 8;
}

// Element i of a float32 / bfloat16 / float16 buffer as float, and back (nearest even).
XSITE_ELEMENT_INLINE float loadFloat(DataType type, const void* p, size_t i) {
  if (type == DataType::kFloat32) {
    float f;
    memcpy(&f, static_cast<const char*>(p) + 4 * i, 4);
    return f;
  }
  uint16_t h;
  memcpy(&h, static_cast<const char*>(p) + 2 * i, 2);
  return type == DataType::kBfloat16 ? bf16ToFloat(h) : halfToFloat(h);
}

XSITE_ELEMENT_INLINE void storeFloat(DataType type, void* p, size_t i, float v) {
  if (type == DataType::kFloat32) {
    memcpy(static_cast<char*>(p) + 4 * i, &v, 4);
    return;
  }
  const uint16_t h = type == DataType::kBfloat16 ? floatToBf16(v) : floatToHalf(v);
  memcpy(static_cast<char*>(p) + 2 * i, &h, 2);
}

}  // namespace xsite::compress::element
