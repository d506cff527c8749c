// AVX2 zero elision for 2- and 4-byte elements: 8 elements a step, one bitmap byte; a table
// indexed by that byte gives the permutation that packs (or spreads back) the non-zero ones.
// Built with -mavx2 -mpopcnt and reached only after a runtime check (zero_map.cc); like
// shuffle_avx2.cc it includes no C++ library header.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "compress/zero_map.h"

namespace xsite::compress::detail {
namespace {

struct Tables {
  // pack: lane k of the result takes lane pack4[m][k] (the k-th set bit of m; 0 past them)
  alignas(32) uint32_t pack4[256][8];
  // unpack: lane k takes lane (popcount of m below k); masked to 0 where bit k is clear
  alignas(32) uint32_t unpack4[256][8];
  // the same for 2-byte elements as pshufb byte indices (0x80: a zero byte)
  alignas(16) uint8_t pack2[256][16];
  alignas(16) uint8_t unpack2[256][16];
  constexpr Tables() : pack4{}, unpack4{}, pack2{}, unpack2{} {
    for (unsigned m = 0; m < 256; ++m) {
      unsigned n = 0;
      for (unsigned k = 0; k < 8; ++k) {
        pack2[m][2 * k] = pack2[m][2 * k + 1] = 0x80;
        if (m & (1u << k)) {
          pack4[m][n] = k;
          pack2[m][2 * n] = static_cast<uint8_t>(2 * k);
          pack2[m][2 * n + 1] = static_cast<uint8_t>(2 * k + 1);
          unpack4[m][k] = n;
          unpack2[m][2 * k] = static_cast<uint8_t>(2 * n);
          unpack2[m][2 * k + 1] = static_cast<uint8_t>(2 * n + 1);
          ++n;
        } else {
          unpack4[m][k] = 0;
          unpack2[m][2 * k] = unpack2[m][2 * k + 1] = 0x80;
        }
      }
    }
  }
};
constexpr Tables kTables;

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline void store(uint8_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
inline __m128i load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void store128(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

// Bit k set when 4-byte lane k of v is not zero.
inline unsigned nonZero4(__m256i v) {
  const __m256i z = _mm256_cmpeq_epi32(v, _mm256_setzero_si256());
  return ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(z))) & 0xffu;
}
// Bit k set when 2-byte lane k of v is not zero.
inline unsigned nonZero2(__m128i v) {
  const __m128i z = _mm_cmpeq_epi16(v, _mm_setzero_si128());
  return ~static_cast<unsigned>(_mm_movemask_epi8(_mm_packs_epi16(z, z))) & 0xffu;
}

}  // namespace

size_t popcountAvx2(const uint8_t* bitmap, size_t bytes) noexcept {
  size_t n = 0;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    unsigned long long w;
    __builtin_memcpy(&w, bitmap + i, 8);
    n += static_cast<size_t>(_mm_popcnt_u64(w));
  }
  return n;
}

size_t countZerosAvx2(const void* src, size_t count, size_t e, size_t* zeros) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  const __m256i zero = _mm256_setzero_si256();
  size_t z = 0, i = 0;
  if (e == 4) {
    for (; i + 32 <= count; i += 32) {
      unsigned bits = 0;
      for (int r = 0; r < 4; ++r) {
        const __m256i c = _mm256_cmpeq_epi32(load(s + 4 * (i + 8 * r)), zero);
        bits |= static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(c))) << (8 * r);
      }
      z += static_cast<size_t>(_mm_popcnt_u32(bits));
    }
  } else if (e == 2) {
    for (; i + 32 <= count; i += 32) {
      const __m256i a = _mm256_cmpeq_epi16(load(s + 2 * i), zero);
      const __m256i b = _mm256_cmpeq_epi16(load(s + 2 * i + 32), zero);
      const unsigned bits = static_cast<unsigned>(_mm256_movemask_epi8(_mm256_packs_epi16(a, b)));
      z += static_cast<size_t>(_mm_popcnt_u32(bits));
    }
  } else if (e == 1) {
    for (; i + 32 <= count; i += 32)
      z += static_cast<size_t>(_mm_popcnt_u32(
          static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(s + i), zero)))));
  } else if (e == 8) {
    for (; i + 4 <= count; i += 4) {
      const __m256i c = _mm256_cmpeq_epi64(load(s + 8 * i), zero);
      z += static_cast<size_t>(_mm_popcnt_u32(
          static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(c)))));
    }
  }
  *zeros = z;
  return i;
}

size_t packAvx2(const void* src, size_t count, size_t e, uint8_t* bitmap, void* packed,
                size_t* packedCount) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(packed);
  size_t j = 0, i = 0;
  if (e == 4) {
    for (; i + 8 <= count; i += 8) {
      const __m256i v = load(s + 4 * i);
      const unsigned m = nonZero4(v);
      const __m256i perm = load(reinterpret_cast<const uint8_t*>(kTables.pack4[m]));
      store(d + 4 * j, _mm256_permutevar8x32_epi32(v, perm));
      bitmap[i / 8] = static_cast<uint8_t>(m);
      j += static_cast<size_t>(_mm_popcnt_u32(m));
    }
  } else if (e == 2) {
    for (; i + 8 <= count; i += 8) {
      const __m128i v = load128(s + 2 * i);
      const unsigned m = nonZero2(v);
      store128(d + 2 * j, _mm_shuffle_epi8(v, load128(kTables.pack2[m])));
      bitmap[i / 8] = static_cast<uint8_t>(m);
      j += static_cast<size_t>(_mm_popcnt_u32(m));
    }
  }
  *packedCount = j;
  return i;
}

size_t unpackAvx2(const uint8_t* bitmap, const void* packed, size_t count, size_t e, void* dst,
                  size_t* packedCount) noexcept {
  const auto* s = static_cast<const uint8_t*>(packed);
  auto* d = static_cast<uint8_t*>(dst);
  size_t j = 0, i = 0;
  if (e == 4) {
    const __m256i lanes = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (; i + 8 <= count; i += 8) {
      const unsigned m = bitmap[i / 8];
      const __m256i perm = load(reinterpret_cast<const uint8_t*>(kTables.unpack4[m]));
      const __m256i keep =
          _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(m)), lanes), lanes);
      const __m256i v = _mm256_permutevar8x32_epi32(load(s + 4 * j), perm);
      store(d + 4 * i, _mm256_and_si256(v, keep));
      j += static_cast<size_t>(_mm_popcnt_u32(m));
    }
  } else if (e == 2) {
    for (; i + 8 <= count; i += 8) {
      const unsigned m = bitmap[i / 8];
      store128(d + 2 * i, _mm_shuffle_epi8(load128(s + 2 * j), load128(kTables.unpack2[m])));
      j += static_cast<size_t>(_mm_popcnt_u32(m));
    }
  }
  *packedCount = j;
  return i;
}

}  // namespace xsite::compress::detail
