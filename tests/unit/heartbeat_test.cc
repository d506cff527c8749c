// Liveness (bootstrap/heartbeat.h) over a real TCP store on 127.0.0.1: the test plays the other
// ranks by writing their heartbeat keys itself (beating, standing still, saying done), and the
// Heartbeat under test must name exactly the rank that stood still, in time, and nobody else.
// Whole processes that SIGSTOP or die are tests/coll's coll.processes.{stopped,dead}_rank*.
#include "bootstrap/heartbeat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "util/socket.h"
#include "xsite/error.h"

namespace xsite::bootstrap {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPeriod{400};

// What onFailure received, and when.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<std::string> message;
  Clock::time_point at;
  int calls = 0;

  Heartbeat::OnFailure callback() {
    return [this](const Error& e) {
      std::lock_guard<std::mutex> lk(mu);
      ++calls;
      if (!message) {
        message = e.what();
        at = Clock::now();
      }
      cv.notify_all();
    };
  }
  bool waitFor(milliseconds d) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, d, [&] { return message.has_value(); });
  }
};

class HeartbeatTest : public ::testing::Test {
 protected:
  HeartbeatTest()
      : server_(std::make_unique<TcpStoreServer>(parseSockAddr("127.0.0.1:0"))),
        address_(server_->address()),
        store_(address_, milliseconds(5000)) {
    for (int r = 0; r < kSize; ++r) Heartbeat::announce(store_, r);
  }
  std::unique_ptr<Store> connect() {
    auto c = std::make_unique<TcpStore>(address_, milliseconds(5000));
    c->setReplyGrace(2 * kPeriod);
    return c;
  }
  std::unique_ptr<Heartbeat> start(int rank, Seen& seen) {
    return std::make_unique<Heartbeat>(connect(), rank, kSize, kPeriod,
                                       std::vector<std::string>{"rank 0 (pid 1 on a)", "rank 1 (pid 2 on b)",
                                                                "rank 2 (pid 3 on c)"},
                                       seen.callback());
  }
  // The test beats for `rank` every period/4 for `d`.
  void beat(int rank, milliseconds d) {
    int n = 0;
    for (auto end = Clock::now() + d; Clock::now() < end; std::this_thread::sleep_for(kPeriod / 4))
      store_.set(heartbeatKey(rank), "t" + std::to_string(++n));
  }
  static constexpr int kSize = 3;
  std::unique_ptr<TcpStoreServer> server_;
  SockAddr address_;
  TcpStore store_;
};

TEST_F(HeartbeatTest, ARankThatStandsStillIsNamedWithinThreePeriods) {
  Seen seen;
  auto hb = start(0, seen);
  // Rank 2 is done at once; rank 1 beats for two periods and then stands still.
  store_.set(heartbeatKey(2), kHeartbeatDone);
  beat(1, 2 * kPeriod);
  const auto stopped = Clock::now();
  ASSERT_TRUE(seen.waitFor(6 * kPeriod)) << "rank 1 stood still and nobody said so";
  EXPECT_LE(seen.at - stopped, 3 * kPeriod);
  EXPECT_GE(seen.at - stopped, 2 * kPeriod - kPeriod / 4);  // not before two periods of silence
  EXPECT_THAT(*seen.message, HasSubstr("rank 1 (pid 2 on b) has sent no heartbeat"));
  EXPECT_THAT(*seen.message, HasSubstr("XSITE_HEARTBEAT=0.4 s"));
  EXPECT_THAT(*seen.message, Not(HasSubstr("rank 2")));  // done is not dead
  // ... and it is the job's failure now, for every rank to report.
  const auto first = findFailure(store_);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->reporter, 0);
  EXPECT_THAT(first->message, HasSubstr("rank 1 (pid 2 on b)"));
  hb.reset();
  EXPECT_EQ(seen.calls, 1);
}

TEST_F(HeartbeatTest, RanksThatBeatOrAreDoneAreNeverNamed) {
  Seen seen;
  auto hb = start(0, seen);
  store_.set(heartbeatKey(2), kHeartbeatDone);
  beat(1, 6 * kPeriod);
  EXPECT_FALSE(seen.message.has_value()) << *seen.message;
  EXPECT_FALSE(findFailure(store_).has_value());
}

TEST_F(HeartbeatTest, TheJobsFirstFailureReachesEveryRankWithinAPeriod) {
  Seen seen;
  auto hb = start(1, seen);
  std::thread others([&] { beat(0, 3 * kPeriod); });
  std::thread third([&] { beat(2, 3 * kPeriod); });
  std::this_thread::sleep_for(kPeriod / 2);
  const Failure first = reportFailure(store_, 2, "rank 0 (ring, tcp) closed the connection");
  const auto published = Clock::now();
  EXPECT_EQ(first.reporter, 2);
  ASSERT_TRUE(seen.waitFor(2 * kPeriod));
  EXPECT_LE(seen.at - published, kPeriod);
  EXPECT_THAT(*seen.message,
              HasSubstr("rank 2 saw the job's first failure: rank 0 (ring, tcp) closed the connection"));
  others.join();
  third.join();
}

TEST_F(HeartbeatTest, TheFirstReportWinsAndLaterOnesGetIt) {
  EXPECT_FALSE(findFailure(store_).has_value());
  EXPECT_EQ(reportFailure(store_, 1, "rank 2 died").reporter, 1);
  const Failure later = reportFailure(store_, 0, "rank 1 closed the connection");
  EXPECT_EQ(later.reporter, 1);
  EXPECT_EQ(later.message, "rank 2 died");
  EXPECT_EQ(describeFailure(later), "rank 1 saw the job's first failure: rank 2 died");
}

TEST_F(HeartbeatTest, ARanksOwnFailureIsReportedAtOnceKeepingItsCategory) {
  Seen seen;
  auto hb = start(1, seen);
  const auto t0 = Clock::now();
  hb->report(ErrorCategory::kTimeout, "allReduce made no progress for 300 s");
  ASSERT_TRUE(seen.waitFor(kPeriod));
  EXPECT_LE(seen.at - t0, kPeriod / 2) << "not held back until the next tick";
  EXPECT_THAT(*seen.message, HasSubstr("xsite timeout: allReduce made no progress for 300 s"));
  const auto first = findFailure(store_);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->reporter, 1);
  hb->report(ErrorCategory::kRemote, "a second one");  // the first report counts
  std::this_thread::sleep_for(kPeriod / 2);
  EXPECT_EQ(seen.calls, 1);
}

TEST_F(HeartbeatTest, AReportAfterAnotherRanksFailureGetsThatOne) {
  reportFailure(store_, 2, "rank 0 (star, tcp) closed the connection");
  Seen seen;
  auto hb = start(1, seen);
  hb->report(ErrorCategory::kRemote, "rank 2 (ring, tcp) closed the connection");
  ASSERT_TRUE(seen.waitFor(kPeriod));
  EXPECT_THAT(*seen.message, HasSubstr("rank 2 saw the job's first failure: rank 0 (star, tcp)"));
}

TEST_F(HeartbeatTest, AStoreThatGoesAwayNamesRankZero) {
  Seen seen;
  auto hb = start(1, seen);
  std::thread others([&] { beat(0, kPeriod); });
  others.join();
  const auto gone = Clock::now();
  server_.reset();  // rank 0 dies with its store
  ASSERT_TRUE(seen.waitFor(3 * kPeriod));
  EXPECT_LE(seen.at - gone, 2 * kPeriod);
  EXPECT_THAT(*seen.message, HasSubstr("rank 0 (pid 1 on a), which serves the rendezvous store"));
}

TEST_F(HeartbeatTest, RankZeroStaysUntilTheOthersAreDoneButNotLonger) {
  Seen seen;
  auto hb = start(0, seen);
  std::thread others([&] {
    beat(1, 3 * kPeriod);
    store_.set(heartbeatKey(1), kHeartbeatDone);
  });
  store_.set(heartbeatKey(2), kHeartbeatDone);
  const auto t0 = Clock::now();
  hb->finish(milliseconds(20000));
  const auto waited = Clock::now() - t0;
  others.join();
  EXPECT_GE(waited, 2 * kPeriod);  // rank 1 was still beating
  EXPECT_LE(waited, 6 * kPeriod);  // and said it was done after 3 periods
  EXPECT_FALSE(seen.message.has_value());
  std::vector<std::string> out;
  ASSERT_TRUE(store_.waitFor({heartbeatKey(0)}, milliseconds(0), out));
  EXPECT_EQ(out[0], kHeartbeatDone);
}

TEST_F(HeartbeatTest, RankZeroDoesNotWaitForARankThatStandsStill) {
  Seen seen;
  auto hb = start(0, seen);
  store_.set(heartbeatKey(2), kHeartbeatDone);
  beat(1, kPeriod);
  const auto t0 = Clock::now();
  hb->finish(milliseconds(20000));
  EXPECT_LE(Clock::now() - t0, 4 * kPeriod);
  EXPECT_FALSE(seen.message.has_value()) << "rank 0 is done: it reports nothing";
}

TEST(TcpStoreBroken, ARequestThatFailedBreaksTheConnectionForLaterOnes) {
  auto server = std::make_unique<TcpStoreServer>(parseSockAddr("127.0.0.1:0"));
  TcpStore client(server->address(), milliseconds(5000));
  client.set("a", "1");
  server.reset();
  EXPECT_THROW(client.set("b", "2"), Error);
  try {
    client.set("c", "3");
    ADD_FAILURE() << "a broken connection was used again";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("this connection broke earlier"));
  }
}

}  // namespace
}  // namespace xsite::bootstrap
