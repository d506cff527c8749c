// The CUDA twins of the lossy codecs: encode and decode device buffers on the caller's stream,
// producing exactly the host codecs' bytes (header included) and decoded values, because both
// run element.h's math with the same IEEE operations (see codec_kernels.cu).
//
// Buffers are device memory; dSrc aligned to its element size, dDst (encode) 4-byte aligned.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "compress/codec.h"
#include "util/status.h"

namespace xsite::compress::cuda {

// Encodes `count` elements of `type` (float32, bfloat16, float16) with lossy codec `id` into
// dDst (capacity dstBytes); returns the bytes it will have written once `stream` reaches that
// point. Asynchronous: nothing waits on the stream. kInvalidUsage on a bad codec, type, options
// or capacity (checked before anything is launched).
Result<size_t> encodeOnStream(CodecId id, const CodecOptions& options, const void* dSrc,
                              size_t count, DataType type, void* dDst, size_t dstBytes,
                              cudaStream_t stream) noexcept;

// Decodes `bytes` encoded bytes at dSrc into `count` elements of `type` at dDst. It validates
// what the host decode validates (header, size, block size, scales, int4 padding, fp8 NaN
// codes), so it synchronizes `stream`: twice (before, to read the header and scales, and after,
// for the fp8 check). kRemote on bad data, kSystem on a CUDA error.
Status decodeOnStream(CodecId id, const CodecOptions& options, const void* dSrc, size_t bytes,
                      size_t count, DataType type, void* dDst, cudaStream_t stream) noexcept;

}  // namespace xsite::compress::cuda
