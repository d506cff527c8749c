// tests/plugin (CollNet): libnccl-net-xsite.so's CollNet tables driven as NCCL 2.28.9's proxy
// drives them (NCCL_ABI.md §3): dlopen, the tables found by name, init, listen on every rank,
// the handles exchanged (here: files), connect with everyone's handle, operations posted and
// test() polled. The CollNet ranks are processes (this program re-executed, each with its own
// XSITE_SITE: params are read once per process), 2 sites. The all-reduce results must equal
// the library's hierarchical all-reduce (xsite::Communicator, threads, same codec) bit for bit
// and be identical on every rank.
#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "tests/plugin/plugin_library.h"
#include "xsite/communicator.h"

namespace {

using xsite_plugin_test::pluginLibrary;
using xsite_plugin_test::pluginTable;
using xsite_plugin_test::readFile;
using xsite_plugin_test::writeFileAtomic;

const char* gSelf = "/proc/self/exe";

struct Lib {
  void* handle = nullptr;
  ncclCollNet_v11_t* v11 = nullptr;
  ncclCollNet_v10_t* v10 = nullptr;
};

Lib& lib() {
  static Lib l = [] {
    Lib x;
    x.handle = pluginLibrary();
    x.v11 = pluginTable<ncclCollNet_v11_t>("ncclCollNetPlugin_v11");
    x.v10 = pluginTable<ncclCollNet_v10_t>("ncclCollNetPlugin_v10");
    return x;
  }();
  return l;
}

void quietLog(ncclDebugLogLevel, unsigned long, const char*, int, const char*, ...) {}

// The all-reduce sequence every rank runs (counts; each twice so error feedback carries over).
const std::vector<size_t> kCounts = {(size_t{1} << 20) + 37, 5, (size_t{1} << 20) + 37, 5, 3000};

float input(int rank, size_t call, size_t i) {
  const double x = std::sin(0.001 * static_cast<double>(i) + 0.7 * rank + 0.3 * call);
  return static_cast<float>(x * (1.0 + rank) + 1e-3 * static_cast<double>(i % 17));
}

// Polls test() as the proxy does; the result code of the first non-success.
ncclResult_t waitDone(ncclCollNet_v11_t& cn, void* req, int* size) {
  for (long i = 0; i < 200000000L; ++i) {
    int done = 0;
    ncclResult_t r = cn.test(req, &done, size);
    if (r != ncclSuccess) return r;
    if (done) return ncclSuccess;
    if (i > 1000) usleep(20);
  }
  return ncclInternalError;
}

// ---- one CollNet rank (a process) ------------------------------------------------------------

// `mismatch`: the ranks were started with different codecs, so connect must refuse.
// kMismatch: rank 1 runs another codec (connect must refuse); kCloseStuck: rank 0 never joins.
enum class Mode { kNormal, kMismatch, kCloseStuck };

int rankMain(int rank, int nranks, const std::string& dir, bool useV10, Mode mode) {
  ncclCollNet_v11_t& cn = *lib().v11;
  void* ctx = nullptr;
  if (useV10) {
    if (lib().v10->init(quietLog) != ncclSuccess) return 10;
  } else if (cn.init(&ctx, 0x77, quietLog) != ncclSuccess) {
    return 10;
  }
  int ndev = 0;
  if (cn.devices(&ndev) != ncclSuccess || ndev < 1) return 11;
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  void* listenComm = nullptr;
  const ncclResult_t lr =
      useV10 ? lib().v10->listen(0, handle, &listenComm) : cn.listen(ctx, 0, handle, &listenComm);
  if (lr != ncclSuccess || listenComm == nullptr) return 12;
  writeFileAtomic(dir + "/h" + std::to_string(rank), handle, sizeof(handle));
  // NCCL's bootstrap all-gather of the handles.
  std::vector<std::string> hs(static_cast<size_t>(nranks));
  for (int r = 0; r < nranks; ++r) {
    for (int i = 0; i < 200000 && hs[r].size() != sizeof(handle); ++i) {
      hs[r] = readFile(dir + "/h" + std::to_string(r));
      if (hs[r].size() != sizeof(handle)) usleep(100);
    }
    if (hs[r].size() != sizeof(handle)) return 13;
  }
  std::vector<void*> ptrs;
  for (auto& h : hs) ptrs.push_back(h.data());
  void* comm = nullptr;
  const ncclResult_t cr = cn.connect(ptrs.data(), nranks, rank, listenComm, &comm);
  if (mode == Mode::kMismatch) return cr == ncclInvalidUsage && comm == nullptr ? 0 : 70;
  if (cr != ncclSuccess || comm == nullptr) return 14;
  if (cn.closeListen(listenComm) != ncclSuccess) return 15;
  if (mode == Mode::kCloseStuck) {
    // Rank 0 never joins the all-reduce the others post; their closeColl must not wait it out.
    if (rank == 0) {
      usleep(3000000);  // then closes: its peers are gone, nothing of its own is queued
      if (cn.closeColl(comm) != ncclSuccess) return 84;
      return cn.finalize(ctx) == ncclSuccess ? 0 : 85;
    } else {
      std::vector<float> in(1 << 16, 1.0f), res(in.size());
      void* req = nullptr;
      if (cn.iallreduce(comm, in.data(), res.data(), in.size(), ncclFloat32, ncclSum, nullptr,
                        nullptr, &req) != ncclSuccess || req == nullptr)
        return 80;
      usleep(200000);
      const auto t0 = std::chrono::steady_clock::now();
      if (cn.closeColl(comm) != ncclSuccess) return 81;
      if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(2)) return 82;
      return cn.finalize(ctx) == ncclSuccess ? 0 : 83;
    }
  }

  // All-reduce, float32 sum; two calls in flight at a time, polled in reverse order.
  std::string out;
  for (size_t c = 0; c < kCounts.size(); c += 2) {
    const size_t calls = std::min<size_t>(2, kCounts.size() - c);
    std::vector<std::vector<float>> in(calls), res(calls);
    void* reqs[2] = {nullptr, nullptr};
    for (size_t k = 0; k < calls; ++k) {
      const size_t n = kCounts[c + k];
      in[k].resize(n);
      res[k].assign(n, -1.0f);
      for (size_t i = 0; i < n; ++i) in[k][i] = input(rank, c + k, i);
      void* mh = nullptr;
      if (cn.regMr(comm, in[k].data(), n * 4, NCCL_PTR_HOST, &mh) != ncclSuccess) return 20;
      if (cn.deregMr(comm, mh) != ncclSuccess) return 21;
      for (int i = 0; i < 1000 && reqs[k] == nullptr; ++i)
        if (cn.iallreduce(comm, in[k].data(), res[k].data(), n, ncclFloat32, ncclSum, nullptr,
                          nullptr, &reqs[k]) != ncclSuccess)
          return 22;
      if (reqs[k] == nullptr) return 23;
    }
    for (size_t k = calls; k-- > 0;) {
      int size = -1;
      if (waitDone(cn, reqs[k], &size) != ncclSuccess) return 24;
      if (static_cast<size_t>(size) != kCounts[c + k] * 4) return 25;
    }
    for (size_t k = 0; k < calls; ++k)
      out.append(reinterpret_cast<const char*>(res[k].data()), res[k].size() * 4);
  }
  writeFileAtomic(dir + "/out" + std::to_string(rank), out.data(), out.size());

  // Errors: a storage-only type, an unknown type and an unknown op are the user's.
  void* req = nullptr;
  float a[4] = {0}, b[4] = {0};
  if (cn.iallreduce(comm, a, b, 4, ncclFloat8e4m3, ncclSum, nullptr, nullptr, &req) !=
          ncclInvalidUsage ||
      req != nullptr)
    return 30;
  if (cn.iallreduce(comm, a, b, 4, static_cast<ncclDataType_t>(42), ncclSum, nullptr, nullptr,
                    &req) != ncclInvalidUsage)
    return 31;
  if (cn.iallreduce(comm, a, b, 4, ncclFloat32, static_cast<ncclRedOp_t>(9), nullptr, nullptr,
                    &req) != ncclInvalidUsage)
    return 32;
  void* mh = nullptr;
  if (cn.regMr(comm, a, sizeof(a), NCCL_PTR_CUDA, &mh) != ncclInvalidUsage) return 33;

  // All-gather: the whole result, then a window in two parts.
  const size_t bpr = 1000;
  std::vector<char> mine(bpr), all(bpr * nranks, 0);
  for (size_t i = 0; i < bpr; ++i) mine[i] = static_cast<char>(rank * 31 + i);
  ncclNetSGE_v11_t whole{nullptr, all.data(), all.size()};
  if (cn.iallgather(comm, mine.data(), 1, &whole, bpr, 0, all.size(), nullptr, &req) !=
          ncclSuccess ||
      req == nullptr || waitDone(cn, req, nullptr) != ncclSuccess)
    return 40;
  for (int r = 0; r < nranks; ++r)
    for (size_t i = 0; i < bpr; ++i)
      if (all[r * bpr + i] != static_cast<char>(r * 31 + i)) return 41;
  std::vector<char> w1(300), w2(400);
  ncclNetSGE_v11_t win[2] = {{nullptr, w1.data(), w1.size()}, {nullptr, w2.data(), w2.size()}};
  if (cn.iallgather(comm, mine.data(), 2, win, bpr, 850, 700, nullptr, &req) != ncclSuccess ||
      req == nullptr || waitDone(cn, req, nullptr) != ncclSuccess)
    return 42;
  for (size_t i = 0; i < 700; ++i)
    if ((i < 300 ? w1[i] : w2[i - 300]) != all[850 + i]) return 43;

  // Reduce-scatter (int32 sum) of the whole input; a partial window is refused.
  const size_t per = 256;
  std::vector<int32_t> rsIn(per * nranks), rsOut(per, -1);
  for (size_t i = 0; i < rsIn.size(); ++i) rsIn[i] = static_cast<int32_t>(i) * (rank + 1);
  ncclNetSGE_v11_t rsPart{nullptr, rsIn.data(), rsIn.size() * 4};
  if (cn.ireducescatter(comm, 1, &rsPart, rsOut.data(), per * 4, 0, per * 4 * nranks, ncclInt32,
                        ncclSum, nullptr, &req) != ncclSuccess ||
      req == nullptr || waitDone(cn, req, nullptr) != ncclSuccess)
    return 50;
  const int32_t ranksSum = nranks * (nranks + 1) / 2;
  for (size_t i = 0; i < per; ++i)
    if (rsOut[i] != static_cast<int32_t>(rank * per + i) * ranksSum) return 51;
  if (cn.ireducescatter(comm, 1, &rsPart, rsOut.data(), per * 4, 4, per * 4, ncclInt32, ncclSum,
                        nullptr, &req) != ncclInvalidUsage)
    return 52;
  void* flushReq = reinterpret_cast<void*>(1);
  if (cn.iflush(comm, a, sizeof(a), nullptr, &flushReq) != ncclSuccess || flushReq != nullptr)
    return 53;

  if (cn.closeColl(comm) != ncclSuccess) return 60;
  if (!useV10 && cn.finalize(ctx) != ncclSuccess) return 61;
  return 0;
}

// ---- the harness -------------------------------------------------------------------------------

// The library's answer: the same calls on a LocalGroup of threads with the same shape (each
// CollNet rank its own domain; sites of nranks/2).
std::string reference(int nranks, xsite::Codec codec, int rank) {
  const int perSite = nranks / 2;
  xsite::Config cfg;
  cfg.codec = codec;
  xsite::LocalGroup group({std::vector<int>(perSite, 1), std::vector<int>(perSite, 1)}, cfg);
  std::vector<std::string> outs(static_cast<size_t>(nranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < nranks; ++r)
    threads.emplace_back([&, r] {
      auto comm = xsite::Communicator::fromLocalGroup(group, r);
      for (size_t c = 0; c < kCounts.size(); ++c) {
        const size_t n = kCounts[c];
        std::vector<float> in(n), res(n);
        for (size_t i = 0; i < n; ++i) in[i] = input(r, c, i);
        comm.allReduce(in.data(), res.data(), n, xsite::DataType::kFloat32, xsite::ReduceOp::kSum,
                       xsite::AllReduceOptions(xsite::Algorithm::kHierarchical));
        outs[r].append(reinterpret_cast<const char*>(res.data()), n * 4);
      }
    });
  for (auto& t : threads) t.join();
  return outs[static_cast<size_t>(rank)];
}

// `rank1Codec`: rank 1's codec when it differs from the others' (connect must then refuse).
void runGroup(int nranks, const char* codec, bool useV10, const char* rank1Codec = nullptr,
              bool closeStuck = false) {
  char tmpl[] = "/tmp/xsite_collnet_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::vector<pid_t> pids;
  for (int r = 0; r < nranks; ++r) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setenv("XSITE_SITE", std::to_string(r / (nranks / 2)).c_str(), 1);
      setenv("XSITE_DOMAIN", ("node" + std::to_string(r)).c_str(), 1);  // one CollNet rank a node
      setenv("XSITE_CODEC", r == 1 && rank1Codec ? rank1Codec : codec, 1);
      std::string rs = std::to_string(r), ns = std::to_string(nranks);
      execl(gSelf, gSelf, "--collnet-rank", rs.c_str(), ns.c_str(), dir.c_str(),
            useV10 ? "v10" : "v11", rank1Codec ? "mismatch" : closeStuck ? "close-stuck" : "same",
            static_cast<char*>(nullptr));
      _exit(99);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < nranks; ++r) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[r], &status, 0), pids[r]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "CollNet rank " << r << " exited with " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
        << " (see rankMain for the step)";
  }
  if (rank1Codec != nullptr || closeStuck) return;  // every rank checked its refusal or close
  const std::string first = readFile(dir + "/out0");
  size_t expected = 0;
  for (size_t n : kCounts) expected += n * 4;
  ASSERT_EQ(first.size(), expected);
  for (int r = 1; r < nranks; ++r)
    EXPECT_TRUE(readFile(dir + "/out" + std::to_string(r)) == first)
        << "rank " << r << " got other bytes than rank 0";
  const std::string ref = reference(nranks, *xsite::parseCodec(codec), 0);
  EXPECT_TRUE(ref == first) << "CollNet (" << codec << ") differs from the library's hierarchical "
                            << "all-reduce";
  for (int r = 0; r < nranks; ++r) {
    unlink((dir + "/h" + std::to_string(r)).c_str());
    unlink((dir + "/out" + std::to_string(r)).c_str());
  }
  rmdir(dir.c_str());
}

TEST(PluginCollNet, TablesByName) {
  ASSERT_NE(lib().v11, nullptr);
  ASSERT_NE(lib().v10, nullptr);
  EXPECT_NE(dlsym(lib().handle, "ncclCollNetPlugin_v9"), nullptr);
  EXPECT_NE(dlsym(lib().handle, "ncclCollNetPlugin_v8"), nullptr);
  EXPECT_STREQ(lib().v11->name, "xsite");
  EXPECT_NE(lib().v11->iallgather, nullptr);
  EXPECT_NE(lib().v11->ireducescatter, nullptr);
}

TEST(PluginCollNet, ReduceSupportIsTruthful) {
  ncclCollNet_v11_t& cn = *lib().v11;
  for (int t = 0; t < ncclNumTypes; ++t)
    for (int o = ncclSum; o <= ncclMin; ++o) {
      int supported = -1;
      ASSERT_EQ(
          cn.reduceSupport(static_cast<ncclDataType_t>(t), static_cast<ncclRedOp_t>(o), &supported),
          ncclSuccess);
      const bool fp8 = t == ncclFloat8e4m3 || t == ncclFloat8e5m2;
      EXPECT_EQ(supported, fp8 ? 0 : 1) << "type " << t << " op " << o;
    }
  int supported = -1;
  ASSERT_EQ(cn.reduceSupport(static_cast<ncclDataType_t>(99), ncclSum, &supported), ncclSuccess);
  EXPECT_EQ(supported, 0);
}

TEST(PluginCollNet, PropertiesAndFinalizeOfNull) {
  ncclCollNet_v11_t& cn = *lib().v11;
  EXPECT_EQ(cn.finalize(nullptr), ncclSuccess);  // NCCL 2.28.9 after a failed init
  void* ctx = nullptr;
  ASSERT_EQ(cn.init(&ctx, 1, quietLog), ncclSuccess);
  int ndev = 0;
  ASSERT_EQ(cn.devices(&ndev), ncclSuccess);
  ASSERT_GE(ndev, 1);
  ncclNetProperties_v11_t p;
  ASSERT_EQ(cn.getProperties(0, &p), ncclSuccess);
  EXPECT_STREQ(p.name, "lo");  // XSITE_LISTEN_ADDR=127.0.0.1, as the net reports
  EXPECT_EQ(p.ptrSupport, NCCL_PTR_HOST);
  EXPECT_GT(p.maxCollBytes, 0u);
  EXPECT_EQ(cn.getProperties(ndev, &p), ncclInternalError);
  EXPECT_EQ(cn.finalize(ctx), ncclSuccess);
}

TEST(PluginCollNet, FourRanksTwoSitesNoCodec) {
  runGroup(4, "none", false);
}
TEST(PluginCollNet, FourRanksTwoSitesInt8) {
  runGroup(4, "int8", false);
}
TEST(PluginCollNet, EightRanksTwoSitesInt8ThroughV10) {
  runGroup(8, "int8", true);
}
TEST(PluginCollNet, ConnectRefusesRanksWithDifferentCodecs) {
  runGroup(4, "none", false, "int8");
}
// closeColl with an operation that can never finish returns at once (XSITE_TIMEOUT is 300 s).
TEST(PluginCollNet, CloseAbortsAnOperationThatCannotFinish) {
  runGroup(4, "none", false, nullptr, true);
}

}  // namespace

int main(int argc, char** argv) {
  setenv("XSITE_LISTEN_ADDR", "127.0.0.1", 1);
  unsetenv("XSITE_DEBUG");
  unsetenv("XSITE_TOPO_FILE");
  if (argc == 7 && std::strcmp(argv[1], "--collnet-rank") == 0)
    return rankMain(std::atoi(argv[2]), std::atoi(argv[3]), argv[4],
                    std::strcmp(argv[5], "v10") == 0,
                    std::strcmp(argv[6], "mismatch") == 0      ? Mode::kMismatch
                    : std::strcmp(argv[6], "close-stuck") == 0 ? Mode::kCloseStuck
                                                                : Mode::kNormal);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
