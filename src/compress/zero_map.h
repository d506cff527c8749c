// Zero elision for the lossless codecs: a bitmap of the elements that are not zero, and those
// elements packed in order. An element is zero when all its bytes are 0 (for floats only +0.0;
// -0.0 and every NaN are kept as they are). Bitmap: bit (i % 8) of byte i / 8 is set when
// element i is not zero; the last byte's unused high bits are 0. elemSize 2 and 4 have AVX2
// paths, 1, 2, 4 and 8 AVX-512 ones (1 and 2 need VBMI2); every path produces the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xsite::compress {

enum class ZeroMapIsa { kScalar, kAvx2, kAvx512 };

// The path the codecs use: codecIsa()'s choice (XSITE_CODEC_ISA may force a lower one).
ZeroMapIsa zeroMapIsa() noexcept;
// Whether this CPU can run `isa` (tests compare every available path).
bool zeroMapIsaAvailable(ZeroMapIsa isa) noexcept;

constexpr size_t zeroMapBitmapBytes(size_t count) noexcept { return (count + 7) / 8; }
// The vector paths store and load whole registers: `packed` buffers need this many bytes of
// room after their elements (written by pack, read by unpack; their contents do not matter).
constexpr size_t kZeroMapSlack = 64;

// Elements of src (count of elemSize bytes each) that are all-zero bytes.
size_t countZeroElements(ZeroMapIsa isa, const void* src, size_t count, size_t elemSize) noexcept;
size_t countZeroElements(const void* src, size_t count, size_t elemSize) noexcept;

// Writes the bitmap (zeroMapBitmapBytes(count) bytes) and the non-zero elements, in order, to
// packed (room for count * elemSize + kZeroMapSlack bytes); returns how many it packed.
size_t packNonZero(ZeroMapIsa isa, const void* src, size_t count, size_t elemSize,
                   uint8_t* bitmap, void* packed) noexcept;
size_t packNonZero(const void* src, size_t count, size_t elemSize, uint8_t* bitmap,
                   void* packed) noexcept;
// The inverse: dst (count * elemSize bytes, exactly those written) gets packed's elements where
// the bitmap has a 1 and zeros elsewhere. The caller has checked that the bitmap's popcount is
// the number of packed elements and its padding bits are 0; packed has kZeroMapSlack readable
// bytes after them.
void unpackNonZero(ZeroMapIsa isa, const uint8_t* bitmap, const void* packed, size_t count,
                   size_t elemSize, void* dst) noexcept;
void unpackNonZero(const uint8_t* bitmap, const void* packed, size_t count, size_t elemSize,
                   void* dst) noexcept;

// Set bits in `bytes` bytes of bitmap.
size_t bitmapPopcount(const uint8_t* bitmap, size_t bytes) noexcept;

namespace detail {
size_t popcountAvx2(const uint8_t* bitmap, size_t bytes) noexcept;  // whole words; the rest 0
// zero_map_avx2.cc / zero_map_avx512.cc (their own -m flags): elements [0, n) for some n <= count
// that is a multiple of 8, n returned; *packedCount gets the elements packed (pack) or consumed
// (unpack) so far; the caller finishes with the scalar loop. 0 for an elemSize without a path.
size_t countZerosAvx2(const void* src, size_t count, size_t elemSize, size_t* zeros) noexcept;
size_t packAvx2(const void* src, size_t count, size_t elemSize, uint8_t* bitmap, void* packed,
                size_t* packedCount) noexcept;
size_t unpackAvx2(const uint8_t* bitmap, const void* packed, size_t count, size_t elemSize,
                  void* dst, size_t* packedCount) noexcept;
size_t countZerosAvx512(const void* src, size_t count, size_t elemSize, size_t* zeros) noexcept;
size_t packAvx512(const void* src, size_t count, size_t elemSize, bool vbmi2, uint8_t* bitmap,
                  void* packed, size_t* packedCount) noexcept;
size_t unpackAvx512(const uint8_t* bitmap, const void* packed, size_t count, size_t elemSize,
                    bool vbmi2, void* dst, size_t* packedCount) noexcept;
}  // namespace detail

}  // namespace xsite::compress
