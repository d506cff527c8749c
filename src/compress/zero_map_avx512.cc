// AVX-512 zero elision: a register's zero test is its bitmap bits (vptestm), and vpcompress /
// vpexpand move the non-zero elements (bytes and words need VBMI2, passed in as `vbmi2`). Built
// with -mavx512f -mavx512bw -mavx512vl -mavx512vbmi2 -mpopcnt and reached only after a runtime
// check (zero_map.cc); like shuffle_avx2.cc it includes no C++ library header.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "compress/zero_map.h"

namespace xsite::compress::detail {
namespace {

inline __m512i load(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline void store(uint8_t* p, __m512i v) { _mm512_storeu_si512(p, v); }
inline void storeBits(uint8_t* p, uint64_t bits, int bytes) { __builtin_memcpy(p, &bits, bytes); }
inline uint64_t loadBits(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  __builtin_memcpy(&v, p, bytes);
  return v;
}

}  // namespace

size_t countZerosAvx512(const void* src, size_t count, size_t e, size_t* zeros) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  const size_t per = e == 1 ? 64 : e == 2 ? 32 : e == 4 ? 16 : e == 8 ? 8 : 0;
  if (per == 0) return 0;
  const size_t n = count / (4 * per) * (4 * per);  // four registers a step
  size_t z = 0;
  for (size_t i = 0; i < n; i += 4 * per) {
    for (int r = 0; r < 4; ++r) {
      const __m512i v = load(s + (i + r * per) * e);
      uint64_t bits;
      if (e == 1) bits = _mm512_test_epi8_mask(v, v);
      else if (e == 2) bits = _mm512_test_epi16_mask(v, v);
      else if (e == 4) bits = _mm512_test_epi32_mask(v, v);
      else bits = _mm512_test_epi64_mask(v, v);
      z += per - static_cast<size_t>(_mm_popcnt_u64(bits));
    }
  }
  *zeros = z;
  return n;
}

size_t packAvx512(const void* src, size_t count, size_t e, bool vbmi2, uint8_t* bitmap,
                  void* packed, size_t* packedCount) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(packed);
  size_t j = 0, i = 0;
  if (e == 4) {
    for (; i + 16 <= count; i += 16) {
      const __m512i v = load(s + 4 * i);
      const __mmask16 k = _mm512_test_epi32_mask(v, v);
      store(d + 4 * j, _mm512_maskz_compress_epi32(k, v));
      storeBits(bitmap + i / 8, k, 2);
      j += static_cast<size_t>(_mm_popcnt_u32(k));
    }
  } else if (e == 8) {
    for (; i + 8 <= count; i += 8) {
      const __m512i v = load(s + 8 * i);
      const __mmask8 k = _mm512_test_epi64_mask(v, v);
      store(d + 8 * j, _mm512_maskz_compress_epi64(k, v));
      bitmap[i / 8] = k;
      j += static_cast<size_t>(_mm_popcnt_u32(k));
    }
  } else if (e == 2 && vbmi2) {
    for (; i + 32 <= count; i += 32) {
      const __m512i v = load(s + 2 * i);
      const __mmask32 k = _mm512_test_epi16_mask(v, v);
      store(d + 2 * j, _mm512_maskz_compress_epi16(k, v));
      storeBits(bitmap + i / 8, k, 4);
      j += static_cast<size_t>(_mm_popcnt_u32(k));
    }
  } else if (e == 1 && vbmi2) {
    for (; i + 64 <= count; i += 64) {
      const __m512i v = load(s + i);
      const __mmask64 k = _mm512_test_epi8_mask(v, v);
      store(d + j, _mm512_maskz_compress_epi8(k, v));
      storeBits(bitmap + i / 8, k, 8);
      j += static_cast<size_t>(_mm_popcnt_u64(k));
    }
  }
  *packedCount = j;
  return i;
}

size_t unpackAvx512(const uint8_t* bitmap, const void* packed, size_t count, size_t e, bool vbmi2,
                    void* dst, size_t* packedCount) noexcept {
  const auto* s = static_cast<const uint8_t*>(packed);
  auto* d = static_cast<uint8_t*>(dst);
  size_t j = 0, i = 0;
  if (e == 4) {
    for (; i + 16 <= count; i += 16) {
      const __mmask16 k = static_cast<__mmask16>(loadBits(bitmap + i / 8, 2));
      store(d + 4 * i, _mm512_maskz_expand_epi32(k, load(s + 4 * j)));
      j += static_cast<size_t>(_mm_popcnt_u32(k));
    }
  } else if (e == 8) {
    for (; i + 8 <= count; i += 8) {
      const __mmask8 k = bitmap[i / 8];
      store(d + 8 * i, _mm512_maskz_expand_epi64(k, load(s + 8 * j)));
      j += static_cast<size_t>(_mm_popcnt_u32(k));
    }
  } else if (e == 2 && vbmi2) {
    for (; i + 32 <= count; i += 32) {
      const __mmask32 k = static_cast<__mmask32>(loadBits(bitmap + i / 8, 4));
      store(d + 2 * i, _mm512_maskz_expand_epi16(k, load(s + 2 * j)));
      j += static_cast<size_t>(_mm_popcnt_u32(k));
    }
  } else if (e == 1 && vbmi2) {
    for (; i + 64 <= count; i += 64) {
      const __mmask64 k = loadBits(bitmap + i / 8, 8);
      store(d + i, _mm512_maskz_expand_epi8(k, load(s + j)));
      j += static_cast<size_t>(_mm_popcnt_u64(k));
    }
  }
  *packedCount = j;
  return i;
}

}  // namespace xsite::compress::detail
