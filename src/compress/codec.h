// Codecs for the cross-site stage: what crosses the WAN instead of the raw elements.
//
//   none            the elements as they are
//   lz4, zstd       lossless: byte-plane shuffle, then LZ4 or zstd, decided per chunk (a chunk
//                   that does not shrink is sent raw)
//   bf16, fp16      lossy casts, round to nearest even
//   int8, fp8, int4 lossy, block-scaled: one float32 scale per block of `blockSize` elements
//                   (int8: [-127,127]; fp8: e4m3 with 448 as its largest value; int4: [-7,7])
//
// Lossy codecs take float32, bfloat16 and float16 input; lossless ones take any type. Encoding is
// deterministic and every implementation (scalar, AVX2, AVX-512, CUDA) produces the same bytes,
// so every rank decodes to the same values whatever its CPU. Every encoded buffer (under 4 GiB:
// callers encode chunks) starts with an
// EncodedHeader; decode() trusts nothing in it.
//
// NaN/Inf policy: casts carry NaN and Inf through as their formats do (fp16 overflows to Inf).
// A block-scaled block holding a NaN or Inf encodes its scale as NaN, so the whole block decodes
// to NaN (loss scalers still see the overflow); decode rejects negative or infinite scales.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "util/status.h"
#include "xsite/types.h"

namespace xsite::compress {

// The public xsite::Codec (xsite/types.h, with codecName/parseCodec); its values are the wire
// ids (the WAN frame's codec field and EncodedHeader::codec).
using CodecId = ::xsite::Codec;

bool isLossy(CodecId id) noexcept;
// Whether `id` can encode `type` (lossy codecs: float32, bfloat16, float16 only).
bool codecSupports(CodecId id, DataType type) noexcept;

struct CodecOptions;
// The ratio (element bytes / wire bytes) a codec is planned with: exact for the casts and the
// block-scaled codecs, 1 for none and for the lossless codecs (data-dependent).
double nominalRatio(CodecId id, DataType type, uint32_t blockSize) noexcept;

struct CodecOptions {
  uint32_t blockSize = 256;  // block-scaled codecs: elements per scale (even, 2..65536)
  int level = 1;             // zstd level (lz4 ignores it)
};

// The first bytes of every encoded buffer.
struct EncodedHeader {
  static constexpr uint16_t kMagic = 0x5843;  // "XC"
  uint16_t magic;
  uint8_t codec;      // CodecId
  uint8_t dataType;   // xsite::DataType
  uint8_t flags;      // lossless: 0 shuffled + compressed, kRaw, or kZeroMap (lossless.cc)
  uint8_t reserved[3];  // 0
  uint32_t blockSize;   // block-scaled codecs; 0 otherwise
  uint32_t payload;     // bytes after the header (checked against the buffer)
  uint64_t count;       // elements
  static constexpr uint8_t kRaw = 1;      // the unshuffled input
  static constexpr uint8_t kZeroMap = 2;  // non-zero bitmap + packed non-zero elements
};
static_assert(sizeof(EncodedHeader) == 24);

class Codec {
 public:
  virtual ~Codec() = default;
  virtual CodecId id() const noexcept = 0;
  // Bytes encode() may write for `count` elements of `type`, header included.
  virtual size_t maxEncodedBytes(size_t count, DataType type) const noexcept = 0;
  // Encodes `count` elements into dst (capacity dstBytes >= maxEncodedBytes); returns the bytes
  // written. Fails (kInvalidUsage) on a type the codec does not support.
  virtual Result<size_t> encode(const void* src, size_t count, DataType type, void* dst,
                                size_t dstBytes) const noexcept = 0;
  // Decodes exactly `count` elements of `type` from `bytes` encoded bytes into dst. Any
  // inconsistency (header, sizes, block count, scales, trailing bytes) is a kRemote error that
  // says what was wrong; dst may then hold garbage but nothing outside it is touched.
  virtual Status decode(const void* src, size_t bytes, size_t count, DataType type,
                        void* dst) const noexcept = 0;
};

// The codec for `id`; its options are fixed at creation. Thread-safe to use concurrently.
std::unique_ptr<Codec> makeCodec(CodecId id, const CodecOptions& options = {});

// Which vectorized path the host codecs use ("avx512", "avx2" or "scalar"), chosen once from
// the CPU's features; XSITE_CODEC_ISA can force a lower one (tests compare them all).
std::string_view codecIsa() noexcept;

}  // namespace xsite::compress
