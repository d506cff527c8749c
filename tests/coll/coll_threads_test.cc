// Every collective x algorithm x data type x op x size, ranks as threads over in-process rings
// (and, run again by tests/coll/CMakeLists.txt, over shm, tcp, UCX and WAN streams), on regular
// and uneven topologies. Small chunks and slices make every size cross
// several pipeline chunks and ring slices. Results must match the reference and be
// bit-identical on every rank.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>

#include "coll/rank_threads.h"
#include "coll/matrix.h"

namespace xsite::testing {
namespace {

using Shape = std::vector<std::vector<int>>;

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
    ASSERT_TRUE(barrier.wait()) << what << ": a rank never arrived";
    if (rank == 0) {
      for (size_t r = 1; r < outputs.size(); ++r) {
        EXPECT_TRUE(outputs[r] == outputs[0]) << what << ": rank " << r << " differs from rank 0";
      }
    }
    ASSERT_TRUE(barrier.wait()) << what << ": a rank never arrived";
  }
  std::vector<std::vector<char>> outputs;
  ThreadBarrier barrier;
};

// Runs one matrix on every rank with gtest assertions and a bit-identity check.
void runMatrix(const Shape& shape, void (*matrix)(Communicator&, const Reporter&)) {
  LocalGroup group(shape, smallPipelineConfig());
  Identical same(group.size());
  runRanks(group, [&](Communicator& comm) {
    const int me = comm.rank();
    Reporter rep{[&](bool ok, const std::string& what) { EXPECT_TRUE(ok) << what << " on rank " << me; },
                 [&](const void* p, size_t n, const std::string& what) { same.check(me, p, n, what); }};
    matrix(comm, rep);
  });
}

TEST_P(CollThreads, AllReduceEveryAlgorithmTypeOpAndSize) { runMatrix(GetParam(), allReduceMatrix); }
TEST_P(CollThreads, ReduceScatterEveryTypeOpAndSize) { runMatrix(GetParam(), reduceScatterMatrix); }
TEST_P(CollThreads, AllGatherEveryTypeAndSize) { runMatrix(GetParam(), allGatherMatrix); }
TEST_P(CollThreads, BroadcastFromEveryKindOfRoot) { runMatrix(GetParam(), broadcastMatrix); }

TEST_P(CollThreads, FloatSumMatchesFloat64ReferenceOnRandomData) {
  LocalGroup group(GetParam(), smallPipelineConfig());
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

// The runs of this matrix over real transports (tests/coll/CMakeLists.txt) name the transports
// they expect in XSITE_TEST_TRANSPORTS: the group's threads must use them, not in-process rings.
TEST(LocalGroupTransports, AsTheSettingsNameThem) {
  const char* expected = std::getenv("XSITE_TEST_TRANSPORTS");
  LocalGroup group(Shape{{1}, {1}});
  runRanks(group, [&](Communicator& comm) {
    EXPECT_EQ(comm.describeTransports(),
              expected ? expected : "domain loopback, site loopback, between sites loopback");
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
