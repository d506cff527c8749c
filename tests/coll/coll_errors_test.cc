// Bad input gets a clear error in bounded time: no hang, no crash, nothing silently wrong.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "coll/rank_threads.h"

namespace xsite::testing {
namespace {

Config quick() {
  Config c;
  c.timeoutSeconds = 2;
  c.bootstrapTimeoutSeconds = 5;
  return c;
}

std::string message(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
  return "";
}

TEST(CollErrors, ArgumentsAreValidatedBeforeAnythingMoves) {
  LocalGroup group(1, 1, 1, quick());
  runRanks(group, [](Communicator& comm) {
    float x = 1;
    auto expectUsage = [](auto fn, const char* needle) {
      try {
        fn();
        ADD_FAILURE() << "no error for " << needle;
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      }
    };
    expectUsage([&] { comm.allReduce(nullptr, &x, 1, DataType::kFloat32, ReduceOp::kSum); }, "null buffer");
    expectUsage([&] { comm.allReduce(&x, &x, 1, DataType::kFloat8E4M3, ReduceOp::kSum); }, "storage-only");
    expectUsage([&] { comm.allReduce(&x, &x, 1, static_cast<DataType>(42), ReduceOp::kSum); }, "invalid data type");
    expectUsage([&] { comm.allReduce(&x, &x, 1, DataType::kFloat32, static_cast<ReduceOp>(9)); }, "invalid reduction op");
    expectUsage([&] { comm.allReduce(&x, &x, SIZE_MAX / 2, DataType::kFloat32, ReduceOp::kSum); }, "overflows");
    expectUsage([&] { comm.broadcast(&x, &x, 1, DataType::kFloat32, 3); }, "root 3");
    expectUsage([&] { comm.placement(7); }, "no rank 7");
  });
}

TEST(CollErrors, MismatchedCountsAreReportedNotTruncated) {
  LocalGroup group(2, 1, 1, quick());
  auto errors = runRanksCollectErrors(group, [](Communicator& comm) {
    std::vector<float> buf(2000, 1.0f);
    size_t count = comm.rank() == 0 ? 1000 : 2000;
    comm.allReduce(buf.data(), buf.data(), count, DataType::kFloat32, ReduceOp::kSum,
                   {Algorithm::kRing});
  });
  int reported = 0;
  for (auto& e : errors)
    if (e) {
      std::string m = message(e);
      if (m.find("same count") != std::string::npos) ++reported;
      else EXPECT_NE(m.find("no progress"), std::string::npos) << m;
    }
  EXPECT_GE(reported, 1);
}

// ncclCommAbort's contract: a call stuck on a peer that will never come is released from another
// thread, later calls fail at once, and the communicator closes without waiting.
TEST(CollErrors, AbortFromAnotherThreadReleasesAStuckCallAtOnce) {
  Config c = quick();
  c.timeoutSeconds = 60;  // only abort() can end the wait
  LocalGroup group(2, 1, 1, c);
  std::atomic<bool> finished{false};
  double released = -1, later = -1, closed = -1;
  std::string first, second;
  auto errors = runRanksCollectErrors(group, [&](Communicator& comm) {
    using Clock = std::chrono::steady_clock;
    if (comm.rank() == 1) {  // alive, but never joins the all-reduce
      while (!finished) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    std::atomic<Clock::rep> abortedAt{0};
    std::thread watchdog([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      abortedAt = Clock::now().time_since_epoch().count();
      comm.abort();
    });
    std::vector<float> x(1 << 16, 1.0f);
    try {
      comm.allReduce(x.data(), x.data(), x.size(), DataType::kFloat32, ReduceOp::kSum);
    } catch (const Error& e) {
      released = std::chrono::duration<double>(Clock::now().time_since_epoch() -
                                               Clock::duration(abortedAt.load())).count();
      if (e.category() == ErrorCategory::kAborted) first = e.what();
    }
    watchdog.join();
    auto t0 = Clock::now();
    try {
      comm.barrier();
    } catch (const Error& e) {
      later = std::chrono::duration<double>(Clock::now() - t0).count();
      if (e.category() == ErrorCategory::kAborted) second = e.what();
    }
    t0 = Clock::now();
    { Communicator gone = std::move(comm); }
    closed = std::chrono::duration<double>(Clock::now() - t0).count();
    finished = true;
  });
  EXPECT_FALSE(errors[0]) << message(errors[0]);
  EXPECT_NE(first.find("aborted (Communicator::abort())"), std::string::npos) << first;
  EXPECT_NE(second.find("aborted"), std::string::npos) << second;
  EXPECT_GE(released, 0);
  EXPECT_LT(released, 1.0);
  EXPECT_GE(later, 0);
  EXPECT_LT(later, 0.1);
  EXPECT_GE(closed, 0);
  EXPECT_LT(closed, 2.0);
}

TEST(CollErrors, AStuckRankTimesOutNamingTheStage) {
  LocalGroup group(2, 1, 1, quick());
  auto start = std::chrono::steady_clock::now();
  std::atomic<bool> finished{false};
  auto errors = runRanksCollectErrors(group, [&](Communicator& comm) {
    if (comm.rank() == 1) {  // alive, but never joins the all-reduce
      while (!finished && std::chrono::steady_clock::now() - start < std::chrono::seconds(20))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    float x = 1;
    try {
      comm.allReduce(&x, &x, 1, DataType::kFloat32, ReduceOp::kSum, {Algorithm::kLatency});
    } catch (...) {
      finished = true;
      throw;
    }
    finished = true;
  });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(errors[0]);
  std::string m = message(errors[0]);
  EXPECT_NE(m.find("no progress for 2 s"), std::string::npos) << m;
  EXPECT_NE(m.find("cross-site exchange"), std::string::npos) << m;
  EXPECT_LT(secs, 10);
}

TEST(CollErrors, ARankThatLeavesIsNamed) {
  LocalGroup group(2, 1, 1, quick());
  auto errors = runRanksCollectErrors(group, [&](Communicator& comm) {
    if (comm.rank() == 1) return;  // destroys its communicator: its connections close
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    float x = 1;
    comm.allReduce(&x, &x, 1, DataType::kFloat32, ReduceOp::kSum, {Algorithm::kLatency});
  });
  ASSERT_TRUE(errors[0]);
  std::string m = message(errors[0]);
  EXPECT_NE(m.find("rank 1"), std::string::npos) << m;
  EXPECT_NE(m.find("closed the connection"), std::string::npos) << m;
}

}  // namespace
}  // namespace xsite::testing
