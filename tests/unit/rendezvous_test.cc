// Meeting the other ranks (bootstrap/rendezvous.h) over a real TCP store on 127.0.0.1: a store
// that holds something else under "job", and a second job that reaches the store of a first
// (jobs sharing MASTER_PORT by mistake), fail fast with an error naming the cause.
#include "bootstrap/rendezvous.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/socket.h"
#include "xsite/error.h"

namespace xsite::bootstrap {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kTimeout{20000};  // what a failing rank must not wait out
constexpr milliseconds kFast{3000};      // "fails fast", on a loaded 2-core machine

params::Params paramsWith(std::map<std::string, std::string> env) {
  return params::Params([env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

params::Params storeAt(const std::string& addr) {
  return paramsWith({{"XSITE_STORE_ADDR", addr}, {"XSITE_LISTEN_ADDR", "127.0.0.1"}});
}

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The error a Rendezvous of `rank` of `world` throws, and how long it took; fails the test when
// it throws something else or nothing.
struct Failure {
  ErrorCategory category = ErrorCategory::kInternal;
  std::string message;
  double ms = 0;
};
Failure rendezvousFailure(const params::Params& p, int rank, int world) {
  Failure f;
  const auto t0 = Clock::now();
  try {
    Rendezvous r(p, rank, world, kTimeout);
    ADD_FAILURE() << "rank " << rank << " of " << world << " met a store it should not have";
  } catch (const Error& e) {
    f.category = e.category();
    f.message = e.what();
  }
  f.ms = msSince(t0);
  return f;
}

// A store whose "job" is not one that rank 0 of an xsite job wrote: the rank used to die of an
// uncaught std::invalid_argument (SIGABRT) from std::stoull.
TEST(Rendezvous, MalformedJobIsAnErrorNamingTheKey) {
  for (const std::string bad : {"hello", "123abc 2", "", "-5 2", "12345", "7 2 junk"}) {
    SCOPED_TRACE("job='" + bad + "'");
    TcpStoreServer server(sockAddrOf("127.0.0.1", 0));
    TcpStore(server.address(), kTimeout).set("job", bad);
    Failure f = rendezvousFailure(storeAt(server.address().toString()), 1, 2);
    EXPECT_EQ(f.category, ErrorCategory::kRemote);
    EXPECT_THAT(f.message, AllOf(HasSubstr("rank 1"), HasSubstr("job='" + bad.substr(0, 8)),
                                 HasSubstr("not a job id"),
                                 HasSubstr("the store belongs to another job or program")));
    EXPECT_LT(f.ms, kFast.count());
  }
}

// Job A (2 ranks) serves its store; job B was given the same address. B's rank 0 cannot serve
// it, B's rank 1 finds rank 1 taken, and B's rank 3 of 4 finds a job of 2 ranks: all three fail at
// once, naming the cause, and job A carries on.
TEST(Rendezvous, SecondJobOnTheSameStoreFailsFast) {
  int port;
  {
    Fd probe = tcpListen(sockAddrOf("127.0.0.1", 0));
    port = localAddr(probe.get()).port();
  }
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  const params::Params p = storeAt(addr);
  std::unique_ptr<Rendezvous> a0, a1;
  std::thread t([&] { a1 = std::make_unique<Rendezvous>(p, 1, 2, kTimeout); });
  a0 = std::make_unique<Rendezvous>(p, 0, 2, kTimeout);
  t.join();
  ASSERT_TRUE(a0 && a1);
  EXPECT_EQ(a0->job(), a1->job());

  Failure b0 = rendezvousFailure(p, 0, 2);
  EXPECT_THAT(b0.message, AllOf(HasSubstr("rank 0 cannot serve the rendezvous store at " + addr),
                                HasSubstr("another job")));
  Failure b1 = rendezvousFailure(p, 1, 2);
  EXPECT_EQ(b1.category, ErrorCategory::kInvalidUsage);
  EXPECT_THAT(b1.message, AllOf(HasSubstr("rank 1 of 2: the store at " + addr),
                                HasSubstr("already has a rank 1"),
                                HasSubstr("the store belongs to another job")));
  Failure b3 = rendezvousFailure(p, 3, 4);
  EXPECT_EQ(b3.category, ErrorCategory::kInvalidUsage);
  EXPECT_THAT(b3.message, AllOf(HasSubstr("rank 3 of 4"), HasSubstr("serves a job of 2 ranks"),
                                HasSubstr("the store belongs to another job")));
  for (const Failure* f : {&b0, &b1, &b3}) EXPECT_LT(f->ms, kFast.count()) << f->message;

  // Job A was not disturbed: its ranks still meet.
  std::thread l([&] { a1->leave(); });
  EXPECT_NO_THROW(a0->leave());
  l.join();
}

TEST(Rendezvous, OneRankNeedsNoAddress) {
  Rendezvous r(paramsWith({}), 0, 1, kTimeout);
  r.store().set("k", "v");
  EXPECT_EQ(r.store().get("k", kTimeout), "v");
  EXPECT_EQ(r.listenIp(), "127.0.0.1");
  r.leave();
}

TEST(Addresses, IPv4AndIPv6FormsParse) {
  EXPECT_EQ(parseSockAddr("10.0.0.1:1234").toString(), "10.0.0.1:1234");
  EXPECT_EQ(parseSockAddr("[fd00::1]:1234").toString(), "[fd00::1]:1234");
  EXPECT_EQ(parseSockAddr("[fd00::1]:1234").ip(), "fd00::1");
  EXPECT_EQ(parseSockAddr("fd00::1", 99).toString(), "[fd00::1]:99");  // no port: a bare IPv6
  EXPECT_EQ(parseSockAddr("[::1]", 7).port(), 7);
  EXPECT_EQ(parseSockAddr("10.0.0.1", 5).family(), AF_INET);
  EXPECT_EQ(parseSockAddr("[::1]:5").family(), AF_INET6);
  EXPECT_TRUE(parseSockAddr("[::1]:5").loopback());
  EXPECT_TRUE(parseSockAddr("127.3.0.1:5").loopback());
  EXPECT_FALSE(parseSockAddr("[fd00::1]:5").loopback());
  EXPECT_THROW(parseSockAddr("fd00::1"), Error);        // no port and none to default to
  EXPECT_THROW(parseSockAddr("[fd00::1]:x"), Error);
  EXPECT_THROW(parseSockAddr("10.0.0.1:70000"), Error);
  for (const char* text : {"10.1.2.3:4567", "[fd00:200:1::2]:65535"}) {
    const SockAddr a = parseSockAddr(text);
    EXPECT_EQ(SockAddr::fromWire(a.wire()).toString(), text) << "through a handle and back";
  }
}

// The store and the rendezvous over IPv6 loopback: real sockets, store address in brackets.
TEST(Addresses, RendezvousOverIPv6) {
  Fd probe = tcpListen(sockAddrOf("::1", 0));
  const std::string addr = "[::1]:" + std::to_string(localAddr(probe.get()).port());
  probe.reset();
  auto p = paramsWith({{"XSITE_STORE_ADDR", addr}});
  std::thread other([&] {
    Rendezvous r(p, 1, 2, kTimeout);
    EXPECT_EQ(r.listenIp(), "::1") << "the address that routes to the store";
    r.leave();
  });
  Rendezvous r(p, 0, 2, kTimeout);
  r.store().set("k", "v6");
  EXPECT_EQ(r.store().get("k", kTimeout), "v6");
  r.leave();
  other.join();
}

}  // namespace
}  // namespace xsite::bootstrap
