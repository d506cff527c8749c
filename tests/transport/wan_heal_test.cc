// Links that heal: two WanLinks over real loopback TCP, set up as a Fabric sets them up (the
// lower rank dials, the higher one answers on its listener through a ResumeAcceptor, a WanProxy
// on each side), with streams reset under them by the kernel (`ss -K`, as an operator or a
// middlebox would). Pins that every byte arrives exactly once and in place, that a peer whose
// listener refuses is named at once, and that a stream that cannot be re-opened fails its link
// after XSITE_WAN_RECONNECT_TIMEOUT with a message that says so.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "transport/wan/proxy.h"
#include "transport/wan/resume.h"
#include "transport/wan/sizing.h"
#include "transport/wan/wan.h"
#include "util/log.h"
#include "wan_exchange.h"

namespace xsite::transport::wan {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr uint64_t kJob = 42;
const bootstrap::JobSecret kSecret("the-secret-of-job-42-0123456789");

// The local ports of the established TCP sockets to `port` on loopback (the dialer's streams).
std::vector<int> dialerPorts(int port) {
  std::vector<int> out;
  std::string cmd = "ss -Htn state established '( dport = :" + std::to_string(port) + " )' 2>/dev/null";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char line[512];
  while (fgets(line, sizeof(line), f)) {
    char local[128], remote[128];
    unsigned long rq, sq;
    if (sscanf(line, "%lu %lu %127s %127s", &rq, &sq, local, remote) != 4) continue;
    std::string l = local;
    out.push_back(std::atoi(l.substr(l.rfind(':') + 1).c_str()));
  }
  ::pclose(f);
  return out;
}

// Resets the socket bound to local port `port` (both ends see it broken), as `ss -K` does.
bool killSocket(int port) {
  std::string cmd = "ss -K -tn '( sport = :" + std::to_string(port) + " )' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct Side {
  std::shared_ptr<WanLink> link;
  std::unique_ptr<WanConnection> conn;
  std::unique_ptr<WanProxy> proxy;
};

struct HealPair {
  Fd listenA;  // rank 0's listener: only probed
  int portB = 0;
  Side a, b;   // rank 0 (dials), rank 1 (answers)
};

// `answer`: rank 1 runs a ResumeAcceptor on its listener (false: nobody ever answers).
std::unique_ptr<HealPair> makePair(int streams, WanOptions opt, milliseconds timeout, bool answer = true) {
  auto p = std::make_unique<HealPair>();
  p->listenA = tcpListen(sockAddrOf("127.0.0.1", 0));
  Fd listenB = tcpListen(sockAddrOf("127.0.0.1", 0));
  const SockAddr addrA = localAddr(p->listenA.get()), addrB = localAddr(listenB.get());
  p->portB = addrB.port();
  std::vector<Fd> fa, fb;
  for (int i = 0; i < streams; ++i) {
    fa.push_back(tcpConnect(addrB, Clock::now() + std::chrono::seconds(5)));
    fb.emplace_back(::accept4(listenB.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  auto side = [&](Side& s, const std::string& label, std::vector<Fd> fds, bool dialer,
                  const SockAddr& peer, int rank) {
    WanOptions o = opt;
    o.tlsClient = dialer;  // with opt.tls: the side that dialed starts the handshake
    s.link = std::make_shared<WanLink>(label, std::move(fds), o);
    WanResume r;
    r.dialer = dialer;
    r.peer = peer;
    r.hello = ResumeHello{ResumeHello::kMagic, rank, 0, 0, kJob, 0};
    r.prepare = [](int fd) { setKeepAlive(fd, milliseconds(10000)); };
    r.timeout = timeout;
    r.secret = kSecret;
    s.link->enableResume(std::move(r));
    s.conn = std::make_unique<WanConnection>(1 - rank, label, s.link, 0);
  };
  side(p->a, "rank 1 (WAN streams)", std::move(fa), true, addrB, 0);
  side(p->b, "rank 0 (WAN streams)", std::move(fb), false, addrA, 1);
  p->a.proxy = std::make_unique<WanProxy>(std::vector<WanLink*>{p->a.link.get()});
  std::unique_ptr<ResumeAcceptor> acceptor;
  if (answer) {
    acceptor = std::make_unique<ResumeAcceptor>(std::move(listenB), kSecret);
    acceptor->add(kJob, 0, 0, p->b.link.get());
  } else {
    static std::vector<Fd> keep;  // a listener nobody accepts from: calls hang in its backlog
    keep.push_back(std::move(listenB));
  }
  p->b.proxy = std::make_unique<WanProxy>(std::vector<WanLink*>{p->b.link.get()}, std::move(acceptor));
  return p;
}

bool ssCanKill() {
  static const bool ok = [] {
    Fd l = tcpListen(sockAddrOf("127.0.0.1", 0));
    Fd c = tcpConnect(localAddr(l.get()), Clock::now() + std::chrono::seconds(2));
    Fd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!killSocket(localAddr(c.get()).port())) return false;
    char b;
    return ::recv(s.get(), &b, 1, 0) < 0;  // the peer saw the reset
  }();
  return ok;
}

// Resets random streams of a busy link, a dozen times; every byte must arrive once, in place.
void resetStreamsUnderAnExchange(WanOptions opt) {
  opt.frameBytes = 16 << 10;
  opt.windowBytes = 512 << 10;  // many frames in flight and unacknowledged at every kill
  auto p = makePair(4, opt, milliseconds(20000));
  constexpr int kMessages = 48;
  constexpr size_t kBytes = 1 << 20;
  Status sa, sb;
  std::atomic<int> running{2};
  std::thread ta([&] { sa = exchange(*p->a.conn, 0, kMessages, kBytes, milliseconds(60000)); --running; });
  std::thread tb([&] { sb = exchange(*p->b.conn, 1, kMessages, kBytes, milliseconds(60000)); --running; });
  std::mt19937 rng(7);
  int kills = 0;
  while (running.load() == 2 && kills < 12) {
    std::this_thread::sleep_for(milliseconds(5 + rng() % 40));
    std::vector<int> ports = dialerPorts(p->portB);
    if (!ports.empty() && killSocket(ports[rng() % ports.size()])) ++kills;
  }
  ta.join();
  tb.join();
  EXPECT_TRUE(sa.isOk()) << sa.message();
  EXPECT_TRUE(sb.isOk()) << sb.message();
  EXPECT_GE(kills, 3) << "the exchange ended before the streams were reset often enough";
}

TEST(WanHeal, ResetStreamsHealAndEveryByteArrivesOnceInPlace) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  resetStreamsUnderAnExchange(WanOptions{});
}

// XSITE_WAN_TLS: a re-opened stream runs a fresh TLS handshake before it carries frames again.
TEST(WanHeal, TlsStreamsHealToo) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  WanOptions opt;
  opt.tls = std::make_shared<const TlsContext>(kSecret);
  resetStreamsUnderAnExchange(opt);
}

TEST(WanHeal, EveryStreamResetAtOnceHeals) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  auto p = makePair(3, WanOptions{}, milliseconds(20000));
  Status sa, sb;
  std::thread ta([&] { sa = exchange(*p->a.conn, 0, 16, 1 << 20, milliseconds(60000)); });
  std::thread tb([&] { sb = exchange(*p->b.conn, 1, 16, 1 << 20, milliseconds(60000)); });
  std::this_thread::sleep_for(milliseconds(30));
  for (int port : dialerPorts(p->portB)) killSocket(port);
  ta.join();
  tb.join();
  EXPECT_TRUE(sa.isOk()) << sa.message();
  EXPECT_TRUE(sb.isOk()) << sb.message();
}

TEST(WanHeal, AStreamOfAnIdleLinkHealsWithoutItsOwnerLooking) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  auto p = makePair(2, WanOptions{}, milliseconds(20000));
  const std::vector<int> before = dialerPorts(p->portB);
  ASSERT_EQ(before.size(), 2u);
  killSocket(before[0]);
  // Nobody calls progress(): the proxies notice, re-dial and answer.
  std::vector<int> after;
  for (auto t0 = Clock::now(); Clock::now() - t0 < std::chrono::seconds(3);) {
    std::this_thread::sleep_for(milliseconds(20));
    after = dialerPorts(p->portB);
    if (after.size() == 2 && std::find(after.begin(), after.end(), before[0]) == after.end() &&
        !p->a.link->healing() && !p->b.link->healing())
      break;
  }
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(std::find(after.begin(), after.end(), before[0]), after.end()) << "stream 0 was not re-dialed";
  EXPECT_FALSE(p->a.link->healing());
  EXPECT_FALSE(p->b.link->healing());
  Status sa, sb;
  std::thread ta([&] { sa = exchange(*p->a.conn, 0, 4, 1 << 20, milliseconds(20000)); });
  sb = exchange(*p->b.conn, 1, 4, 1 << 20, milliseconds(20000));
  ta.join();
  EXPECT_TRUE(sa.isOk()) << sa.message();
  EXPECT_TRUE(sb.isOk()) << sb.message();
}

// Someone who knows the job id and the wire format but not the secret calls the WAN listener
// and asks to take over a stream: refused, and the link carries on untouched.
TEST(WanHeal, AStrangerCannotReopenAStream) {
  auto p = makePair(2, WanOptions{}, milliseconds(20000));
  SockAddr b = sockAddrOf("127.0.0.1", p->portB);
  for (const bootstrap::JobSecret* who : {&kSecret, static_cast<const bootstrap::JobSecret*>(nullptr)}) {
    const bootstrap::JobSecret stranger("not-the-secret-of-job-42-000000");
    Fd fd = tcpConnect(b, Clock::now() + std::chrono::seconds(2));
    bootstrap::AuthChallenge c{};
    ASSERT_TRUE(readAll(fd.get(), &c, sizeof(c), Clock::now() + std::chrono::seconds(2)).isOk());
    struct {
      bootstrap::AuthResponse response;
      ResumeHello hello;
    } out{};
    if (who != nullptr) {  // a replay: a response made for another challenge
      const bootstrap::AuthChallenge old = kSecret.challenge();
      ASSERT_TRUE(kSecret.respond(old, out.response, "test").isOk());
    } else {
      ASSERT_TRUE(stranger.respond(c, out.response, "test").isOk());
    }
    out.hello = ResumeHello{ResumeHello::kMagic, 0, 0, 0, kJob, 0};
    ASSERT_TRUE(writeAll(fd.get(), &out, sizeof(out), Clock::now() + std::chrono::seconds(2)).isOk());
    char buf[64];
    const Status s = readAll(fd.get(), buf, 1, Clock::now() + std::chrono::seconds(2));
    EXPECT_FALSE(s.isOk()) << "the listener answered a stranger";
  }
  EXPECT_FALSE(p->b.link->healing());
  Status sa, sb;
  std::thread ta([&] { sa = exchange(*p->a.conn, 0, 2, 1 << 20, milliseconds(20000)); });
  sb = exchange(*p->b.conn, 1, 2, 1 << 20, milliseconds(20000));
  ta.join();
  EXPECT_TRUE(sa.isOk()) << sa.message();
  EXPECT_TRUE(sb.isOk()) << sb.message();
}

TEST(WanHeal, APeerWhoseListenerRefusesIsNamedAtOnce) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  auto p = makePair(2, WanOptions{}, milliseconds(60000));
  p->b.proxy.reset();  // rank 1's listener closes: its process is gone, as far as rank 0 can tell
  std::vector<uint8_t> buf(4096);
  const uint64_t t = p->a.conn->postRecv(buf.data(), buf.size());
  for (int port : dialerPorts(p->portB)) killSocket(port);
  const auto t0 = Clock::now();
  const Status s = waitFailed(*p->a.conn, t);
  ASSERT_FALSE(s.isOk());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(s.category(), ErrorCategory::kRemote);
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("refuses connections"), std::string::npos) << s.message();
}

TEST(WanHeal, AStreamThatCannotBeReopenedFailsAfterTheReconnectTimeout) {
  if (!ssCanKill()) GTEST_SKIP() << "this kernel cannot destroy sockets (ss -K: CONFIG_INET_DIAG_DESTROY)";
  auto p = makePair(2, WanOptions{}, milliseconds(1500), /*answer=*/false);
  std::vector<uint8_t> buf(4096);
  const uint64_t t = p->a.conn->postRecv(buf.data(), buf.size());
  killSocket(dialerPorts(p->portB).at(0));
  const auto t0 = Clock::now();
  const Status s = waitFailed(*p->a.conn, t);
  ASSERT_FALSE(s.isOk());
  EXPECT_GE(Clock::now() - t0, milliseconds(1400));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(s.message().find("XSITE_WAN_RECONNECT_TIMEOUT"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("WAN stream 0 broke"), std::string::npos) << s.message();
}

TEST(WanHeal, KeepAliveAndUserTimeoutReachTheKernel) {
  Fd l = tcpListen(sockAddrOf("127.0.0.1", 0));
  Fd c = tcpConnect(localAddr(l.get()), Clock::now() + std::chrono::seconds(2));
  setKeepAlive(c.get(), milliseconds(30000));
  auto opt = [&](int level, int name) {
    int v = -1;
    socklen_t n = sizeof(v);
    EXPECT_EQ(::getsockopt(c.get(), level, name, &v, &n), 0);
    return v;
  };
  EXPECT_EQ(opt(SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(opt(IPPROTO_TCP, TCP_USER_TIMEOUT), 30000);
  EXPECT_EQ(opt(IPPROTO_TCP, TCP_KEEPIDLE), 10);  // well under a middlebox's idle timer
  EXPECT_EQ(opt(IPPROTO_TCP, TCP_KEEPCNT), 3);
  Fd d = tcpConnect(localAddr(l.get()), Clock::now() + std::chrono::seconds(2));
  setKeepAlive(d.get(), milliseconds(0));  // off: the kernel's defaults stay
  int v = -1;
  socklen_t n = sizeof(v);
  ::getsockopt(d.get(), SOL_SOCKET, SO_KEEPALIVE, &v, &n);
  EXPECT_EQ(v, 0);
}

// A congestion control the kernel refuses leaves the socket usable with its own, and says so
// once per process, naming the one in use, how to load it and the setting that chose it.
std::vector<std::string> warnings;
TEST(WanHeal, ARefusedCongestionControlIsWarnedOfOnceNamingTheSetting) {
  log::setSink([](log::Level level, uint32_t, const char* line) {
    if (level == log::Level::kWarn) warnings.emplace_back(line);
  });
  for (int i = 0; i < 2; ++i) {
    Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
    prepareWanSocket(fd.get(), 0, "no_such_cc", "XSITE_WAN_CC_LATENCY");
    EXPECT_NE(congestionControl(fd.get()), "no_such_cc");
  }
  log::setSink(nullptr);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("'no_such_cc'"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("modprobe tcp_no_such_cc"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("XSITE_WAN_CC_LATENCY"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace xsite::transport::wan
