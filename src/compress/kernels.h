// Inside src/compress only: the host kernels of the lossy codecs, one table per instruction set
// (kernels_scalar.cc, kernels_avx2.cc, kernels_avx512.cc). Every table produces the same bytes
// and the same decoded values as the scalar one; lossy.cc picks one at run time (codecIsa()).
//
// Buffers need no alignment. Types are float32, bfloat16 or float16; codecs as named. Callers
// (lossy.cc) validate sizes, headers and scales; kernels only compute.
#pragma once

#include <cstddef>
#include <cstdint>

#include "compress/codec.h"
#include "util/status.h"

namespace xsite::compress {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
inline constexpr int kNumIsas = 3;

struct Kernels {
  Isa isa;
  const char* name;  // "scalar", "avx2", "avx512"
  // bf16 / fp16 (`codec`): count elements of `type` -> count 16-bit values, and back.
  void (*castEncode)(CodecId codec, DataType type, const void* src, size_t count, void* dst);
  void (*castDecode)(CodecId codec, const void* src, size_t count, DataType type, void* dst);
  // int8 / fp8 / int4: ceil(count / blockSize) float32 scales, then the codes (int4: two a byte,
  // low nibble first, a last odd one's high nibble 0).
  void (*blockEncode)(CodecId codec, DataType type, const void* src, size_t count,
                      uint32_t blockSize, void* scales, void* codes);
  // Decodes everything; returns false when an fp8 code is NaN (0x7f / 0xff), which the encoder
  // never writes (lossy.cc then finds the block and rejects the buffer).
  bool (*blockDecode)(CodecId codec, const void* scales, const void* codes, size_t count,
                      uint32_t blockSize, DataType type, void* dst);
};

const Kernels& scalarKernels() noexcept;
const Kernels& avx2Kernels() noexcept;    // only on a CPU with AVX2 + F16C
const Kernels& avx512Kernels() noexcept;  // only on a CPU with AVX-512 F/BW/VL

const char* isaName(Isa isa) noexcept;
// Whether this CPU (and OS) runs `isa`.
bool isaAvailable(Isa isa) noexcept;
// The table of `isa`, or nullptr when this CPU lacks it (tests compare every available one).
const Kernels* kernelsFor(Isa isa) noexcept;
// The table the codecs use: the best available, or XSITE_CODEC_ISA's if lower (chosen once).
const Kernels& activeKernels() noexcept;

// The encoded layout, shared by the host codecs (lossy.cc) and their CUDA twins.
// Encoded bytes (header included) of `count` elements; blockSize is ignored by the casts.
size_t lossyEncodedBytes(CodecId id, uint32_t blockSize, size_t count) noexcept;
// Whether `id` is a lossy codec and `options` suit it (the block size of the block-scaled
// ones); the error names what is wrong. makeLossyCodec and the CUDA entry points check this.
Status checkLossyOptions(CodecId id, const CodecOptions& options) noexcept;
// Everything decode checks before decoding: `head` holds the first min(bytes, 24 + 4 * blocks)
// bytes of the encoding (header and scales); `lastByte` is its last byte (int4 padding).
Status checkLossyEncoding(CodecId id, uint32_t blockSize, const void* head, size_t bytes,
                          size_t count, DataType type, uint8_t lastByte) noexcept;
// The error for an fp8 NaN code at `element`.
Status fp8NanCodeError(uint32_t blockSize, size_t element);

}  // namespace xsite::compress
