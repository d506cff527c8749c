// The rendezvous store, in-process and over TCP on 127.0.0.1: set/get, blocking waits, timeouts
// that name what is missing, allGather across threads, and a client with no server. Then the TCP
// server against clients that misbehave (raw sockets): every cap refuses the one client, names
// itself in the reply and the log, and the well-behaved clients carry on.
#include "bootstrap/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/log.h"
#include "util/socket.h"
#include "xsite/error.h"

namespace xsite::bootstrap {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kLong{10000};  // waits that must succeed
constexpr milliseconds kSlack{1500};  // how late a timeout may fire on a loaded 2-core machine

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Lets every thread hold "its own" client whatever the backend.
class Forward final : public Store {
 public:
  explicit Forward(Store& s) : s_(s) {}
  void set(const std::string& k, const std::string& v) override { s_.set(k, v); }
  std::string setIfAbsent(const std::string& k, const std::string& v) override {
    return s_.setIfAbsent(k, v);
  }
  bool waitFor(const std::vector<std::string>& keys, Duration timeout,
               std::vector<std::string>& out) override {
    return s_.waitFor(keys, timeout, out);
  }

 private:
  Store& s_;
};

enum class Backend { kInProcess, kTcp };

class StoreTest : public ::testing::TestWithParam<Backend> {
 public:
  void SetUp() override {
    if (GetParam() == Backend::kTcp)
      server_ = std::make_unique<TcpStoreServer>(sockAddrOf("127.0.0.1", 0));
  }
  // A new client (TCP: a new connection); safe to call from any thread.
  std::unique_ptr<Store> client() {
    if (GetParam() == Backend::kInProcess) return std::make_unique<Forward>(local_);
    return std::make_unique<TcpStore>(server_->address(), milliseconds(5000));
  }

 protected:
  InProcessStore local_;
  std::unique_ptr<TcpStoreServer> server_;
};

TEST_P(StoreTest, SetThenGet) {
  auto a = client(), b = client();
  a->set("k1", "v1");
  a->set("empty", "");
  std::string binary("x\0y\xff", 4);
  a->set("bin", binary);
  EXPECT_EQ(b->get("k1", kLong), "v1");
  EXPECT_EQ(b->get("empty", kLong), "");
  EXPECT_EQ(b->get("bin", kLong), binary);
  EXPECT_THAT(b->get({"bin", "k1", "empty"}, kLong), ElementsAre(binary, "v1", ""));
  a->set("k1", "v2");  // overwrite
  EXPECT_EQ(b->get("k1", kLong), "v2");
  std::vector<std::string> out{"stale"};
  EXPECT_TRUE(b->waitFor({}, milliseconds(0), out));
  EXPECT_TRUE(out.empty());
}

TEST_P(StoreTest, SetIfAbsentKeepsTheFirstValue) {
  auto a = client(), b = client();
  EXPECT_EQ(a->setIfAbsent("claim", "a"), "a");
  EXPECT_EQ(b->setIfAbsent("claim", "b"), "a");
  EXPECT_EQ(b->get("claim", kLong), "a");
  b->set("claim", "b");  // a plain set still overwrites
  EXPECT_EQ(a->setIfAbsent("claim", "c"), "b");
  EXPECT_EQ(a->setIfAbsent("empty", ""), "");
  EXPECT_EQ(b->setIfAbsent("empty", "x"), "");
}

TEST_P(StoreTest, SetIfAbsentRaceHasOneWinner) {
  constexpr int kThreads = 6;
  std::vector<std::string> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] { seen[t] = client()->setIfAbsent("race", std::to_string(t)); });
  for (auto& t : threads) t.join();
  int winners = 0;
  for (int t = 0; t < kThreads; ++t) {
    winners += seen[t] == std::to_string(t);
    EXPECT_EQ(seen[t], seen[0]);
  }
  EXPECT_EQ(winners, 1);
}

TEST_P(StoreTest, LargeValue) {
  auto a = client(), b = client();
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 12));
  a->set("big", big);
  EXPECT_EQ(b->get("big", kLong), big);
}

TEST_P(StoreTest, GetBlocksUntilAnotherThreadSets) {
  auto waiter = client(), setter = client();
  std::atomic<bool> setDone{false};
  auto t0 = Clock::now();
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(150));
    setDone = true;
    setter->set("late", "here");
  });
  std::string v = waiter->get("late", kLong);
  double ms = msSince(t0);
  t.join();
  EXPECT_EQ(v, "here");
  EXPECT_TRUE(setDone.load());
  EXPECT_GE(ms, 140);
  EXPECT_LT(ms, 150 + kSlack.count());
}

TEST_P(StoreTest, WaitForTimeoutReturnsTheMissingKeys) {
  auto c = client();
  c->set("a", "1");
  c->set("c", "3");
  std::vector<std::string> out;
  auto t0 = Clock::now();
  bool ok = c->waitFor({"a", "b", "c", "d"}, milliseconds(300), out);
  double ms = msSince(t0);
  EXPECT_FALSE(ok);
  EXPECT_THAT(out, ElementsAre("b", "d"));
  EXPECT_GE(ms, 290);
  EXPECT_LT(ms, 300 + kSlack.count());
  // A zero timeout answers at once.
  t0 = Clock::now();
  EXPECT_FALSE(c->waitFor({"zzz"}, milliseconds(0), out));
  EXPECT_THAT(out, ElementsAre("zzz"));
  EXPECT_LT(msSince(t0), kSlack.count());
}

TEST_P(StoreTest, GetTimeoutThrowsNamingTheKeys) {
  auto c = client();
  c->set("present", "1");
  try {
    c->get({"present", "absent1", "absent2"}, milliseconds(100));
    FAIL() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kTimeout);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("absent1, absent2"), HasSubstr("100 ms"),
                                Not(HasSubstr("present"))));
  }
}

TEST_P(StoreTest, AllGatherAcrossThreads) {
  constexpr int kRanks = 6;
  std::vector<std::vector<std::string>> got(kRanks);
  std::vector<std::string> errors(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r)
    threads.emplace_back([&, r] {
      try {
        auto c = client();
        // Two rounds on one client: prefixes keep them apart.
        got[r] = allGather(*c, "ag", r, kRanks, "value-" + std::to_string(r), kLong);
        auto second = allGather(*c, "ag2", r, kRanks, std::to_string(r * r), kLong);
        if (second.size() != kRanks || second[kRanks - 1] != std::to_string((kRanks - 1) * (kRanks - 1)))
          errors[r] = "second round wrong";
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(errors[r], "") << "rank " << r;
    ASSERT_EQ(got[r].size(), static_cast<size_t>(kRanks)) << "rank " << r;
    for (int q = 0; q < kRanks; ++q) EXPECT_EQ(got[r][q], "value-" + std::to_string(q));
  }
}

// Runs allGather on `present` ranks of `size` with a 400 ms timeout; every one must time out
// with `expected` in its message, in about 400 ms.
void expectAllGatherTimeout(StoreTest& fx, std::vector<int> present, int size,
                            const std::string& expected) {
  constexpr milliseconds kTimeout{400};
  std::vector<std::string> messages(present.size());
  std::vector<ErrorCategory> categories(present.size(), ErrorCategory::kInternal);
  std::vector<double> elapsed(present.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < present.size(); ++i)
    threads.emplace_back([&, i] {
      auto c = fx.client();
      auto t0 = Clock::now();
      try {
        allGather(*c, "boot", present[i], size, "x", kTimeout);
        messages[i] = "returned without error";
      } catch (const Error& e) {
        messages[i] = e.what();
        categories[i] = e.category();
      }
      elapsed[i] = msSince(t0);
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < present.size(); ++i) {
    SCOPED_TRACE("rank " + std::to_string(present[i]));
    EXPECT_EQ(categories[i], ErrorCategory::kTimeout);
    EXPECT_THAT(messages[i], AllOf(HasSubstr(expected), HasSubstr("'boot'"), HasSubstr("0.4 s")));
    EXPECT_GE(elapsed[i], kTimeout.count() - 10);
    EXPECT_LT(elapsed[i], kTimeout.count() + kSlack.count());
  }
}

TEST_P(StoreTest, AllGatherTimeoutNamesTheOneMissingRank) {
  expectAllGatherTimeout(*this, {0, 1, 3}, 4, "rank 2 of 4 never arrived");
}

TEST_P(StoreTest, AllGatherTimeoutNamesTheMissingRanks) {
  expectAllGatherTimeout(*this, {0, 2}, 4, "ranks 1, 3 of 4 never arrived");
}

TEST_P(StoreTest, AllGatherTimeoutWithManyRanksListsThemInOrder) {
  expectAllGatherTimeout(*this, {0}, 12, "ranks 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 of 12");
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kInProcess, Backend::kTcp),
                         [](const auto& info) {
                           return info.param == Backend::kTcp ? "Tcp" : "InProcess";
                         });

TEST(TcpStore, ConnectingToNoServerFailsWithinTheConnectTimeout) {
  // A port that was free a moment ago; nobody listens on it now.
  int port;
  {
    Fd probe = tcpListen(sockAddrOf("127.0.0.1", 0));
    port = localAddr(probe.get()).port();
  }
  SockAddr addr = sockAddrOf("127.0.0.1", port);
  auto t0 = Clock::now();
  try {
    TcpStore store(addr, milliseconds(300));
    FAIL() << "connected to a port nobody listens on";
  } catch (const Error& e) {
    double ms = msSince(t0);
    EXPECT_EQ(e.category(), ErrorCategory::kTimeout);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("cannot reach the rendezvous store"),
                                HasSubstr("127.0.0.1:" + std::to_string(port)),
                                HasSubstr("XSITE_STORE_ADDR")));
    EXPECT_LT(ms, 300 + kSlack.count());
  }
}

TEST(TcpStore, ClientMayStartBeforeTheServer) {
  int port;
  {
    Fd probe = tcpListen(sockAddrOf("127.0.0.1", 0));
    port = localAddr(probe.get()).port();
  }
  std::unique_ptr<TcpStoreServer> server;
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(150));
    server = std::make_unique<TcpStoreServer>(sockAddrOf("127.0.0.1", port));
  });
  std::unique_ptr<TcpStore> c;
  EXPECT_NO_THROW(c = std::make_unique<TcpStore>(sockAddrOf("127.0.0.1", port), milliseconds(5000)));
  t.join();
  if (c) {
    c->set("k", "v");
    EXPECT_EQ(c->get("k", kLong), "v");
  }
}

TEST(TcpStore, ServerGoneIsAnErrorNotAHang) {
  auto server = std::make_unique<TcpStoreServer>(sockAddrOf("127.0.0.1", 0));
  TcpStore c(server->address(), milliseconds(5000));
  c.set("k", "v");
  server.reset();
  auto t0 = Clock::now();
  EXPECT_THROW(c.get("missing", milliseconds(200)), Error);
  EXPECT_LT(msSince(t0), 200 + kSlack.count());
}

// ---- clients that misbehave -------------------------------------------------------------------

// Collects the WARN lines of the bootstrap subsystem while in scope (the store thread logs).
class WarnLog {
 public:
  WarnLog() {
    std::lock_guard<std::mutex> lk(mu());
    lines().clear();
    log::configure(log::Level::kWarn, log::kAll);
    log::setSink([](log::Level level, uint32_t subsys, const char* line) {
      if (level != log::Level::kWarn || subsys != log::kBootstrap) return;
      std::lock_guard<std::mutex> lk(mu());
      lines().emplace_back(line);
    });
  }
  ~WarnLog() { log::setSink(nullptr); }
  // Waits up to `bound` for a line containing `text`.
  bool has(const std::string& text, milliseconds bound = kSlack) const {
    for (auto t0 = Clock::now(); Clock::now() - t0 < bound;
         std::this_thread::sleep_for(milliseconds(10))) {
      std::lock_guard<std::mutex> lk(mu());
      for (const auto& l : lines())
        if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::vector<std::string>& lines() {
    static std::vector<std::string> l;
    return l;
  }
};

// A client that speaks the store's framing by hand: [u32 length][payload].
class RawClient {
 public:
  // Connects and answers the job-secret challenge (no secret; `authenticate` false: a client
  // the store refuses at once): from then on it speaks raw bytes.
  explicit RawClient(const SockAddr& server, bool authenticate = true)
      : fd_(tcpConnect(server, Clock::now() + kLong)) {
    if (authenticate) {
      EXPECT_TRUE(authenticateToListener(fd_.get(), JobSecret{}, Clock::now() + kLong, "store").isOk());
    }
  }
  int fd() const { return fd_.get(); }
  void sendBytes(const std::string& bytes) {
    throwIfError(writeAll(fd_.get(), bytes.data(), bytes.size(), Clock::now() + kLong));
  }
  void sendFrame(const std::string& payload) { sendBytes(frame(payload)); }
  static std::string frame(const std::string& payload) { return u32(payload.size()) + payload; }
  static std::string u32(size_t v) {
    const auto x = static_cast<uint32_t>(v);
    return std::string(reinterpret_cast<const char*>(&x), 4);
  }
  static std::string str(const std::string& s) { return u32(s.size()) + s; }
  static std::string setRequest(const std::string& k, const std::string& v) {
    return std::string(1, '\1') + str(k) + str(v);
  }
  static std::string waitRequest(const std::vector<std::string>& keys, uint32_t ms) {
    std::string r(1, '\2');
    r += u32(ms) + u32(keys.size());
    for (const auto& k : keys) r += str(k);
    return r;
  }
  // The next reply's payload; nullopt when the connection closed (or nothing came in time).
  std::optional<std::string> readFrame(milliseconds bound = kLong) {
    uint32_t len = 0;
    if (!readAll(fd_.get(), &len, 4, Clock::now() + bound)) return std::nullopt;
    std::string p(len, '\0');
    if (!readAll(fd_.get(), p.data(), len, Clock::now() + bound)) return std::nullopt;
    return p;
  }
  // The server refused this client: an error reply naming `cap`, then the connection closes.
  void expectRefused(const std::string& cap) {
    auto reply = readFrame();
    ASSERT_TRUE(reply.has_value()) << "no error reply";
    ASSERT_FALSE(reply->empty());
    EXPECT_EQ((*reply)[0], 2) << "not an error reply";
    EXPECT_THAT(*reply, HasSubstr(cap));
    expectClosed();
  }
  void expectClosed() {
    char c;
    for (auto t0 = Clock::now(); Clock::now() - t0 < kLong;) {
      pollfd p{fd_.get(), POLLIN, 0};
      ::poll(&p, 1, 100);
      const ssize_t r = ::recv(fd_.get(), &c, 1, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return;
    }
    ADD_FAILURE() << "the server kept the connection open";
  }

 private:
  Fd fd_;
};

// A well-behaved client, meanwhile, still gets its set and get done within `bound` each.
void expectServed(const SockAddr& server, const std::string& tag, milliseconds bound = kSlack) {
  auto t0 = Clock::now();
  TcpStore c(server, kLong);
  c.set("fine/" + tag, tag);
  EXPECT_EQ(c.get("fine/" + tag, kLong), tag);
  EXPECT_LT(msSince(t0), bound.count()) << tag;
}

// What a cap test expects of the client that broke it: a kRemote error naming the cap.
void expectCapError(const std::function<void()>& op, const std::string& cap) {
  try {
    op();
    ADD_FAILURE() << "no error for the " << cap;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRemote);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("disconnected this client"), HasSubstr(cap)));
  }
}

TEST(TcpStoreLimits, ClientCap) {
  WarnLog warnings;
  StoreLimits limits;
  limits.maxClients = 2;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), limits);
  auto a = std::make_unique<TcpStore>(server.address(), kLong);
  TcpStore b(server.address(), kLong);
  a->set("k", "v");
  EXPECT_EQ(b.get("k", kLong), "v");
  RawClient third(server.address(), /*authenticate=*/false);
  third.expectRefused("at most 2 clients at once (its client cap)");
  EXPECT_TRUE(warnings.has("client cap"));
  // Connects (the kernel accepts), then is told instead of challenged.
  expectCapError([&] { TcpStore fourth(server.address(), kLong); }, "client cap");
  EXPECT_EQ(b.get("k", kLong), "v");
  // A client that leaves frees its place.
  a.reset();
  bool served = false;
  for (auto t0 = Clock::now(); !served && Clock::now() - t0 < kSlack;) {
    try {
      TcpStore again(server.address(), kLong);
      EXPECT_EQ(again.get("k", kLong), "v");
      served = true;
    } catch (const Error&) {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  EXPECT_TRUE(served);
}

TEST(TcpStoreLimits, BufferCapOnARequest) {
  WarnLog warnings;
  StoreLimits limits;
  limits.maxClientBytes = 64 << 10;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), limits);
  RawClient raw(server.address());
  raw.sendBytes(RawClient::u32(1 << 20) + "\1");  // announces 1 MiB: refused before it arrives
  raw.expectRefused("a request of 1048576 bytes is past the buffer cap of 65536 bytes per client");
  EXPECT_TRUE(warnings.has("buffer cap"));
  expectServed(server.address(), "after-big-request");
  // Through the client: the value alone is past the cap. The server may reset the connection
  // before the client reads why, so only the error itself is certain.
  TcpStore c(server.address(), kLong);
  EXPECT_THROW(c.set("big", std::string(100 << 10, 'x')), Error);
  expectServed(server.address(), "after-big-set");
}

TEST(TcpStoreLimits, BufferCapOnRequestsSentWithoutWaiting) {
  WarnLog warnings;
  StoreLimits limits;
  limits.maxClientBytes = 64 << 10;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), limits);
  RawClient raw(server.address());
  // A pending wait, then more requests than the cap behind it: they are not read on credit.
  std::string burst = RawClient::frame(RawClient::waitRequest({"never"}, 60000));
  while (burst.size() < (200u << 10))
    burst += RawClient::frame(RawClient::setRequest("k", std::string(1000, 'y')));
  raw.sendBytes(burst);
  raw.expectRefused("without waiting for its replies, past the buffer cap of 65536 bytes");
  EXPECT_TRUE(warnings.has("buffer cap"));
  expectServed(server.address(), "after-burst");
}

TEST(TcpStoreLimits, RequestsOfOneClientAreAnsweredInOrder) {
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0));
  RawClient raw(server.address());
  // A wait, and behind it a set: the set's answer must not overtake the wait's.
  raw.sendBytes(RawClient::frame(RawClient::waitRequest({"later"}, 10000)) +
                RawClient::frame(RawClient::setRequest("mine", "1")));
  std::this_thread::sleep_for(milliseconds(100));
  TcpStore other(server.address(), kLong);
  std::vector<std::string> out;
  EXPECT_FALSE(other.waitFor({"mine"}, milliseconds(0), out)) << "the set ran before the wait";
  other.set("later", "now");
  auto first = raw.readFrame(), second = raw.readFrame();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, std::string("\0", 1) + RawClient::u32(1) + RawClient::str("now"));
  EXPECT_EQ(*second, std::string("\0", 1));
  EXPECT_EQ(other.get("mine", kLong), "1");
}

TEST(TcpStoreLimits, KeyCap) {
  WarnLog warnings;
  StoreLimits limits;
  limits.maxKeysPerRequest = 4;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), limits);
  TcpStore c(server.address(), kLong);
  for (const char* k : {"a", "b", "c", "d", "e"}) c.set(k, k);
  EXPECT_THAT(c.get({"a", "b", "c", "d"}, kLong), ElementsAre("a", "b", "c", "d"));
  expectCapError(
      [&] {
        c.get({"a", "b", "c", "d", "e"}, kLong);
      },
      "a wait for 5 keys is past the key cap of 4 keys per request");
  EXPECT_TRUE(warnings.has("key cap"));
  expectServed(server.address(), "after-keys");
}

// One large value named many times: the reply would be 100 GB. The server sizes the answer before
// building it (it used to build it, and the store thread died of std::bad_alloc, and the process).
TEST(TcpStoreLimits, ReplyCapOnAWaitNamingOneKeyManyTimes) {
  WarnLog warnings;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0));  // the default caps
  TcpStore c(server.address(), kLong);
  c.set("big", std::string(1 << 20, 'b'));
  const std::vector<std::string> same(100000, "big");
  auto t0 = Clock::now();
  expectCapError([&] { c.get(same, kLong); }, "past the reply cap of 67108864 bytes");
  EXPECT_LT(msSince(t0), kSlack.count());
  EXPECT_TRUE(warnings.has("reply cap"));
  // The missing keys' answer is capped too: a zero-timeout wait for one long absent key, many
  // times.
  StoreLimits small;
  small.maxReplyBytes = 4096;
  TcpStoreServer server2(sockAddrOf("127.0.0.1", 0), small);
  TcpStore d(server2.address(), kLong);
  std::vector<std::string> out;
  expectCapError(
      [&] {
        d.waitFor(std::vector<std::string>(100, std::string(100, 'k')), milliseconds(0), out);
      },
      "reply cap of 4096 bytes");
  expectServed(server.address(), "after-reply");
  expectServed(server2.address(), "after-missing");
}

TEST(TcpStoreLimits, StoredBytesCap) {
  WarnLog warnings;
  StoreLimits limits;
  limits.maxStoredBytes = 1000;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0), limits);
  TcpStore a(server.address(), kLong), b(server.address(), kLong);
  a.set("a", std::string(600, 'a'));
  expectCapError([&] { b.set("b", std::string(600, 'b')); }, "past its stored-bytes cap of 1000");
  EXPECT_TRUE(warnings.has("stored-bytes cap"));
  a.set("a", std::string(300, 'a'));  // overwriting counts the new size only
  TcpStore c(server.address(), kLong);
  c.set("c", std::string(600, 'c'));
  EXPECT_EQ(a.get("c", kLong).size(), 600u);
}

TEST(TcpStoreLimits, UnknownRequestIsRefused) {
  WarnLog warnings;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0));
  RawClient raw(server.address());
  raw.sendFrame("GET / HTTP/1.0\r\n\r\n");
  raw.expectRefused("request type 71 is not one of the store's");
  RawClient empty(server.address());
  empty.sendFrame("");
  empty.expectRefused("malformed request");
  RawClient truncated(server.address());
  truncated.sendFrame(std::string(1, '\1') + RawClient::u32(1000) + "short");
  truncated.expectRefused("malformed request");
  EXPECT_TRUE(warnings.has("not one of the store's"));
  expectServed(server.address(), "after-garbage");
}

// A client floods requests whose replies are large and never reads them: the server queues them
// (it used to block in a write for 10 s per reply, stalling every other client) and drops the
// client once its queue is past the buffer cap, while a well-behaved client is served throughout.
TEST(TcpStoreLimits, ClientThatNeverReadsItsRepliesStallsNoOne) {
  WarnLog warnings;
  TcpStoreServer server(sockAddrOf("127.0.0.1", 0));  // the default caps
  TcpStore setter(server.address(), kLong);
  setter.set("big", std::string(1 << 20, 'b'));
  RawClient flood(server.address());
  const int rcvbuf = 4096;
  setsockopt(flood.fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += RawClient::frame(RawClient::waitRequest({"big"}, 0));
  flood.sendBytes(burst);  // 100 MiB of replies, past the 64 MiB cap
  for (int i = 0; i < 10; ++i) expectServed(server.address(), "during-flood-" + std::to_string(i));
  EXPECT_TRUE(warnings.has("does not read its replies", kLong));
  EXPECT_TRUE(warnings.has("past the buffer cap of 67108864 bytes per client"));
  expectServed(server.address(), "after-flood");
}

// The client checks the length a server announces before it allocates anything for the reply.
TEST(TcpStore, AnnouncedReplyPastTheCapIsAnErrorNotAnAllocation) {
  Fd listener = tcpListen(sockAddrOf("127.0.0.1", 0));
  const SockAddr addr = localAddr(listener.get());
  std::thread fake([&] {
    Fd conn(::accept(listener.get(), nullptr, nullptr));
    EXPECT_TRUE(authenticateCaller(conn.get(), JobSecret{}, Clock::now() + kLong, "client").isOk());
    char req[256];
    (void)!::recv(conn.get(), req, sizeof(req), 0);
    const uint32_t huge = 0xFFFFFFF0u;
    (void)!::send(conn.get(), &huge, 4, MSG_NOSIGNAL);
    std::this_thread::sleep_for(milliseconds(500));
  });
  TcpStore c(addr, kLong);
  auto t0 = Clock::now();
  try {
    c.set("k", "v");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRemote);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("4294967280 bytes"), HasSubstr("reply cap")));
  }
  EXPECT_LT(msSince(t0), kSlack.count());
  fake.join();
}

}  // namespace
}  // namespace xsite::bootstrap
