// The CUDA twins against the host codecs: the device encoding equals the host's byte for byte
// (header included) and the device decode equals the host decode bit for bit, on every lossy
// codec x input type x count, with NaN/Inf, subnormal and +-0 data. Needs a GPU (label gpu).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "compress/cuda/codec_cuda.h"
#include "compress/element.h"

namespace xsite::compress {
namespace {

bool haveDevice() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, bytes < 1 ? 1 : bytes), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
};

std::vector<float> data(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 4.0f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = d(rng);
    if (i % 1031 == 5) v[i] = NAN;
    if (i % 2053 == 7) v[i] = -INFINITY;
    if ((i / 512) % 5 == 3) v[i] *= 1e-39f;  // subnormal blocks
    if (i % 17 == 0) v[i] = -0.0f;
  }
  return v;
}

TEST(LossyCuda, DeviceMatchesHostBitForBit) {
  if (!haveDevice()) GTEST_SKIP() << "no CUDA device";
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (CodecId id : {CodecId::kBf16, CodecId::kFp16, CodecId::kInt8, CodecId::kFp8, CodecId::kInt4})
    for (DataType type : {DataType::kFloat32, DataType::kBfloat16, DataType::kFloat16})
      for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{255}, size_t{257}, size_t{4099}, size_t{1} << 20})
        for (uint32_t bs : {2u, 256u, 4098u}) {
          SCOPED_TRACE(std::string(codecName(id)) + " " + std::string(dataTypeName(type)) + " n=" + std::to_string(n) + " bs=" + std::to_string(bs));
          const CodecOptions opt{bs, 1};
          auto host = makeCodec(id, opt);
          const auto values = data(n, static_cast<uint32_t>(n + bs));
          std::vector<uint8_t> src(n * dataTypeSize(type));
          for (size_t i = 0; i < n; ++i) element::storeFloat(type, src.data(), i, values[i]);
          const size_t cap = host->maxEncodedBytes(n, type);
          std::vector<uint8_t> hostEnc(cap), devEnc(cap);
          ASSERT_TRUE(host->encode(src.data(), n, type, hostEnc.data(), cap));
          DeviceBuffer dSrc(src.size()), dEnc(cap), dOut(src.size());
          ASSERT_EQ(cudaMemcpy(dSrc.p, src.data(), src.size(), cudaMemcpyHostToDevice), cudaSuccess);
          auto r = cuda::encodeOnStream(id, opt, dSrc.p, n, type, dEnc.p, cap, stream);
          ASSERT_TRUE(r) << r.status().message();
          ASSERT_EQ(r.value(), cap);
          ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
          ASSERT_EQ(cudaMemcpy(devEnc.data(), dEnc.p, cap, cudaMemcpyDeviceToHost), cudaSuccess);
          ASSERT_EQ(hostEnc, devEnc);
          std::vector<uint8_t> hostOut(src.size()), devOut(src.size());
          ASSERT_TRUE(host->decode(hostEnc.data(), cap, n, type, hostOut.data()));
          Status st = cuda::decodeOnStream(id, opt, dEnc.p, cap, n, type, dOut.p, stream);
          ASSERT_TRUE(st) << st.message();
          ASSERT_EQ(cudaMemcpy(devOut.data(), dOut.p, src.size(), cudaMemcpyDeviceToHost), cudaSuccess);
          ASSERT_EQ(hostOut, devOut);
          if (id == CodecId::kFp8 && n > 100) {  // a NaN code is rejected on the device too
            const uint8_t nanCode = 0x7f;
            ASSERT_EQ(cudaMemcpy(static_cast<uint8_t*>(dEnc.p) + cap - 1, &nanCode, 1, cudaMemcpyHostToDevice), cudaSuccess);
            Status bad = cuda::decodeOnStream(id, opt, dEnc.p, cap, n, type, dOut.p, stream);
            EXPECT_FALSE(bad);
            EXPECT_EQ(bad.category(), ErrorCategory::kRemote);
          }
        }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace xsite::compress
