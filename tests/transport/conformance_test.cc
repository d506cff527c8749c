// The transport conformance suite: the contract of transport/transport.h, checked identically on
// every backend (loopback, shm, tcp, wan, ucx). Ranks run as threads of this process, rendezvous
// through an InProcessStore, and use rings small enough (8 KiB) that most messages wrap around and
// many are streamed through a ring far smaller than themselves. A last test forks a real peer
// process to check that a shm peer that dies is reported.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/store.h"
#include "common/thread_barrier.h"
#include "transport/fabric.h"
#include "transport/tcp/tcp.h"
#include "util/socket.h"

namespace xsite::transport {

// Test names and failure messages say "tcp", not "4-byte object <02-00 00-00>".
void PrintTo(Backend b, std::ostream* os) { *os << backendName(b); }

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kRingBytes = 8192;      // loopback and shm rings: wrap-around everywhere
constexpr int kSocketBufBytes = 32768;   // tcp: partial writes and reads of frames
constexpr auto kEstablishTimeout = 5s;
constexpr auto kDriveLimit = 20s;        // a test that needs this long has hung
constexpr auto kErrorWithin = 2s;        // a dead peer must be reported this fast

uint64_t randomJob() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

std::string uniquePrefix() {
  static std::atomic<int> n{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string("conformance/") + info->test_suite_name() + "." + info->name() + "/" +
         std::to_string(n++);
}

// The expected payload of a message, a function of who sent it where and its index.
uint64_t seedOf(int from, int to, int channel, size_t index) {
  return (static_cast<uint64_t>(from) << 48) ^ (static_cast<uint64_t>(to) << 32) ^
         (static_cast<uint64_t>(channel) << 24) ^ index;
}

std::vector<char> pattern(uint64_t seed, size_t bytes) {
  std::vector<char> v(bytes);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  for (size_t i = 0; i < bytes; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<char>(x >> 24);
  }
  return v;
}

::testing::AssertionResult sameBytes(const std::vector<char>& got, const std::vector<char>& want,
                                     const std::string& what) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": " << got.size() << " bytes, expected "
                                         << want.size();
  if (got.empty() || std::memcmp(got.data(), want.data(), got.size()) == 0)
    return ::testing::AssertionSuccess();
  size_t i = 0;
  while (got[i] == want[i]) ++i;
  return ::testing::AssertionFailure() << what << ": first wrong byte at offset " << i << " of "
                                       << got.size();
}

::testing::AssertionResult isOk(const Status& s) {
  if (s) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << errorCategoryName(s.category()) << ": " << s.message();
}

// Checks category and that the message mentions every one of `parts`.
void expectError(const Status& s, ErrorCategory category, const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.isOk()) << "expected an error, got OK";
  EXPECT_EQ(s.category(), category) << "wrong category " << errorCategoryName(s.category())
                                    << " for: " << s.message();
  for (const auto& p : parts)
    EXPECT_NE(s.message().find(p), std::string::npos)
        << "error message does not mention '" << p << "': " << s.message();
}

std::string describe(const std::vector<Connection*>& conns) {
  std::string d;
  for (const Connection* c : conns)
    d += (d.empty() ? "" : "; ") + c->label() + ": " + std::to_string(c->sendsDone()) +
         " sends, " + std::to_string(c->recvsDone()) + " receives done";
  return d;
}

// Polls progress on every connection until done() holds; the first error, or the deadline,
// ends it (a deadline is reported as kTimeout so that callers can tell it from the transport's).
// A progress() call may complete what we wait for and then fail on a later operation (the peer
// closed after its last message): what we waited for is done, so that is success.
Status drive(const std::vector<Connection*>& conns, const std::function<bool()>& done,
             Clock::duration limit = kDriveLimit) {
  auto deadline = Clock::now() + limit;
  while (!done()) {
    bool moved = false;
    for (Connection* c : conns) {
      Status s = c->progress(moved);
      if (!s) return done() ? Status::ok() : s;
    }
    if (Clock::now() > deadline)
      return Status(ErrorCategory::kTimeout, "test deadline passed with " + describe(conns));
    if (!moved) std::this_thread::yield();
  }
  return Status::ok();
}

Status waitSend(Connection& c, uint64_t ticket, Clock::duration limit = kDriveLimit) {
  return drive({&c}, [&] { return c.sendsDone() >= ticket; }, limit);
}
Status waitRecv(Connection& c, uint64_t ticket, Clock::duration limit = kDriveLimit) {
  return drive({&c}, [&] { return c.recvsDone() >= ticket; }, limit);
}

// The rank threads meet here; a rank that failed earlier cannot hang the others.
class Barrier {
 public:
  explicit Barrier(int n) : b_(n, std::chrono::seconds(15)) {}
  void wait() {
    if (!b_.wait()) ADD_FAILURE() << "a rank never reached the barrier (did it fail earlier?)";
  }

 private:
  xsite::testing::ThreadBarrier b_;
};

class Conformance : public ::testing::TestWithParam<Backend> {
 protected:
  Conformance() : prefix_(uniquePrefix()), job_(randomJob()) {
    hub_ = std::make_shared<LoopbackHub>(kRingBytes);
  }

  FabricOptions options() const {
    FabricOptions o;
    o.prefix = prefix_;
    o.listenIp = "127.0.0.1";
    o.job = job_;
    o.shmRingBytes = kRingBytes;
    o.socketBufBytes = kSocketBufBytes;
    o.timeout = kEstablishTimeout;
    o.hub = hub_;
    // WAN streams: several small frames per message over 3 streams, a window smaller than the
    // big messages, so striping, reassembly and the staging ring's wrap-around all happen.
    o.wan.streams = 3;
    o.wan.frameBytes = 4096;
    o.wan.windowBytes = 3 * 4096 + 1000;
    o.wan.congestion = "";
    return o;
  }

  // `channels` links from `rank` to every other rank, all on the backend under test.
  std::vector<LinkRequest> mesh(int rank, int size, int channels = 1) const {
    std::vector<LinkRequest> links;
    for (int p = 0; p < size; ++p)
      for (int ch = 0; ch < channels && p != rank; ++ch)
        links.push_back({p, ch, GetParam(), "conformance-c" + std::to_string(ch)});
    return links;
  }

  std::unique_ptr<Fabric> connect(int rank, int size, int channels = 1) {
    auto f = std::make_unique<Fabric>(rank, size, store_, options());
    f->establish(mesh(rank, size, channels));
    EXPECT_EQ(f->count(), static_cast<size_t>((size - 1) * channels));
    return f;
  }

  // Runs fn(rank) on `size` threads; an exception fails the test with its message.
  void runRanks(int size, const std::function<void(int)>& fn) {
    std::vector<std::thread> threads;
    for (int r = 0; r < size; ++r)
      threads.emplace_back([&, r] {
        try {
          fn(r);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "rank " << r << " threw: " << e.what();
        }
      });
    for (auto& t : threads) t.join();
  }

  void sleepsInPollUntilThePeerSends(bool byProbe);

  bootstrap::InProcessStore store_;
  std::string prefix_;
  uint64_t job_;
  std::shared_ptr<LoopbackHub> hub_;
};

// Sizes around every boundary that matters: empty, tiny, the header, the ring, far past the ring.
const std::vector<size_t> kMixedSizes = {
    0,    1,    2,    3,    15,   16,    17,    255,   4095, 4096, 4097, 8191,    8192,
    8193, 0,    0,    1,    12345, 65537, 7,    3 * 1048576 + 7, 0, 1048576, 9, 100003, 1,
};

TEST_P(Conformance, MixedSizesArriveInOrderFullDuplex) {
  constexpr size_t kWindow = 3;  // messages in flight per direction
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    const int peer = 1 - rank;
    Connection& c = fabric->connection(peer, 0);
    EXPECT_EQ(c.peer(), peer);
    // Rank 1 sends the sizes in reverse, so each direction carries different sizes at once.
    auto sizesFrom = [&](int r) {
      std::vector<size_t> s = kMixedSizes;
      if (r == 1) std::reverse(s.begin(), s.end());
      return s;
    };
    const std::vector<size_t> outSizes = sizesFrom(rank), inSizes = sizesFrom(peer);
    const size_t n = outSizes.size();
    std::vector<std::vector<char>> out(n), in(n);
    for (size_t i = 0; i < n; ++i) {
      out[i] = pattern(seedOf(rank, peer, 0, i), outSizes[i]);
      in[i].assign(inSizes[i], '\x5a');
    }
    size_t posted = 0, received = 0, checked = 0;
    uint64_t lastSends = 0, lastRecvs = 0;
    auto deadline = Clock::now() + kDriveLimit;
    while (checked < n || c.sendsDone() < n) {
      while (posted < n && posted - c.sendsDone() < kWindow) {
        EXPECT_EQ(c.postSend(out[posted].data(), out[posted].size()), posted + 1);
        ++posted;
      }
      while (received < n && received - c.recvsDone() < kWindow) {
        EXPECT_EQ(c.postRecv(in[received].data(), in[received].size()), received + 1);
        ++received;
      }
      bool moved = false;
      Status s = c.progress(moved);
      ASSERT_TRUE(isOk(s)) << "rank " << rank;
      ASSERT_GE(c.sendsDone(), lastSends);
      ASSERT_GE(c.recvsDone(), lastRecvs);
      ASSERT_LE(c.sendsDone(), posted);
      ASSERT_LE(c.recvsDone(), received);
      lastSends = c.sendsDone();
      lastRecvs = c.recvsDone();
      // A done ticket means its bytes have landed: check each message the moment it completes.
      for (; checked < c.recvsDone(); ++checked)
        ASSERT_TRUE(sameBytes(in[checked], pattern(seedOf(peer, rank, 0, checked), inSizes[checked]),
                              "rank " + std::to_string(rank) + " message " +
                                  std::to_string(checked)));
      ASSERT_LT(Clock::now(), deadline) << describe({&c});
      if (!moved) std::this_thread::yield();
    }
    EXPECT_TRUE(c.idle());
  });
}

TEST_P(Conformance, ManyOutstandingMessagesPostedBeforeAnyProgress) {
  constexpr size_t kCount = 2000;
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    const int peer = 1 - rank;
    Connection& c = fabric->connection(peer, 0);
    auto sizeOf = [](int from, size_t i) { return (i * 13 + static_cast<size_t>(from) * 5) % 1100; };
    std::vector<std::vector<char>> out(kCount), in(kCount);
    for (size_t i = 0; i < kCount; ++i) {
      out[i] = pattern(seedOf(rank, peer, 0, i), sizeOf(rank, i));
      in[i].assign(sizeOf(peer, i), '\0');
    }
    // Interleave the two directions; tickets count each direction separately.
    for (size_t i = 0; i < kCount; ++i) {
      EXPECT_EQ(c.postRecv(in[i].data(), in[i].size()), i + 1);
      EXPECT_EQ(c.postSend(out[i].data(), out[i].size()), i + 1);
    }
    // WAN streams stage sends on a proxy thread of their own (transport.h): those may complete
    // without the caller's progress; everything else moves only in progress().
    if (GetParam() != Backend::kWan) {
      EXPECT_EQ(c.sendsDone(), 0u);
    }
    EXPECT_EQ(c.recvsDone(), 0u);
    EXPECT_FALSE(c.idle());
    ASSERT_TRUE(isOk(drive({&c}, [&] { return c.sendsDone() == kCount && c.recvsDone() == kCount; })));
    EXPECT_TRUE(c.idle());
    for (size_t i = 0; i < kCount; ++i)
      ASSERT_TRUE(sameBytes(in[i], pattern(seedOf(peer, rank, 0, i), sizeOf(peer, i)),
                            "message " + std::to_string(i)));
  });
}

TEST_P(Conformance, ChannelsToOnePeerAreIndependent) {
  constexpr int kChannels = 3;
  constexpr size_t kSmall = 1000;  // fits in any channel's buffer: a send completes unread
  Barrier barrier(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2, kChannels);
    const int peer = 1 - rank;
    std::vector<Connection*> all;
    for (int ch = 0; ch < kChannels; ++ch) all.push_back(&fabric->connection(peer, ch));

    // Phase 1: rank 0 sends one same-sized message per channel, in reverse channel order; rank 1
    // receives them in channel order, progressing only the channel it waits on. Every channel has
    // unread data while another is read: a message that landed on the wrong channel shows up as
    // wrong bytes.
    if (rank == 0) {
      std::vector<std::vector<char>> out(kChannels);
      for (int ch = kChannels - 1; ch >= 0; --ch) {
        out[ch] = pattern(seedOf(0, 1, ch, 0), kSmall);
        uint64_t t = all[ch]->postSend(out[ch].data(), kSmall);
        ASSERT_TRUE(isOk(waitSend(*all[ch], t))) << "channel " << ch;
      }
      barrier.wait();  // all sent
      barrier.wait();  // all received
    } else {
      barrier.wait();
      for (int ch = 0; ch < kChannels; ++ch) {
        std::vector<char> in(kSmall, '\0');
        uint64_t t = all[ch]->postRecv(in.data(), kSmall);
        ASSERT_TRUE(isOk(waitRecv(*all[ch], t))) << "channel " << ch;
        EXPECT_TRUE(sameBytes(in, pattern(seedOf(0, 1, ch, 0), kSmall),
                              "channel " + std::to_string(ch)));
        for (int other = 0; other < kChannels; ++other)
          if (other != ch) {
            EXPECT_EQ(all[other]->recvsDone(), other < ch ? 1u : 0u) << "channel " << other;
          }
      }
      barrier.wait();
    }

    // Phase 2: no head-of-line blocking. Rank 1 starts a message far larger than any buffer on
    // channel 1 that rank 0 does not receive yet; meanwhile the two ping-pong on channel 0.
    constexpr size_t kBig = 4 << 20;
    std::vector<char> big = rank == 1 ? pattern(seedOf(1, 0, 1, 1), kBig) : std::vector<char>(kBig);
    const uint64_t bigTicket = rank == 1 ? all[1]->postSend(big.data(), kBig) : 0;
    for (size_t i = 0; i < 20; ++i) {
      std::vector<char> msg = pattern(seedOf(rank, peer, 0, 100 + i), 100 + i), got(100 + i);
      if ((i % 2 == 0) == (rank == 0)) {
        uint64_t t = all[0]->postSend(msg.data(), msg.size());
        // Rank 1 keeps channel 1 moving too, as a real caller would.
        ASSERT_TRUE(isOk(drive(rank == 1 ? std::vector<Connection*>{all[0], all[1]}
                                         : std::vector<Connection*>{all[0]},
                               [&] { return all[0]->sendsDone() >= t; })));
      } else {
        uint64_t t = all[0]->postRecv(got.data(), got.size());
        ASSERT_TRUE(isOk(drive(rank == 1 ? std::vector<Connection*>{all[0], all[1]}
                                         : std::vector<Connection*>{all[0]},
                               [&] { return all[0]->recvsDone() >= t; })));
        ASSERT_TRUE(sameBytes(got, pattern(seedOf(peer, rank, 0, 100 + i), 100 + i),
                              "ping-pong " + std::to_string(i)));
      }
    }
    if (rank == 0) {
      uint64_t t = all[1]->postRecv(big.data(), kBig);
      ASSERT_TRUE(isOk(waitRecv(*all[1], t)));
      EXPECT_TRUE(sameBytes(big, pattern(seedOf(1, 0, 1, 1), kBig), "big message on channel 1"));
    } else {
      ASSERT_TRUE(isOk(waitSend(*all[1], bigTicket)));
    }
    barrier.wait();  // nobody closes while the other still reads
  });
}

TEST_P(Conformance, FullMeshOfFourRanksAllTalkingAtOnce) {
  constexpr int kSize = 4;
  const std::vector<size_t> sizes = {0, 1, 5000, 70001, 17, 300000, 0, 4096, 33};
  Barrier barrier(kSize);
  runRanks(kSize, [&](int rank) {
    auto fabric = connect(rank, kSize);
    std::vector<Connection*> conns;
    std::vector<std::vector<std::vector<char>>> out(kSize), in(kSize);
    // Post everything at once, to peers in a rank-dependent order.
    for (int k = 1; k < kSize; ++k) {
      int peer = (rank + k) % kSize;
      Connection& c = fabric->connection(peer, 0);
      EXPECT_EQ(c.peer(), peer);
      conns.push_back(&c);
      for (size_t i = 0; i < sizes.size(); ++i) {
        size_t bytes = sizes[(i + static_cast<size_t>(rank)) % sizes.size()];
        out[peer].push_back(pattern(seedOf(rank, peer, 0, i), bytes));
        in[peer].emplace_back(sizes[(i + static_cast<size_t>(peer)) % sizes.size()], '\0');
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        c.postSend(out[peer][i].data(), out[peer][i].size());
        c.postRecv(in[peer][i].data(), in[peer][i].size());
      }
    }
    ASSERT_TRUE(isOk(drive(conns, [&] {
      for (Connection* c : conns)
        if (!c->idle()) return false;
      return true;
    }))) << "rank " << rank;
    for (int peer = 0; peer < kSize; ++peer)
      for (size_t i = 0; peer != rank && i < sizes.size(); ++i)
        ASSERT_TRUE(sameBytes(in[peer][i], pattern(seedOf(peer, rank, 0, i), in[peer][i].size()),
                              "rank " + std::to_string(rank) + " from rank " +
                                  std::to_string(peer) + " message " + std::to_string(i)));
    barrier.wait();
  });
}

TEST_P(Conformance, SizeMismatchIsAnErrorNamingPeerAndBothSizesNeverATruncation) {
  Barrier barrier(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2, 2);
    if (rank == 0) {
      // Channel 0: sent larger than posted; channel 1: sent smaller than posted.
      std::vector<char> a(100, 'a'), b(77, 'b');
      fabric->connection(1, 0).postSend(a.data(), a.size());
      fabric->connection(1, 1).postSend(b.data(), b.size());
      Status s = drive({&fabric->connection(1, 0), &fabric->connection(1, 1)}, [&] {
        return fabric->connection(1, 0).sendsDone() == 1 && fabric->connection(1, 1).sendsDone() == 1;
      });
      EXPECT_TRUE(isOk(s));
      barrier.wait();  // keep the sockets open until rank 1 has seen the headers
    } else {
      std::vector<char> small(50, 'z'), large(123, 'z');
      Connection& c0 = fabric->connection(0, 0);
      Connection& c1 = fabric->connection(0, 1);
      c0.postRecv(small.data(), small.size());
      c1.postRecv(large.data(), large.size());
      Status s0 = waitRecv(c0, 1);
      Status s1 = waitRecv(c1, 1);
      barrier.wait();
      expectError(s0, ErrorCategory::kInvalidUsage, {"rank 0", "100", "50"});
      expectError(s1, ErrorCategory::kInvalidUsage, {"rank 0", "77", "123"});
      EXPECT_EQ(c0.recvsDone(), 0u) << "a truncated receive completed";
      EXPECT_EQ(c1.recvsDone(), 0u) << "a short receive completed";
    }
  });
}

// A receive posted with an Arrival takes any message up to its size (NCCL's irecv) and learns
// the size and tag that arrived; the bytes behind the message are left as they were.
TEST_P(Conformance, ReceiveOfAtMostLearnsTheSizeAndTagThatArrived) {
  struct Message {
    size_t sent, posted;
    uint32_t tag;
  };
  const std::vector<Message> messages = {{0, 16, 7},        {1, 1, 0xffffffffu}, {100, 4096, 0},
                                         {8193, 70000, 42}, {3 << 20, (3 << 20) + 9, 123456},
                                         {5, 5, 9}};
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    Connection& c = fabric->connection(1 - rank, 0);
    const size_t n = messages.size();
    std::vector<std::vector<char>> bufs(n);
    std::vector<Arrival> arrivals(n, Arrival{999, 999});
    for (size_t i = 0; i < n; ++i) {
      if (rank == 0) {
        bufs[i] = pattern(seedOf(0, 1, 0, i), messages[i].sent);
        c.postSend(bufs[i].data(), bufs[i].size(), messages[i].tag);
      } else {
        bufs[i].assign(messages[i].posted, '\x5a');
        c.postRecv(bufs[i].data(), bufs[i].size(), &arrivals[i]);
      }
    }
    ASSERT_TRUE(isOk(drive({&c}, [&] { return rank == 0 ? c.sendsDone() == n : c.recvsDone() == n; })));
    if (rank == 1)
      for (size_t i = 0; i < n; ++i) {
        const Message& m = messages[i];
        EXPECT_EQ(arrivals[i].bytes, m.sent) << "message " << i;
        EXPECT_EQ(arrivals[i].tag, m.tag) << "message " << i;
        std::vector<char> head(bufs[i].begin(), bufs[i].begin() + static_cast<long>(m.sent));
        EXPECT_TRUE(sameBytes(head, pattern(seedOf(0, 1, 0, i), m.sent), "message " + std::to_string(i)));
        EXPECT_EQ(std::count(bufs[i].begin() + static_cast<long>(m.sent), bufs[i].end(), '\x5a'),
                  static_cast<long>(m.posted - m.sent))
            << "message " << i << " wrote past its size";
      }
  });
}

TEST_P(Conformance, MessageLargerThanAReceiveOfAtMostIsAnErrorNamingBothSizes) {
  Barrier barrier(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    Connection& c = fabric->connection(1 - rank, 0);
    std::vector<char> buf(rank == 0 ? 100 : 60, 'a');
    if (rank == 0) {
      c.postSend(buf.data(), buf.size(), 3);
      EXPECT_TRUE(isOk(waitSend(c, 1)));
      barrier.wait();
    } else {
      Arrival a;
      c.postRecv(buf.data(), buf.size(), &a);
      Status s = waitRecv(c, 1);
      barrier.wait();
      expectError(s, ErrorCategory::kInvalidUsage, {"rank 0", "100", "at most 60"});
      EXPECT_EQ(c.recvsDone(), 0u);
    }
  });
}

// probe() tells the next message's size and tag before a receive is posted for it, so that the
// caller can choose where it lands; with a receive pending it tells nothing.
TEST_P(Conformance, ProbeTellsTheNextMessageBeforeItsReceiveIsPosted) {
  const std::vector<std::pair<size_t, uint32_t>> messages = {{300, 2}, {0, 0}, {70000, 1}, {8, 2}};
  Barrier received(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    Connection& c = fabric->connection(1 - rank, 0);
    std::vector<std::vector<char>> out;
    if (rank == 0) {
      for (size_t i = 0; i < messages.size(); ++i) {
        out.push_back(pattern(seedOf(0, 1, 0, i), messages[i].first));
        c.postSend(out.back().data(), out.back().size(), messages[i].second);
      }
      EXPECT_TRUE(isOk(waitSend(c, messages.size())));
      received.wait();
      return;
    }
    std::map<uint32_t, std::vector<std::vector<char>>> byTag;  // where each tag's messages land
    for (size_t i = 0; i < messages.size(); ++i) {
      Arrival next{};
      ASSERT_TRUE(isOk(drive({&c}, [&] { return c.probe(next); }))) << "message " << i;
      EXPECT_EQ(next.bytes, messages[i].first) << "message " << i;
      EXPECT_EQ(next.tag, messages[i].second) << "message " << i;
      Arrival again{};
      EXPECT_TRUE(c.probe(again) && again.bytes == next.bytes && again.tag == next.tag)
          << "a second probe of message " << i << " differs";
      auto& landing = byTag[next.tag];
      landing.emplace_back(next.bytes);
      c.postRecv(landing.back().data(), next.bytes);
      EXPECT_FALSE(c.probe(again)) << "probe with a receive pending";
      ASSERT_TRUE(isOk(waitRecv(c, i + 1))) << "message " << i;
      EXPECT_TRUE(sameBytes(landing.back(), pattern(seedOf(0, 1, 0, i), messages[i].first),
                            "message " + std::to_string(i)));
    }
    EXPECT_EQ(byTag[2].size(), 2u);
    received.wait();
  });
}

// A side that expects nothing more is not troubled by a peer that sent its last message and left.
TEST_P(Conformance, PeerThatClosesIsNoErrorToASideThatExpectsNothingMore) {
  Barrier closed(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    Connection& c = fabric->connection(1 - rank, 0);
    std::vector<char> msg(1000, 'm');
    if (rank == 0) {
      c.postSend(msg.data(), msg.size());
      ASSERT_TRUE(isOk(waitSend(c, 1)));
      fabric.reset();
      closed.wait();
    } else {
      c.postRecv(msg.data(), msg.size());
      ASSERT_TRUE(isOk(waitRecv(c, 1)));
      closed.wait();
      const auto until = Clock::now() + 300ms;
      while (Clock::now() < until) {
        bool moved = false;
        ASSERT_TRUE(isOk(c.progress(moved)));
        std::this_thread::sleep_for(5ms);
      }
    }
  });
}

// An idle caller sleeps in poll() on what appendPollFds() gives, and the peer's send wakes it:
// a rank waiting for its neighbours leaves the cores to them (on shm through the doorbell).
// `byProbe`: the receiver waits in probe() for the message's header instead of with a receive
// posted (the net plugin's grouped receives), and posts the receive once probe() tells its size.
void Conformance::sleepsInPollUntilThePeerSends(bool byProbe) {
  if (GetParam() != Backend::kShm && GetParam() != Backend::kTcp && GetParam() != Backend::kWan)
    GTEST_SKIP() << "no descriptor to sleep on (loopback: threads of one process; UCX: progressed by time)";
  constexpr auto kSendAfter = 300ms;
  Barrier polling(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    Connection& c = fabric->connection(1 - rank, 0);
    std::vector<char> msg = pattern(seedOf(0, 1, 0, 0), 1000);
    if (rank == 0) {
      polling.wait();
      std::this_thread::sleep_for(kSendAfter);
      ASSERT_TRUE(isOk(waitSend(c, c.postSend(msg.data(), msg.size()))));
      polling.wait();
      return;
    }
    std::vector<char> in(msg.size());
    Arrival next;
    if (!byProbe) c.postRecv(in.data(), in.size());
    for (bool moved = true; moved;) {  // settle: nothing can arrive yet
      moved = false;
      ASSERT_FALSE(byProbe && c.probe(next)) << "probe() told of a message never sent";
      ASSERT_TRUE(isOk(c.progress(moved)));
    }
    std::vector<pollfd> fds;
    ASSERT_TRUE(c.appendPollFds(fds)) << "a " << backendName(GetParam()) << " connection has descriptors";
    ASSERT_FALSE(fds.empty());
    polling.wait();
    const auto start = Clock::now();
    const int n = ::poll(fds.data(), fds.size(), 5000);
    const auto took = Clock::now() - start;
    EXPECT_GT(n, 0) << "poll() timed out: the peer's send did not wake the receiver";
    EXPECT_LT(took, kSendAfter + 1500ms);
    if (byProbe) {
      ASSERT_TRUE(isOk(drive({&c}, [&] { return c.probe(next); })));
      EXPECT_EQ(next.bytes, msg.size());
      c.postRecv(in.data(), next.bytes);
    }
    ASSERT_TRUE(isOk(waitRecv(c, 1)));
    EXPECT_TRUE(sameBytes(in, msg, "message"));
    polling.wait();
  });
}

TEST_P(Conformance, AnIdleReceiverSleepsInPollUntilThePeerSends) { sleepsInPollUntilThePeerSends(false); }
TEST_P(Conformance, AnIdleProbeSleepsInPollUntilThePeerSends) { sleepsInPollUntilThePeerSends(true); }

TEST_P(Conformance, PeerThatClosesIsReportedToAWaitingReceiverAfterItsLastMessage) {
  constexpr size_t kLast = 20000;  // more than the ring: part of it is still in flight at close
  Barrier closed(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    if (rank == 0) {
      std::vector<char> last = pattern(seedOf(0, 1, 0, 0), kLast);
      Connection& c = fabric->connection(1, 0);
      c.postSend(last.data(), last.size());
      // Rank 1 is reading, so the send completes; then this rank goes away.
      ASSERT_TRUE(isOk(waitSend(c, 1)));
      fabric.reset();
      closed.wait();
    } else {
      Connection& c = fabric->connection(0, 0);
      std::vector<char> in(kLast), more(64);
      c.postRecv(in.data(), in.size());
      c.postRecv(more.data(), more.size());
      // The message sent before the close arrives intact...
      ASSERT_TRUE(isOk(waitRecv(c, 1)));
      EXPECT_TRUE(sameBytes(in, pattern(seedOf(0, 1, 0, 0), kLast), "last message"));
      closed.wait();
      // ...and the receive after it fails promptly, naming the peer.
      auto start = Clock::now();
      Status s = waitRecv(c, 2, 10s);
      auto took = Clock::now() - start;
      expectError(s, ErrorCategory::kRemote, {"rank 0", "closed the connection"});
      EXPECT_LT(took, kErrorWithin);
      EXPECT_EQ(c.recvsDone(), 1u);
    }
  });
}

TEST_P(Conformance, PeerThatClosesIsReportedToABlockedSender) {
  constexpr size_t kBig = 16 << 20;  // cannot fit in any ring or socket buffer
  Barrier closed(2);
  runRanks(2, [&](int rank) {
    auto fabric = connect(rank, 2);
    if (rank == 0) {
      fabric.reset();
      closed.wait();
    } else {
      closed.wait();
      Connection& c = fabric->connection(0, 0);
      std::vector<char> big(kBig, 'x');
      c.postSend(big.data(), big.size());
      auto start = Clock::now();
      Status s = waitSend(c, 1, 10s);
      auto took = Clock::now() - start;
      expectError(s, ErrorCategory::kRemote, {"rank 0"});
      EXPECT_LT(took, kErrorWithin);
      EXPECT_EQ(c.sendsDone(), 0u);
    }
  });
}

// A frame that does not start with MessageHeader::kMagic is a protocol violation (kRemote), not
// a message of whatever length its bytes happen to say.
TEST_P(Conformance, GarbledFrameIsARemoteError) {
  const MessageHeader garbage{0xdeadbeef, 0, 100};
  Barrier reported(2);
  if (GetParam() == Backend::kShm)
    GTEST_SKIP() << "the shm segments are unlinked inside establish(); nothing to inject into";
  if (GetParam() == Backend::kUcx)
    GTEST_SKIP() << "UCX carries xsite's messages in its own protocol: there is no xsite frame to garble";
  runRanks(2, [&](int rank) {
    if (rank == 0) {
      if (GetParam() == Backend::kLoopback) {
        auto fabric = connect(0, 2);
        // Write the frame straight into the ring rank 1 reads from.
        std::shared_ptr<RingMemory> ring = hub_->ring(0, 1, 0);
        RingHeader* h = ring->header();
        uint64_t head = h->head.load();
        std::memcpy(ring->data() + (head & (h->capacity - 1)), &garbage, sizeof(garbage));
        std::memset(ring->data() + ((head + sizeof(garbage)) & (h->capacity - 1)), 'g', 100);
        h->head.store(head + sizeof(garbage) + 100, std::memory_order_release);
        reported.wait();
      } else {
        // Play rank 0 by hand: take part in establish()'s rendezvous, connect to rank 1 and
        // introduce ourselves correctly, then send a frame with a bad magic.
        const auto opts = options();
        bootstrap::allGather(store_, opts.prefix + "/shm-created", 0, 2, "", kEstablishTimeout);
        bootstrap::allGather(store_, opts.prefix + "/shm-opened", 0, 2, "", kEstablishTimeout);
        bootstrap::allGather(store_, opts.prefix + "/shm-mapped", 0, 2, "", kEstablishTimeout);
        Fd listener = tcpListen(sockAddrOf("127.0.0.1", 0));
        const std::string mine = localAddr(listener.get()).toString();
        auto addrs = bootstrap::allGather(store_, opts.prefix + "/tcp-addr", 0, 2,
                                          mine + " " + mine, kEstablishTimeout);
        // Rank 1 publishes "tcp-address wan-address".
        const bool isWan = GetParam() == Backend::kWan;
        const std::string& both = addrs[1];
        const std::string target = isWan ? both.substr(both.find(' ') + 1) : both.substr(0, both.find(' '));
        auto deadline = Clock::now() + kEstablishTimeout;
        std::vector<Fd> fds;
        for (int s = 0; s < (isWan ? opts.wan.streams : 1); ++s) {
          fds.push_back(tcpConnect(parseSockAddr(target), deadline));
          ASSERT_TRUE(isOk(bootstrap::authenticateToListener(fds.back().get(), opts.secret,
                                                             deadline, "rank 1")));
          tcp::Hello hello{tcp::Hello::kMagic, 0, 0, static_cast<uint32_t>(s), opts.job};
          ASSERT_TRUE(isOk(writeAll(fds.back().get(), &hello, sizeof(hello), deadline)));
        }
        // The same 16 garbage bytes: on a WAN stream they start a frame header with a bad magic.
        std::vector<char> frame(64, 'g');
        std::memcpy(frame.data(), &garbage, sizeof(garbage));
        ASSERT_TRUE(isOk(writeAll(fds[0].get(), frame.data(), frame.size(), deadline)));
        std::vector<char> payload(100, 'g');
        ASSERT_TRUE(isOk(writeAll(fds[0].get(), payload.data(), payload.size(), deadline)));
        reported.wait();  // keep the sockets open: the error must be the frame, not a close
      }
    } else {
      auto fabric = connect(1, 2);
      Connection& c = fabric->connection(0, 0);
      std::vector<char> in(100, 'z');
      c.postRecv(in.data(), in.size());
      Status s = waitRecv(c, 1, 10s);
      reported.wait();
      expectError(s, ErrorCategory::kRemote, {"rank 0", "garbled", "0xdeadbeef"});
      EXPECT_EQ(c.recvsDone(), 0u);
    }
  });
}

// UCX joins when this build has it; ctest runs its instances under several UCX_TLS settings
// (tests/transport/CMakeLists.txt).
std::vector<Backend> allBackends() {
  std::vector<Backend> b = {Backend::kLoopback, Backend::kShm, Backend::kTcp, Backend::kWan};
  if (backendBuilt(Backend::kUcx)) b.push_back(Backend::kUcx);
  return b;
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Conformance, ::testing::ValuesIn(allBackends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(backendName(info.param));
                         });

// ---- a shm peer process that dies -------------------------------------------------------------

// Rank 1 is a forked child: it sends one message over shm, then kills itself (no destructor runs,
// so nothing marks the ring closed). Rank 0's next receive must fail once the child is gone.
TEST(ShmPeerProcess, DeathIsReportedToAWaitingReceiver) {
  constexpr size_t kFirst = 100003;  // streamed through the 8 KiB ring while the child lives
  const uint64_t job = randomJob();
  auto opts = [&] {
    FabricOptions o;
    o.prefix = "shm-death";
    o.job = job;
    o.listenIp = "127.0.0.1";
    o.shmRingBytes = kRingBytes;
    o.timeout = kEstablishTimeout;
    return o;
  };
  int pipeFds[2];
  ASSERT_EQ(pipe(pipeFds), 0);
  // Fork before this test starts any thread (the store server is one): the child is a clean copy.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(15);  // never outlive a broken parent
    close(pipeFds[1]);
    std::string addr;
    char buf[64];
    ssize_t n;
    while ((n = read(pipeFds[0], buf, sizeof(buf))) > 0) addr.append(buf, static_cast<size_t>(n));
    try {
      bootstrap::TcpStore store(parseSockAddr(addr), kEstablishTimeout);
      Fabric fabric(1, 2, store, opts());
      fabric.establish({{0, 0, Backend::kShm, "death"}});
      Connection& c = fabric.connection(0, 0);
      std::vector<char> first = pattern(seedOf(1, 0, 0, 0), kFirst);
      c.postSend(first.data(), first.size());
      if (!waitSend(c, 1, 10s)) _exit(3);
      kill(getpid(), SIGKILL);
    } catch (...) {
      _exit(2);
    }
    _exit(4);
  }

  alarm(30);  // safety net: a hang here kills the binary instead of the CI job
  close(pipeFds[0]);
  bool reaped = false;
  int wstatus = 0;
  struct Reaper {  // never leave the child behind, whatever fails
    pid_t pid;
    bool& reaped;
    ~Reaper() {
      if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{child, reaped};

  bootstrap::TcpStoreServer server(sockAddrOf("127.0.0.1", 0));
  std::string addr = server.address().toString();
  ASSERT_EQ(write(pipeFds[1], addr.data(), addr.size()), static_cast<ssize_t>(addr.size()));
  close(pipeFds[1]);
  bootstrap::TcpStore store(server.address(), kEstablishTimeout);
  Fabric fabric(0, 2, store, opts());
  fabric.establish({{1, 0, Backend::kShm, "death"}});
  Connection& c = fabric.connection(1, 0);

  std::vector<char> first(kFirst), more(64);
  c.postRecv(first.data(), first.size());
  c.postRecv(more.data(), more.size());
  ASSERT_TRUE(isOk(waitRecv(c, 1, 10s)));
  EXPECT_TRUE(sameBytes(first, pattern(seedOf(1, 0, 0, 0), kFirst), "message sent before death"));

  // Reap the child as its launcher would (a zombie still counts as a live process), then the
  // pending receive must fail within kErrorWithin.
  Clock::time_point diedAt{};
  Status s = drive({&c}, [&] {
    if (!reaped && waitpid(child, &wstatus, WNOHANG) == child) {
      reaped = true;
      diedAt = Clock::now();
    }
    return c.recvsDone() >= 2;
  }, 10s);
  ASSERT_TRUE(reaped) << "the child never exited";
  EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
      << "the child failed before dying on purpose (exit status " << wstatus << ")";
  auto took = Clock::now() - diedAt;
  ASSERT_FALSE(s.isOk()) << "a receive from a dead process completed";
  EXPECT_EQ(s.category(), ErrorCategory::kRemote) << s.message();
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
  EXPECT_TRUE(s.message().find("died") != std::string::npos ||
              s.message().find("closed") != std::string::npos)
      << s.message();
  EXPECT_LT(took, kErrorWithin) << s.message();
  alarm(0);
}

}  // namespace
}  // namespace xsite::transport
