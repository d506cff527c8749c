// The hierarchical all-reduce with a codec on its cross-site stage, ranks as threads: every rank
// gets the same bytes under every codec; lossless codecs are exact; lossy ones stay within their
// error bound; error feedback carries the residual over calls of one key; calls a lossy codec
// does not apply to cross exactly; the WAN counters see the compression.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "coll/matrix.h"
#include "coll/rank_threads.h"

namespace xsite::testing {
namespace {

using Shape = std::vector<std::vector<int>>;

const Codec kAllCodecs[] = {Codec::kNone, Codec::kLz4,  Codec::kZstd, Codec::kBf16,
                            Codec::kFp16, Codec::kInt8, Codec::kFp8,  Codec::kInt4};

bool lossy(Codec c) { return c >= Codec::kBf16; }

// Largest error of one element relative to the largest magnitude of its block, per codec, with
// the rounding of the inputs' own type (bf16 input has 8 bits of mantissa) on top.
double tolerance(Codec c, DataType t) {
  double own = t == DataType::kBfloat16 ? 1.0 / 128 : t == DataType::kFloat16 ? 1.0 / 1024 : 0;
  switch (c) {
    case Codec::kBf16: return 1.0 / 128 + own;
    case Codec::kFp16: return 1.0 / 1024 + own;
    case Codec::kInt8: return 1.0 / 127 + own;
    case Codec::kFp8: return 1.0 / 8 + own;
    case Codec::kInt4: return 1.0 / 7 + own;
    default: return own;
  }
}

// Every rank's output of one call, compared.
struct SameBytes {
  explicit SameBytes(int n) : out(n), barrier(n) {}
  void check(int rank, const void* p, size_t bytes, const std::string& what) {
    out[rank].assign(static_cast<const char*>(p), static_cast<const char*>(p) + bytes);
    ASSERT_TRUE(barrier.wait());
    if (rank == 0) {
      for (size_t r = 1; r < out.size(); ++r) EXPECT_TRUE(out[r] == out[0]) << what << ": rank " << r;
    }
    ASSERT_TRUE(barrier.wait());
  }
  std::vector<std::vector<char>> out;
  ThreadBarrier barrier;
};

class CodecAllReduce : public ::testing::TestWithParam<Shape> {};

TEST_P(CodecAllReduce, EveryCodecTypeOpAndSize) {
  LocalGroup group(GetParam(), smallPipelineConfig());
  const int n = group.size();
  SameBytes same(n);
  runRanks(group, [&](Communicator& comm) {
    const DataType types[] = {DataType::kFloat32, DataType::kBfloat16, DataType::kFloat16,
                              DataType::kInt32};
    for (Codec codec : kAllCodecs)
      for (DataType t : types)
        for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax})
          for (size_t count : {size_t{1}, size_t{7}, size_t{1031}, size_t{20000}}) {
            const std::string what = std::string(codecName(codec)) + " " +
                                     std::string(dataTypeName(t)) + " " +
                                     std::string(reduceOpName(op)) + " count " + std::to_string(count);
            const size_t es = dataTypeSize(t);
            std::vector<char> in(count * es), out(count * es);
            fillInput(in.data(), t, op, comm.rank(), count);
            AllReduceOptions o;
            o.algorithm = Algorithm::kHierarchical;
            o.codec = codec;
            o.errorFeedback = false;
            comm.allReduce(in.data(), out.data(), count, t, op, o);
            same.check(comm.rank(), out.data(), out.size(), what);
            // Exact unless a lossy codec applied (floating-point sum or average).
            const bool approx = lossy(codec) && t != DataType::kInt32 && op != ReduceOp::kMax;
            double amax = 0;
            for (size_t i = 0; i < count; ++i)
              amax = std::max(amax, std::fabs(expectedReduction(t, op, n, i)));
            for (size_t i = 0; i < count; ++i) {
              const double got = elementToDouble(out.data(), t, i);
              const double want = expectedReduction(t, op, n, i);
              // Both compressions (contribution and result) round; blocks never span more
              // than the whole buffer, so the buffer's largest value bounds a block's.
              const bool ok = approx ? std::fabs(got - want) <= 3 * tolerance(codec, t) * (amax + 8 * n)
                                     : matches(t, op, got, want);
              if (!ok) {
                ADD_FAILURE() << what << ": element " << i << " is " << got << ", expected " << want;
                break;
              }
            }
          }
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, CodecAllReduce,
                         ::testing::Values(Shape{{1}, {1}}, Shape{{2, 2}, {2, 2}},
                                           Shape{{2}, {2}, {2}}),
                         [](const ::testing::TestParamInfo<Shape>& i) {
                           std::string s;
                           for (size_t a = 0; a < i.param.size(); ++a)
                             s += (a ? "_" : "") + std::to_string(i.param[a].size()) + "x" +
                                  std::to_string(i.param[a][0]);
                           return "sites_" + s;
                         });

// Repeated all-reduces of the same gradient: with error feedback the mean of the outputs
// converges to the exact sum; without it the int4 rounding error stays.
TEST(CodecErrorFeedback, RunningMeanConvergesOnlyWithFeedback) {
  LocalGroup group(Shape{{2}, {2}}, smallPipelineConfig());
  const size_t count = 4096;
  const int steps = 64;
  std::vector<double> errWith(group.size()), errWithout(group.size());
  runRanks(group, [&](Communicator& comm) {
    std::mt19937 gen(7 + comm.rank());
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> in(count), out(count), exact(count);
    for (auto& v : in) v = dist(gen);
    AllReduceOptions x;
    x.algorithm = Algorithm::kHierarchical;
    comm.allReduce(in.data(), exact.data(), count, DataType::kFloat32, ReduceOp::kSum, x);
    for (bool feedback : {true, false}) {
      AllReduceOptions o = x;
      o.codec = Codec::kInt4;
      o.errorFeedback = feedback;
      o.errorFeedbackKey = "bucket0";
      std::vector<double> sum(count, 0.0);
      for (int s = 0; s < steps; ++s) {
        comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, o);
        for (size_t i = 0; i < count; ++i) sum[i] += out[i];
      }
      double num = 0, den = 0;
      for (size_t i = 0; i < count; ++i) {
        const double d = sum[i] / steps - exact[i];
        num += d * d;
        den += static_cast<double>(exact[i]) * exact[i];
      }
      (feedback ? errWith : errWithout)[comm.rank()] = std::sqrt(num / den);
      if (feedback) {
        EXPECT_EQ(comm.errorFeedbackBytes() % sizeof(float), 0u);
        EXPECT_GT(comm.errorFeedbackBytes(), 0u);
        comm.dropErrorFeedback("bucket0");
        EXPECT_EQ(comm.errorFeedbackBytes(), 0u);
      }
    }
  });
  for (size_t r = 0; r < errWith.size(); ++r) {
    EXPECT_LT(errWith[r], 0.01) << "rank " << r;             // measured ~0.002
    EXPECT_GT(errWithout[r], 5 * errWith[r]) << "rank " << r;  // measured ~0.06
  }
}

// Between two sites each contribution is encoded once and the reduced result never: values a
// block-scaled codec represents exactly (integers up to the code's largest, with that largest in
// every block: a scale of 1) arrive exact, although their sums (odd numbers up to twice the
// largest) are not representable at the sum's scale. Encoding the result again, as the exchange
// of pieces among more sites does, would round every odd sum.
TEST(CodecTwoSites, EachContributionIsRoundedOnceAndTheResultNever) {
  LocalGroup group(Shape{{1}, {1}}, smallPipelineConfig());
  runRanks(group, [&](Communicator& comm) {
    for (auto [codec, top] : {std::pair{Codec::kInt8, 127}, std::pair{Codec::kInt4, 7}}) {
      const size_t count = 4096;
      std::vector<float> in(count), out(count);
      auto value = [&](int site, size_t i) {
        return static_cast<float>(site == 0 ? (i % 4 == 0 ? top : static_cast<int>(i % (top + 1)))
                                            : (i % 4 == 0 ? top : 1));
      };
      for (size_t i = 0; i < count; ++i) in[i] = value(comm.rank(), i);
      AllReduceOptions o;
      o.algorithm = Algorithm::kHierarchical;
      o.codec = codec;
      o.errorFeedback = false;
      comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, o);
      size_t odd = 0;
      for (size_t i = 0; i < count; ++i) {
        const float want = value(0, i) + value(1, i);
        odd += static_cast<int>(want) % 2 != 0;
        ASSERT_EQ(out[i], want) << codecName(codec) << " element " << i;
      }
      EXPECT_GE(odd, count / 8);  // the case that a second rounding would get wrong
    }
  });
}

TEST(CodecWanStats, CompressionShowsOnTheWire) {
  LocalGroup group(Shape{{2}, {2}}, smallPipelineConfig());
  runRanks(group, [&](Communicator& comm) {
    const size_t count = 1 << 16;
    std::vector<float> in(count, 1.5f + comm.rank()), out(count);
    AllReduceOptions o;
    o.algorithm = Algorithm::kHierarchical;
    const WanStats a = comm.wanStats();
    comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, o);
    const WanStats b = comm.wanStats();
    EXPECT_EQ(b.wireBytes - a.wireBytes, b.rawBytes - a.rawBytes);  // uncompressed
    o.codec = Codec::kInt8;
    comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, o);
    const WanStats c = comm.wanStats();
    const double ratio = double(c.rawBytes - b.rawBytes) / double(c.wireBytes - b.wireBytes);
    EXPECT_GT(ratio, 3.5);  // 4 bytes -> 1 byte + a float scale per 256
    EXPECT_LT(ratio, 4.0);
    EXPECT_NEAR(out[0], 1.5 + 2.5 + 3.5 + 4.5, 12.0 / 127);
  });
}

// Ranks that disagree on the codec fail with an error that says so, within the timeout; none
// returns a silently wrong result.
TEST(CodecMismatch, RanksWithDifferentCodecsGetAClearError) {
  Config cfg = smallPipelineConfig();
  cfg.timeoutSeconds = 10;
  LocalGroup group(Shape{{2}, {2}}, cfg);
  const auto errors = runRanksCollectErrors(group, [](Communicator& comm) {
    std::vector<float> buf(5000, 1.0f);
    AllReduceOptions o;
    o.algorithm = Algorithm::kHierarchical;
    o.codec = comm.placement(comm.rank()).site == 0 ? Codec::kInt8 : Codec::kLz4;
    comm.allReduce(buf.data(), buf.data(), buf.size(), DataType::kFloat32, ReduceOp::kSum, o);
  });
  int named = 0;
  for (size_t r = 0; r < errors.size(); ++r) {
    ASSERT_TRUE(errors[r]) << "rank " << r << " finished a mismatched all-reduce";
    try {
      std::rethrow_exception(errors[r]);
    } catch (const Error& e) {
      const std::string m = e.what();
      // The ranks that see the disagreement name it; the others see them leave.
      if (m.find("codec") != std::string::npos || m.find("same count") != std::string::npos) ++named;
      else EXPECT_NE(m.find("closed the connection"), std::string::npos) << m;
    }
  }
  EXPECT_GE(named, 1);
}

}  // namespace
}  // namespace xsite::testing
