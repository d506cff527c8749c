#include <algorithm>
#include <cstring>
#include <string>

#include "compress/internal.h"

namespace xsite::compress {
namespace {

class NoneCodec final : public Codec {
 public:
  CodecId id() const noexcept override { return CodecId::kNone; }
  size_t maxEncodedBytes(size_t count, DataType type) const noexcept override {
    return sizeof(EncodedHeader) + count * dataTypeSize(type);
  }
  Result<size_t> encode(const void* src, size_t count, DataType type, void* dst,
                        size_t dstBytes) const noexcept override {
    const size_t need = maxEncodedBytes(count, type);
    if (dstBytes < need)
      return Status(ErrorCategory::kInvalidUsage, "codec none: output buffer of " +
                                                      std::to_string(dstBytes) + " bytes, " +
                                                      std::to_string(need) + " needed");
    writeHeader(dst, id(), type, 0, 0, count, need - sizeof(EncodedHeader));
    if (count > 0) memcpy(static_cast<char*>(dst) + sizeof(EncodedHeader), src, need - sizeof(EncodedHeader));
    return need;
  }
  Status decode(const void* src, size_t bytes, size_t count, DataType type,
                void* dst) const noexcept override {
    EncodedHeader h;
    XSITE_RETURN_IF_ERROR(checkHeader(src, bytes, id(), type, count, h));
    if (bytes != maxEncodedBytes(count, type))
      return Status(ErrorCategory::kRemote, "codec none: " + std::to_string(bytes) +
                                                " encoded bytes for " + std::to_string(count) +
                                                " elements, expected " +
                                                std::to_string(maxEncodedBytes(count, type)));
    if (count > 0) memcpy(dst, static_cast<const char*>(src) + sizeof(EncodedHeader), bytes - sizeof(EncodedHeader));
    return Status::ok();
  }
};

}  // namespace

bool isLossy(CodecId id) noexcept { return id >= CodecId::kBf16 && id <= CodecId::kInt4; }

bool codecSupports(CodecId id, DataType type) noexcept {
  if (!isLossy(id)) return true;
  return type == DataType::kFloat32 || type == DataType::kBfloat16 || type == DataType::kFloat16;
}

double nominalRatio(CodecId id, DataType type, uint32_t blockSize) noexcept {
  if (!isLossy(id) || !codecSupports(id, type)) return 1;
  const double e = static_cast<double>(dataTypeSize(type));
  const double scale = 4.0 / std::max<uint32_t>(blockSize, 1);  // a float32 per block
  switch (id) {
    case CodecId::kBf16:
    case CodecId::kFp16: return e / 2;
    case CodecId::kInt8:
    case CodecId::kFp8: return e / (1 + scale);
    case CodecId::kInt4: return e / (0.5 + scale);
    default: return 1;
  }
}

std::unique_ptr<Codec> makeNoneCodec() { return std::make_unique<NoneCodec>(); }

std::unique_ptr<Codec> makeCodec(CodecId id, const CodecOptions& options) {
  if (id == CodecId::kNone) return makeNoneCodec();
  if (id == CodecId::kLz4 || id == CodecId::kZstd) return makeLosslessCodec(id, options);
  return makeLossyCodec(id, options);
}

void writeHeader(void* dst, CodecId id, DataType type, uint8_t flags, uint32_t blockSize,
                 size_t count, size_t payloadBytes) noexcept {
  EncodedHeader h{};
  h.magic = EncodedHeader::kMagic;
  h.codec = static_cast<uint8_t>(id);
  h.dataType = static_cast<uint8_t>(type);
  h.flags = flags;
  h.blockSize = blockSize;
  h.payload = static_cast<uint32_t>(payloadBytes);
  h.count = count;
  memcpy(dst, &h, sizeof h);
}

Status checkHeader(const void* src, size_t bytes, CodecId id, DataType type, size_t count,
                   EncodedHeader& h) noexcept {
  const std::string who = "codec " + std::string(codecName(id)) + ": ";
  if (bytes < sizeof(EncodedHeader))
    return Status(ErrorCategory::kRemote, who + "encoded buffer of " + std::to_string(bytes) +
                                              " bytes is shorter than its header");
  memcpy(&h, src, sizeof h);
  if (h.magic != EncodedHeader::kMagic)
    return Status(ErrorCategory::kRemote, who + "bad magic in the encoded header (garbled data)");
  if (h.codec != static_cast<uint8_t>(id))
    return Status(ErrorCategory::kRemote, who + "data was encoded with codec " +
                                              std::string(codecName(static_cast<CodecId>(h.codec))));
  if (h.dataType != static_cast<uint8_t>(type))
    return Status(ErrorCategory::kRemote, who + "data type " + std::to_string(h.dataType) +
                                              " in the header, expected " +
                                              std::string(dataTypeName(type)));
  if (h.count != count)
    return Status(ErrorCategory::kRemote, who + "header says " + std::to_string(h.count) +
                                              " elements, expected " + std::to_string(count));
  if (h.reserved[0] != 0 || h.reserved[1] != 0 || h.reserved[2] != 0)
    return Status(ErrorCategory::kRemote, who + "reserved header bytes are not 0");
  if (h.payload != bytes - sizeof(EncodedHeader))
    return Status(ErrorCategory::kRemote, who + "header says " + std::to_string(h.payload) +
                                              " payload bytes, the buffer holds " +
                                              std::to_string(bytes - sizeof(EncodedHeader)));
  return Status::ok();
}

}  // namespace xsite::compress
