// Inside src/compress only: the factories codec.cc dispatches to, one per codec family.
#pragma once

#include <memory>

#include "compress/codec.h"

namespace xsite::compress {

// none: the elements as they are (codec.cc).
std::unique_ptr<Codec> makeNoneCodec();
// lz4, zstd: byte-plane shuffle + entropy coder (lossless.cc).
std::unique_ptr<Codec> makeLosslessCodec(CodecId id, const CodecOptions& options);
// bf16, fp16, int8, fp8, int4 (lossy.cc).
std::unique_ptr<Codec> makeLossyCodec(CodecId id, const CodecOptions& options);

// Shared by every codec: writes the header, and checks one against what the caller expects and
// against the buffer's size (payload == bytes - header); returns the kRemote error naming the
// first mismatch.
void writeHeader(void* dst, CodecId id, DataType type, uint8_t flags, uint32_t blockSize,
                 size_t count, size_t payloadBytes) noexcept;
Status checkHeader(const void* src, size_t bytes, CodecId id, DataType type, size_t count,
                   EncodedHeader& header) noexcept;

}  // namespace xsite::compress
