// tests/plugin: the tuner tables of libnccl-net-xsite.so driven as NCCL 2.28.9 drives them
// (NCCL_ABI.md §4.3): a contiguous float[7][3] passed as float**, nChannels initialised to 0; and
// the decision table xsite-tuner-dump prints for a 2x2x2 topology.
#include <unistd.h>

#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "plugin/abi/tuner.h"
#include "tests/plugin/plugin_library.h"

namespace {

using xsite_plugin_test::pluginTable;

constexpr int kA = NCCL_NUM_ALGORITHMS, kP = NCCL_NUM_PROTOCOLS;
constexpr int kMaxChannels = 32;  // plugin/tuner/tuner.h

void quietLog(ncclDebugLogLevel, unsigned long, const char*, int, const char*, ...) {}

struct Tables {
  ncclTuner_v5_t* t5 = nullptr;
  ncclTuner_v4_t* t4 = nullptr;
  ncclTuner_v3_t* t3 = nullptr;
};

const Tables& lib() {
  static Tables t = [] {
    Tables x;
    x.t5 = pluginTable<ncclTuner_v5_t>("ncclTunerPlugin_v5");
    x.t4 = pluginTable<ncclTuner_v4_t>("ncclTunerPlugin_v4");
    x.t3 = pluginTable<ncclTuner_v3_t>("ncclTunerPlugin_v3");
    return x;
  }();
  return t;
}

using Table = std::array<float, kA * kP>;

// What NCCL offers a host-memory net for all-reduce: TREE and RING in every protocol, CollNet
// (SIMPLE only) when `collnet`; everything else -1.
Table offered(bool collnet) {
  Table t;
  t.fill(NCCL_ALGO_PROTO_IGNORE);
  for (int p = 0; p < kP; ++p) {
    t[NCCL_ALGO_TREE * kP + p] = 100.0f + p;
    t[NCCL_ALGO_RING * kP + p] = 200.0f + p;
  }
  if (collnet) {
    t[NCCL_ALGO_COLLNET_DIRECT * kP + NCCL_PROTO_SIMPLE] = 300.0f;
    t[NCCL_ALGO_COLLNET_CHAIN * kP + NCCL_PROTO_SIMPLE] = 301.0f;
  }
  return t;
}

struct Result {
  int chosen = -1;  // flat index set to 0.0, or -1
  int channels = 0;
};

// One getCollInfo as NCCL makes it (nChannels starts at 0), checking the table rules: -1 entries
// untouched, at most one write and that a 0.0.
Result call(void* ctx, int coll, size_t bytes, Table table, int version = 5) {
  const Table before = table;
  int channels = 0;
  float** cast = reinterpret_cast<float**>(table.data());
  ncclResult_t rc = version == 5 ? lib().t5->getCollInfo(ctx, static_cast<ncclFunc_t>(coll), bytes,
                                                         1, cast, kA, kP, 0, &channels)
                    : version == 4 ? lib().t4->getCollInfo(ctx, static_cast<ncclFunc_t>(coll),
                                                           bytes, 1, cast, kA, kP, 0, &channels)
                                   : lib().t3->getCollInfo(ctx, static_cast<ncclFunc_t>(coll),
                                                           bytes, 1, cast, kA, kP, &channels);
  EXPECT_EQ(rc, ncclSuccess) << "a collective never fails here";
  Result r;
  r.channels = channels;
  for (int i = 0; i < kA * kP; ++i) {
    if (before[i] < 0) {
      EXPECT_EQ(table[i], before[i]) << "entry " << i << " was -1: untouched";
    }
    if (table[i] != before[i]) {
      EXPECT_EQ(table[i], 0.0f) << "the only write is a 0.0 preference";
      EXPECT_EQ(r.chosen, -1) << "one entry at most";
      r.chosen = i;
    }
  }
  return r;
}

void* initV5(size_t nRanks, size_t nNodes) {
  void* ctx = reinterpret_cast<void*>(1);
  EXPECT_EQ(lib().t5->init(&ctx, 42, nRanks, nNodes, quietLog, nullptr, nullptr), ncclSuccess);
  return ctx;
}

// The environment (main): 8 ranks, 2 sites x 2 domains x 2 ranks; WAN 20 ms one way,
// 10 Gbit/s: a bandwidth-delay product of 50 MB, 12 channels of 4 MiB.

TEST(TunerChannels, WrittenForModelledAllReduceAndWithinBounds) {
  void* ctx = initV5(8, 4);
  ASSERT_NE(ctx, nullptr);
  for (bool collnet : {false, true}) {
    int prev = 1;
    for (size_t b = 8; b <= (size_t{1} << 30); b *= 2) {
      Result r = call(ctx, ncclFuncAllReduce, b, offered(collnet));
      ASSERT_GE(r.chosen, 0) << b;
      EXPECT_GE(r.channels, 1) << b;
      EXPECT_LE(r.channels, kMaxChannels) << b;
      EXPECT_GE(r.channels, prev) << "more bytes never fewer channels: " << b;
      prev = r.channels;
      if (b <= (size_t{4} << 20)) {
        EXPECT_EQ(r.channels, 1) << "a message within one window: " << b;
      }
    }
    EXPECT_EQ(prev, 12) << "ceil(50 MB BDP / 4 MiB)";
  }
  EXPECT_EQ(call(ctx, ncclFuncAllReduce, size_t{8} << 20, offered(false)).channels, 2);
  EXPECT_EQ(lib().t5->finalize(ctx), ncclSuccess);
}

TEST(TunerChannels, LeftAtZeroWhenNotModelled) {
  void* ctx = initV5(8, 4);
  ASSERT_NE(ctx, nullptr);
  // Other collectives: NCCL's table and channel count untouched.
  for (int coll : {ncclFuncBroadcast, ncclFuncReduce, ncclFuncAllGather, ncclFuncReduceScatter}) {
    Result r = call(ctx, coll, size_t{256} << 20, offered(true));
    EXPECT_EQ(r.chosen, -1) << coll;
    EXPECT_EQ(r.channels, 0) << coll;
  }
  // Nothing the model covers is offered (only NVLS): untouched, success.
  Table t;
  t.fill(NCCL_ALGO_PROTO_IGNORE);
  t[NCCL_ALGO_NVLS * kP + NCCL_PROTO_SIMPLE] = 5.0f;
  Result r = call(ctx, ncclFuncAllReduce, size_t{256} << 20, t);
  EXPECT_EQ(r.chosen, -1);
  EXPECT_EQ(r.channels, 0);
  // Everything -1: untouched, success.
  t.fill(NCCL_ALGO_PROTO_IGNORE);
  r = call(ctx, ncclFuncAllReduce, 1024, t);
  EXPECT_EQ(r.chosen, -1);
  EXPECT_EQ(r.channels, 0);
  EXPECT_EQ(lib().t5->finalize(ctx), ncclSuccess);
  // A communicator the tuner cannot place (the file lists 8 ranks): declined, nothing written.
  void* declined = initV5(16, 8);
  EXPECT_EQ(declined, nullptr);
  r = call(declined, ncclFuncAllReduce, size_t{256} << 20, offered(true));
  EXPECT_EQ(r.chosen, -1);
  EXPECT_EQ(r.channels, 0);
  EXPECT_EQ(lib().t5->finalize(declined), ncclSuccess);
}

TEST(TunerChannels, V4AndV3WriteThemToo) {
  void* ctx = nullptr;
  ASSERT_EQ(lib().t4->init(8, 4, quietLog, &ctx), ncclSuccess);
  ASSERT_NE(ctx, nullptr);
  for (int version : {4, 3}) {
    Result small = call(ctx, ncclFuncAllReduce, 8, offered(false), version);
    EXPECT_EQ(small.chosen, NCCL_ALGO_TREE * kP + NCCL_PROTO_LL) << version;
    EXPECT_EQ(small.channels, 1);
    Result large = call(ctx, ncclFuncAllReduce, size_t{1} << 30, offered(false), version);
    EXPECT_EQ(large.chosen % kP, NCCL_PROTO_SIMPLE);
    EXPECT_EQ(large.channels, 12);
  }
  EXPECT_EQ(lib().t4->destroy(ctx), ncclSuccess);
}

TEST(TunerChannels, RandomOfferedTablesNeverFailNorTouchIgnoredEntries) {
  void* ctx = initV5(8, 4);
  ASSERT_NE(ctx, nullptr);
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    Table t;
    for (float& e : t) e = rng() % 3 == 0 ? NCCL_ALGO_PROTO_IGNORE : 1 + float(rng() % 1000) / 7;
    const int coll = static_cast<int>(rng() % NCCL_NUM_FUNCTIONS);
    const size_t bytes = size_t{1} << (rng() % 31);
    Result r = call(ctx, coll, bytes, t);
    if (r.chosen >= 0) {
      EXPECT_EQ(coll, ncclFuncAllReduce);
      EXPECT_GE(r.channels, 1);
      EXPECT_LE(r.channels, kMaxChannels);
    } else {
      EXPECT_EQ(r.channels, 0);
    }
  }
  EXPECT_EQ(lib().t5->finalize(ctx), ncclSuccess);
}

// ---- xsite-tuner-dump ---------------------------------------------------------------------

std::string run(const std::string& args) {
  std::string cmd = std::string(XSITE_TUNER_DUMP) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

// The row for `coll` at `size` ("8B", "1G"), its columns split on spaces.
std::vector<std::string> row(const std::string& out, const std::string& coll,
                             const std::string& size) {
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    std::vector<std::string> cols;
    std::string line = out.substr(pos, end - pos), w;
    for (char c : line + " ") {
      if (c == ' ') {
        if (!w.empty()) cols.push_back(w);
        w.clear();
      } else {
        w += c;
      }
    }
    if (cols.size() >= 6 && cols[0] == coll && cols[1] == size) return cols;
    pos = end + 1;
  }
  return {};
}

constexpr const char* k2x2x2 =
    "--sites 2 --domains 2 --ranks-per-domain 2 --wan-latency-us 20000 --wan-rate-mbit 10000";

TEST(TunerDump, TwoByTwoByTwoWithCollNet) {
  const std::string out = run(std::string(k2x2x2) + " --collnet");
  ASSERT_NE(out.find("8 ranks in 2 sites"), std::string::npos) << out;
  ASSERT_NE(out.find("CollNet offered"), std::string::npos) << out;
  // Small: the latency-friendly tree with LL, one channel.
  EXPECT_EQ(row(out, "AllReduce", "8B"),
            (std::vector<std::string>{"AllReduce", "8B", "TREE", "LL", "1", "20111.2"}))
      << out;
  EXPECT_EQ(row(out, "AllReduce", "2K")[2], "TREE");
  EXPECT_EQ(row(out, "AllReduce", "2K")[3], "LL");
  // Large: CollNet, enough channels for the 50 MB bandwidth-delay product.
  EXPECT_EQ(
      row(out, "AllReduce", "32M"),
      (std::vector<std::string>{"AllReduce", "32M", "COLLNET_CHAIN", "SIMPLE", "8", "66967.5"}))
      << out;
  EXPECT_EQ(
      row(out, "AllReduce", "1G"),
      (std::vector<std::string>{"AllReduce", "1G", "COLLNET_CHAIN", "SIMPLE", "12", "899117.5"}))
      << out;
  // Not modelled: one "nccl" line each.
  auto ag = row(out, "AllGather", "any");
  ASSERT_FALSE(ag.empty()) << out;
  EXPECT_EQ(ag[2], "nccl");
  EXPECT_EQ(ag[4], "nccl");
}

TEST(TunerDump, TwoByTwoByTwoWithoutCollNetTakesTheModelsBestOfRingAndTree) {
  const std::string out = run(k2x2x2);
  EXPECT_EQ(row(out, "AllReduce", "8B")[2], "TREE") << out;
  EXPECT_EQ(row(out, "AllReduce", "8B")[3], "LL");
  EXPECT_EQ(row(out, "AllReduce", "2M"),
            (std::vector<std::string>{"AllReduce", "2M", "TREE", "SIMPLE", "1", "26025.6"}))
      << out;
  // At 1 GiB the flat ring's 14 steps cost less than the tree's unpipelined reduce to leaders.
  EXPECT_EQ(row(out, "AllReduce", "1G"),
            (std::vector<std::string>{"AllReduce", "1G", "RING", "SIMPLE", "12", "1783552.2"}))
      << out;
}

TEST(TunerDump, OneSiteAndMismatchedRanksAreDeclined) {
  EXPECT_NE(run("--sites 1 --domains 2 --ranks-per-domain 2").find("the tuner declines"),
            std::string::npos);
  EXPECT_NE(run(std::string(k2x2x2) + " --nranks 4").find("has 8 ranks but --nranks says 4"),
            std::string::npos);
  EXPECT_NE(run("--sites 2").find("give either --topo FILE"), std::string::npos);
}

}  // namespace

int main(int argc, char** argv) {
  char path[] = "/tmp/xsite_tuner_topo_XXXXXX";
  int fd = mkstemp(path);
  std::string text;
  for (int r = 0; r < 8; ++r)
    text += "rank=" + std::to_string(r) + " site=" + std::to_string(r / 4) + " domain=d" +
            std::to_string(r / 2) + "\n";
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return 1;
  close(fd);
  setenv("XSITE_TOPO_FILE", path, 1);
  setenv("XSITE_WAN_LATENCY_US", "20000", 1);
  setenv("XSITE_WAN_RATE_MBIT", "10000", 1);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  unlink(path);
  return rc;
}
