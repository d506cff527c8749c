// Byte-plane shuffle for the lossless codecs: for elements of `elemSize` bytes, plane b of the
// output holds byte b of every element (plane b starts at b * count). Floats' sign/exponent bytes
// then sit together, which LZ4 and zstd compress far better than the interleaved elements.
// elemSize 2 and 4 have AVX2 paths; every path produces the same bytes.
#pragma once

#include <cstddef>

namespace xsite::compress {

enum class ShuffleIsa { kScalar, kAvx2 };

// The best path this CPU runs (AVX2 unless the CPU lacks it or XSITE_CODEC_ISA=scalar).
ShuffleIsa shuffleIsa() noexcept;
// Whether this CPU can run `isa` (tests compare every available path).
bool shuffleIsaAvailable(ShuffleIsa isa) noexcept;

// src and dst hold count * elemSize bytes each and do not overlap. elemSize 1 is a copy.
void shuffleBytes(const void* src, size_t count, size_t elemSize, void* dst) noexcept;
void unshuffleBytes(const void* src, size_t count, size_t elemSize, void* dst) noexcept;
// The same with a given path (must be available).
void shuffleBytes(ShuffleIsa isa, const void* src, size_t count, size_t elemSize,
                  void* dst) noexcept;
// The shuffle that also counts the elements whose bytes are all 0 (returned): the lossless
// codecs' zero-elision test comes free with the pass they make anyway.
size_t shuffleBytesCountZeros(ShuffleIsa isa, const void* src, size_t count, size_t elemSize,
                              void* dst) noexcept;
size_t shuffleBytesCountZeros(const void* src, size_t count, size_t elemSize, void* dst) noexcept;
void unshuffleBytes(ShuffleIsa isa, const void* src, size_t count, size_t elemSize,
                    void* dst) noexcept;

namespace detail {
// shuffle_avx2.cc (built with -mavx2): the elements [0, n) for some n <= count, n returned; the
// caller finishes [n, count) with the scalar loop. With zeros, *zeros gets [0, n)'s zero count.
size_t shuffleAvx2(const void* src, size_t count, size_t elemSize, void* dst,
                   size_t* zeros = nullptr) noexcept;
size_t unshuffleAvx2(const void* src, size_t count, size_t elemSize, void* dst) noexcept;
}  // namespace detail

}  // namespace xsite::compress
