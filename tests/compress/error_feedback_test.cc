// Error feedback: the store's bookkeeping and bound, and encodeWithFeedback's residual algebra.
#include "compress/error_feedback.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "util/half.h"

namespace xsite::compress {
namespace {

TEST(ErrorFeedbackStore, NewKeysAreZeroAndCounted) {
  ErrorFeedback ef(1 << 20);
  auto r = ef.residual("a", 100);
  ASSERT_TRUE(r);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r.value()[i], 0.0f);
  r.value()[3] = 2.0f;
  EXPECT_EQ(ef.residual("a", 100).value()[3], 2.0f);  // kept across calls
  EXPECT_EQ(ef.bytes(), 400u);
  ASSERT_TRUE(ef.residual("b", 50));
  EXPECT_EQ(ef.bytes(), 600u);
  EXPECT_EQ(ef.keys(), 2u);
  ef.reset("a");
  EXPECT_EQ(ef.residual("a", 100).value()[3], 0.0f);
  ef.residual("a", 100).value()[3] = 2.0f;
  ef.residual("b", 50).value()[7] = 3.0f;
  ef.resetAll();
  EXPECT_EQ(ef.residual("a", 100).value()[3], 0.0f);
  EXPECT_EQ(ef.residual("b", 50).value()[7], 0.0f);
  EXPECT_EQ(ef.bytes(), 600u);  // reset keeps the memory
  ef.drop("a");
  EXPECT_EQ(ef.bytes(), 200u);
  ef.dropAll();
  EXPECT_EQ(ef.bytes(), 0u);
  EXPECT_EQ(ef.keys(), 0u);
}

TEST(ErrorFeedbackStore, LengthChangeStartsOver) {
  ErrorFeedback ef(1 << 20);
  ef.residual("a", 10).value()[0] = 1.0f;
  auto r = ef.residual("a", 20);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value()[0], 0.0f);
  EXPECT_EQ(ef.bytes(), 80u);
}

TEST(ErrorFeedbackStore, BoundIsAnErrorNamingTheVariable) {
  ErrorFeedback ef(1000);
  ASSERT_TRUE(ef.residual("a", 200));
  auto r = ef.residual("b", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().category(), ErrorCategory::kInvalidUsage);
  EXPECT_NE(r.status().message().find("XSITE_ERROR_FEEDBACK_MAX_BYTES"), std::string::npos);
  EXPECT_NE(r.status().message().find("'b'"), std::string::npos);
  EXPECT_EQ(ef.bytes(), 800u);
  ASSERT_TRUE(ef.residual("a", 250));  // growing the only key up to the bound is fine
}

}  // namespace
}  // namespace xsite::compress

namespace xsite::compress {
namespace {

// 1000 steps of a slowly varying gradient (a fixed part plus 0.2% noise), encoded and decoded each
// step: the running sum of the decoded values must track the running sum of the inputs. With
// error feedback the gap is one residual (telescoping); without it each step's rounding adds up.
double runningSumDrift(CodecId id, bool feedback) {
  const size_t n = 4096;
  const int steps = 1000;
  auto codec = makeCodec(id);
  std::mt19937 gen(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> base(n), x(n), decoded(n), scratch(n), residual(n, 0.0f);
  std::vector<char> wire(codec->maxEncodedBytes(n, DataType::kFloat32));
  for (auto& v : base) v = dist(gen);
  std::vector<double> sumIn(n, 0.0), sumOut(n, 0.0);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < n; ++i) x[i] = base[i] + 0.002f * dist(gen);
    auto r = encodeWithFeedback(*codec, x.data(), n, DataType::kFloat32,
                                feedback ? residual.data() : nullptr, wire.data(), wire.size(),
                                decoded.data(), scratch.data());
    EXPECT_TRUE(r) << r.status().message();
    for (size_t i = 0; i < n; ++i) {
      sumIn[i] += x[i];
      sumOut[i] += decoded[i];
    }
  }
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (sumOut[i] - sumIn[i]) * (sumOut[i] - sumIn[i]);
    den += sumIn[i] * sumIn[i];
  }
  return std::sqrt(num / den);
}

TEST(ErrorFeedbackAccuracy, RunningSumTracksInputsOnlyWithFeedback) {
  // Relative L2 drift after 1000 steps, measured (with / without error feedback):
  //   bf16 1.7e-6 / 6.5e-4   fp16 2.1e-7 / 6.6e-6   int8 7.1e-6 / 5.1e-3
  //   fp8  2.7e-5 / 2.5e-2   int4 1.3e-4 / 1.3e-1
  // The casts' own rounding is below 1e-3 even without feedback; the block codecs' is not.
  for (CodecId id : {CodecId::kBf16, CodecId::kFp16, CodecId::kInt8, CodecId::kFp8, CodecId::kInt4}) {
    const double with = runningSumDrift(id, true), without = runningSumDrift(id, false);
    SCOPED_TRACE(std::string(codecName(id)) + ": drift " + std::to_string(with) + " with, " +
                 std::to_string(without) + " without error feedback");
    EXPECT_LT(with, 1e-3);
    EXPECT_LT(with, without / 10);
    if (id != CodecId::kFp16 && id != CodecId::kBf16) {
      EXPECT_GT(without, 1e-3);
    }
  }
}

TEST(ErrorFeedbackAccuracy, NonFiniteInputDoesNotPoisonTheResidual) {
  auto codec = makeCodec(CodecId::kInt8);
  std::vector<float> x(512, 1.0f), decoded(512), scratch(512), residual(512, 0.0f);
  std::vector<char> wire(codec->maxEncodedBytes(512, DataType::kFloat32));
  x[3] = std::numeric_limits<float>::infinity();
  ASSERT_TRUE(encodeWithFeedback(*codec, x.data(), 512, DataType::kFloat32, residual.data(),
                                 wire.data(), wire.size(), decoded.data(), scratch.data()));
  EXPECT_TRUE(std::isnan(decoded[0]));  // the block holding the Inf decodes to NaN (codec.h)
  for (float r : residual) EXPECT_TRUE(std::isfinite(r));
  x[3] = 1.0f;
  ASSERT_TRUE(encodeWithFeedback(*codec, x.data(), 512, DataType::kFloat32, residual.data(),
                                 wire.data(), wire.size(), decoded.data(), scratch.data()));
  EXPECT_FLOAT_EQ(decoded[0], 1.0f);
}

TEST(ErrorFeedbackAccuracy, SixteenBitInputsKeepTheirOwnRounding) {
  // bfloat16 input through int8: the residual is kept in float32, so it also keeps what the
  // rounding of (input + residual) back to bfloat16 lost.
  auto codec = makeCodec(CodecId::kInt8);
  const size_t n = 256;
  std::vector<uint16_t> x(n), decoded(n);
  std::vector<float> scratch(n), residual(n, 0.0f);
  std::vector<char> wire(codec->maxEncodedBytes(n, DataType::kBfloat16));
  for (size_t i = 0; i < n; ++i) x[i] = floatToBf16(0.01f * static_cast<float>(i) - 1.0f);
  double sumIn = 0, sumOut = 0;
  for (int s = 0; s < 200; ++s) {
    ASSERT_TRUE(encodeWithFeedback(*codec, x.data(), n, DataType::kBfloat16, residual.data(),
                                   wire.data(), wire.size(), decoded.data(), scratch.data()));
    for (size_t i = 0; i < n; ++i) {
      sumIn += bf16ToFloat(x[i]);
      sumOut += bf16ToFloat(decoded[i]);
    }
  }
  EXPECT_NEAR(sumOut, sumIn, 1.0);  // 200 steps x 256 elements; without feedback ~1e1 off
}

}  // namespace
}  // namespace xsite::compress
