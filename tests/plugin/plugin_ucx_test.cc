// tests/plugin, same-site comms over UCX: libnccl-net-xsite.so driven through its v11 table as
// NCCL's proxy drives it, ranks as processes (this program re-executed), with
// XSITE_SITE_TRANSPORT=ucx and UCX_TLS=tcp (so the bytes cross processes through UCX's TCP
// transport, as they would between hosts).
//  - two ranks of one site: sizes 0..16 MiB into larger posted buffers, the real sizes reported;
//    a message larger than its receive is ncclInvalidUsage naming the peer; grouped receives;
//    completion polled out of order; the sender closing first, then the receiver first.
//  - eight ranks, 2 sites x 4: every rank a send and a receive comm with every other (same-site
//    pairs over UCX, cross-site pairs over WAN streams), messages checked, and one message of
//    maxP2pBytes between two ranks of a site.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

#include "tests/plugin/net_harness.h"

namespace {

using namespace xsite_plugin_test;

const char* gSelf = "/proc/self/exe";

void* acceptLoop(void* listenComm) {
  void* r = nullptr;
  for (int i = 0; i < 2000000 && r == nullptr; ++i) {
    if (net().accept(listenComm, &r, nullptr) != ncclSuccess) return nullptr;
    if (r == nullptr) usleep(20);
  }
  return r;
}

size_t recvOne(void* comm, std::vector<char>& dst, int tag, ncclResult_t* rc) {
  void* d[1] = {dst.data()};
  size_t posted[1] = {dst.size()};
  int tags[1] = {tag};
  void* req = postRecv(comm, 1, d, posted, tags);
  int size = -1;
  *rc = req == nullptr ? ncclInternalError : waitDone(req, &size, 200000000);
  return static_cast<size_t>(size);
}

const std::vector<size_t>& twoRankSizes() {
  static const std::vector<size_t> v = {0, 1, 4097, (64 << 10) + 3, size_t{1} << 20,
                                        size_t{16} << 20};
  return v;
}
constexpr size_t kSlack = 100;  // NCCL posts more than it gets

// Rank 1 of the two-rank test (site 0, like rank 0): listens twice (comms A and B), hands the
// handles over `fd`, receives and checks. The exit code locates a failure.
int twoRankReceiver(int fd) {
  void* ctx = nullptr;
  if (net().init(&ctx, 1, nullptr, recordLog, nullptr) != ncclSuccess) return 10;
  char ha[NCCL_NET_HANDLE_MAXSIZE], hb[NCCL_NET_HANDLE_MAXSIZE];
  void *la = nullptr, *lb = nullptr;
  if (net().listen(ctx, 0, ha, &la) != ncclSuccess || net().listen(ctx, 0, hb, &lb) != ncclSuccess)
    return 11;
  if (write(fd, ha, sizeof(ha)) != sizeof(ha) || write(fd, hb, sizeof(hb)) != sizeof(hb)) return 12;
  close(fd);
  void* a = acceptLoop(la);
  void* b = acceptLoop(lb);
  if (a == nullptr || b == nullptr) return 13;
  net().closeListen(la);
  net().closeListen(lb);
  ncclResult_t rc;
  int m = 0;
  for (size_t n : twoRankSizes()) {  // each into a buffer larger than the message
    std::vector<char> dst(n + kSlack);
    if (recvOne(a, dst, 0, &rc) != n || rc != ncclSuccess) return 20 + m;
    if (!sameBytes(dst.data(), pattern(n, m).data(), n)) return 30 + m;
    ++m;
  }
  {  // grouped: three buffers, the sender's tags in another order
    std::vector<char> b0(4096), b1(4096), b2(4096);
    void* d[3] = {b0.data(), b1.data(), b2.data()};
    size_t posted[3] = {4096, 4096, 4096};
    int tags[3] = {7, 8, 9};
    void* req = postRecv(a, 3, d, posted, tags);
    int sizes[3] = {-1, -1, -1};
    if (req == nullptr || waitDone(req, sizes, 200000000) != ncclSuccess) return 40;
    if (sizes[0] != 700 || sizes[1] != 0 || sizes[2] != 100) return 41;
    if (std::memcmp(b0.data(), pattern(700, 7).data(), 700) != 0 ||
        std::memcmp(b2.data(), pattern(100, 9).data(), 100) != 0)
      return 42;
  }
  {  // eight posted, the last polled first
    std::vector<std::vector<char>> dst(8, std::vector<char>(300000));
    std::vector<void*> req;
    for (auto& v : dst) {
      void* d[1] = {v.data()};
      size_t posted[1] = {v.size()};
      int tags[1] = {1};
      req.push_back(postRecv(a, 1, d, posted, tags));
    }
    int size = -1;
    if (waitDone(req[7], &size, 200000000) != ncclSuccess || size != 200000 + 7) return 50;
    for (int i = 6; i >= 0; --i)
      if (waitDone(req[i], &size, 200000000) != ncclSuccess || size != 200000 + i ||
          std::memcmp(dst[i].data(), pattern(200000 + i, 100 + i).data(), size) != 0)
        return 51 + i;
    if (std::memcmp(dst[7].data(), pattern(200007, 107).data(), 200007) != 0) return 59;
  }
  {  // larger than the posted receive: an error naming the peer, never a truncation
    std::vector<char> small(1000);
    recvOne(a, small, 0, &rc);
    if (rc != ncclInvalidUsage) return 60;
    if (!logHas("where this rank posted a receive of at most 1000 bytes")) return 61;
    if (!logHas("net recv from 127.0.0.1:") || !logHas("site 0, UCX)")) return 62;
  }
  {  // comm B: the sender sends one message and closes first
    std::vector<char> dst(64);
    if (recvOne(b, dst, 0, &rc) != 5 || rc != ncclSuccess) return 70;
    recvOne(b, dst, 0, &rc);
    if (rc != ncclRemoteError) return 71;
    if (!logHas("closed the connection after sending 1 message(s)")) return 72;
  }
  if (net().closeRecv(a) != ncclSuccess || net().closeRecv(b) != ncclSuccess) return 80;
  if (net().finalize(ctx) != ncclSuccess) return 81;
  return 0;
}

TEST(PluginNetUcx, TwoRanksOfOneSiteOverUcxTcp) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    std::string fd = std::to_string(fds[1]);
    execl(gSelf, gSelf, "--two-rank-receiver", fd.c_str(), static_cast<char*>(nullptr));
    _exit(99);
  }
  close(fds[1]);
  char ha[NCCL_NET_HANDLE_MAXSIZE], hb[NCCL_NET_HANDLE_MAXSIZE];
  ASSERT_EQ(read(fds[0], ha, sizeof(ha)), static_cast<ssize_t>(sizeof(ha)));
  ASSERT_EQ(read(fds[0], hb, sizeof(hb)), static_cast<ssize_t>(sizeof(hb)));
  close(fds[0]);
  void* ctx = initCtx();
  void *a = nullptr, *b = nullptr;
  for (int i = 0; i < 2000000 && (a == nullptr || b == nullptr); ++i) {
    if (a == nullptr) {
      ASSERT_EQ(net().connect(ctx, 0, ha, &a, nullptr), ncclSuccess);
    }
    if (b == nullptr) {
      ASSERT_EQ(net().connect(ctx, 0, hb, &b, nullptr), ncclSuccess);
    }
    if (a == nullptr || b == nullptr) usleep(20);
  }
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto send = [&](void* comm, const std::vector<char>& v, int tag) {
    void* req = postSend(comm, const_cast<char*>(v.data()), v.size(), tag);
    int size = -1;
    EXPECT_EQ(waitDone(req, &size, 200000000), ncclSuccess);
    EXPECT_EQ(static_cast<size_t>(size), v.size());
  };
  int m = 0;
  for (size_t n : twoRankSizes()) send(a, pattern(n, m++), 0);
  send(a, pattern(100, 9), 9);
  send(a, pattern(700, 7), 7);
  send(a, pattern(0, 8), 8);
  {
    std::vector<std::vector<char>> src;
    std::vector<void*> req;
    for (int i = 0; i < 8; ++i) src.push_back(pattern(200000 + i, 100 + i));
    for (auto& v : src) req.push_back(postSend(a, v.data(), v.size(), 1));
    for (int i = 7; i >= 0; --i) EXPECT_EQ(waitDone(req[i], nullptr, 200000000), ncclSuccess);
  }
  auto big = pattern(2000, 1);
  void* tooLarge = postSend(a, big.data(), big.size(), 0);
  (void)tooLarge;  // the receiver fails it; this side may see it complete
  send(b, pattern(5, 5), 0);
  EXPECT_EQ(net().closeSend(b), ncclSuccess);  // the sender closes first
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "receiver's exit code locates its failure";
  EXPECT_EQ(net().closeSend(a), ncclSuccess);  // the receiver closed (and exited) first
  EXPECT_EQ(net().finalize(ctx), ncclSuccess);
}

// ---- eight ranks, 2 sites x 4 -----------------------------------------------------------------

constexpr int kRanks = 8, kPerSite = 4, kMsgs = 3;

size_t msgSize(int src, int dst, int m) {
  const size_t sizes[kMsgs] = {0, size_t(1000 + src), size_t((256 << 10) + 17 * dst)};
  return sizes[m];
}
int seedOf(int src, int dst, int m) {
  return src * 64 + dst * 8 + m;
}

std::string handlePath(const std::string& dir, int listener, int sender) {
  return dir + "/h" + std::to_string(listener) + "_" + std::to_string(sender);
}

// One rank: listens once per peer (handles through files in `dir`, NCCL's bootstrap), connects
// to every peer, exchanges kMsgs messages each way with each, checks them; rank 0 then sends one
// message of maxP2pBytes to rank 1 (same site, UCX).
int rankMain(int rank, const std::string& dir) {
  alarm(60);  // never hang the suite
  void* ctx = nullptr;
  if (net().init(&ctx, 8, nullptr, recordLog, nullptr) != ncclSuccess) return 10;
  std::vector<void*> listens(kRanks), sends(kRanks), recvs(kRanks);
  for (int p = 0; p < kRanks; ++p) {
    if (p == rank) continue;
    char h[NCCL_NET_HANDLE_MAXSIZE];
    if (net().listen(ctx, 0, h, &listens[p]) != ncclSuccess) return 11;
    const std::string path = handlePath(dir, rank, p);
    if (!writeFileAtomic(path, h, sizeof(h))) return 12;
  }
  std::vector<std::vector<char>> handles(kRanks, std::vector<char>(NCCL_NET_HANDLE_MAXSIZE));
  std::vector<bool> loaded(kRanks, false);
  int missing = kRanks - 1;
  for (int i = 0; i < 2000000 && missing > 0; ++i) {
    missing = 0;
    for (int p = 0; p < kRanks; ++p) {
      if (p == rank) continue;
      if (sends[p] == nullptr) {
        if (!loaded[p]) {  // once: connect() keeps its state in the handle between calls
          std::ifstream in(handlePath(dir, p, rank), std::ios::binary);
          loaded[p] = in && in.read(handles[p].data(), NCCL_NET_HANDLE_MAXSIZE);
        }
        if (loaded[p] &&
            net().connect(ctx, 0, handles[p].data(), &sends[p], nullptr) != ncclSuccess)
          return 13;
      }
      if (recvs[p] == nullptr && net().accept(listens[p], &recvs[p], nullptr) != ncclSuccess)
        return 14;
      missing += (sends[p] == nullptr) + (recvs[p] == nullptr);
    }
    if (missing > 0) usleep(100);
  }
  if (missing > 0) return 15;
  for (int p = 0; p < kRanks; ++p)
    if (p != rank) net().closeListen(listens[p]);
  // Every receive posted, then every send; polled together as a proxy polls its connections.
  struct Op {
    void* req;
    int peer, m;
    bool recv, done;
    std::vector<char> buf;
  };
  std::vector<Op> ops;
  for (int p = 0; p < kRanks; ++p)
    for (int m = 0; m < kMsgs && p != rank; ++m) {
      Op op{nullptr, p, m, true, false, std::vector<char>(msgSize(p, rank, m) + 64)};
      void* d[1] = {op.buf.data()};
      size_t posted[1] = {op.buf.size()};
      int tags[1] = {p};
      op.req = postRecv(recvs[p], 1, d, posted, tags);
      if (op.req == nullptr) return 16;
      ops.push_back(std::move(op));
    }
  for (int p = 0; p < kRanks; ++p)
    for (int m = 0; m < kMsgs && p != rank; ++m) {
      Op op{nullptr, p, m, false, false, pattern(msgSize(rank, p, m), seedOf(rank, p, m))};
      op.req = postSend(sends[p], op.buf.data(), op.buf.size(), rank);
      if (op.req == nullptr) return 17;
      ops.push_back(std::move(op));
    }
  for (size_t left = ops.size(); left > 0;) {
    for (auto& op : ops) {
      if (op.done) continue;
      int done = 0, size = -1;
      if (net().test(op.req, &done, &size) != ncclSuccess) return op.recv ? 20 + op.peer : 30 + op.peer;
      if (!done) continue;
      op.done = true;
      --left;
      if (!op.recv) continue;
      const size_t n = msgSize(op.peer, rank, op.m);
      if (static_cast<size_t>(size) != n) return 40 + op.peer;
      if (!sameBytes(op.buf.data(), pattern(n, seedOf(op.peer, rank, op.m)).data(), n))
        return 50 + op.peer;
    }
  }
  if (rank <= 1) {  // one message of maxP2pBytes, rank 0 -> rank 1 (same site: UCX)
    ncclNetProperties_v11_t props;
    if (net().getProperties(0, &props) != ncclSuccess) return 60;
    const size_t n = props.maxP2pBytes;
    std::vector<char> buf(n);
    if (rank == 0) {
      for (size_t i = 0; i < n; i += 4096) buf[i] = static_cast<char>(i >> 12);
      buf[n - 1] = 42;
      void* req = postSend(sends[1], buf.data(), n, 0);
      if (req == nullptr || waitDone(req, nullptr, 2000000000) != ncclSuccess) return 61;
    } else {
      void* d[1] = {buf.data()};
      size_t posted[1] = {n};
      int tags[1] = {0};
      void* req = postRecv(recvs[0], 1, d, posted, tags);
      int size = -1;
      if (req == nullptr || waitDone(req, &size, 2000000000) != ncclSuccess) return 62;
      if (static_cast<size_t>(size) != n || buf[n - 1] != 42) return 63;
      for (size_t i = 0; i < n; i += 4096)
        if (buf[i] != static_cast<char>(i >> 12)) return 64;
    }
  }
  for (int p = 0; p < kRanks; ++p) {
    if (p == rank) continue;
    if (net().closeSend(sends[p]) != ncclSuccess) return 70;
  }
  for (int p = 0; p < kRanks; ++p) {
    if (p == rank) continue;
    if (net().closeRecv(recvs[p]) != ncclSuccess) return 71;
  }
  if (net().finalize(ctx) != ncclSuccess) return 72;
  return 0;
}

TEST(PluginNetUcx, EightRanksTwoSitesEveryPair) {
  char dir[] = "/tmp/xsite_plugin_ucx_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::vector<pid_t> pids;
  for (int r = 0; r < kRanks; ++r) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setenv("XSITE_SITE", std::to_string(r / kPerSite).c_str(), 1);
      std::string rank = std::to_string(r);
      execl(gSelf, gSelf, "--rank", rank.c_str(), dir, static_cast<char*>(nullptr));
      _exit(99);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < kRanks; ++r) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[r], &status, 0), pids[r]);
    EXPECT_TRUE(WIFEXITED(status)) << "rank " << r << " signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "rank " << r << ": its exit code locates the failure";
  }
  std::string cmd = std::string("rm -rf ") + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
}

}  // namespace

int main(int argc, char** argv) {
  // Loopback data address, same-site comms over UCX carried by its TCP transport.
  setenv("XSITE_LISTEN_ADDR", "127.0.0.1", 1);
  setenv("XSITE_SITE_TRANSPORT", "ucx", 1);
  setenv("UCX_TLS", "tcp", 1);
  unsetenv("XSITE_DEBUG");
  if (argc == 3 && std::strcmp(argv[1], "--two-rank-receiver") == 0)
    return twoRankReceiver(std::atoi(argv[2]));
  if (argc == 4 && std::strcmp(argv[1], "--rank") == 0) return rankMain(std::atoi(argv[2]), argv[3]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
