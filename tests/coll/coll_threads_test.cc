// Every collective x algorithm x data type x op x size, ranks as threads over the loopback
// transport, on regular and uneven topologies. Small chunks and slices make every size cross
// several pipeline chunks and ring slices. Results must match the reference and be
// bit-identical on every rank.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <random>
#include <string>

#include "coll/rank_threads.h"
#include "coll/reference.h"

namespace xsite::testing {
namespace {

using Shape = std::vector<std::vector<int>>;

Config smallPipeline() {
  Config c;
  c.chunkBytes = 4096;
  c.sliceBytes = 1024;
  c.timeoutSeconds = 60;
  return c;
}

const size_t kCounts[] = {0, 1, 7, 1031, 8192 + 13};

std::string shapeName(const Shape& s) {
  std::string n;
  for (size_t i = 0; i < s.size(); ++i) {
    n += i ? "_" : "";
    for (size_t j = 0; j < s[i].size(); ++j) n += (j ? "x" : "") + std::to_string(s[i][j]);
  }
  return n;
}

class CollThreads : public ::testing::TestWithParam<Shape> {};

// Records every rank's output of one call and checks they are bit-identical.
struct Identical {
  explicit Identical(int n) : outputs(n), barrier(n) {}
  void check(int rank, const void* data, size_t bytes, const std::string& what) {
    outputs[rank].assign(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    barrier.wait();
    if (rank == 0) {
      for (size_t r = 1; r < outputs.size(); ++r) {
        EXPECT_TRUE(outputs[r] == outputs[0]) << what << ": rank " << r << " differs from rank 0";
      }
    }
    barrier.wait();
  }
  std::vector<std::vector<char>> outputs;
  ThreadBarrier barrier;
};

TEST_P(CollThreads, AllReduceEveryAlgorithmTypeOpAndSize) {
  LocalGroup group(GetParam(), smallPipeline());
  const int n = group.size();
  Identical same(n);
  runRanks(group, [&](Communicator& comm) {
    const int me = comm.rank();
    for (Algorithm algo : {Algorithm::kRing, Algorithm::kHierarchical, Algorithm::kLatency})
      for (DataType t : allTypes()) {
        if (!isReducible(t)) continue;
        for (ReduceOp op : allOps())
          for (size_t count : kCounts)
            for (bool inPlace : {false, true}) {
              const size_t es = dataTypeSize(t);
              std::vector<char> in(count * es + 1), out(count * es + 1, 0x5a);
              fillInput(in.data(), t, op, me, count);
              void* dst = inPlace ? in.data() : out.data();
              comm.allReduce(in.data(), dst, count, t, op, {algo});
              std::string what = std::string(algorithmName(algo)) + " " +
                                 std::string(dataTypeName(t)) + " " + std::string(reduceOpName(op)) +
                                 " count " + std::to_string(count) + (inPlace ? " in-place" : "");
              size_t wrong = 0;
              for (size_t i = 0; i < count; ++i)
                wrong += !matches(t, op, elementToDouble(dst, t, i), expectedReduction(t, op, n, i));
              EXPECT_EQ(wrong, 0u) << what << " on rank " << me;
              if (!inPlace) {
                EXPECT_EQ(out[count * es], 0x5a) << what << ": wrote past the end";
              }
              same.check(me, dst, count * es, what);
            }
      }
  });
}

TEST_P(CollThreads, FloatSumMatchesFloat64ReferenceOnRandomData) {
  LocalGroup group(GetParam(), smallPipeline());
  const int n = group.size();
  const size_t count = 5000;
  Identical same(n);
  runRanks(group, [&](Communicator& comm) {
    for (Algorithm algo : {Algorithm::kRing, Algorithm::kHierarchical, Algorithm::kLatency}) {
      std::vector<float> in(count), out(count);
      std::vector<double> ref(count, 0.0), mag(count, 0.0);
      for (int r = 0; r < n; ++r) {
        std::mt19937 gen(1234 + r);
        std::normal_distribution<float> dist(0.0f, 1.0f);
        for (size_t i = 0; i < count; ++i) {
          float v = dist(gen);
          if (r == comm.rank()) in[i] = v;
          ref[i] += v;
          mag[i] += std::fabs(v);
        }
      }
      comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum, {algo});
      for (size_t i = 0; i < count; ++i)
        ASSERT_NEAR(out[i], ref[i], 2e-7 * n * mag[i] + 1e-30) << algorithmName(algo) << " element " << i;
      same.check(comm.rank(), out.data(), count * sizeof(float), std::string(algorithmName(algo)));
    }
  });
}

TEST_P(CollThreads, ReduceScatterEveryTypeOpAndSize) {
  LocalGroup group(GetParam(), smallPipeline());
  const int n = group.size();
  runRanks(group, [&](Communicator& comm) {
    const int me = comm.rank();
    for (DataType t : allTypes()) {
      if (!isReducible(t)) continue;
      for (ReduceOp op : allOps())
        for (size_t count : kCounts)
          for (bool inPlace : {false, true}) {
            const size_t es = dataTypeSize(t);
            std::vector<char> in(count * n * es + 1), out(count * es + 1, 0x5a);
            fillInput(in.data(), t, op, me, count * n);
            char* dst = inPlace ? in.data() + me * count * es : out.data();
            comm.reduceScatter(in.data(), dst, count, t, op);
            size_t wrong = 0;
            for (size_t i = 0; i < count; ++i)
              wrong += !matches(t, op, elementToDouble(dst, t, i),
                                expectedReduction(t, op, n, me * count + i));
            EXPECT_EQ(wrong, 0u) << dataTypeName(t) << " " << reduceOpName(op) << " count "
                                 << count << (inPlace ? " in-place" : "") << " rank " << me;
            if (!inPlace) {
              EXPECT_EQ(out[count * es], 0x5a);
            }
          }
    }
  });
}

TEST_P(CollThreads, AllGatherEveryTypeAndSize) {
  LocalGroup group(GetParam(), smallPipeline());
  const int n = group.size();
  runRanks(group, [&](Communicator& comm) {
    const int me = comm.rank();
    for (DataType t : allTypes())
      for (size_t count : kCounts)
        for (bool inPlace : {false, true}) {
          const size_t es = dataTypeSize(t);
          std::vector<char> in(count * es), out(count * n * es + 1, 0x5a);
          fillInput(in.data(), t, ReduceOp::kSum, me, count);
          const void* src = in.data();
          if (inPlace) {
            memcpy(out.data() + me * count * es, in.data(), count * es);
            src = out.data() + me * count * es;
          }
          comm.allGather(src, out.data(), count, t);
          size_t wrong = 0;
          for (int r = 0; r < n; ++r)
            for (size_t i = 0; i < count; ++i)
              wrong += elementToDouble(out.data(), t, r * count + i) != inputValue(t, ReduceOp::kSum, r, i);
          EXPECT_EQ(wrong, 0u) << dataTypeName(t) << " count " << count << " rank " << me;
          EXPECT_EQ(out[count * n * es], 0x5a);
        }
  });
}

TEST_P(CollThreads, BroadcastFromEveryKindOfRoot) {
  LocalGroup group(GetParam(), smallPipeline());
  const int n = group.size();
  runRanks(group, [&](Communicator& comm) {
    const int me = comm.rank();
    for (int root : {0, n - 1, n / 2})
      for (DataType t : {DataType::kFloat32, DataType::kInt8, DataType::kFloat8E4M3, DataType::kFloat64})
        for (size_t count : kCounts)
          for (bool inPlace : {false, true}) {
            const size_t es = dataTypeSize(t);
            std::vector<char> in(count * es), out(count * es + 1, 0x5a);
            fillInput(in.data(), t, ReduceOp::kSum, me, count);
            char* dst = inPlace ? in.data() : out.data();
            comm.broadcast(in.data(), dst, count, t, root);
            size_t wrong = 0;
            for (size_t i = 0; i < count; ++i)
              wrong += elementToDouble(dst, t, i) != inputValue(t, ReduceOp::kSum, root, i);
            EXPECT_EQ(wrong, 0u) << "root " << root << " " << dataTypeName(t) << " count " << count
                                 << " rank " << me;
            if (!inPlace) {
              EXPECT_EQ(out[count * es], 0x5a);
            }
          }
  });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CollThreads,
    ::testing::Values(Shape{{1}},              // 1 rank
                      Shape{{1}, {1}},         // 2 ranks, 2 sites
                      Shape{{2}, {1}},         // 3 ranks, uneven sites
                      Shape{{3}},              // 3 ranks, one domain
                      Shape{{1, 1, 1}},        // 3 domains of one rank
                      Shape{{2, 2}, {2}},      // uneven: 2 domains beside 1
                      Shape{{2, 2}, {4}},      // same site size, different domain shapes
                      Shape{{2}, {2}, {2}},    // 3 sites
                      Shape{{2, 2}, {2, 2}}),  // the mini superfactory, 8 ranks
    [](const auto& info) { return shapeName(info.param); });

}  // namespace
}  // namespace xsite::testing
