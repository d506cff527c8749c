// Inside src/compress only, for the kernel files: the lossy kernels' drivers written once, as
// templates over an ISA policy V that kernels_avx2.cc and kernels_avx512.cc each define (the
// vector width and the load / store / convert primitives); the per-element tails go through
// element.h, as the scalar kernels do, so every ISA produces the same bytes. kernels_scalar.cc
// shares decodeCode with the tails.
//
// Everything here has internal linkage (the anonymous namespace): each including file compiles
// it with its own -m flags, and no out-of-line copy built with AVX-512 may be the one the linker
// keeps for another file.
//
// The policy V provides (F: float32 vector, I: int32 vector, both of V::kLanes lanes):
//   template <DataType T> static F load(const void* p, size_t i);     elements i .. i + kLanes
//   template <DataType T> static void store(void* p, size_t i, F v);  rounded as element.h does
//   static F splat(float); static F mul(F, F); static F min(F, F); static F max(F, F);
//   static I roundToInt(F);                     round to nearest even, then to int32
//   static I toE4m3(F);                         floatToE4m3 of finite lanes
//   template <bool kUnsigned> static void storeBytes(uint8_t* p, I codes);  kLanes bytes
//   static void storeNibbles(uint8_t* p, I codes);                         kLanes / 2 bytes
//   Scan, scanStart(), scan(Scan&, F), scanMax(const Scan&), scanNonFinite(const Scan&):
//     max |x| over the vector steps of a block, and whether a lane was NaN or Inf
//   Nan, nanStart(), noNan(const Nan&): the lanes that held an fp8 NaN code
//   static F loadInt8(const uint8_t*); static F loadInt4(const uint8_t*);
//   static F loadFp8(const uint8_t*, Nan&): kLanes codes -> their float values
#pragma once

#include <cstring>

#include "compress/element.h"
#include "compress/kernels.h"

namespace xsite::compress {
namespace {

// The quantized value of code k of a block codec; `ok` turns false on an fp8 NaN code.
inline float decodeCode(CodecId codec, const uint8_t* in, size_t k, bool& ok) {
  using namespace element;
  if (codec == CodecId::kInt8) return static_cast<float>(static_cast<int8_t>(in[k]));
  if (codec == CodecId::kInt4) return static_cast<float>(int4FromNibble((in[k / 2] >> (4 * (k & 1))) & 0xfu));
  ok &= !isE4m3NaN(in[k]);
  return e4m3ToFloat(in[k]);
}

namespace simd {

template <class V, DataType In, DataType Out>
void convert(const void* src, size_t count, void* dst) {
  size_t i = 0;
  for (; i + V::kLanes <= count; i += V::kLanes)
    V::template store<Out>(dst, i, V::template load<In>(src, i));
  for (; i < count; ++i) element::storeFloat(Out, dst, i, element::loadFloat(In, src, i));
}

template <class V, DataType In>
void convertFrom(DataType out, const void* src, size_t count, void* dst) {
  if (out == In) {
    if (count > 0) memcpy(dst, src, count * (In == DataType::kFloat32 ? 4 : 2));
  } else if (out == DataType::kFloat32) {
    convert<V, In, DataType::kFloat32>(src, count, dst);
  } else if (out == DataType::kBfloat16) {
    convert<V, In, DataType::kBfloat16>(src, count, dst);
  } else {
    convert<V, In, DataType::kFloat16>(src, count, dst);
  }
}

template <class V>
void castEncode(CodecId codec, DataType type, const void* src, size_t count, void* dst) {
  const DataType out = codec == CodecId::kBf16 ? DataType::kBfloat16 : DataType::kFloat16;
  if (type == DataType::kFloat32) convertFrom<V, DataType::kFloat32>(out, src, count, dst);
  else if (type == DataType::kBfloat16) convertFrom<V, DataType::kBfloat16>(out, src, count, dst);
  else convertFrom<V, DataType::kFloat16>(out, src, count, dst);
}

template <class V>
void castDecode(CodecId codec, const void* src, size_t count, DataType type, void* dst) {
  if (codec == CodecId::kBf16) convertFrom<V, DataType::kBfloat16>(type, src, count, dst);
  else convertFrom<V, DataType::kFloat16>(type, src, count, dst);
}

template <class V, DataType T>
void encodeBlocks(CodecId codec, const void* src, size_t count, uint32_t blockSize, void* scales,
                  uint8_t* out) {
  using namespace element;
  constexpr size_t W = V::kLanes;
  const float qmax = qmaxOf(codec);
  const auto vq = V::splat(qmax), vnq = V::splat(-qmax);
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t n = count - begin < blockSize ? count - begin : blockSize;
    auto scan = V::scanStart();
    size_t i = 0;
    for (; i + W <= n; i += W) V::scan(scan, V::template load<T>(src, begin + i));
    float amax = V::scanMax(scan);
    bool nonFinite = V::scanNonFinite(scan);
    for (size_t j = i; j < n; ++j) {
      const float x = loadFloat(T, src, begin + j);
      nonFinite |= !isFinite(x);
      const float a = absolute(x);
      amax = a > amax ? a : amax;
    }
    const BlockScale s = blockScale(amax, nonFinite, qmax);
    memcpy(static_cast<char*>(scales) + 4 * b, &s.scale, 4);
    if (nonFinite) {
      memset(codec == CodecId::kInt4 ? out + begin / 2 : out + begin, 0,
             codec == CodecId::kInt4 ? (n + 1) / 2 : n);
      continue;
    }
    const auto vinv = V::splat(s.inv);
    for (i = 0; i + W <= n; i += W) {
      const auto v = V::mul(V::template load<T>(src, begin + i), vinv);
      if (codec == CodecId::kFp8) {
        V::template storeBytes<true>(out + begin + i, V::toE4m3(v));
        continue;
      }
      const auto q = V::roundToInt(V::min(V::max(v, vnq), vq));
      if (codec == CodecId::kInt8) V::template storeBytes<false>(out + begin + i, q);
      else V::storeNibbles(out + (begin + i) / 2, q);
    }
    for (; i < n; ++i) {
      const float x = loadFloat(T, src, begin + i);
      if (codec == CodecId::kFp8) {
        out[begin + i] = quantizeFp8(x, s.inv);
      } else if (codec == CodecId::kInt8) {
        out[begin + i] = static_cast<uint8_t>(quantizeInt(x, s.inv, qmax));
      } else {
        const uint32_t nib = static_cast<uint32_t>(quantizeInt(x, s.inv, qmax)) & 0xfu;
        uint8_t& byte = out[(begin + i) / 2];
        byte = (i & 1) ? static_cast<uint8_t>(byte | (nib << 4)) : static_cast<uint8_t>(nib);
      }
    }
  }
}

template <class V>
void blockEncode(CodecId codec, DataType type, const void* src, size_t count, uint32_t blockSize,
                 void* scales, void* codes) {
  auto* out = static_cast<uint8_t*>(codes);
  if (type == DataType::kFloat32) encodeBlocks<V, DataType::kFloat32>(codec, src, count, blockSize, scales, out);
  else if (type == DataType::kBfloat16) encodeBlocks<V, DataType::kBfloat16>(codec, src, count, blockSize, scales, out);
  else encodeBlocks<V, DataType::kFloat16>(codec, src, count, blockSize, scales, out);
}

template <class V, DataType T>
bool decodeBlocks(CodecId codec, const void* scales, const uint8_t* in, size_t count,
                  uint32_t blockSize, void* dst) {
  constexpr size_t W = V::kLanes;
  auto nan = V::nanStart();
  bool ok = true;
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t n = count - begin < blockSize ? count - begin : blockSize;
    float scale;
    memcpy(&scale, static_cast<const char*>(scales) + 4 * b, 4);
    const auto vs = V::splat(scale);
    size_t i = 0;
    for (; i + W <= n; i += W) {
      decltype(V::splat(0.0f)) q;
      if (codec == CodecId::kInt4) q = V::loadInt4(in + (begin + i) / 2);
      else if (codec == CodecId::kInt8) q = V::loadInt8(in + begin + i);
      else q = V::loadFp8(in + begin + i, nan);
      V::template store<T>(dst, begin + i, V::mul(q, vs));
    }
    for (; i < n; ++i)
      element::storeFloat(T, dst, begin + i, element::dequantize(decodeCode(codec, in, begin + i, ok), scale));
  }
  return ok && V::noNan(nan);
}

template <class V>
bool blockDecode(CodecId codec, const void* scales, const void* codes, size_t count,
                 uint32_t blockSize, DataType type, void* dst) {
  const auto* in = static_cast<const uint8_t*>(codes);
  if (type == DataType::kFloat32) return decodeBlocks<V, DataType::kFloat32>(codec, scales, in, count, blockSize, dst);
  if (type == DataType::kBfloat16) return decodeBlocks<V, DataType::kBfloat16>(codec, scales, in, count, blockSize, dst);
  return decodeBlocks<V, DataType::kFloat16>(codec, scales, in, count, blockSize, dst);
}

// The table of ISA V.
template <class V>
constexpr Kernels kernels(Isa isa, const char* name) {
  return {isa, name, castEncode<V>, castDecode<V>, blockEncode<V>, blockDecode<V>};
}

}  // namespace simd
}  // namespace
}  // namespace xsite::compress
