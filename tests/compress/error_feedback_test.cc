// Error feedback: the store's bookkeeping and bound, and encodeWithFeedback's residual algebra.
#include "compress/error_feedback.h"

#include <gtest/gtest.h>

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
