// Zero elision: the scalar loops and the dispatch to the AVX2 and AVX-512 ones.
#include "compress/zero_map.h"

#include <cstdint>
#include <cstring>

#include "compress/codec.h"

namespace xsite::compress {
namespace {

// E: the element size as a constant (the loops unroll), 0 where only e (run time) gives it.
template <size_t E>
inline bool nonZeroN(const uint8_t* p, size_t e) {
  if constexpr (E == 0) {
    uint8_t any = 0;
    for (size_t b = 0; b < e; ++b) any |= p[b];
    return any != 0;
  } else if constexpr (E == 1) {
    return *p != 0;
  } else if constexpr (E == 2) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v != 0;
  } else if constexpr (E == 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v != 0;
  } else {
    uint64_t v;
    memcpy(&v, p, 8);
    return v != 0;
  }
}

template <size_t E>
size_t countScalarN(const uint8_t* s, size_t begin, size_t count, size_t e) {
  const size_t n = E != 0 ? E : e;
  size_t zeros = 0;
  for (size_t i = begin; i < count; ++i) zeros += !nonZeroN<E>(s + i * n, n);
  return zeros;
}

size_t countScalar(const uint8_t* s, size_t begin, size_t count, size_t e) {
  switch (e) {
    case 1: return countScalarN<1>(s, begin, count, e);
    case 2: return countScalarN<2>(s, begin, count, e);
    case 4: return countScalarN<4>(s, begin, count, e);
    case 8: return countScalarN<8>(s, begin, count, e);
    default: return countScalarN<0>(s, begin, count, e);
  }
}

// Branch-free: every element is copied to packed[j] and j advances only past non-zero ones
// (j <= i, so the copy stays inside count * e bytes).
template <size_t E>
size_t packScalarN(const uint8_t* s, size_t begin, size_t count, size_t e, uint8_t* bitmap,
                   uint8_t* d, size_t j) {
  const size_t size = E != 0 ? E : e;
  for (size_t i = begin; i < count; i += 8) {
    const size_t n = count - i < 8 ? count - i : 8;
    unsigned bits = 0;
    for (size_t k = 0; k < n; ++k) {
      const uint8_t* p = s + (i + k) * size;
      const bool nz = nonZeroN<E>(p, size);
      memcpy(d + j * size, p, size);
      j += nz;
      bits |= static_cast<unsigned>(nz) << k;
    }
    bitmap[i / 8] = static_cast<uint8_t>(bits);
  }
  return j;
}

size_t packScalar(const uint8_t* s, size_t begin, size_t count, size_t e, uint8_t* bitmap,
                  uint8_t* d, size_t j) {
  switch (e) {
    case 1: return packScalarN<1>(s, begin, count, e, bitmap, d, j);
    case 2: return packScalarN<2>(s, begin, count, e, bitmap, d, j);
    case 4: return packScalarN<4>(s, begin, count, e, bitmap, d, j);
    case 8: return packScalarN<8>(s, begin, count, e, bitmap, d, j);
    default: return packScalarN<0>(s, begin, count, e, bitmap, d, j);
  }
}

// Branch-free for the power-of-two sizes: loads packed[j] (possibly one past the last packed
// element: the slack) and masks it with the bit.
template <size_t E, typename T>
void unpackScalarN(const uint8_t* bitmap, const uint8_t* s, size_t begin, size_t count,
                   uint8_t* d, size_t j) {
  for (size_t i = begin; i < count; ++i) {
    const T bit = (bitmap[i / 8] >> (i % 8)) & 1u;
    T v;
    memcpy(&v, s + j * E, E);
    v &= static_cast<T>(0) - bit;
    memcpy(d + i * E, &v, E);
    j += bit;
  }
}

void unpackScalar(const uint8_t* bitmap, const uint8_t* s, size_t begin, size_t count, size_t e,
                  uint8_t* d, size_t j) {
  switch (e) {
    case 1: return unpackScalarN<1, uint8_t>(bitmap, s, begin, count, d, j);
    case 2: return unpackScalarN<2, uint16_t>(bitmap, s, begin, count, d, j);
    case 4: return unpackScalarN<4, uint32_t>(bitmap, s, begin, count, d, j);
    case 8: return unpackScalarN<8, uint64_t>(bitmap, s, begin, count, d, j);
    default:
      for (size_t i = begin; i < count; ++i) {
        if ((bitmap[i / 8] >> (i % 8)) & 1u) {
          memcpy(d + i * e, s + j * e, e);
          ++j;
        } else {
          memset(d + i * e, 0, e);
        }
      }
  }
}

struct Cpu {
  bool avx2 = false, avx512 = false, vbmi2 = false;
};

Cpu detect() noexcept {
  Cpu c;
#if defined(XSITE_COMPRESS_X86)
  __builtin_cpu_init();
  c.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  c.avx512 = c.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  c.vbmi2 = c.avx512 && __builtin_cpu_supports("avx512vbmi2");
#endif
  return c;
}

const Cpu& cpu() noexcept {
  static const Cpu c = detect();
  return c;
}

}  // namespace

bool zeroMapIsaAvailable(ZeroMapIsa isa) noexcept {
  if (isa == ZeroMapIsa::kAvx2) return cpu().avx2;
  if (isa == ZeroMapIsa::kAvx512) return cpu().avx512;
  return true;
}

ZeroMapIsa zeroMapIsa() noexcept {
  static const ZeroMapIsa isa = [] {
    const std::string_view want = codecIsa();
    if (want == "avx512" && zeroMapIsaAvailable(ZeroMapIsa::kAvx512)) return ZeroMapIsa::kAvx512;
    if (want != "scalar" && zeroMapIsaAvailable(ZeroMapIsa::kAvx2)) return ZeroMapIsa::kAvx2;
    return ZeroMapIsa::kScalar;
  }();
  return isa;
}

size_t countZeroElements(ZeroMapIsa isa, const void* src, size_t count, size_t e) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  size_t done = 0, zeros = 0;
#if defined(XSITE_COMPRESS_X86)
  if (isa == ZeroMapIsa::kAvx512) done = detail::countZerosAvx512(s, count, e, &zeros);
  else if (isa == ZeroMapIsa::kAvx2) done = detail::countZerosAvx2(s, count, e, &zeros);
#else
  (void)isa;
#endif
  return zeros + countScalar(s, done, count, e);
}

size_t packNonZero(ZeroMapIsa isa, const void* src, size_t count, size_t e, uint8_t* bitmap,
                   void* packed) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(packed);
  size_t done = 0, j = 0;
#if defined(XSITE_COMPRESS_X86)
  if (isa == ZeroMapIsa::kAvx512) done = detail::packAvx512(s, count, e, cpu().vbmi2, bitmap, d, &j);
  else if (isa == ZeroMapIsa::kAvx2) done = detail::packAvx2(s, count, e, bitmap, d, &j);
#else
  (void)isa;
#endif
  return packScalar(s, done, count, e, bitmap, d, j);
}

void unpackNonZero(ZeroMapIsa isa, const uint8_t* bitmap, const void* packed, size_t count,
                   size_t e, void* dst) noexcept {
  const auto* s = static_cast<const uint8_t*>(packed);
  auto* d = static_cast<uint8_t*>(dst);
  size_t done = 0, j = 0;
#if defined(XSITE_COMPRESS_X86)
  if (isa == ZeroMapIsa::kAvx512) done = detail::unpackAvx512(bitmap, s, count, e, cpu().vbmi2, d, &j);
  else if (isa == ZeroMapIsa::kAvx2) done = detail::unpackAvx2(bitmap, s, count, e, d, &j);
#else
  (void)isa;
#endif
  unpackScalar(bitmap, s, done, count, e, d, j);
}

size_t bitmapPopcount(const uint8_t* bitmap, size_t bytes) noexcept {
  size_t done = 0, n = 0;
#if defined(XSITE_COMPRESS_X86)
  if (zeroMapIsaAvailable(ZeroMapIsa::kAvx2)) {
    n = detail::popcountAvx2(bitmap, bytes);
    done = bytes / 8 * 8;
  }
#endif
  for (size_t i = done; i < bytes; ++i) n += static_cast<size_t>(__builtin_popcount(bitmap[i]));
  return n;
}

size_t countZeroElements(const void* src, size_t count, size_t e) noexcept {
  return countZeroElements(zeroMapIsa(), src, count, e);
}
size_t packNonZero(const void* src, size_t count, size_t e, uint8_t* bitmap, void* packed) noexcept {
  return packNonZero(zeroMapIsa(), src, count, e, bitmap, packed);
}
void unpackNonZero(const uint8_t* bitmap, const void* packed, size_t count, size_t e,
                   void* dst) noexcept {
  unpackNonZero(zeroMapIsa(), bitmap, packed, count, e, dst);
}

}  // namespace xsite::compress
