// The AVX-512 (F/BW/VL) kernels: 16 elements a step, tails through element.h. The same
// operations as kernels_avx2.cc on wider vectors, with mask registers for the selects; built
// with -mavx512f -mavx512bw -mavx512vl -mf16c and -ffp-contract=off.
#include <immintrin.h>

#include <cstring>

#include "compress/element.h"
#include "compress/kernels.h"

namespace xsite::compress {
namespace {

using namespace element;

inline __m512i set1(int v) { return _mm512_set1_epi32(v); }

// halfToFloat keeps a NaN's payload as it is (a signalling one stays signalling); the hardware
// conversion quiets it. Rebuild the NaN lanes as halfToFloat does.
inline __m512 fixHalfNaN(__m512 f, __m256i h) {
  const __m512i w = _mm512_cvtepu16_epi32(h);
  const __m512i nan = _mm512_or_si512(
      _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, set1(0x8000)), 16), set1(0x7f800000)),
      _mm512_slli_epi32(_mm512_and_si512(w, set1(0x3ff)), 13));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), f, _mm512_castsi512_ps(nan));
}

template <DataType T>
inline __m512 load16(const void* p, size_t i) {
  if constexpr (T == DataType::kFloat32) {
    return _mm512_loadu_ps(static_cast<const char*>(p) + 4 * i);
  } else {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const char*>(p) + 2 * i));
    if constexpr (T == DataType::kBfloat16)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else
      return fixHalfNaN(_mm512_cvtph_ps(h), h);
  }
}

template <DataType T>
inline void store16(void* p, size_t i, __m512 v) {
  if constexpr (T == DataType::kFloat32) {
    _mm512_storeu_ps(static_cast<char*>(p) + 4 * i, v);
  } else {
    __m256i h;
    const __m512i u = _mm512_castps_si512(v);
    if constexpr (T == DataType::kBfloat16) {  // floatToBf16
      const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, set1(0x7fffffff)), set1(0x7f800000));
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), set1(1));
      const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, set1(0x7fff))), 16);
      const __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), set1(0x40));
      h = _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q));
    } else {  // floatToHalf: the hardware rounds the same; NaN becomes sign | 0x7e00
      h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      const __m256i nanh = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16(-0x8000)),
                                           _mm256_set1_epi16(0x7e00));
      h = _mm256_mask_blend_epi16(nan, h, nanh);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<char*>(p) + 2 * i), h);
  }
}

template <DataType In, DataType Out>
void convert(const void* src, size_t count, void* dst) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) store16<Out>(dst, i, load16<In>(src, i));
  for (; i < count; ++i) storeFloat(Out, dst, i, loadFloat(In, src, i));
}

template <DataType In>
void convertFrom(DataType out, const void* src, size_t count, void* dst) {
  if (out == In) {
    if (count > 0) memcpy(dst, src, count * (In == DataType::kFloat32 ? 4 : 2));
  } else if (out == DataType::kFloat32) {
    convert<In, DataType::kFloat32>(src, count, dst);
  } else if (out == DataType::kBfloat16) {
    convert<In, DataType::kBfloat16>(src, count, dst);
  } else {
    convert<In, DataType::kFloat16>(src, count, dst);
  }
}

void castEncode(CodecId codec, DataType type, const void* src, size_t count, void* dst) {
  const DataType out = codec == CodecId::kBf16 ? DataType::kBfloat16 : DataType::kFloat16;
  if (type == DataType::kFloat32) convertFrom<DataType::kFloat32>(out, src, count, dst);
  else if (type == DataType::kBfloat16) convertFrom<DataType::kBfloat16>(out, src, count, dst);
  else convertFrom<DataType::kFloat16>(out, src, count, dst);
}

void castDecode(CodecId codec, const void* src, size_t count, DataType type, void* dst) {
  if (codec == CodecId::kBf16) convertFrom<DataType::kBfloat16>(type, src, count, dst);
  else convertFrom<DataType::kFloat16>(type, src, count, dst);
}

// floatToE4m3 on 16 lanes (finite input).
inline __m512i toE4m3(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), set1(0x80));
  const __m512i a = _mm512_and_si512(u, set1(0x7fffffff));
  const __mmask16 sat = _mm512_cmpgt_epi32_mask(a, set1(0x43dfffff));
  const __mmask16 sub = _mm512_cmplt_epi32_mask(a, set1(0x3c800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, 20), set1(1));
  const __m512i normal = _mm512_sub_epi32(
      _mm512_srli_epi32(_mm512_add_epi32(a, _mm512_add_epi32(lsb, set1(0x7ffff))), 20), set1(960));
  const __m512 scaled = _mm512_mul_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(512.0f));
  const __m512i subn = _mm512_cvttps_epi32(
      _mm512_roundscale_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  __m512i c = _mm512_mask_blend_epi32(sub, normal, subn);
  c = _mm512_mask_blend_epi32(sat, c, set1(kFp8MaxCode));
  return _mm512_or_si512(c, sign);
}

template <DataType T>
void encodeBlocks(CodecId codec, const void* src, size_t count, uint32_t blockSize, void* scales,
                  uint8_t* out) {
  const float qmax = codec == CodecId::kInt8 ? kInt8Max : codec == CodecId::kInt4 ? kInt4Max : kFp8Max;
  const __m512 vq = _mm512_set1_ps(qmax), vnq = _mm512_set1_ps(-qmax);
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t n = count - begin < blockSize ? count - begin : blockSize;
    __m512i vmax = _mm512_setzero_si512();
    __mmask16 bad = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512i u = _mm512_castps_si512(load16<T>(src, begin + i));
      // |x| of finite floats orders like integers: the integer max is the float max
      vmax = _mm512_max_epu32(vmax, _mm512_and_si512(u, set1(0x7fffffff)));
      bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, set1(0x7f800000)), set1(0x7f800000));
    }
    float amax = bitsToFloat(_mm512_reduce_max_epu32(vmax));
    bool nonFinite = bad != 0;
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
    const __m512 vinv = _mm512_set1_ps(s.inv);
    for (i = 0; i + 16 <= n; i += 16) {
      const __m512 v = _mm512_mul_ps(load16<T>(src, begin + i), vinv);
      if (codec == CodecId::kFp8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + begin + i), _mm512_cvtepi32_epi8(toE4m3(v)));
        continue;
      }
      const __m512 c = _mm512_min_ps(_mm512_max_ps(v, vnq), vq);
      const __m512i q = _mm512_cvttps_epi32(
          _mm512_roundscale_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      if (codec == CodecId::kInt8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + begin + i), _mm512_cvtepi32_epi8(q));
      } else {
        const __m512i t = _mm512_and_si512(q, set1(0xf));
        const __m512i b2 = _mm512_or_si512(t, _mm512_srli_epi64(t, 28));  // byte 0 of each qword
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + (begin + i) / 2), _mm512_cvtepi64_epi8(b2));
      }
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

void blockEncode(CodecId codec, DataType type, const void* src, size_t count, uint32_t blockSize,
                 void* scales, void* codes) {
  auto* out = static_cast<uint8_t*>(codes);
  if (type == DataType::kFloat32) encodeBlocks<DataType::kFloat32>(codec, src, count, blockSize, scales, out);
  else if (type == DataType::kBfloat16) encodeBlocks<DataType::kBfloat16>(codec, src, count, blockSize, scales, out);
  else encodeBlocks<DataType::kFloat16>(codec, src, count, blockSize, scales, out);
}

// e4m3ToFloat on 16 lanes; `nan` collects the lanes holding a NaN code.
inline __m512 fromE4m3(__m512i c, __mmask16& nan) {
  nan |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(c, set1(0x7f)), set1(0x7f));
  const __m512i e = _mm512_and_si512(_mm512_srli_epi32(c, 3), set1(0xf));
  const __m512i m = _mm512_and_si512(c, set1(7));
  const __m512i normal = _mm512_or_si512(_mm512_slli_epi32(_mm512_add_epi32(e, set1(120)), 23),
                                         _mm512_slli_epi32(m, 20));
  const __m512 subn = _mm512_mul_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(0.001953125f));
  const __m512 mag = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()),
                                          _mm512_castsi512_ps(normal), subn);
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(c, set1(0x80)), 24);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag), sign));
}

template <DataType T>
bool decodeBlocks(CodecId codec, const void* scales, const uint8_t* in, size_t count,
                  uint32_t blockSize, void* dst) {
  __mmask16 nan = 0;
  bool ok = true;
  const __m512i shifts = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t n = count - begin < blockSize ? count - begin : blockSize;
    float scale;
    memcpy(&scale, static_cast<const char*>(scales) + 4 * b, 4);
    const __m512 vs = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      __m512 q;
      if (codec == CodecId::kInt4) {
        const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + (begin + i) / 2));
        const __m512i w = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(x, x));
        const __m512i nib = _mm512_and_si512(_mm512_srlv_epi32(w, shifts), set1(0xf));
        q = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_xor_si512(nib, set1(8)), set1(8)));
      } else {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + begin + i));
        if (codec == CodecId::kInt8) q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(x));
        else q = fromE4m3(_mm512_cvtepu8_epi32(x), nan);
      }
      store16<T>(dst, begin + i, _mm512_mul_ps(q, vs));
    }
    for (; i < n; ++i) {
      const size_t k = begin + i;
      float q;
      if (codec == CodecId::kInt8) {
        q = static_cast<float>(static_cast<int8_t>(in[k]));
      } else if (codec == CodecId::kInt4) {
        q = static_cast<float>(int4FromNibble((in[k / 2] >> (4 * (k & 1))) & 0xfu));
      } else {
        ok &= !isE4m3NaN(in[k]);
        q = e4m3ToFloat(in[k]);
      }
      storeFloat(T, dst, k, dequantize(q, scale));
    }
  }
  return ok && nan == 0;
}

bool blockDecode(CodecId codec, const void* scales, const void* codes, size_t count,
                 uint32_t blockSize, DataType type, void* dst) {
  const auto* in = static_cast<const uint8_t*>(codes);
  if (type == DataType::kFloat32) return decodeBlocks<DataType::kFloat32>(codec, scales, in, count, blockSize, dst);
  if (type == DataType::kBfloat16) return decodeBlocks<DataType::kBfloat16>(codec, scales, in, count, blockSize, dst);
  return decodeBlocks<DataType::kFloat16>(codec, scales, in, count, blockSize, dst);
}

constexpr Kernels kAvx512 = {Isa::kAvx512, "avx512", castEncode, castDecode, blockEncode, blockDecode};

}  // namespace

const Kernels& avx512Kernels() noexcept { return kAvx512; }

}  // namespace xsite::compress
