// Relative L2 error ||decode(encode(x)) - x|| / ||x|| of each lossy codec (float32 input, block
// size 256, 2^20 elements) on normal N(0,1) data and on heavy-tailed Student-t (df = 2) data.
// Measured with libstdc++'s generators (fixed seeds) on x86-64; every ISA gives the same bytes,
// so the figures hold on every host. The bounds leave about 25% of margin:
//
//   codec | N(0,1) measured | bound   | Student-t df=2 measured | bound
//   ------+-----------------+---------+-------------------------+--------
//   bf16  |     1.66e-3     | 2.1e-3  |         1.33e-3         | 1.7e-3
//   fp16  |     2.08e-4     | 2.6e-4  |         3.88e-4         | 4.9e-4
//   int8  |     6.95e-3     | 8.7e-3  |         1.08e-2         | 1.35e-2
//   fp8   |     2.61e-2     | 3.3e-2  |         5.63e-3         | 7.0e-3
//   int4  |     1.26e-1     | 1.6e-1  |         8.80e-2         | 1.1e-1
//
// The Student-t figures are lower for fp8 and int4 than the normal ones: with df = 2 the few
// largest elements carry most of ||x||^2, and a block scale fits its largest element well.
// Theory for N(0,1) with 256-element blocks (amax ~ 2.9): int8 step amax/127, RMS error
// step/sqrt(12) ~ 6.6e-3; int4 ~ 0.12; the casts ~ 2^-9 (bf16) and 2^-12 (fp16) in RMS.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "compress/codec.h"

namespace xsite::compress {
namespace {

constexpr size_t kCount = size_t{1} << 20;

struct Case {
  CodecId id;
  double normalBound;
  double heavyBound;
};

const Case kCases[] = {
    {CodecId::kBf16, 2.1e-3, 1.7e-3}, {CodecId::kFp16, 2.6e-4, 4.9e-4},
    {CodecId::kInt8, 8.7e-3, 1.35e-2}, {CodecId::kFp8, 3.3e-2, 7.0e-3},
    {CodecId::kInt4, 1.6e-1, 1.1e-1},
};

std::vector<float> normalData() {
  std::mt19937_64 rng(2024);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(kCount);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<float> studentTData() {
  std::mt19937_64 rng(2025);
  std::student_t_distribution<float> d(2.0f);
  std::vector<float> v(kCount);
  for (auto& x : v) x = d(rng);
  return v;
}

double relativeL2(CodecId id, const std::vector<float>& x) {
  auto codec = makeCodec(id);
  std::vector<uint8_t> enc(codec->maxEncodedBytes(x.size(), DataType::kFloat32));
  auto r = codec->encode(x.data(), x.size(), DataType::kFloat32, enc.data(), enc.size());
  EXPECT_TRUE(r);
  std::vector<float> y(x.size());
  EXPECT_TRUE(codec->decode(enc.data(), enc.size(), x.size(), DataType::kFloat32, y.data()));
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = double(y[i]) - double(x[i]);
    num += d * d;
    den += double(x[i]) * x[i];
  }
  return std::sqrt(num / den);
}

TEST(LossyAccuracy, RelativeL2ErrorWithinBounds) {
  const auto normal = normalData();
  const auto heavy = studentTData();
  for (const Case& c : kCases) {
    const double en = relativeL2(c.id, normal), eh = relativeL2(c.id, heavy);
    std::printf("%-5s N(0,1) %.3g   Student-t(2) %.3g\n", std::string(codecName(c.id)).c_str(), en, eh);
    EXPECT_LE(en, c.normalBound) << codecName(c.id) << " on N(0,1)";
    EXPECT_LE(eh, c.heavyBound) << codecName(c.id) << " on Student-t df=2";
    EXPECT_GT(en, 0.0) << "a lossy codec that loses nothing on random data is not encoding";
  }
}

}  // namespace
}  // namespace xsite::compress
