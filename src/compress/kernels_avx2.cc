// The AVX2 + F16C kernels: 8 elements a step, tails through element.h. Built with -mavx2 -mf16c
// and -ffp-contract=off; every vector operation is the one element.h writes, so the bytes and
// the decoded values equal the scalar kernels' (tests/compress/lossy_test.cc checks it). The
// drivers are kernels_simd.h's; this file is their policy: the 8-lane primitives.
#include <immintrin.h>

#include <cstring>

#include "compress/element.h"
#include "compress/kernels.h"
#include "compress/kernels_simd.h"

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

// The policy of kernels_simd.h: 8 lanes.
struct Avx2 {
  static constexpr size_t kLanes = 8;

  template <DataType T>
  static __m256 load(const void* p, size_t i) {
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
  static void store(void* p, size_t i, __m256 v) {
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

  static __m256 splat(float v) { return _mm256_set1_ps(v); }
  static __m256 mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
  static __m256 min(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
  static __m256 max(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
  static __m256i roundToInt(__m256 v) {
    return _mm256_cvttps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }

  // floatToE4m3 on 8 lanes (finite input).
  static __m256i toE4m3(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), set1(0x80));
    const __m256i a = _mm256_and_si256(u, set1(0x7fffffff));
    const __m256i sat = _mm256_cmpgt_epi32(a, set1(0x43dfffff));
    const __m256i sub = _mm256_cmpgt_epi32(set1(0x3c800000), a);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, 20), set1(1));
    const __m256i normal = _mm256_sub_epi32(
        _mm256_srli_epi32(_mm256_add_epi32(a, _mm256_add_epi32(lsb, set1(0x7ffff))), 20), set1(960));
    const __m256i subn = roundToInt(_mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(512.0f)));
    __m256i c = _mm256_blendv_epi8(normal, subn, sub);
    c = _mm256_blendv_epi8(c, set1(kFp8MaxCode), sat);
    return _mm256_or_si256(c, sign);
  }

  // 8 int32 lanes (each in 0..255 or -128..127) -> 8 bytes.
  template <bool kUnsigned>
  static void storeBytes(uint8_t* p, __m256i v) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    const __m128i b = kUnsigned ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
  }

  // 8 int4 codes (int32 lanes) -> 4 bytes, low nibble first.
  static void storeNibbles(uint8_t* p, __m256i q) {
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

  struct Scan {
    __m256 vmax;
    __m256i bad;
  };
  static Scan scanStart() { return {_mm256_setzero_ps(), _mm256_setzero_si256()}; }
  static void scan(Scan& s, __m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    s.vmax = _mm256_max_ps(s.vmax, _mm256_castsi256_ps(_mm256_and_si256(u, set1(0x7fffffff))));
    s.bad = _mm256_or_si256(s.bad, _mm256_cmpeq_epi32(_mm256_and_si256(u, set1(0x7f800000)), set1(0x7f800000)));
  }
  static float scanMax(const Scan& s) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(s.vmax), _mm256_extractf128_ps(s.vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static bool scanNonFinite(const Scan& s) { return !_mm256_testz_si256(s.bad, s.bad); }

  using Nan = __m256i;
  static Nan nanStart() { return _mm256_setzero_si256(); }
  static bool noNan(const Nan& nan) { return _mm256_testz_si256(nan, nan); }

  static __m256 loadInt8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static __m256 loadInt4(const uint8_t* p) {
    uint32_t word;
    memcpy(&word, p, 4);
    const __m128i x = _mm_cvtsi32_si128(static_cast<int>(word));
    const __m256i w = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(x, x));
    const __m256i nib =
        _mm256_and_si256(_mm256_srlv_epi32(w, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)), set1(0xf));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_xor_si256(nib, set1(8)), set1(8)));
  }
  // e4m3ToFloat on 8 lanes; `nan` collects the lanes holding a NaN code.
  static __m256 loadFp8(const uint8_t* p, Nan& nan) {
    const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
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
};

constexpr Kernels kAvx2 = simd::kernels<Avx2>(Isa::kAvx2, "avx2");

}  // namespace

const Kernels& avx2Kernels() noexcept { return kAvx2; }

}  // namespace xsite::compress
