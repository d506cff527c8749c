// The lossy codecs: bf16 / fp16 casts and the block-scaled int8 / fp8 / int4 codecs. The math
// is element.h's; the host kernels (kernels.h) run it at the ISA chosen once (codecIsa()).
//
// Encoded layout after the 24-byte EncodedHeader (flags 0):
//   casts:        count 16-bit values (blockSize 0 in the header)
//   block-scaled: ceil(count / blockSize) float32 scales, then the codes: one byte an element
//                 (int8 two's complement, fp8 e4m3) or one byte per two elements (int4, low nibble first; an
//                 odd count's last high nibble is 0)
// Decode trusts nothing: header fields, exact size, blockSize equal to this codec's, every scale
// +0, positive finite or the encoder's NaN (0x7fc00000), int4 padding 0, and no fp8 NaN code
// (0x7f / 0xff: the encoder never writes one, not even in a NaN block). int8 -128 and int4 -8,
// which the encoder never writes either, decode as -128 / -8 times the scale (bounded, harmless).
#include <cstring>
#include <string>

#include "compress/element.h"
#include "compress/internal.h"
#include "compress/kernels.h"
#include "xsite/error.h"

namespace xsite::compress {
namespace {

constexpr size_t kHeader = sizeof(EncodedHeader);
constexpr uint32_t kMaxBlockSize = 65536;

std::string who(CodecId id) { return "codec " + std::string(codecName(id)) + ": "; }

Status unsupported(CodecId id, DataType type) {
  return Status(ErrorCategory::kInvalidUsage,
                who(id) + "cannot encode " + std::string(dataTypeName(type)) +
                    " (lossy codecs take float, bfloat16 and half)");
}

Status tooSmall(CodecId id, size_t have, size_t need) {
  return Status(ErrorCategory::kInvalidUsage, who(id) + "output buffer of " + std::to_string(have) +
                                                  " bytes, " + std::to_string(need) + " needed");
}

Status tooLarge(CodecId id, size_t count) {
  return Status(ErrorCategory::kInvalidUsage,
                who(id) + std::to_string(count) +
                    " elements encode to 4 GiB or more; encode it in smaller chunks");
}

using element::blockScaled;
size_t blocksOf(size_t count, uint32_t blockSize) { return (count + blockSize - 1) / blockSize; }

Status checkScales(CodecId id, const char* scales, size_t n) {
  for (size_t b = 0; b < n; ++b) {
    uint32_t u;
    memcpy(&u, scales + 4 * b, 4);
    if (u == element::kScaleNaNBits) continue;
    const char* what = nullptr;
    if ((u & 0x7fffffffu) > 0x7f800000u) what = "a NaN other than the encoder's";
    else if ((u & 0x7fffffffu) == 0x7f800000u) what = "infinite";
    else if (u >> 31) what = "negative";
    if (what)
      return Status(ErrorCategory::kRemote, who(id) + "scale of block " + std::to_string(b) +
                                                " is " + what + " (" +
                                                std::to_string(bitsToFloat(u)) + ")");
  }
  return Status::ok();
}

class LossyCodec final : public Codec {
 public:
  LossyCodec(CodecId id, uint32_t blockSize) : id_(id), blockSize_(blockSize) {}
  CodecId id() const noexcept override { return id_; }
  size_t maxEncodedBytes(size_t count, DataType) const noexcept override {
    return lossyEncodedBytes(id_, blockSize_, count);
  }

  Result<size_t> encode(const void* src, size_t count, DataType type, void* dst,
                        size_t dstBytes) const noexcept override {
    if (!codecSupports(id_, type)) return unsupported(id_, type);
    const size_t need = maxEncodedBytes(count, type);
    if (need - kHeader > UINT32_MAX) return tooLarge(id_, count);
    if (dstBytes < need) return tooSmall(id_, dstBytes, need);
    char* payload = static_cast<char*>(dst) + kHeader;
    if (!blockScaled(id_)) {
      writeHeader(dst, id_, type, 0, 0, count, need - kHeader);
      activeKernels().castEncode(id_, type, src, count, payload);
    } else {
      writeHeader(dst, id_, type, 0, blockSize_, count, need - kHeader);
      activeKernels().blockEncode(id_, type, src, count, blockSize_, payload,
                                  payload + 4 * blocksOf(count, blockSize_));
    }
    return need;
  }

  Status decode(const void* src, size_t bytes, size_t count, DataType type,
                void* dst) const noexcept override {
    const auto* in = static_cast<const uint8_t*>(src);
    XSITE_RETURN_IF_ERROR(checkLossyEncoding(id_, blockSize_, src, bytes, count, type,
                                             bytes > 0 ? in[bytes - 1] : 0));
    const uint8_t* payload = in + kHeader;
    if (!blockScaled(id_)) {
      activeKernels().castDecode(id_, payload, count, type, dst);
      return Status::ok();
    }
    const uint8_t* codes = payload + 4 * blocksOf(count, blockSize_);
    if (!activeKernels().blockDecode(id_, payload, codes, count, blockSize_, type, dst)) {
      size_t i = 0;
      while (i < count && !element::isE4m3NaN(codes[i])) ++i;
      return fp8NanCodeError(blockSize_, i);
    }
    return Status::ok();
  }

 private:
  CodecId id_;
  uint32_t blockSize_;  // 0 for the casts
};

}  // namespace

Status checkLossyOptions(CodecId id, const CodecOptions& options) noexcept {
  if (id == CodecId::kBf16 || id == CodecId::kFp16) return Status::ok();
  if (!blockScaled(id))
    return Status(ErrorCategory::kInvalidUsage,
                  "codec id " + std::to_string(static_cast<int>(id)) + " is not a lossy codec");
  const uint32_t bs = options.blockSize;
  if (bs < 2 || bs > kMaxBlockSize || (bs & 1))
    return Status(ErrorCategory::kInvalidUsage,
                  "codec " + std::string(codecName(id)) + ": block size " + std::to_string(bs) +
                      " is not an even number in 2..65536 (XSITE_CODEC_BLOCK)");
  return Status::ok();
}

std::unique_ptr<Codec> makeLossyCodec(CodecId id, const CodecOptions& options) {
  throwIfError(checkLossyOptions(id, options));
  return std::make_unique<LossyCodec>(id, blockScaled(id) ? options.blockSize : 0);
}

size_t lossyEncodedBytes(CodecId id, uint32_t blockSize, size_t count) noexcept {
  if (!blockScaled(id)) return kHeader + 2 * count;
  return kHeader + 4 * blocksOf(count, blockSize) + (id == CodecId::kInt4 ? (count + 1) / 2 : count);
}

Status checkLossyEncoding(CodecId id, uint32_t blockSize, const void* head, size_t bytes,
                          size_t count, DataType type, uint8_t lastByte) noexcept {
  if (!codecSupports(id, type)) return unsupported(id, type);
  EncodedHeader h;
  XSITE_RETURN_IF_ERROR(checkHeader(head, bytes, id, type, count, h));
  if (h.flags != 0)
    return Status(ErrorCategory::kRemote,
                  who(id) + "header flags " + std::to_string(h.flags) + ", expected 0");
  if (!blockScaled(id)) blockSize = 0;
  if (h.blockSize != blockSize)
    return Status(ErrorCategory::kRemote, who(id) + "header block size " +
                                              std::to_string(h.blockSize) + ", expected " +
                                              std::to_string(blockSize));
  const size_t expected = lossyEncodedBytes(id, blockSize, count);
  if (bytes != expected)
    return Status(ErrorCategory::kRemote, who(id) + std::to_string(bytes) + " encoded bytes for " +
                                              std::to_string(count) + " elements, expected " +
                                              std::to_string(expected));
  if (blockSize == 0) return Status::ok();
  XSITE_RETURN_IF_ERROR(checkScales(id, static_cast<const char*>(head) + kHeader,
                                    blocksOf(count, blockSize)));
  if (id == CodecId::kInt4 && (count & 1) && (lastByte >> 4) != 0)
    return Status(ErrorCategory::kRemote,
                  who(id) + "padding nibble of the last (odd) element is not 0");
  return Status::ok();
}

Status fp8NanCodeError(uint32_t blockSize, size_t element) {
  return Status(ErrorCategory::kRemote,
                who(CodecId::kFp8) + "block " + std::to_string(element / blockSize) +
                    " holds a NaN code at element " + std::to_string(element) +
                    " (the encoder writes none)");
}

}  // namespace xsite::compress
