// The lossless codecs, lz4 and zstd, decided per chunk (EncodedHeader::flags):
//
//   0         shuffled: LZ4 or zstd over the byte-plane shuffle (shuffle.h) of the elements
//   kRaw      raw: the elements as they are (a chunk that does not shrink)
//   EncodedHeader::kZeroMap (2) zero-elided: when the zero elements' bytes (all bytes 0;
//             -0.0 and NaNs are not zero) are at least kZeroMapMinGain times the bitmap's
//             (float32: 1/8 of the elements zero), the payload is
//               uint32 nonZero (little-endian), the number of non-zero elements
//               LZ4 or zstd over: bitmap (ceil(count / 8) bytes, bit i % 8 of byte i / 8 set
//                                 when element i is not zero, unused high bits 0)
//                                 then the byte-plane shuffle of the nonZero non-zero elements
//             (zero_map.h). Decode checks nonZero <= count, that the stream decompresses to
//             exactly bitmap + nonZero * elemSize bytes, the bitmap's padding bits and that its
//             popcount is nonZero.
//
// A chunk whose compressed form (either layout) is not smaller than its raw bytes goes raw. The
// compressor is given room for raw - 1 bytes (less the 4-byte count) only, so it gives up as soon
// as the chunk cannot shrink and maxEncodedBytes is the header plus the raw bytes; decode
// rejects a non-raw payload that is not smaller than raw.
//
// The zero count comes with the shuffle (shuffleBytesCountZeros), so dense chunks pay nothing
// for the test; zero-rich ones drop those planes, pack (bitmap + non-zero elements, one pass),
// shuffle only the packed elements and compress bitmap + planes in one call (the bitmap of
// row-sparse data compresses to almost nothing; a random one passes through). A zero-rich chunk
// whose zero-elided form does not shrink goes raw (the shuffled form is not tried).
//
// LZ4 runs LZ4_compress_fast at acceleration kLz4Acceleration; zstd runs ZSTD_compressCCtx at
// CodecOptions::level. Scratch space (the shuffled planes) and zstd contexts are per thread, so
// one Codec serves concurrent callers; each thread keeps a scratch as large as its largest chunk
// needs (twice the chunk and its bitmap for a zero-elided one).
#include <lz4.h>
#include <zstd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "compress/internal.h"
#include "compress/shuffle.h"
#include "compress/zero_map.h"

namespace xsite::compress {
namespace {

// LZ4's acceleration trades ratio for speed (it skips ahead faster through data that does not
// match). A dense gradient's mantissa planes are noise: shuffle + LZ4 on 64 MiB of N(0, 0.01)
// float32 ran 0.58 GB/s at acceleration 1 (ratio 1.086), 0.92 at 8 and 1.15-1.2 at 16 (ratio
// 1.034); row-sparse data (75% zero rows) keeps 3.9x at 16 (4.2x at 1). 16 meets the 1 GB/s
// per core goal; bench/codec_bench.sh measures it.
constexpr int kLz4Acceleration = 16;

// Zero elision when the zero elements' bytes are at least kZeroMapMinGain times the bitmap's
// (zeros * elemSize >= kZeroMapMinGain * count / 8): float32 needs 1/8 of its elements zero,
// 2-byte types 1/4, 1-byte types 1/2, 8-byte types 1/16.
constexpr size_t kZeroMapMinGain = 4;
constexpr size_t kZeroMapCountBytes = 4;  // the uint32 nonZero in front of the stream

// Largest chunk the compressors see; a larger one (over LZ4's limit) is sent raw.
constexpr size_t kMaxCompressBytes = LZ4_MAX_INPUT_SIZE;

class Scratch {
 public:
  uint8_t* get(size_t bytes) noexcept {
    if (bytes > capacity_) {
      data_.reset();
      capacity_ = 0;
      data_.reset(new (std::nothrow) uint8_t[bytes]);
      if (!data_) return nullptr;
      capacity_ = bytes;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
};

struct ZstdContexts {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
  ZSTD_CCtx* compressor() noexcept { return cctx ? cctx : (cctx = ZSTD_createCCtx()); }
  ZSTD_DCtx* decompressor() noexcept { return dctx ? dctx : (dctx = ZSTD_createDCtx()); }
};

thread_local Scratch tlsScratch;
thread_local ZstdContexts tlsZstd;

class LosslessCodec final : public Codec {
 public:
  LosslessCodec(CodecId id, int level) : id_(id), level_(level) {}

  CodecId id() const noexcept override { return id_; }

  size_t maxEncodedBytes(size_t count, DataType type) const noexcept override {
    return sizeof(EncodedHeader) + count * dataTypeSize(type);
  }

  Result<size_t> encode(const void* src, size_t count, DataType type, void* dst,
                        size_t dstBytes) const noexcept override {
    const size_t e = dataTypeSize(type);
    if (e == 0) return usage("unknown data type " + std::to_string(static_cast<int>(type)));
    if (count > (std::numeric_limits<uint32_t>::max() - sizeof(EncodedHeader)) / e)
      return usage(std::to_string(count) + " elements of " + std::string(dataTypeName(type)) +
                   " do not fit one encoded buffer (under 4 GiB); encode smaller chunks");
    const size_t raw = count * e;
    if (dstBytes < sizeof(EncodedHeader) + raw)
      return usage("output buffer of " + std::to_string(dstBytes) + " bytes, " +
                   std::to_string(sizeof(EncodedHeader) + raw) + " needed");
    auto* out = static_cast<uint8_t*>(dst) + sizeof(EncodedHeader);
    size_t packed = 0;  // 0: send raw
    uint8_t flags = 0;
    if (raw > 1 && raw <= kMaxCompressBytes) {
      // The shuffle counts the zero elements on its way; a zero-rich chunk drops its planes.
      const uint8_t* planes = static_cast<const uint8_t*>(src);
      size_t zeros = 0;
      if (e > 1) {
        uint8_t* scratch = tlsScratch.get(raw);
        if (scratch) zeros = shuffleBytesCountZeros(src, count, e, scratch);
        planes = scratch;  // no memory for the planes: send raw
      } else {
        zeros = countZeroElements(src, count, e);
      }
      if (planes && zeros * e * 8 >= kZeroMapMinGain * count) {
        flags = EncodedHeader::kZeroMap;
        packed = encodeZeroMap(src, count, e, out, raw);
      } else if (planes) {
        packed = compress(planes, raw, out, raw - 1);
      }
    }
    if (packed == 0) {
      if (raw > 0) memcpy(out, src, raw);
      writeHeader(dst, id_, type, EncodedHeader::kRaw, 0, count, raw);
      return sizeof(EncodedHeader) + raw;
    }
    writeHeader(dst, id_, type, flags, 0, count, packed);
    return sizeof(EncodedHeader) + packed;
  }

  Status decode(const void* src, size_t bytes, size_t count, DataType type,
                void* dst) const noexcept override {
    EncodedHeader h;
    XSITE_RETURN_IF_ERROR(checkHeader(src, bytes, id_, type, count, h));
    const size_t e = dataTypeSize(type);
    const size_t payload = bytes - sizeof(EncodedHeader);
    const auto* in = static_cast<const uint8_t*>(src) + sizeof(EncodedHeader);
    if (e == 0 || count > std::numeric_limits<uint32_t>::max() / e)
      return remote(std::to_string(count) + " elements cannot fit one encoded buffer");
    const size_t raw = count * e;
    if (h.blockSize != 0)
      return remote("header has block size " + std::to_string(h.blockSize) + ", expected 0");
    if (h.flags == EncodedHeader::kRaw) {
      if (payload != raw)
        return remote("raw payload of " + std::to_string(payload) + " bytes, expected " +
                      std::to_string(raw) + " for " + std::to_string(count) + " elements");
      if (raw > 0) memcpy(dst, in, raw);
      return Status::ok();
    }
    if (h.flags != 0 && h.flags != EncodedHeader::kZeroMap)
      return remote("unknown flags 0x" + hex(h.flags) + " in the encoded header");
    if (payload >= raw || raw > kMaxCompressBytes)
      return remote("compressed payload of " + std::to_string(payload) + " bytes for " +
                    std::to_string(raw) + " raw bytes (such a chunk is sent raw)");
    if (h.flags == EncodedHeader::kZeroMap) return decodeZeroMap(in, payload, count, e, dst);
    uint8_t* planes = static_cast<uint8_t*>(dst);
    if (e > 1 && !(planes = tlsScratch.get(raw)))
      return Status(ErrorCategory::kSystem, who() + "no memory for " + std::to_string(raw) +
                                                " bytes of scratch space");
    XSITE_RETURN_IF_ERROR(decompress(in, payload, planes, raw));
    if (e > 1) unshuffleBytes(planes, count, e, dst);
    return Status::ok();
  }

 private:
  // The kZeroMap payload (layout at the top) into out, at most raw - 1 bytes; 0 when it does not
  // fit or there is no memory for the scratch. Scratch: [bitmap | planes | slack][packed | slack].
  size_t encodeZeroMap(const void* src, size_t count, size_t e, uint8_t* out,
                       size_t raw) const noexcept {
    const size_t bitmapBytes = zeroMapBitmapBytes(count);
    if (raw - 1 <= kZeroMapCountBytes) return 0;
    const size_t streamRoom = bitmapBytes + raw + kZeroMapSlack;
    uint8_t* scratch = tlsScratch.get(streamRoom + raw + kZeroMapSlack);
    if (!scratch) return 0;
    uint8_t* stream = scratch;
    uint8_t* packedElems = scratch + streamRoom;
    const size_t nonZero = packNonZero(src, count, e, stream, packedElems);
    shuffleBytes(packedElems, nonZero, e, stream + bitmapBytes);
    const size_t streamBytes = bitmapBytes + nonZero * e;
    if (streamBytes > kMaxCompressBytes) return 0;
    const uint32_t n32 = static_cast<uint32_t>(nonZero);
    const uint8_t le[4] = {static_cast<uint8_t>(n32), static_cast<uint8_t>(n32 >> 8),
                           static_cast<uint8_t>(n32 >> 16), static_cast<uint8_t>(n32 >> 24)};
    memcpy(out, le, sizeof le);
    const size_t n = compress(stream, streamBytes, out + kZeroMapCountBytes,
                              raw - 1 - kZeroMapCountBytes);
    return n == 0 ? 0 : kZeroMapCountBytes + n;
  }

  Status decodeZeroMap(const uint8_t* in, size_t payload, size_t count, size_t e,
                       void* dst) const noexcept {
    if (payload <= kZeroMapCountBytes)
      return remote("zero-map payload of " + std::to_string(payload) +
                    " bytes is shorter than its element count");
    const size_t nonZero = static_cast<size_t>(in[0]) | static_cast<size_t>(in[1]) << 8 |
                           static_cast<size_t>(in[2]) << 16 | static_cast<size_t>(in[3]) << 24;
    if (nonZero > count)
      return remote("zero map says " + std::to_string(nonZero) + " non-zero elements of " +
                    std::to_string(count));
    const size_t bitmapBytes = zeroMapBitmapBytes(count);
    const size_t streamBytes = bitmapBytes + nonZero * e;
    if (streamBytes > kMaxCompressBytes)
      return remote("zero-map stream of " + std::to_string(streamBytes) + " bytes is too large");
    const size_t streamRoom = bitmapBytes + count * e + kZeroMapSlack;
    uint8_t* scratch = tlsScratch.get(streamRoom + count * e + kZeroMapSlack);
    if (!scratch)
      return Status(ErrorCategory::kSystem, who() + "no memory for " +
                                                std::to_string(streamRoom + count * e) +
                                                " bytes of scratch space");
    uint8_t* stream = scratch;
    uint8_t* packedElems = scratch + streamRoom;
    XSITE_RETURN_IF_ERROR(decompress(in + kZeroMapCountBytes, payload - kZeroMapCountBytes,
                                     stream, streamBytes));
    if (count % 8 != 0 && (stream[bitmapBytes - 1] >> (count % 8)) != 0)
      return remote("zero map has bits set past its " + std::to_string(count) + " elements");
    const size_t ones = bitmapPopcount(stream, bitmapBytes);
    if (ones != nonZero)
      return remote("zero map has " + std::to_string(ones) + " non-zero elements, its count says " +
                    std::to_string(nonZero));
    unshuffleBytes(stream + bitmapBytes, nonZero, e, packedElems);
    unpackNonZero(stream, packedElems, count, e, dst);
    return Status::ok();
  }

  // Compresses into at most `capacity` bytes; 0 when the data does not fit (or zstd fails).
  size_t compress(const uint8_t* in, size_t raw, uint8_t* out, size_t capacity) const noexcept {
    if (id_ == CodecId::kLz4) {
      const int n = LZ4_compress_fast(reinterpret_cast<const char*>(in), reinterpret_cast<char*>(out),
                                      static_cast<int>(raw), static_cast<int>(capacity),
                                      kLz4Acceleration);
      return n > 0 ? static_cast<size_t>(n) : 0;
    }
    ZSTD_CCtx* cctx = tlsZstd.compressor();
    if (!cctx) return 0;
    const size_t n = ZSTD_compressCCtx(cctx, out, capacity, in, raw, level_);
    return ZSTD_isError(n) ? 0 : n;
  }

  Status decompress(const uint8_t* in, size_t payload, uint8_t* out, size_t raw) const noexcept {
    if (id_ == CodecId::kLz4) {
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in), reinterpret_cast<char*>(out),
                                        static_cast<int>(payload), static_cast<int>(raw));
      if (n < 0) return remote("corrupt LZ4 data (" + std::to_string(payload) + " bytes)");
      if (static_cast<size_t>(n) != raw)
        return remote("LZ4 data decodes to " + std::to_string(n) + " bytes, expected " +
                      std::to_string(raw));
      return Status::ok();
    }
    const unsigned long long size = ZSTD_getFrameContentSize(in, payload);
    if (size == ZSTD_CONTENTSIZE_ERROR) return remote("payload is not a zstd frame");
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) return remote("zstd frame without its content size");
    if (size != raw)
      return remote("zstd frame holds " + std::to_string(size) + " bytes, expected " +
                    std::to_string(raw));
    const size_t frame = ZSTD_findFrameCompressedSize(in, payload);
    if (ZSTD_isError(frame) || frame != payload)
      return remote("zstd payload of " + std::to_string(payload) +
                    " bytes is not exactly one frame (truncated or trailing bytes)");
    ZSTD_DCtx* dctx = tlsZstd.decompressor();
    if (!dctx) return Status(ErrorCategory::kSystem, who() + "cannot create a zstd context");
    const size_t n = ZSTD_decompressDCtx(dctx, out, raw, in, payload);
    if (ZSTD_isError(n)) return remote(std::string("corrupt zstd data: ") + ZSTD_getErrorName(n));
    if (n != raw)
      return remote("zstd data decodes to " + std::to_string(n) + " bytes, expected " +
                    std::to_string(raw));
    return Status::ok();
  }

  std::string who() const { return "codec " + std::string(codecName(id_)) + ": "; }
  Status usage(const std::string& what) const {
    return Status(ErrorCategory::kInvalidUsage, who() + what);
  }
  Status remote(const std::string& what) const {
    return Status(ErrorCategory::kRemote, who() + what);
  }
  static std::string hex(unsigned v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    return std::string{kDigits[(v >> 4) & 15], kDigits[v & 15]};
  }

  CodecId id_;
  int level_;
};

}  // namespace

std::unique_ptr<Codec> makeLosslessCodec(CodecId id, const CodecOptions& options) {
  if (id != CodecId::kLz4 && id != CodecId::kZstd) return nullptr;
  return std::make_unique<LosslessCodec>(id, options.level);
}

}  // namespace xsite::compress
