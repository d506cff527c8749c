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

// The operations on E-byte elements: the non-zero mask of a register (one bit a lane), and
// compress / expand under it.
template <size_t E>
struct Lanes;
template <>
struct Lanes<1> {
  using Mask = __mmask64;
  static Mask test(__m512i v) { return _mm512_test_epi8_mask(v, v); }
  static __m512i compress(Mask k, __m512i v) { return _mm512_maskz_compress_epi8(k, v); }
  static __m512i expand(Mask k, __m512i v) { return _mm512_maskz_expand_epi8(k, v); }
};
template <>
struct Lanes<2> {
  using Mask = __mmask32;
  static Mask test(__m512i v) { return _mm512_test_epi16_mask(v, v); }
  static __m512i compress(Mask k, __m512i v) { return _mm512_maskz_compress_epi16(k, v); }
  static __m512i expand(Mask k, __m512i v) { return _mm512_maskz_expand_epi16(k, v); }
};
template <>
struct Lanes<4> {
  using Mask = __mmask16;
  static Mask test(__m512i v) { return _mm512_test_epi32_mask(v, v); }
  static __m512i compress(Mask k, __m512i v) { return _mm512_maskz_compress_epi32(k, v); }
  static __m512i expand(Mask k, __m512i v) { return _mm512_maskz_expand_epi32(k, v); }
};
template <>
struct Lanes<8> {
  using Mask = __mmask8;
  static Mask test(__m512i v) { return _mm512_test_epi64_mask(v, v); }
  static __m512i compress(Mask k, __m512i v) { return _mm512_maskz_compress_epi64(k, v); }
  static __m512i expand(Mask k, __m512i v) { return _mm512_maskz_expand_epi64(k, v); }
};

template <size_t E>
size_t countN(const uint8_t* s, size_t count, size_t* zeros) {
  constexpr size_t per = 64 / E;
  const size_t n = count / (4 * per) * (4 * per);  // four registers a step
  size_t z = 0;
  for (size_t i = 0; i < n; i += 4 * per)
    for (size_t r = 0; r < 4; ++r)
      z += per - static_cast<size_t>(_mm_popcnt_u64(Lanes<E>::test(load(s + (i + r * per) * E))));
  *zeros = z;
  return n;
}

// A register of 64 / E elements a step; its mask is 64 / E bits of the bitmap.
template <size_t E>
size_t packN(const uint8_t* s, size_t count, uint8_t* bitmap, uint8_t* d, size_t* packedCount) {
  constexpr size_t per = 64 / E;
  size_t j = 0, i = 0;
  for (; i + per <= count; i += per) {
    const __m512i v = load(s + E * i);
    const auto k = Lanes<E>::test(v);
    store(d + E * j, Lanes<E>::compress(k, v));
    const uint64_t bits = k;
    __builtin_memcpy(bitmap + i / 8, &bits, per / 8);
    j += static_cast<size_t>(_mm_popcnt_u64(bits));
  }
  *packedCount = j;
  return i;
}

template <size_t E>
size_t unpackN(const uint8_t* bitmap, const uint8_t* s, size_t count, uint8_t* d,
               size_t* packedCount) {
  constexpr size_t per = 64 / E;
  size_t j = 0, i = 0;
  for (; i + per <= count; i += per) {
    uint64_t bits = 0;
    __builtin_memcpy(&bits, bitmap + i / 8, per / 8);
    store(d + E * i, Lanes<E>::expand(static_cast<typename Lanes<E>::Mask>(bits), load(s + E * j)));
    j += static_cast<size_t>(_mm_popcnt_u64(bits));
  }
  *packedCount = j;
  return i;
}

}  // namespace

size_t countZerosAvx512(const void* src, size_t count, size_t e, size_t* zeros) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  switch (e) {
    case 1: return countN<1>(s, count, zeros);
    case 2: return countN<2>(s, count, zeros);
    case 4: return countN<4>(s, count, zeros);
    case 8: return countN<8>(s, count, zeros);
    default: return 0;
  }
}

size_t packAvx512(const void* src, size_t count, size_t e, bool vbmi2, uint8_t* bitmap,
                  void* packed, size_t* packedCount) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(packed);
  if (e == 4) return packN<4>(s, count, bitmap, d, packedCount);
  if (e == 8) return packN<8>(s, count, bitmap, d, packedCount);
  if (e == 2 && vbmi2) return packN<2>(s, count, bitmap, d, packedCount);
  if (e == 1 && vbmi2) return packN<1>(s, count, bitmap, d, packedCount);
  *packedCount = 0;
  return 0;
}

size_t unpackAvx512(const uint8_t* bitmap, const void* packed, size_t count, size_t e, bool vbmi2,
                    void* dst, size_t* packedCount) noexcept {
  const auto* s = static_cast<const uint8_t*>(packed);
  auto* d = static_cast<uint8_t*>(dst);
  if (e == 4) return unpackN<4>(bitmap, s, count, d, packedCount);
  if (e == 8) return unpackN<8>(bitmap, s, count, d, packedCount);
  if (e == 2 && vbmi2) return unpackN<2>(bitmap, s, count, d, packedCount);
  if (e == 1 && vbmi2) return unpackN<1>(bitmap, s, count, d, packedCount);
  *packedCount = 0;
  return 0;
}

}  // namespace xsite::compress::detail
