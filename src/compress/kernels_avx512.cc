// The AVX-512 (F/BW/VL) kernels: 16 elements a step, tails through element.h. The same
// operations as kernels_avx2.cc on wider vectors, with mask registers for the selects; built
// with -mavx512f -mavx512bw -mavx512vl -mf16c and -ffp-contract=off. The drivers are
// kernels_simd.h's; this file is their policy: the 16-lane primitives.
#include <immintrin.h>

#include <cstring>

#include "compress/element.h"
#include "compress/kernels.h"
#include "compress/kernels_simd.h"

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

// The policy of kernels_simd.h: 16 lanes.
struct Avx512 {
  static constexpr size_t kLanes = 16;

  template <DataType T>
  static __m512 load(const void* p, size_t i) {
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
  static void store(void* p, size_t i, __m512 v) {
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

  static __m512 splat(float v) { return _mm512_set1_ps(v); }
  static __m512 mul(__m512 a, __m512 b) { return _mm512_mul_ps(a, b); }
  static __m512 min(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
  static __m512 max(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
  static __m512i roundToInt(__m512 v) {
    return _mm512_cvttps_epi32(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }

  // floatToE4m3 on 16 lanes (finite input).
  static __m512i toE4m3(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), set1(0x80));
    const __m512i a = _mm512_and_si512(u, set1(0x7fffffff));
    const __mmask16 sat = _mm512_cmpgt_epi32_mask(a, set1(0x43dfffff));
    const __mmask16 sub = _mm512_cmplt_epi32_mask(a, set1(0x3c800000));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, 20), set1(1));
    const __m512i normal = _mm512_sub_epi32(
        _mm512_srli_epi32(_mm512_add_epi32(a, _mm512_add_epi32(lsb, set1(0x7ffff))), 20), set1(960));
    const __m512i subn = roundToInt(_mm512_mul_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(512.0f)));
    __m512i c = _mm512_mask_blend_epi32(sub, normal, subn);
    c = _mm512_mask_blend_epi32(sat, c, set1(kFp8MaxCode));
    return _mm512_or_si512(c, sign);
  }

  // 16 int32 lanes (each in 0..255 or -128..127) -> 16 bytes: the low byte of each is the code.
  template <bool kUnsigned>
  static void storeBytes(uint8_t* p, __m512i v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
  }

  // 16 int4 codes (int32 lanes) -> 8 bytes, low nibble first.
  static void storeNibbles(uint8_t* p, __m512i q) {
    const __m512i t = _mm512_and_si512(q, set1(0xf));
    const __m512i b = _mm512_or_si512(t, _mm512_srli_epi64(t, 28));  // byte 0 of each qword
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm512_cvtepi64_epi8(b));
  }

  struct Scan {
    __m512i vmax;
    __mmask16 bad;
  };
  static Scan scanStart() { return {_mm512_setzero_si512(), 0}; }
  static void scan(Scan& s, __m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    // |x| of finite floats orders like integers: the integer max is the float max
    s.vmax = _mm512_max_epu32(s.vmax, _mm512_and_si512(u, set1(0x7fffffff)));
    s.bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, set1(0x7f800000)), set1(0x7f800000));
  }
  static float scanMax(const Scan& s) { return bitsToFloat(_mm512_reduce_max_epu32(s.vmax)); }
  static bool scanNonFinite(const Scan& s) { return s.bad != 0; }

  using Nan = __mmask16;
  static Nan nanStart() { return 0; }
  static bool noNan(const Nan& nan) { return nan == 0; }

  static __m512 loadInt8(const uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static __m512 loadInt4(const uint8_t* p) {
    const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m512i w = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(x, x));
    const __m512i shifts = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
    const __m512i nib = _mm512_and_si512(_mm512_srlv_epi32(w, shifts), set1(0xf));
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_xor_si512(nib, set1(8)), set1(8)));
  }
  // e4m3ToFloat on 16 lanes; `nan` collects the lanes holding a NaN code.
  static __m512 loadFp8(const uint8_t* p, Nan& nan) {
    const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
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
};

constexpr Kernels kAvx512 = simd::kernels<Avx512>(Isa::kAvx512, "avx512");

}  // namespace

const Kernels& avx512Kernels() noexcept { return kAvx512; }

}  // namespace xsite::compress
