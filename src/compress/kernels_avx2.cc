// The AVX2 + F16C kernels: 8 elements a step, tails through element.h. Built with -mavx2 -mf16c
// and -ffp-contract=off; every vector operation is the one element.h writes, so the bytes and
// the decoded values equal the scalar kernels' (tests/compress/lossy_test.cc checks it).
#include <immintrin.h>

#include <cstring>

#include "compress/element.h"
#include "compress/kernels.h"

namespace xsite::compress {
namespace {

using namespace element;

inline __m256i set1(int v) { return _mm256_set1_epi32(v); }

// halfToFloat keeps a NaN's payload as it is (a signalling one stays signalling); the hardware
// conversion quiets it. Rebuild the NaN lanes as halfToFloat does.
inline __m256 fixHalfNaN(__m256 f, __m128i h) {
  const __m256i w = _mm256_cvtepu16_epi32(h);
  const __m256i nan = _mm256_or_si256(
      _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, set1(0x8000)), 16), set1(0x7f800000)),
      _mm256_slli_epi32(_mm256_and_si256(w, set1(0x3ff)), 13));
  return _mm256_blendv_ps(f, _mm256_castsi256_ps(nan), _mm256_cmp_ps(f, f, _CMP_UNORD_Q));
}

template <DataType T>
inline __m256 load8(const void* p, size_t i) {
  if constexpr (T == DataType::kFloat32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(static_cast<const char*>(p) + 4 * i));
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const char*>(p) + 2 * i));
    if constexpr (T == DataType::kBfloat16)
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else
      return fixHalfNaN(_mm256_cvtph_ps(h), h);
  }
}

template <DataType T>
inline void store8(void* p, size_t i, __m256 v) {
  if constexpr (T == DataType::kFloat32) {
    _mm256_storeu_ps(reinterpret_cast<float*>(static_cast<char*>(p) + 4 * i), v);
  } else {
    __m128i h;
    const __m256i u = _mm256_castps_si256(v);
    if constexpr (T == DataType::kBfloat16) {  // floatToBf16
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, set1(0x7fffffff)), set1(0x7f800000));
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), set1(1));
      const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, set1(0x7fff))), 16);
      const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), set1(0x40));
      const __m256i w = _mm256_blendv_epi8(r, q, nan);
      h = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(w, w), 0x08));
    } else {  // floatToHalf: the hardware rounds the same; NaN becomes sign | 0x7e00
      h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256i m = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      const __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
      const __m128i nanh = _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16(-0x8000)), _mm_set1_epi16(0x7e00));
      h = _mm_blendv_epi8(h, nanh, m16);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<char*>(p) + 2 * i), h);
  }
}

template <DataType In, DataType Out>
void convert(const void* src, size_t count, void* dst) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) store8<Out>(dst, i, load8<In>(src, i));
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

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

// floatToE4m3 on 8 lanes (finite input).
inline __m256i toE4m3(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), set1(0x80));
  const __m256i a = _mm256_and_si256(u, set1(0x7fffffff));
  const __m256i sat = _mm256_cmpgt_epi32(a, set1(0x43dfffff));
  const __m256i sub = _mm256_cmpgt_epi32(set1(0x3c800000), a);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, 20), set1(1));
  const __m256i normal = _mm256_sub_epi32(
      _mm256_srli_epi32(_mm256_add_epi32(a, _mm256_add_epi32(lsb, set1(0x7ffff))), 20), set1(960));
  const __m256 scaled = _mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(512.0f));
  const __m256i subn = _mm256_cvttps_epi32(
      _mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  __m256i c = _mm256_blendv_epi8(normal, subn, sub);
  c = _mm256_blendv_epi8(c, set1(kFp8MaxCode), sat);
  return _mm256_or_si256(c, sign);
}

// 8 int32 lanes (each in 0..255 or -128..127) -> 8 bytes.
inline void storeBytes8(uint8_t* p, __m256i v, bool isUnsigned) {
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i b = isUnsigned ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
}

// 8 int4 codes (int32 lanes) -> 4 bytes, low nibble first.
inline void storeNibbles8(uint8_t* p, __m256i q) {
  const __m256i t = _mm256_and_si256(q, set1(0xf));
  const __m256i b = _mm256_or_si256(t, _mm256_srli_epi64(t, 28));  // byte 0 of each 64-bit lane
  const __m256i s = _mm256_shuffle_epi8(
      b, _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, -1,
                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  const uint32_t lo = static_cast<uint32_t>(_mm_extract_epi16(_mm256_castsi256_si128(s), 0));
  const uint32_t hi = static_cast<uint32_t>(_mm_extract_epi16(_mm256_extracti128_si256(s, 1), 0));
  const uint32_t word = lo | (hi << 16);
  memcpy(p, &word, 4);
}

template <DataType T>
void encodeBlocks(CodecId codec, const void* src, size_t count, uint32_t blockSize, void* scales,
                  uint8_t* out) {
  const float qmax = codec == CodecId::kInt8 ? kInt8Max : codec == CodecId::kInt4 ? kInt4Max : kFp8Max;
  const __m256 vq = _mm256_set1_ps(qmax), vnq = _mm256_set1_ps(-qmax);
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t n = count - begin < blockSize ? count - begin : blockSize;
    __m256 vmax = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256i u = _mm256_castps_si256(load8<T>(src, begin + i));
      vmax = _mm256_max_ps(vmax, _mm256_castsi256_ps(_mm256_and_si256(u, set1(0x7fffffff))));
      bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(u, set1(0x7f800000)), set1(0x7f800000)));
    }
    float amax = hmax(vmax);
    bool nonFinite = !_mm256_testz_si256(bad, bad);
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
    const __m256 vinv = _mm256_set1_ps(s.inv);
    for (i = 0; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_mul_ps(load8<T>(src, begin + i), vinv);
      if (codec == CodecId::kFp8) {
        storeBytes8(out + begin + i, toE4m3(v), true);
        continue;
      }
      const __m256 c = _mm256_min_ps(_mm256_max_ps(v, vnq), vq);
      const __m256i q = _mm256_cvttps_epi32(_mm256_round_ps(c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      if (codec == CodecId::kInt8) storeBytes8(out + begin + i, q, false);
      else storeNibbles8(out + (begin + i) / 2, q);
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

// e4m3ToFloat on 8 lanes; `nan` collects the lanes holding a NaN code.
inline __m256 fromE4m3(__m256i c, __m256i& nan) {
  nan = _mm256_or_si256(nan, _mm256_cmpeq_epi32(_mm256_and_si256(c, set1(0x7f)), set1(0x7f)));
  const __m256i e = _mm256_and_si256(_mm256_srli_epi32(c, 3), set1(0xf));
  const __m256i m = _mm256_and_si256(c, set1(7));
  const __m256i normal = _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(e, set1(120)), 23),
                                         _mm256_slli_epi32(m, 20));
  const __m256 subn = _mm256_mul_ps(_mm256_cvtepi32_ps(m), _mm256_set1_ps(0.001953125f));
  const __m256 mag = _mm256_blendv_ps(_mm256_castsi256_ps(normal), subn,
                                      _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_setzero_si256())));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(c, set1(0x80)), 24);
  return _mm256_or_ps(mag, _mm256_castsi256_ps(sign));
}

template <DataType T>
bool decodeBlocks(CodecId codec, const void* scales, const uint8_t* in, size_t count,
                  uint32_t blockSize, void* dst) {
  __m256i nan = _mm256_setzero_si256();
  bool ok = true;
  const __m256i shifts = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t n = count - begin < blockSize ? count - begin : blockSize;
    float scale;
    memcpy(&scale, static_cast<const char*>(scales) + 4 * b, 4);
    const __m256 vs = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      __m256 q;
      if (codec == CodecId::kInt4) {
        uint32_t word;
        memcpy(&word, in + (begin + i) / 2, 4);
        const __m128i x = _mm_cvtsi32_si128(static_cast<int>(word));
        const __m256i w = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(x, x));
        const __m256i nib = _mm256_and_si256(_mm256_srlv_epi32(w, shifts), set1(0xf));
        q = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_xor_si256(nib, set1(8)), set1(8)));
      } else {
        const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + begin + i));
        if (codec == CodecId::kInt8) q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
        else q = fromE4m3(_mm256_cvtepu8_epi32(x), nan);
      }
      store8<T>(dst, begin + i, _mm256_mul_ps(q, vs));
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
  return ok && _mm256_testz_si256(nan, nan);
}

bool blockDecode(CodecId codec, const void* scales, const void* codes, size_t count,
                 uint32_t blockSize, DataType type, void* dst) {
  const auto* in = static_cast<const uint8_t*>(codes);
  if (type == DataType::kFloat32) return decodeBlocks<DataType::kFloat32>(codec, scales, in, count, blockSize, dst);
  if (type == DataType::kBfloat16) return decodeBlocks<DataType::kBfloat16>(codec, scales, in, count, blockSize, dst);
  return decodeBlocks<DataType::kFloat16>(codec, scales, in, count, blockSize, dst);
}

constexpr Kernels kAvx2 = {Isa::kAvx2, "avx2", castEncode, castDecode, blockEncode, blockDecode};

}  // namespace

const Kernels& avx2Kernels() noexcept { return kAvx2; }

}  // namespace xsite::compress
