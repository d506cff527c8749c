// Byte-plane shuffle: the scalar loops and the dispatch to the AVX2 ones (shuffle_avx2.cc).
#include "compress/shuffle.h"

#include <cstdint>
#include <cstring>

#include "compress/codec.h"
#include "compress/zero_map.h"

namespace xsite::compress {
namespace {

// Elements [begin, count) between the interleaved layout (s[i * e + b]) and the byte planes
// (d[b * count + i]), or back when kUnshuffle. E is e as a constant (so the compiler unrolls the
// inner loop), 0 where e is only known at run time.
template <bool kUnshuffle, size_t E>
void transposeN(const uint8_t* s, size_t begin, size_t count, size_t e, uint8_t* d) {
  const size_t n = E != 0 ? E : e;
  for (size_t i = begin; i < count; ++i)
    for (size_t b = 0; b < n; ++b) {
      if constexpr (kUnshuffle) d[i * n + b] = s[b * count + i];
      else d[b * count + i] = s[i * n + b];
    }
}

template <bool kUnshuffle>
void transposeScalar(const uint8_t* s, size_t begin, size_t count, size_t e, uint8_t* d) {
  switch (e) {
    case 2: return transposeN<kUnshuffle, 2>(s, begin, count, e, d);
    case 4: return transposeN<kUnshuffle, 4>(s, begin, count, e, d);
    case 8: return transposeN<kUnshuffle, 8>(s, begin, count, e, d);
    default: return transposeN<kUnshuffle, 0>(s, begin, count, e, d);
  }
}

// shuffleBytes / unshuffleBytes: the AVX2 loop where asked, the scalar one for the rest;
// one-byte elements are a copy. Returns the elements the AVX2 loop did; a shuffle given `zeros`
// sets it to the number of zero elements among those.
template <bool kUnshuffle>
size_t transposeBytes(ShuffleIsa isa, const void* src, size_t count, size_t elemSize, void* dst,
                      size_t* zeros = nullptr) {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  if (elemSize <= 1) {
    if (count > 0) memcpy(d, s, count * elemSize);
    return 0;
  }
  size_t done = 0;
  if (isa == ShuffleIsa::kAvx2)
    done = kUnshuffle ? detail::unshuffleAvx2(s, count, elemSize, d)
                      : detail::shuffleAvx2(s, count, elemSize, d, zeros);
  transposeScalar<kUnshuffle>(s, done, count, elemSize, d);
  return done;
}

bool cpuHasAvx2() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

}  // namespace

bool shuffleIsaAvailable(ShuffleIsa isa) noexcept {
  static const bool avx2 = cpuHasAvx2();
  return isa == ShuffleIsa::kScalar || avx2;
}

ShuffleIsa shuffleIsa() noexcept {
  // codecIsa() is the one choice of vector code for the host codecs (XSITE_CODEC_ISA may force
  // scalar); the shuffle has no AVX-512 path, so avx512 runs the AVX2 one.
  static const ShuffleIsa isa = shuffleIsaAvailable(ShuffleIsa::kAvx2) && codecIsa() != "scalar"
                                    ? ShuffleIsa::kAvx2
                                    : ShuffleIsa::kScalar;
  return isa;
}

void shuffleBytes(ShuffleIsa isa, const void* src, size_t count, size_t elemSize,
                  void* dst) noexcept {
  transposeBytes<false>(isa, src, count, elemSize, dst);
}

size_t shuffleBytesCountZeros(ShuffleIsa isa, const void* src, size_t count, size_t elemSize,
                              void* dst) noexcept {
  const auto* s = static_cast<const uint8_t*>(src);
  size_t zeros = 0;
  const size_t done = transposeBytes<false>(isa, src, count, elemSize, dst, &zeros);
  // The rest (all of it on the scalar path, or for sizes without an AVX2 shuffle) counted apart.
  const ZeroMapIsa zisa = isa == ShuffleIsa::kAvx2 && zeroMapIsaAvailable(ZeroMapIsa::kAvx2)
                              ? ZeroMapIsa::kAvx2
                              : ZeroMapIsa::kScalar;
  return zeros + countZeroElements(zisa, s + done * elemSize, count - done, elemSize);
}

size_t shuffleBytesCountZeros(const void* src, size_t count, size_t elemSize, void* dst) noexcept {
  return shuffleBytesCountZeros(shuffleIsa(), src, count, elemSize, dst);
}

void unshuffleBytes(ShuffleIsa isa, const void* src, size_t count, size_t elemSize,
                    void* dst) noexcept {
  transposeBytes<true>(isa, src, count, elemSize, dst);
}

void shuffleBytes(const void* src, size_t count, size_t elemSize, void* dst) noexcept {
  shuffleBytes(shuffleIsa(), src, count, elemSize, dst);
}

void unshuffleBytes(const void* src, size_t count, size_t elemSize, void* dst) noexcept {
  unshuffleBytes(shuffleIsa(), src, count, elemSize, dst);
}

}  // namespace xsite::compress
