// The rendezvous store, in-process and over TCP on 127.0.0.1: set/get, blocking waits, timeouts
// that name what is missing, allGather across threads, and a client with no server.
#include "bootstrap/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace xsite::bootstrap
