// Device encode/decode of the lossy codecs. Every element goes through element.h, the same
// functions the host kernels use, compiled with --fmad=false and the __f*_rn intrinsics, so the
// bytes and the decoded values equal the host codecs' (tests/compress/lossy_cuda_test.cc).
//
//   casts:        one thread an element (grid-stride)
//   block-scaled: one thread block a codec block: the block's amax is an atomicMax over the
//                 |x| bit patterns (for finite values they order as the floats do), its
//                 non-finite flag an atomicOr; every thread then derives the same scale
//   header:       built on the host (writeHeader), written by the first thread of the first kernel
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "compress/cuda/codec_cuda.h"
#include "compress/element.h"
#include "compress/internal.h"
#include "compress/kernels.h"

namespace xsite::compress::cuda {
namespace {

using namespace element;

constexpr int kThreads = 256;
constexpr size_t kMaxGrid = 1u << 16;
constexpr size_t kHeader = sizeof(EncodedHeader);

// The header goes to `dst` (nullptr: none) from the first thread of the grid.
__device__ inline void putHeader(const EncodedHeader& h, uint8_t* dst) {
  if (dst != nullptr && blockIdx.x == 0 && threadIdx.x == 0) memcpy(dst, &h, sizeof h);
}

__global__ void castKernel(EncodedHeader h, uint8_t* header, DataType in, DataType out,
                           const void* src, size_t count, void* dst) {
  putHeader(h, header);
  const size_t stride = size_t{gridDim.x} * blockDim.x;
  for (size_t i = size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride) {
    if (in == out)  // a plain copy, NaN payloads included (as the host's memcpy)
      memcpy(static_cast<char*>(dst) + 2 * i, static_cast<const char*>(src) + 2 * i, 2);
    else
      storeFloat(out, dst, i, loadFloat(in, src, i));
  }
}

__global__ void blockEncodeKernel(EncodedHeader h, CodecId codec, DataType type, const void* src,
                                  size_t count, uint32_t bs, uint8_t* scales, uint8_t* codes) {
  __shared__ unsigned amaxBits, bad;
  putHeader(h, scales - kHeader);
  const float qmax = qmaxOf(codec);
  for (size_t b = blockIdx.x; b * bs < count; b += gridDim.x) {
    const size_t begin = b * bs;
    const size_t n = count - begin < bs ? count - begin : bs;
    if (threadIdx.x == 0) amaxBits = 0, bad = 0;
    __syncthreads();
    unsigned m = 0, nb = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
      const unsigned u = floatToBits(loadFloat(type, src, begin + i)) & 0x7fffffffu;
      m = u > m ? u : m;
      nb |= u >= 0x7f800000u ? 1u : 0u;
    }
    atomicMax(&amaxBits, m);
    atomicOr(&bad, nb);
    __syncthreads();
    const bool nonFinite = bad != 0;
    const BlockScale s = blockScale(bitsToFloat(amaxBits), nonFinite, qmax);
    if (threadIdx.x == 0) memcpy(scales + 4 * b, &s.scale, 4);
    if (codec == CodecId::kInt4) {
      for (size_t p = threadIdx.x; 2 * p < n; p += blockDim.x) {
        unsigned lo = 0, hi = 0;
        if (!nonFinite) {
          lo = static_cast<unsigned>(quantizeInt(loadFloat(type, src, begin + 2 * p), s.inv, qmax)) & 0xfu;
          if (2 * p + 1 < n)
            hi = static_cast<unsigned>(quantizeInt(loadFloat(type, src, begin + 2 * p + 1), s.inv, qmax)) & 0xfu;
        }
        codes[begin / 2 + p] = static_cast<uint8_t>(lo | (hi << 4));
      }
    } else {
      for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
        uint8_t c = 0;
        if (!nonFinite) {
          const float x = loadFloat(type, src, begin + i);
          c = codec == CodecId::kFp8 ? quantizeFp8(x, s.inv)
                                     : static_cast<uint8_t>(quantizeInt(x, s.inv, qmax));
        }
        codes[begin + i] = c;
      }
    }
    __syncthreads();  // the shared values are reset for the next block
  }
}

__global__ void blockDecodeKernel(CodecId codec, const uint8_t* scales, const uint8_t* codes,
                                  size_t count, uint32_t bs, DataType type, void* dst,
                                  unsigned long long* firstNan) {
  const size_t stride = size_t{gridDim.x} * blockDim.x;
  for (size_t i = size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride) {
    float scale;
    memcpy(&scale, scales + 4 * (i / bs), 4);
    float q;
    if (codec == CodecId::kInt8) {
      q = static_cast<float>(static_cast<int8_t>(codes[i]));
    } else if (codec == CodecId::kInt4) {
      q = static_cast<float>(int4FromNibble((codes[i / 2] >> (4 * (i & 1))) & 0xfu));
    } else {
      if (isE4m3NaN(codes[i])) atomicMin(firstNan, static_cast<unsigned long long>(i));
      q = e4m3ToFloat(codes[i]);
    }
    storeFloat(type, dst, i, dequantize(q, scale));
  }
}

unsigned gridFor(size_t work) {
  const size_t g = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(g == 0 ? 1 : g < kMaxGrid ? g : kMaxGrid);
}

Status cudaFailure(const char* what, cudaError_t e) {
  return Status(ErrorCategory::kSystem,
                std::string("codec (CUDA): ") + what + ": " + cudaGetErrorString(e));
}

// The options as the host codec takes them (block size 0 for the casts).
Result<uint32_t> blockSizeOf(CodecId id, const CodecOptions& options) {
  if (!isLossy(id))
    return Status(ErrorCategory::kInvalidUsage,
                  "codec " + std::string(codecName(id)) + " has no CUDA kernels (lossy codecs only)");
  XSITE_RETURN_IF_ERROR(checkLossyOptions(id, options));  // as the host codec does
  return blockScaled(id) ? options.blockSize : 0u;
}

}  // namespace

Result<size_t> encodeOnStream(CodecId id, const CodecOptions& options, const void* dSrc,
                              size_t count, DataType type, void* dDst, size_t dstBytes,
                              cudaStream_t stream) noexcept {
  auto bs = blockSizeOf(id, options);
  if (!bs) return bs.status();
  const std::string who = "codec " + std::string(codecName(id)) + " (CUDA): ";
  if (!codecSupports(id, type))
    return Status(ErrorCategory::kInvalidUsage,
                  who + "cannot encode " + std::string(dataTypeName(type)));
  const size_t need = lossyEncodedBytes(id, bs.value(), count);
  if (need - kHeader > UINT32_MAX)
    return Status(ErrorCategory::kInvalidUsage, who + "encode at most 4 GiB at a time");
  if (dstBytes < need)
    return Status(ErrorCategory::kInvalidUsage, who + "output buffer of " +
                                                    std::to_string(dstBytes) + " bytes, " +
                                                    std::to_string(need) + " needed");
  EncodedHeader h;
  writeHeader(&h, id, type, 0, bs.value(), count, need - kHeader);
  auto* payload = static_cast<uint8_t*>(dDst) + kHeader;
  if (!blockScaled(id)) {
    castKernel<<<gridFor(count), kThreads, 0, stream>>>(h, static_cast<uint8_t*>(dDst), type,
                                                        castFormat(id), dSrc, count, payload);
  } else {
    const size_t blocks = (count + bs.value() - 1) / bs.value();
    const unsigned grid = static_cast<unsigned>(blocks == 0 ? 1 : blocks < kMaxGrid ? blocks : kMaxGrid);
    blockEncodeKernel<<<grid, kThreads, 0, stream>>>(h, id, type, dSrc, count, bs.value(), payload,
                                                     payload + 4 * blocks);
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cudaFailure("encode launch", e);
  return need;
}

Status decodeOnStream(CodecId id, const CodecOptions& options, const void* dSrc, size_t bytes,
                      size_t count, DataType type, void* dDst, cudaStream_t stream) noexcept {
  auto bs = blockSizeOf(id, options);
  if (!bs) return bs.status();
  const uint32_t blockSize = bs.value();
  const size_t blocks = blockSize ? (count + blockSize - 1) / blockSize : 0;
  const auto* in = static_cast<const uint8_t*>(dSrc);
  std::vector<uint8_t> head;
  uint8_t last = 0;
  try {
    head.resize(bytes < kHeader + 4 * blocks ? bytes : kHeader + 4 * blocks);
  } catch (...) {
    return Status(ErrorCategory::kSystem, "codec (CUDA): out of host memory");
  }
  cudaError_t e = cudaSuccess;
  if (!head.empty()) e = cudaMemcpyAsync(head.data(), in, head.size(), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess && bytes > 0) e = cudaMemcpyAsync(&last, in + bytes - 1, 1, cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return cudaFailure("reading the header", e);
  XSITE_RETURN_IF_ERROR(checkLossyEncoding(id, blockSize, head.data(), bytes, count, type, last));
  if (count == 0) return Status::ok();
  const uint8_t* payload = in + kHeader;
  if (!blockScaled(id)) {
    castKernel<<<gridFor(count), kThreads, 0, stream>>>(EncodedHeader{}, nullptr, castFormat(id),
                                                        type, payload, count, dDst);
    if ((e = cudaGetLastError()) != cudaSuccess) return cudaFailure("decode launch", e);
    return Status::ok();
  }
  // The first element holding an fp8 NaN code (UINT64_MAX: none).
  unsigned long long* dFirstNan = nullptr;
  unsigned long long firstNan = ~0ull;
  e = cudaMallocAsync(reinterpret_cast<void**>(&dFirstNan), sizeof firstNan, stream);
  if (e != cudaSuccess) return cudaFailure("allocating the fp8 check", e);
  e = cudaMemcpyAsync(dFirstNan, &firstNan, sizeof firstNan, cudaMemcpyHostToDevice, stream);
  if (e == cudaSuccess) {
    blockDecodeKernel<<<gridFor(count), kThreads, 0, stream>>>(
        id, payload, payload + 4 * blocks, count, blockSize, type, dDst, dFirstNan);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(&firstNan, dFirstNan, sizeof firstNan, cudaMemcpyDeviceToHost, stream);
  const cudaError_t freed = cudaFreeAsync(dFirstNan, stream);
  if (e == cudaSuccess) e = freed;
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return cudaFailure("decode", e);
  if (firstNan != ~0ull) return fp8NanCodeError(blockSize, static_cast<size_t>(firstNan));
  return Status::ok();
}

}  // namespace xsite::compress::cuda
