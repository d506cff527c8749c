// tests/plugin: libnccl-net-xsite.so driven as NCCL 2.28.9 drives a net and a tuner plugin
// (NCCL_ABI.md §1.2, §2.5, §4.3): dlopen, the tables found by name, init with a logger,
// listen/connect/accept polled until non-null, isend/irecv/test, every close order; a second
// rank as a separate process (this program re-executed) with its own site.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "plugin/abi/net_v10.h"
#include "plugin/abi/net_v11.h"
#include "plugin/abi/tuner.h"
#include "tests/plugin/net_harness.h"

namespace {

using namespace xsite_plugin_test;

// ---- init, devices, properties ------------------------------------------------------------

TEST(PluginNet, TablesFoundByNameAsNcclDoes) {
  ASSERT_NE(lib().v11, nullptr);
  ASSERT_NE(lib().v10, nullptr);
  EXPECT_NE(dlsym(lib().handle, "ncclNetPlugin_v9"), nullptr);
  EXPECT_NE(dlsym(lib().handle, "ncclNetPlugin_v8"), nullptr);
  EXPECT_NE(dlsym(lib().handle, "ncclCollNetPlugin_v11"), nullptr) << "CollNet from the same library";
  EXPECT_STREQ(net().name, "xsite");
  EXPECT_NE(net().finalize, nullptr);  // NCCL calls it unconditionally
  EXPECT_EQ(net().regMrDmaBuf, nullptr);
}

TEST(PluginNet, InitDevicesProperties) {
  void* ctx = initCtx();
  int ndev = 0;
  ASSERT_EQ(net().devices(&ndev), ncclSuccess);
  ASSERT_GE(ndev, 1);
  ncclNetProperties_v11_t p;
  std::memset(&p, 0xff, sizeof(p));
  ASSERT_EQ(net().getProperties(0, &p), ncclSuccess);
  ASSERT_NE(p.name, nullptr);
  EXPECT_STREQ(p.name, "lo");  // XSITE_LISTEN_ADDR=127.0.0.1
  EXPECT_EQ(p.ptrSupport, NCCL_PTR_HOST);
  EXPECT_GT(p.speed, 0);
  EXPECT_EQ(p.maxRecvs, 8);
  EXPECT_GT(p.maxComms, 0);
  EXPECT_EQ(p.netDeviceType, NCCL_NET_DEVICE_HOST);
  EXPECT_EQ(p.netDeviceVersion, NCCL_NET_DEVICE_INVALID_VERSION);
  EXPECT_EQ(p.vProps.ndevs, 1);
  EXPECT_EQ(p.vProps.devs[0], 0);
  EXPECT_GT(p.maxP2pBytes, 0u);
  EXPECT_LE(p.maxP2pBytes, NCCL_MAX_NET_SIZE_BYTES);
  EXPECT_LE(p.maxP2pBytes, static_cast<size_t>(INT32_MAX));  // test() reports int sizes
  EXPECT_GT(p.maxCollBytes, 0u);
  EXPECT_LE(p.maxCollBytes, NCCL_MAX_NET_SIZE_BYTES);
  EXPECT_EQ(p.maxMultiRequestSize, 1);
  // A bad device index is an error, logged once through NCCL's logger, prefixed XSITE.
  EXPECT_EQ(net().getProperties(ndev + 5, &p), ncclInternalError);
  EXPECT_TRUE(logHas("XSITE NET net getProperties failed"));
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
  EXPECT_EQ(net().finalize(nullptr), ncclSuccess);  // 2.28.9 finalizes after a failed init
}

// ---- data path ----------------------------------------------------------------------------

TEST(PluginNet, SizesReportedAtCompletion) {
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  ncclNetProperties_v11_t props;
  ASSERT_EQ(net().getProperties(0, &props), ncclSuccess);
  void* mh = nullptr;
  char reg[64];
  EXPECT_EQ(net().regMr(p.recv, reg, sizeof(reg), NCCL_PTR_HOST, &mh), ncclSuccess);
  EXPECT_EQ(net().deregMr(p.recv, mh), ncclSuccess);
  EXPECT_EQ(net().regMr(p.recv, reg, sizeof(reg), NCCL_PTR_CUDA, &mh), ncclInvalidUsage);
  for (size_t n : {size_t{0}, size_t{1}, size_t{4097}, size_t{1} << 20, size_t{16} << 20}) {
    auto src = pattern(n, static_cast<int>(n));
    std::vector<char> dst(n + 100, 0);
    void* d[1] = {dst.data()};
    size_t posted[1] = {dst.size()};  // NCCL posts the most it accepts
    int tags[1] = {3};
    void* rr = postRecv(p.recv, 1, d, posted, tags);
    void* sr = postSend(p.send, src.data(), n, 3);
    int rsize = -1, ssize = -1;
    ASSERT_EQ(waitBoth(sr, &ssize, rr, &rsize), ncclSuccess);
    EXPECT_EQ(static_cast<size_t>(rsize), n);
    EXPECT_EQ(static_cast<size_t>(ssize), n);
    EXPECT_TRUE(sameBytes(src.data(), dst.data(), n));
  }
  // Beyond maxP2pBytes: refused before a byte moves.
  void* req = nullptr;
  char one = 0;
  EXPECT_NE(net().isend(p.send, &one, props.maxP2pBytes + 1, 0, nullptr, nullptr, &req),
            ncclSuccess);
  EXPECT_EQ(req, nullptr);
  // iflush on host memory: nothing to wait for.
  void* fr = reinterpret_cast<void*>(1);
  void* d[1] = {reg};
  int fs[1] = {1};
  EXPECT_EQ(net().iflush(p.recv, 1, d, fs, nullptr, &fr), ncclSuccess);
  EXPECT_EQ(fr, nullptr);
  closePair(p);
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

TEST(PluginNet, LargerThanPostedIsAnErrorNamingThePeer) {
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  auto src = pattern(2000, 1);
  std::vector<char> dst(1000);
  void* d[1] = {dst.data()};
  size_t posted[1] = {dst.size()};
  int tags[1] = {0};
  void* rr = postRecv(p.recv, 1, d, posted, tags);
  void* sr = postSend(p.send, src.data(), src.size(), 0);
  (void)sr;
  EXPECT_EQ(waitDone(rr, nullptr), ncclInvalidUsage);
  EXPECT_TRUE(logHas("where this rank posted a receive of at most 1000 bytes"));
  EXPECT_TRUE(logHas("net recv from 127.0.0.1:"));
  closePair(p);  // closing with a send in flight is fine
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

TEST(PluginNet, GroupedReceiveMatchesTags) {
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  std::vector<char> b0(4096), b1(4096), b2(4096);
  void* d[3] = {b0.data(), b1.data(), b2.data()};
  size_t posted[3] = {4096, 4096, 4096};
  int tags[3] = {7, 8, 9};
  void* rr = postRecv(p.recv, 3, d, posted, tags);
  ASSERT_NE(rr, nullptr);
  auto m9 = pattern(100, 9), m7 = pattern(700, 7), m8 = pattern(0, 8);
  void* s9 = postSend(p.send, m9.data(), m9.size(), 9);
  void* s7 = postSend(p.send, m7.data(), m7.size(), 7);
  void* s8 = postSend(p.send, m8.data(), m8.size(), 8);
  int sizes[3] = {-1, -1, -1};
  ASSERT_EQ(waitDone(rr, sizes), ncclSuccess);
  EXPECT_EQ(sizes[0], 700);
  EXPECT_EQ(sizes[1], 0);
  EXPECT_EQ(sizes[2], 100);
  EXPECT_EQ(std::memcmp(b0.data(), m7.data(), 700), 0);
  EXPECT_EQ(std::memcmp(b2.data(), m9.data(), 100), 0);
  for (void* s : {s9, s7, s8}) EXPECT_EQ(waitDone(s, nullptr), ncclSuccess);
  closePair(p);
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

TEST(PluginNet, CompletionPolledOutOfOrder) {
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  constexpr int kOps = 8;  // NCCL_STEPS
  std::vector<std::vector<char>> src, dst;
  std::vector<void*> rreq, sreq;
  for (int i = 0; i < kOps; ++i) {
    src.push_back(pattern(65536 + i, i));
    dst.emplace_back(65536 + kOps, 0);
  }
  for (int i = 0; i < kOps; ++i) {
    void* d[1] = {dst[i].data()};
    size_t posted[1] = {dst[i].size()};
    int tags[1] = {1};
    rreq.push_back(postRecv(p.recv, 1, d, posted, tags));
  }
  for (int i = 0; i < kOps; ++i) sreq.push_back(postSend(p.send, src[i].data(), src[i].size(), 1));
  // The last receive first: test() moves the earlier ones on the way.
  int size = -1;
  ASSERT_EQ(waitDone(rreq[kOps - 1], &size), ncclSuccess);
  EXPECT_EQ(size, 65536 + kOps - 1);
  for (int i = kOps - 2; i >= 0; --i) {
    int done = 0;
    ASSERT_EQ(net().test(rreq[i], &done, &size), ncclSuccess);
    EXPECT_EQ(done, 1) << "receive " << i << " precedes a completed one";
    EXPECT_EQ(size, 65536 + i);
    EXPECT_TRUE(sameBytes(src[i].data(), dst[i].data(), src[i].size()));
  }
  for (int i = kOps - 1; i >= 0; --i) EXPECT_EQ(waitDone(sreq[i], nullptr), ncclSuccess);
  closePair(p);
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

TEST(PluginNet, RequestExhaustionReturnsNullThenRecovers) {
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  char buf[64];
  std::vector<void*> reqs;
  for (int i = 0; i < NCCL_NET_MAX_REQUESTS; ++i) {
    void* d[1] = {buf};
    size_t posted[1] = {sizeof(buf)};
    int tags[1] = {0};
    void* r = postRecv(p.recv, 1, d, posted, tags);
    ASSERT_NE(r, nullptr) << "receive " << i << " of the 32 NCCL may keep in flight";
    reqs.push_back(r);
  }
  void* d[1] = {buf};
  size_t posted[1] = {sizeof(buf)};
  int tags[1] = {0};
  EXPECT_EQ(postRecv(p.recv, 1, d, posted, tags), nullptr) << "the 33rd: call again later";
  char msg[8] = {1};
  void* s = postSend(p.send, msg, sizeof(msg), 0);
  ASSERT_EQ(waitDone(reqs[0], nullptr), ncclSuccess);
  EXPECT_NE(postRecv(p.recv, 1, d, posted, tags), nullptr) << "a slot is free again";
  EXPECT_EQ(waitDone(s, nullptr), ncclSuccess);
  // Send side: 32 x maxRecvs in flight; with nobody receiving, sends stall and the next is NULL.
  std::vector<char> big(64 << 10);
  int posted_ok = 0;
  void* extra = reinterpret_cast<void*>(1);
  for (int i = 0; i < 2000 && extra != nullptr; ++i) {
    extra = nullptr;
    ASSERT_EQ(net().isend(p.send, big.data(), big.size(), 0, nullptr, nullptr, &extra),
              ncclSuccess);
    if (extra != nullptr) ++posted_ok;
  }
  EXPECT_EQ(posted_ok, NCCL_NET_MAX_REQUESTS * 8);
  closePair(p);  // with requests in flight on both sides
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

TEST(PluginNet, OptionalCompletionSentinel) {
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  char dst[256] = {0};
  auto src = pattern(200, 5);
  void* d[1] = {dst};
  size_t posted[1] = {sizeof(dst)};
  int tags[1] = {0};
  void* mh[1] = {};
  void* ph[1] = {};
  void* req = reinterpret_cast<void*>(static_cast<uintptr_t>(NCCL_NET_OPTIONAL_RECV_COMPLETION));
  ASSERT_EQ(net().irecv(p.recv, 1, d, posted, tags, mh, ph, &req), ncclSuccess);
  ASSERT_NE(req, nullptr);
  ASSERT_NE(req, reinterpret_cast<void*>(1)) << "a real request comes back for NCCL to poll";
  void* s = postSend(p.send, src.data(), src.size(), 0);
  int size = -1;
  ASSERT_EQ(waitDone(req, &size), ncclSuccess);
  EXPECT_EQ(size, 200);
  EXPECT_EQ(std::memcmp(dst, src.data(), 200), 0);
  EXPECT_EQ(waitDone(s, nullptr), ncclSuccess);
  closePair(p);
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

TEST(PluginNet, EveryCloseOrder) {
  void* ctx = initCtx();
  // Receiver first, then sender; and the reverse.
  Pair a = connectPair(ctx);
  EXPECT_EQ(net().closeRecv(a.recv), ncclSuccess);
  EXPECT_EQ(net().closeSend(a.send), ncclSuccess);
  Pair b = connectPair(ctx);
  EXPECT_EQ(net().closeSend(b.send), ncclSuccess);
  // The peer has gone: a receive fails, naming it, instead of hanging.
  char buf[16];
  void* d[1] = {buf};
  size_t posted[1] = {sizeof(buf)};
  int tags[1] = {0};
  void* r = postRecv(b.recv, 1, d, posted, tags);
  EXPECT_EQ(waitDone(r, nullptr), ncclRemoteError);
  EXPECT_EQ(net().closeRecv(b.recv), ncclSuccess);
  // A listener closed before anyone connected.
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  void* l = nullptr;
  ASSERT_EQ(net().listen(ctx, 0, handle, &l), ncclSuccess);
  EXPECT_EQ(net().closeListen(l), ncclSuccess);
  // Finalize with another communicator's context still alive, then that one.
  void* ctx2 = initCtx();
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
  Pair c = connectPair(ctx2);
  closePair(c);
  EXPECT_EQ(net().finalize(ctx2), ncclSuccess);
}

TEST(PluginNet, V10TableShims) {
  ncclNet_v10_t& v10 = *lib().v10;
  ASSERT_EQ(v10.init(recordLog, nullptr), ncclSuccess);
  int ndev = 0;
  ASSERT_EQ(v10.devices(&ndev), ncclSuccess);
  ncclNetProperties_v10_t props;
  ASSERT_EQ(v10.getProperties(0, &props), ncclSuccess);
  EXPECT_EQ(props.maxRecvs, 8);
  EXPECT_EQ(props.ptrSupport, NCCL_PTR_HOST);
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  void* l = nullptr;
  ASSERT_EQ(v10.listen(0, handle, &l), ncclSuccess);
  ncclNetCommConfig_v10_t config{NCCL_NET_TRAFFIC_CLASS_UNDEF};
  void *s = nullptr, *r = nullptr;
  for (int i = 0; i < 100000 && (s == nullptr || r == nullptr); ++i) {
    if (s == nullptr) {
      ASSERT_EQ(v10.connect(0, &config, handle, &s, nullptr), ncclSuccess);
    }
    if (r == nullptr) {
      ASSERT_EQ(v10.accept(l, &r, nullptr), ncclSuccess);
    }
  }
  ASSERT_EQ(v10.closeListen(l), ncclSuccess);
  auto src = pattern(3000, 2);
  char dst[4096];
  void* d[1] = {dst};
  size_t posted[1] = {sizeof(dst)};
  int tags[1] = {0};
  void* rr = nullptr;
  void* sr = nullptr;
  ASSERT_EQ(v10.irecv(r, 1, d, posted, tags, nullptr, nullptr, &rr), ncclSuccess);
  ASSERT_EQ(v10.isend(s, src.data(), src.size(), 0, nullptr, nullptr, &sr), ncclSuccess);
  int size = -1;
  ASSERT_EQ(waitDone(rr, &size), ncclSuccess);
  EXPECT_EQ(size, 3000);
  EXPECT_EQ(waitDone(sr, nullptr), ncclSuccess);
  EXPECT_EQ(v10.closeSend(s), ncclSuccess);
  EXPECT_EQ(v10.closeRecv(r), ncclSuccess);
}

// ---- two ranks as processes -----------------------------------------------------------------

const char* gSelf = nullptr;

// Rank 1 (receiver, site 1): listens, hands its handle to rank 0 through a pipe (NCCL's
// bootstrap), accepts, receives and checks. Runs in a fresh process (exec), so its XSITE_SITE
// is its own.
// The receiving process's start: init, listen, hand the handle to the sender through the pipe
// (NCCL's bootstrap), accept, closeListen. 0, or the exit code naming the step that failed.
int listenAndAccept(int handleFd, void** ctx, void** recvComm) {
  if (net().init(ctx, 1, nullptr, recordLog, nullptr) != ncclSuccess) return 10;
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  void* l = nullptr;
  if (net().listen(*ctx, 0, handle, &l) != ncclSuccess) return 11;
  if (write(handleFd, handle, sizeof(handle)) != static_cast<ssize_t>(sizeof(handle))) return 12;
  close(handleFd);
  void* r = nullptr;
  for (int i = 0; i < 1000000 && r == nullptr; ++i) {
    if (net().accept(l, &r, nullptr) != ncclSuccess) return 13;
    if (r == nullptr) usleep(50);
  }
  if (r == nullptr) return 14;
  if (net().closeListen(l) != ncclSuccess) return 15;
  *recvComm = r;
  return 0;
}

int receiverMain(int handleFd, int count) {
  void* ctx = nullptr;
  void* r = nullptr;
  if (int step = listenAndAccept(handleFd, &ctx, &r)) return step;
  for (int m = 0; m < count; ++m) {
    const size_t n = (size_t{1} << (2 * m)) + static_cast<size_t>(m);
    std::vector<char> dst(n + 64);
    void* d[1] = {dst.data()};
    size_t posted[1] = {dst.size()};
    int tags[1] = {0};
    void* req = postRecv(r, 1, d, posted, tags);
    int size = -1;
    if (req == nullptr || waitDone(req, &size, 100000000) != ncclSuccess) return 20 + m;
    if (static_cast<size_t>(size) != n) return 40 + m;
    if (!sameBytes(dst.data(), pattern(n, m).data(), n)) return 60 + m;
  }
  net().closeRecv(r);
  net().finalize(ctx);
  return 0;
}

// NCCL's connect to a peer process's handle, called again until the comm is ready (the peer
// accepts when it gets to it); nullptr if a call fails or it never gets ready.
void* connectToPeer(void* ctx, char* handle) {
  void* s = nullptr;
  for (int i = 0; i < 1000000 && s == nullptr; ++i) {
    if (net().connect(ctx, 0, handle, &s, nullptr) != ncclSuccess) {
      ADD_FAILURE() << "connect failed";
      return nullptr;
    }
    if (s == nullptr) usleep(50);
  }
  return s;
}

TEST(PluginNet, TwoRanksAsProcessesAcrossSites) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  constexpr int kCount = 12;  // up to 4 MiB
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    setenv("XSITE_SITE", "1", 1);
    std::string fd = std::to_string(fds[1]), count = std::to_string(kCount);
    execl(gSelf, gSelf, "--receiver", fd.c_str(), count.c_str(), static_cast<char*>(nullptr));
    _exit(99);
  }
  close(fds[1]);
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  ASSERT_EQ(read(fds[0], handle, sizeof(handle)), static_cast<ssize_t>(sizeof(handle)));
  close(fds[0]);
  int32_t site = -1;
  std::memcpy(&site, handle + 28, sizeof(site));  // ConnectHandle::site (plugin/net/comm.h)
  EXPECT_EQ(site, 1) << "the handle carries the listener's site";
  void* ctx = initCtx();
  void* s = connectToPeer(ctx, handle);
  ASSERT_NE(s, nullptr);
  for (int m = 0; m < kCount; ++m) {
    const size_t n = (size_t{1} << (2 * m)) + static_cast<size_t>(m);
    auto src = pattern(n, m);
    void* req = postSend(s, src.data(), n, 0);
    ASSERT_EQ(waitDone(req, nullptr, 100000000), ncclSuccess);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "receiver's exit code locates its failure";
  EXPECT_EQ(net().closeSend(s), ncclSuccess);
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

// Starts this program again as a receiver in site 1 (`mode`: --wan-receiver, --heal-receiver)
// and reads the connect handle it publishes.
void startSite1Receiver(const char* mode, char (&handle)[NCCL_NET_HANDLE_MAXSIZE], pid_t* pid) {
  int handlePipe[2];
  ASSERT_EQ(pipe(handlePipe), 0);
  *pid = fork();
  ASSERT_GE(*pid, 0);
  if (*pid == 0) {
    close(handlePipe[0]);
    setenv("XSITE_SITE", "1", 1);
    std::string h = std::to_string(handlePipe[1]);
    execl(gSelf, gSelf, mode, h.c_str(), static_cast<char*>(nullptr));
    _exit(99);
  }
  close(handlePipe[1]);
  ASSERT_EQ(read(handlePipe[0], handle, sizeof(handle)), static_cast<ssize_t>(sizeof(handle)));
  close(handlePipe[0]);
}

// Healing over WAN streams: rank 1 (site 1) receives kHealMessages of kHealBytes while rank 0
// (site 0) sends them; after a quarter of them the kernel resets every stream of the comm
// (`ss -K`, both ends see it) and then, later, one more: every request still completes with the
// right bytes, the streams re-dialed to the receiver's resume listener (NCCL closed the listen
// comm long before).
constexpr int kHealMessages = 64;
constexpr size_t kHealBytes = size_t{4} << 20;

int healReceiverMain(int handleFd) {
  void* ctx = nullptr;
  void* r = nullptr;
  if (int step = listenAndAccept(handleFd, &ctx, &r)) return step;
  std::vector<char> dst(kHealBytes);
  for (int m = 0; m < kHealMessages; ++m) {
    void* d[1] = {dst.data()};
    size_t posted[1] = {dst.size()};
    int tags[1] = {m};
    void* req = postRecv(r, 1, d, posted, tags);
    int size = -1;
    if (req == nullptr || waitDone(req, &size, 2000000000) != ncclSuccess) return 20;
    if (static_cast<size_t>(size) != kHealBytes) return 21;
    if (!sameBytes(dst.data(), pattern(kHealBytes, m).data(), kHealBytes)) return 22;
  }
  if (net().closeRecv(r) != ncclSuccess) return 30;
  if (net().finalize(ctx) != ncclSuccess) return 31;
  return 0;
}

bool ssCanKill() { return std::system("ss -K -tn '( sport = :1 )' >/dev/null 2>&1") == 0; }

TEST(PluginNet, WanStreamsHealAfterTheirSocketsAreReset) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  pid_t pid = -1;
  ASSERT_NO_FATAL_FAILURE(startSite1Receiver("--heal-receiver", handle, &pid));
  uint16_t listenPort = 0, resumePort = 0;
  std::memcpy(&listenPort, handle + 10, 2);  // ConnectHandle::addr.port (plugin/net/comm.h)
  std::memcpy(&resumePort, handle + 52, 2);  // ConnectHandle::resumePort
  ASSERT_NE(resumePort, 0) << "the handle names a resume listener";
  void* ctx = initCtx();
  void* s = connectToPeer(ctx, handle);
  ASSERT_NE(s, nullptr);
  const std::string first = "ss -K -tn '( dport = :" + std::to_string(ntohs(listenPort)) + " )' >/dev/null 2>&1";
  const std::string again = "ss -K -tn '( dport = :" + std::to_string(ntohs(resumePort)) + " )' >/dev/null 2>&1";
  for (int m = 0; m < kHealMessages; ++m) {
    if (m == kHealMessages / 4) {
      ASSERT_EQ(std::system(first.c_str()), 0);  // every stream
    }
    if (m == kHealMessages / 2) {
      ASSERT_EQ(std::system(again.c_str()), 0);  // the re-dialed ones
    }
    auto src = pattern(kHealBytes, m);
    void* req = postSend(s, src.data(), src.size(), m);
    ASSERT_EQ(waitDone(req, nullptr, 2000000000), ncclSuccess) << "message " << m;
  }
  EXPECT_EQ(net().closeSend(s), ncclSuccess);
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "receiver's exit code locates its failure";
  EXPECT_TRUE(logHas("broke")) << "the resets reached the sender's streams";
}

// A peer that never sends (or never receives): test() fails within XSITE_TIMEOUT instead of
// polling forever. In a process of its own, since the plugin reads its settings once.
int silentPeerMain() {
  setenv("XSITE_TIMEOUT", "1", 1);
  setenv("XSITE_SITE_TRANSPORT", "tcp", 1);  // a plain socket: a send that UCX would buffer blocks
  void* ctx = initCtx();
  Pair p = connectPair(ctx);
  std::vector<char> dst(4096);
  void* d[1] = {dst.data()};
  size_t posted[1] = {dst.size()};
  int tags[1] = {0};
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  void* rr = postRecv(p.recv, 1, d, posted, tags);
  if (rr == nullptr) return 10;
  if (waitDone(rr, nullptr, 2000000000) != ncclSystemError) return 11;
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  if (took < 1 || took > 3) return 12;
  if (!logHas("no message completed for 1 s with 1 in flight (XSITE_TIMEOUT)")) return 13;
  // A send the peer never takes: the socket buffers fill, then the timeout.
  std::vector<char> big(size_t{256} << 20, 1);
  t0 = Clock::now();
  void* sr = postSend(p.send, big.data(), big.size(), 0);
  if (sr == nullptr) return 20;
  if (ncclResult_t r = waitDone(sr, nullptr, 2000000000); r != ncclSystemError) {
    fprintf(stderr, "silent peer: the send ended with %d\n", static_cast<int>(r));
    return 21;
  }
  took = std::chrono::duration<double>(Clock::now() - t0).count();
  if (took < 1 || took > 3) return 22;
  closePair(p);  // failed comms close at once
  if (net().finalize(ctx) != ncclSuccess) return 30;
  return 0;
}

TEST(PluginNet, ASilentPeerFailsTestWithinTheTimeout) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(gSelf, gSelf, "--silent-peer", static_cast<char*>(nullptr));
    _exit(99);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's exit code locates its failure";
}

// Cross-site over WAN streams (plugin/net/wan_comm.h): rank 1 in site 1 receives while rank 0 in
// site 0 sends, closes and finalizes as soon as its sends are staged, so some streams end (the
// sender's close) while others still carry frames the receiver is waiting for.
std::vector<size_t> wanSizes() {
  std::vector<size_t> v = {0, 1, 1000, (size_t{2} << 20) + 7};
  for (int i = 0; i < 16; ++i) v.push_back(size_t{512} << 10);  // spread over the streams
  return v;
}
constexpr size_t kWanPosted = size_t{4} << 20;  // NCCL posts the most it accepts
constexpr size_t kWanTooLarge = 64 << 10;       // then a message larger than its receive

int wanReceiverMain(int handleFd) {
  void* ctx = nullptr;
  void* r = nullptr;
  if (int step = listenAndAccept(handleFd, &ctx, &r)) return step;
  int m = 0;
  for (size_t n : wanSizes()) {
    std::vector<char> dst(kWanPosted);
    void* d[1] = {dst.data()};
    size_t posted[1] = {dst.size()};
    int tags[1] = {7};
    void* req = postRecv(r, 1, d, posted, tags);
    int size = -1;
    if (req == nullptr || waitDone(req, &size, 100000000) != ncclSuccess) return 20 + m;
    if (static_cast<size_t>(size) != n) return 30 + m;
    if (!sameBytes(dst.data(), pattern(n, m).data(), n)) return 40 + m;
    ++m;
  }
  std::vector<char> small(1000);
  void* d[1] = {small.data()};
  size_t posted[1] = {small.size()};
  int tags[1] = {7};
  void* req = postRecv(r, 1, d, posted, tags);
  if (req == nullptr || waitDone(req, nullptr, 100000000) != ncclInvalidUsage) return 50;
  if (!logHas("where this rank posted a receive of at most 1000 bytes")) return 51;
  if (!logHas("net recv from 127.0.0.1:") || !logHas("site 0, 4 WAN streams")) return 52;
  if (net().closeRecv(r) != ncclSuccess) return 53;
  if (net().finalize(ctx) != ncclSuccess) return 54;
  return 0;
}

TEST(PluginNet, WanStreamsAcrossSitesWhileTheSenderCloses) {
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  pid_t pid = -1;
  ASSERT_NO_FATAL_FAILURE(startSite1Receiver("--wan-receiver", handle, &pid));
  void* ctx = initCtx();  // site 0 (XSITE_SITE unset): the peer is in another site
  void* s = connectToPeer(ctx, handle);
  ASSERT_NE(s, nullptr);
  std::vector<std::vector<char>> src;
  int m = 0;
  for (size_t n : wanSizes()) src.push_back(pattern(n, m++));
  src.push_back(pattern(kWanTooLarge, 0));
  // Eager staging: a send completes once staged, before the receiver has it.
  for (auto& v : src) {
    void* req = postSend(s, v.data(), v.size(), 7);
    int size = -1;
    ASSERT_EQ(waitDone(req, &size, 100000000), ncclSuccess);
    EXPECT_EQ(static_cast<size_t>(size), v.size());
  }
  // Moves what is staged into the sockets and closes. The receiver failed its comm on the last
  // message and closed it: the sender's streams break, its re-dial is told the link is gone (or
  // refused, once the receiver exited), and the close ends at once instead of after its 60 s.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(net().closeSend(s), ncclSuccess);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "receiver's exit code locates its failure";
}

// A rank in site 1 that finds no usable interface (XSITE_NICS names none) listens on loopback
// and says so in its handle: the sender in site 0 fails its connect at once, saying why,
// instead of dialing 127.0.0.1 (its own host) and getting "Connection refused" later.
int noInterfaceListenerMain(int handleFd) {
  unsetenv("XSITE_LISTEN_ADDR");
  setenv("XSITE_NICS", "=no-such-interface", 1);
  void* ctx = nullptr;
  if (net().init(&ctx, 1, nullptr, recordLog, nullptr) != ncclSuccess) return 10;
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  void* l = nullptr;
  if (net().listen(ctx, 0, handle, &l) != ncclSuccess) return 11;
  if (!logHas("using loopback")) return 12;
  if (write(handleFd, handle, sizeof(handle)) != static_cast<ssize_t>(sizeof(handle))) return 13;
  close(handleFd);
  usleep(2000000);  // listening while the sender tries
  net().closeListen(l);
  net().finalize(ctx);
  return 0;
}

TEST(PluginNet, AHandleOnLoopbackForLackOfAnInterfaceFailsAcrossSitesAtOnce) {
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  pid_t pid = -1;
  ASSERT_NO_FATAL_FAILURE(startSite1Receiver("--no-interface-listener", handle, &pid));
  void* ctx = initCtx();  // site 0
  void* s = nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(net().connect(ctx, 0, handle, &s, nullptr), ncclSuccess);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(s, nullptr);
  EXPECT_TRUE(logHas("a loopback address, to this rank in site 0: it found no usable network interface"));
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "listener's exit code locates its failure";
}

// ---- tuner ----------------------------------------------------------------------------------

constexpr int kA = NCCL_NUM_ALGORITHMS, kP = NCCL_NUM_PROTOCOLS;

// The table NCCL offers a host-memory net: CollNet, NVLS and PAT unavailable; TREE/LL disabled.
void offeredTable(float* t) {
  for (int a = 0; a < kA; ++a)
    for (int p = 0; p < kP; ++p)
      t[a * kP + p] = (a == NCCL_ALGO_TREE || a == NCCL_ALGO_RING) ? 50.0f + a * kP + p : -1.0f;
  t[NCCL_ALGO_TREE * kP + NCCL_PROTO_LL] = -1.0f;
}

// Runs getCollInfo on a real float[7][3] passed as float**, as NCCL does.
int chosen(const float* before, const float* after) {
  int zero = -1;
  for (int i = 0; i < kA * kP; ++i) {
    if (before[i] < 0) {
      EXPECT_EQ(after[i], before[i]) << "entry " << i << " was -1: untouched";
    }
    if (after[i] != before[i]) {
      EXPECT_EQ(after[i], 0.0f) << "the only write is a 0.0 preference";
      EXPECT_EQ(zero, -1) << "one entry at most";
      zero = i;
    }
  }
  return zero;
}

TEST(PluginTuner, MultiSiteAllReduceWritesAlgoTimesThreePlusProto) {
  // NCCL's constants as v5 hands them over: here SIMPLE costs 500 us more per step.
  ncclTunerConstants_v5_t constants;
  std::memset(&constants, 0, sizeof(constants));
  for (auto& row : constants.baseLatencies) row[NCCL_PROTO_SIMPLE] = 500;
  void* ctx = nullptr;
  ASSERT_EQ(lib().t5->init(&ctx, 7, 4, 4, recordLog, nullptr, &constants), ncclSuccess);
  ASSERT_NE(ctx, nullptr) << "XSITE_TOPO_FILE lists 4 ranks in 2 sites";
  float before[kA][kP], table[kA][kP];
  // Small: the latency-bound choice across the WAN is the tree, and SIMPLE's per-step latency
  // makes LL128 cheaper (TREE/LL is offered as -1, so it is not taken). Large: SIMPLE.
  for (size_t bytes : {size_t{1024}, size_t{256} << 20}) {
    offeredTable(&before[0][0]);
    std::memcpy(table, before, sizeof(table));
    int channels = 0;
    ASSERT_EQ(lib().t5->getCollInfo(ctx, ncclFuncAllReduce, bytes, 1,
                                    reinterpret_cast<float**>(table), kA, kP, 0, &channels),
              ncclSuccess);
    int z = chosen(&before[0][0], &table[0][0]);
    ASSERT_GE(z, 0) << bytes;
    if (bytes < 4096) {
      EXPECT_EQ(z, NCCL_ALGO_TREE * kP + NCCL_PROTO_LL128) << "flat index algo*3+proto";
    } else {
      EXPECT_TRUE(z / kP == NCCL_ALGO_TREE || z / kP == NCCL_ALGO_RING) << z;
      EXPECT_EQ(z % kP, NCCL_PROTO_SIMPLE);
    }
    EXPECT_GE(channels, 1);  // the cost model's channel count (tuner_test.cc pins the rules)
  EXPECT_LE(channels, 32);
  }
  // Not modelled: AllGather is left to NCCL.
  offeredTable(&before[0][0]);
  std::memcpy(table, before, sizeof(table));
  int channels = 0;
  ASSERT_EQ(lib().t5->getCollInfo(ctx, ncclFuncAllGather, 1 << 20, 1,
                                  reinterpret_cast<float**>(table), kA, kP, 0, &channels),
            ncclSuccess);
  EXPECT_EQ(chosen(&before[0][0], &table[0][0]), -1);
  // Nothing available: untouched, and still success (a collective never fails here).
  for (auto& row : table)
    for (float& e : row) e = -1.0f;
  std::memcpy(before, table, sizeof(table));
  ASSERT_EQ(lib().t5->getCollInfo(ctx, ncclFuncAllReduce, 1 << 20, 1,
                                  reinterpret_cast<float**>(table), kA, kP, 0, &channels),
            ncclSuccess);
  EXPECT_EQ(chosen(&before[0][0], &table[0][0]), -1);
  EXPECT_EQ(lib().t5->finalize(ctx), ncclSuccess);
}

TEST(PluginTuner, V4AndV3Shims) {
  void* ctx = nullptr;
  ASSERT_EQ(lib().t4->init(4, 4, recordLog, &ctx), ncclSuccess);
  ASSERT_NE(ctx, nullptr);
  float before[kA][kP], table[kA][kP];
  offeredTable(&before[0][0]);
  std::memcpy(table, before, sizeof(table));
  int channels = 0;
  ASSERT_EQ(lib().t3->getCollInfo(ctx, ncclFuncAllReduce, 1024, 1, reinterpret_cast<float**>(table),
                                  kA, kP, &channels),
            ncclSuccess);
  EXPECT_EQ(chosen(&before[0][0], &table[0][0]), NCCL_ALGO_TREE * kP + NCCL_PROTO_SIMPLE);
  EXPECT_EQ(lib().t4->destroy(ctx), ncclSuccess);
}

TEST(PluginTuner, CommunicatorItCannotPlaceIsLeftAlone) {
  // 8 ranks, but the topology file lists 4: the tuner cannot tell the sites and declines.
  void* ctx = reinterpret_cast<void*>(1);
  ASSERT_EQ(lib().t5->init(&ctx, 8, 8, 2, recordLog, nullptr, nullptr), ncclSuccess);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_TRUE(logHas("tuner: NCCL's costs left alone"));
  float before[kA][kP], table[kA][kP];
  offeredTable(&before[0][0]);
  std::memcpy(table, before, sizeof(table));
  int channels = 0;
  ASSERT_EQ(lib().t5->getCollInfo(ctx, ncclFuncAllReduce, 1024, 1, reinterpret_cast<float**>(table),
                                  kA, kP, 0, &channels),
            ncclSuccess);
  EXPECT_EQ(chosen(&before[0][0], &table[0][0]), -1);
  EXPECT_EQ(lib().t5->finalize(ctx), ncclSuccess);
}

}  // namespace

int main(int argc, char** argv) {
  gSelf = "/proc/self/exe";
  // The environment NCCL's ranks would have: loopback data address, a 2-site topology file.
  setenv("XSITE_LISTEN_ADDR", "127.0.0.1", 1);
  unsetenv("XSITE_DEBUG");
  if (argc == 4 && std::strcmp(argv[1], "--receiver") == 0)
    return receiverMain(std::atoi(argv[2]), std::atoi(argv[3]));
  if (argc == 2 && std::strcmp(argv[1], "--silent-peer") == 0) return silentPeerMain();
  if (argc == 3 && std::strcmp(argv[1], "--heal-receiver") == 0)
    return healReceiverMain(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--wan-receiver") == 0)
    return wanReceiverMain(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--no-interface-listener") == 0)
    return noInterfaceListenerMain(std::atoi(argv[2]));
  char path[] = "/tmp/xsite_plugin_topo_XXXXXX";
  int fd = mkstemp(path);
  const char text[] =
      "rank=0 site=0 domain=a\nrank=1 site=0 domain=b\n"
      "rank=2 site=1 domain=c\nrank=3 site=1 domain=d\n";
  if (fd < 0 || write(fd, text, sizeof(text) - 1) != static_cast<ssize_t>(sizeof(text) - 1))
    return 1;
  close(fd);
  setenv("XSITE_TOPO_FILE", path, 1);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  unlink(path);
  return rc;
}
