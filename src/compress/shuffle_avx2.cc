// AVX2 byte-plane shuffle for 2- and 4-byte elements. Built with -mavx2 and reached only after a
// runtime check (shuffle.cc); this file includes no C++ library header, so no inline function
// compiled for AVX2 here can be picked by the linker for the scalar path.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "compress/shuffle.h"

namespace xsite::compress::detail {
namespace {

// Within each 128-bit lane: 8 x 2-byte elements -> [low bytes | high bytes], and its inverse.
inline __m256i mask2() {
  return _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                          0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
}
inline __m256i unmask2() {
  return _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                          0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
}
// Within each lane: 4 x 4-byte elements -> byte 0 of each, byte 1 of each, ... (a 4x4 byte
// transpose, its own inverse).
inline __m256i mask4() {
  return _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                          0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline void store(uint8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// 32 elements per step: two registers; per lane [plane0 x8 | plane1 x8], then gather qwords.
template <bool kCount>
size_t shuffle2(const uint8_t* s, size_t count, uint8_t* d, size_t* zeros) {
  const __m256i m = mask2();
  size_t i = 0, z = 0;
  for (; i + 32 <= count; i += 32) {
    const __m256i va = load(s + 2 * i), vb = load(s + 2 * i + 32);
    if (kCount) {
      const __m256i ca = _mm256_cmpeq_epi16(va, _mm256_setzero_si256());
      const __m256i cb = _mm256_cmpeq_epi16(vb, _mm256_setzero_si256());
      z += static_cast<size_t>(__builtin_popcount(
          static_cast<unsigned>(_mm256_movemask_epi8(_mm256_packs_epi16(ca, cb)))));
    }
    __m256i a = _mm256_shuffle_epi8(va, m);  // elements i..i+15
    __m256i b = _mm256_shuffle_epi8(vb, m);  // elements i+16..i+31
    a = _mm256_permute4x64_epi64(a, 0xD8);                     // [p0 p0 p1 p1]
    b = _mm256_permute4x64_epi64(b, 0xD8);
    store(d + i, _mm256_permute2x128_si256(a, b, 0x20));
    store(d + count + i, _mm256_permute2x128_si256(a, b, 0x31));
  }
  if (kCount) *zeros = z;
  return i;
}

size_t unshuffle2(const uint8_t* s, size_t count, uint8_t* d) {
  const __m256i m = unmask2();
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const __m256i p0 = load(s + i), p1 = load(s + count + i);
    __m256i a = _mm256_permute2x128_si256(p0, p1, 0x20);
    __m256i b = _mm256_permute2x128_si256(p0, p1, 0x31);
    a = _mm256_permute4x64_epi64(a, 0xD8);
    b = _mm256_permute4x64_epi64(b, 0xD8);
    store(d + 2 * i, _mm256_shuffle_epi8(a, m));
    store(d + 2 * i + 32, _mm256_shuffle_epi8(b, m));
  }
  return i;
}

// 32 elements per step: four registers of 8; per register the four planes' 8 bytes each as
// qwords, then a 4x4 qword transpose gives each plane's 32 bytes.
template <bool kCount>
size_t shuffle4(const uint8_t* s, size_t count, uint8_t* d, size_t* zeros) {
  const __m256i m = mask4();
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  size_t i = 0, z = 0;
  for (; i + 32 <= count; i += 32) {
    __m256i r[4];
    unsigned zeroBits = 0;
    for (int k = 0; k < 4; ++k) {
      const __m256i v = load(s + 4 * i + 32 * k);
      if (kCount) {
        const __m256i c = _mm256_cmpeq_epi32(v, _mm256_setzero_si256());
        zeroBits |= static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(c))) << (8 * k);
      }
      r[k] = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, m), perm);
    }
    if (kCount) z += static_cast<size_t>(__builtin_popcount(zeroBits));
    const __m256i lo01 = _mm256_unpacklo_epi64(r[0], r[1]), hi01 = _mm256_unpackhi_epi64(r[0], r[1]);
    const __m256i lo23 = _mm256_unpacklo_epi64(r[2], r[3]), hi23 = _mm256_unpackhi_epi64(r[2], r[3]);
    store(d + i, _mm256_permute2x128_si256(lo01, lo23, 0x20));
    store(d + count + i, _mm256_permute2x128_si256(hi01, hi23, 0x20));
    store(d + 2 * count + i, _mm256_permute2x128_si256(lo01, lo23, 0x31));
    store(d + 3 * count + i, _mm256_permute2x128_si256(hi01, hi23, 0x31));
  }
  if (kCount) *zeros = z;
  return i;
}

size_t unshuffle4(const uint8_t* s, size_t count, uint8_t* d) {
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const __m256i p0 = load(s + i), p1 = load(s + count + i);
    const __m256i p2 = load(s + 2 * count + i), p3 = load(s + 3 * count + i);
    // Interleave bytes, then byte pairs, within lanes (lane 0: elements 0-15, lane 1: 16-31).
    const __m256i a0 = _mm256_unpacklo_epi8(p0, p1), a1 = _mm256_unpackhi_epi8(p0, p1);
    const __m256i b0 = _mm256_unpacklo_epi8(p2, p3), b1 = _mm256_unpackhi_epi8(p2, p3);
    const __m256i r0 = _mm256_unpacklo_epi16(a0, b0);  // elements 0-3 | 16-19
    const __m256i r1 = _mm256_unpackhi_epi16(a0, b0);  // 4-7 | 20-23
    const __m256i r2 = _mm256_unpacklo_epi16(a1, b1);  // 8-11 | 24-27
    const __m256i r3 = _mm256_unpackhi_epi16(a1, b1);  // 12-15 | 28-31
    uint8_t* o = d + 4 * i;
    store(o, _mm256_permute2x128_si256(r0, r1, 0x20));
    store(o + 32, _mm256_permute2x128_si256(r2, r3, 0x20));
    store(o + 64, _mm256_permute2x128_si256(r0, r1, 0x31));
    store(o + 96, _mm256_permute2x128_si256(r2, r3, 0x31));
  }
  return i;
}

}  // namespace

size_t shuffleAvx2(const void* src, size_t count, size_t elemSize, void* dst,
                   size_t* zeros) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  if (elemSize == 2) return zeros ? shuffle2<true>(s, count, d, zeros) : shuffle2<false>(s, count, d, zeros);
  if (elemSize == 4) return zeros ? shuffle4<true>(s, count, d, zeros) : shuffle4<false>(s, count, d, zeros);
  return 0;
}

size_t unshuffleAvx2(const void* src, size_t count, size_t elemSize, void* dst) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  if (elemSize == 2) return unshuffle2(s, count, d);
  if (elemSize == 4) return unshuffle4(s, count, d);
  return 0;
}

}  // namespace xsite::compress::detail
