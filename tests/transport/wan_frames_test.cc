// WAN streams at the frame level: a WanConnection over socketpairs, with hand-made frames on the
// other end. Pins the wire format, reassembly from several streams in any order, eager staging,
// and that every lie a header can tell is an error naming the peer, never a wrong result.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "transport/wan/wan.h"
#include "util/crc32c.h"

namespace xsite::transport::wan {
namespace {

using Clock = std::chrono::steady_clock;

struct Pair {
  std::unique_ptr<WanConnection> conn;  // the side under test
  std::vector<Fd> raw;                  // the other ends, one per stream
};

// `n` socketpairs: this side's ends, returned, and the other ends, appended to `other`.
std::vector<Fd> socketPairs(int n, std::vector<Fd>& other) {
  std::vector<Fd> mine;
  for (int i = 0; i < n; ++i) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mine.emplace_back(sv[0]);
    other.emplace_back(sv[1]);
  }
  return mine;
}

Pair make(int streams, WanOptions opt = {}) {
  Pair p;
  p.conn = std::make_unique<WanConnection>(7, "rank 7 (test, wan)", socketPairs(streams, p.raw), opt);
  return p;
}

FrameHeader header(uint64_t seq, uint64_t message, uint64_t offset, const std::string& payload,
                   uint64_t messageBytes, int channel = 0) {
  FrameHeader h{};
  h.magic = FrameHeader::kMagic;
  h.version = FrameHeader::kVersion;
  h.channel = static_cast<uint8_t>(channel);
  h.length = static_cast<uint32_t>(payload.size());
  h.seq = seq;
  h.message = message;
  h.offset = offset;
  h.messageBytes = messageBytes;
  FrameHeader z = h;
  h.crc = crc32c(payload.data(), payload.size(), crc32c(&z, sizeof(z)));
  return h;
}

void sendRaw(const Fd& fd, const FrameHeader& h, const std::string& payload) {
  ASSERT_EQ(::send(fd.get(), &h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
  if (!payload.empty()) {
    ASSERT_EQ(::send(fd.get(), payload.data(), payload.size(), 0), static_cast<ssize_t>(payload.size()));
  }
}

// Channels 0..channels-1 of one link over socketpairs (channel c is conns[c]).
struct Shared {
  std::vector<std::unique_ptr<WanConnection>> conns;
  std::vector<Fd> raw;
};
Shared makeShared(int streams, int channels, WanOptions opt = {}) {
  Shared p;
  auto link = std::make_shared<WanLink>("rank 7 (WAN streams)", socketPairs(streams, p.raw), opt);
  for (int c = 0; c < channels; ++c)
    p.conns.push_back(std::make_unique<WanConnection>(
        7, "rank 7 (lane " + std::to_string(c) + ", wan)", link, c));
  return p;
}

// Progresses until the receive ticket is done or an error; returns the status.
Status waitRecv(WanConnection& c, uint64_t ticket) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (c.recvsDone() < ticket) {
    bool moved = false;
    Status s = c.progress(moved);
    if (!s) return s;
    if (Clock::now() > deadline) return Status(ErrorCategory::kTimeout, "test: nothing arrived");
  }
  return Status::ok();
}

void expectBad(const Status& s, ErrorCategory cat, const std::string& needle) {
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.category(), cat) << s.message();
  EXPECT_NE(s.message().find("rank 7"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(WanFrames, FramesFromSeveralStreamsInAnyOrderReassemble) {
  Pair p = make(2);
  std::vector<char> buf(10, 0);
  p.conn->postRecv(buf.data(), buf.size());
  sendRaw(p.raw[1], header(1, 0, 6, "GHIJ", 10), "GHIJ");  // the tail first, on stream 1
  sendRaw(p.raw[0], header(0, 0, 0, "ABCDEF", 10), "ABCDEF");
  ASSERT_TRUE(waitRecv(*p.conn, 1).isOk());
  EXPECT_EQ(std::string(buf.begin(), buf.end()), "ABCDEFGHIJ");
}

// A receive of at most 16 bytes learns the size and tag from the first frame to arrive (either
// may be first); a frame that claims another size or tag for the same message is garbled.
TEST(WanFrames, FramesOfOneMessageMustAgreeOnItsSizeAndTag) {
  for (bool sameSize : {true, false}) {
    SCOPED_TRACE(sameSize ? "another tag" : "another size");
    Pair p = make(2);
    std::vector<char> buf(16, 0);
    Arrival a;
    p.conn->postRecv(buf.data(), buf.size(), &a);
    FrameHeader tail = header(1, 0, 6, "GHIJ", sameSize ? 10 : 12);
    FrameHeader z = tail;
    z.crc = 0;
    if (sameSize) z.tag = tail.tag = 5;
    tail.crc = crc32c("GHIJ", 4, crc32c(&z, sizeof(z)));
    sendRaw(p.raw[0], header(0, 0, 0, "ABCDEF", 10), "ABCDEF");
    sendRaw(p.raw[1], tail, "GHIJ");
    expectBad(waitRecv(*p.conn, 1), ErrorCategory::kRemote, "disagree on its size or tag");
    EXPECT_EQ(p.conn->recvsDone(), 0u);
  }
}

TEST(WanFrames, OverlappingFramesAreRejectedEvenWhenTheirLengthsAddUp) {
  Pair p = make(2);
  std::vector<char> buf(8, 0);
  p.conn->postRecv(buf.data(), buf.size());
  sendRaw(p.raw[0], header(0, 0, 0, "abcdef", 8), "abcdef");
  sendRaw(p.raw[1], header(1, 0, 4, "gh", 8), "gh");  // [4, 6) again; 6 + 2 == 8
  expectBad(waitRecv(*p.conn, 1), ErrorCategory::kRemote, "arrived twice");
  EXPECT_EQ(p.conn->recvsDone(), 0u);
}

TEST(WanFrames, ALaterMessagesFrameWaitsForTheCurrentOne) {
  Pair p = make(2);
  std::vector<char> a(4, 0), b(3, 0);
  p.conn->postRecv(a.data(), a.size());
  p.conn->postRecv(b.data(), b.size());
  sendRaw(p.raw[1], header(2, 1, 0, "xyz", 3), "xyz");   // message 1 arrives first
  sendRaw(p.raw[0], header(0, 0, 0, "ab", 4), "ab");
  sendRaw(p.raw[0], header(1, 0, 2, "cd", 4), "cd");
  ASSERT_TRUE(waitRecv(*p.conn, 2).isOk());
  EXPECT_EQ(std::string(a.begin(), a.end()), "abcd");
  EXPECT_EQ(std::string(b.begin(), b.end()), "xyz");
}

// A peer that sent its last frames and closed ends every stream; a stream may end while the
// others still carry frames the receiver waits for (the NCCL net plugin's sender closes as soon
// as its sends are staged). Only a stream cut inside a frame, or every stream ended with a
// receive posted, is an error.
TEST(WanFrames, AStreamEndedBetweenFramesIsNotAnErrorWhileAnotherCarriesTheRest) {
  Pair p = make(2);
  std::vector<char> buf(4, 0), more(1, 0);
  p.conn->postRecv(buf.data(), buf.size());
  p.raw[0].reset();  // stream 0 ends before the frame on stream 1 arrives
  bool moved = false;
  ASSERT_TRUE(p.conn->progress(moved).isOk());
  sendRaw(p.raw[1], header(0, 0, 0, "abcd", 4), "abcd");
  ASSERT_TRUE(waitRecv(*p.conn, 1).isOk());
  EXPECT_EQ(std::string(buf.begin(), buf.end()), "abcd");
  p.conn->postRecv(more.data(), more.size());
  p.raw[1].reset();  // now every stream has ended with a receive posted
  expectBad(waitRecv(*p.conn, 2), ErrorCategory::kRemote, "closed the connection");
}

TEST(WanFrames, AStreamCutInsideAFrameIsAnError) {
  Pair p = make(2);
  std::vector<char> buf(4, 0);
  p.conn->postRecv(buf.data(), buf.size());
  FrameHeader h = header(0, 0, 0, "abcd", 4);
  ASSERT_EQ(::send(p.raw[0].get(), &h, 10, 0), 10);  // part of a header, then the end
  p.raw[0].reset();
  expectBad(waitRecv(*p.conn, 1), ErrorCategory::kRemote, "closed the connection");
}

TEST(WanFrames, AnEmptyMessageIsOneEmptyFrame) {
  Pair p = make(1);
  p.conn->postRecv(nullptr, 0);
  sendRaw(p.raw[0], header(0, 0, 0, "", 0), "");
  ASSERT_TRUE(waitRecv(*p.conn, 1).isOk());
}

TEST(WanFrames, CorruptPayloadIsAChecksumError) {
  Pair p = make(1);
  std::vector<char> buf(5);
  p.conn->postRecv(buf.data(), buf.size());
  FrameHeader h = header(0, 0, 0, "hello", 5);
  sendRaw(p.raw[0], h, "jello");
  expectBad(waitRecv(*p.conn, 1), ErrorCategory::kRemote, "checksum mismatch");
  EXPECT_EQ(p.conn->recvsDone(), 0u);
}

TEST(WanFrames, HeaderLiesAreRejected) {
  struct Case {
    const char* name;
    FrameHeader h;
    std::string payload;
    ErrorCategory cat;
    const char* needle;
  };
  FrameHeader badMagic = header(0, 0, 0, "abcd", 8);
  badMagic.magic = 0xdeadbeef;
  FrameHeader badReserved = header(0, 0, 0, "abcd", 8);
  badReserved.reserved1 = 9;
  FrameHeader badFlags = header(0, 0, 0, "abcd", 8);
  badFlags.flags = 4;
  FrameHeader huge = header(0, 0, 0, "", 8);
  huge.length = kMaxFrameBytes + 1;
  const Case cases[] = {
      {"outside the message", header(0, 0, 6, "abcd", 8), "abcd", ErrorCategory::kRemote, "outside"},
      {"wrong message size", header(0, 0, 0, "abcd", 12), "abcd", ErrorCategory::kInvalidUsage, "12-byte"},
      {"bad magic", badMagic, "abcd", ErrorCategory::kRemote, "0xdeadbeef"},
      {"reserved field set", badReserved, "abcd", ErrorCategory::kRemote, "reserved"},
      {"unknown flags", badFlags, "abcd", ErrorCategory::kRemote, "flags 4"},
      {"oversized frame", huge, "", ErrorCategory::kRemote, "bytes"},
      {"empty frame in a non-empty message", header(0, 0, 0, "", 8), "", ErrorCategory::kRemote, "empty frame"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Pair p = make(1);
    std::vector<char> buf(8);
    p.conn->postRecv(buf.data(), buf.size());
    sendRaw(p.raw[0], c.h, c.payload);
    expectBad(waitRecv(*p.conn, 1), c.cat, c.needle);
    EXPECT_EQ(p.conn->recvsDone(), 0u);
  }
}

TEST(WanFrames, DuplicateAndStaleFramesAreRejected) {
  {
    Pair p = make(2);
    std::vector<char> buf(8);
    p.conn->postRecv(buf.data(), buf.size());
    sendRaw(p.raw[0], header(0, 0, 0, "abcd", 8), "abcd");
    sendRaw(p.raw[1], header(1, 0, 0, "abcd", 8), "abcd");  // offset 0 again
    expectBad(waitRecv(*p.conn, 1), ErrorCategory::kRemote, "arrived twice");
  }
  {
    Pair p = make(1);
    std::vector<char> a(2), b(2);
    p.conn->postRecv(a.data(), a.size());
    p.conn->postRecv(b.data(), b.size());
    sendRaw(p.raw[0], header(0, 0, 0, "ab", 2), "ab");
    sendRaw(p.raw[0], header(1, 0, 0, "ab", 2), "ab");  // message 0 is already complete
    expectBad(waitRecv(*p.conn, 2), ErrorCategory::kRemote, "already complete");
  }
  {
    Pair p = make(1);
    std::vector<char> buf(4);
    p.conn->postRecv(buf.data(), buf.size());
    sendRaw(p.raw[0], header(5, 0, 0, "ab", 4), "ab");
    sendRaw(p.raw[0], header(3, 0, 2, "cd", 4), "cd");  // sequence went backwards
    expectBad(waitRecv(*p.conn, 1), ErrorCategory::kRemote, "backwards");
  }
}

// Channels of one link: a frame for a channel whose receive is not posted is buffered, so it
// never blocks another channel's frames behind it on the same stream.
TEST(WanLinks, AFrameOfAnUnpostedChannelDoesNotBlockTheOthers) {
  Shared p = makeShared(1, 2);
  std::vector<char> a(4, 0), b(3, 0);
  sendRaw(p.raw[0], header(0, 0, 0, "xyz", 3, 1), "xyz");  // channel 1, nothing posted there
  sendRaw(p.raw[0], header(1, 0, 0, "abcd", 4, 0), "abcd");
  const uint64_t ta = p.conns[0]->postRecv(a.data(), a.size());
  ASSERT_TRUE(waitRecv(*p.conns[0], ta).isOk());
  EXPECT_EQ(std::string(a.begin(), a.end()), "abcd");
  EXPECT_EQ(p.conns[1]->recvsDone(), 0u);
  const uint64_t tb = p.conns[1]->postRecv(b.data(), b.size());
  ASSERT_TRUE(waitRecv(*p.conns[1], tb).isOk());
  EXPECT_EQ(std::string(b.begin(), b.end()), "xyz");
}

TEST(WanLinks, ABufferedFrameIsCheckedAgainstTheReceiveWhenItIsPosted) {
  {
    Shared p = makeShared(1, 2);
    sendRaw(p.raw[0], header(0, 0, 0, "xyz", 3, 1), "xyz");
    bool moved = false;
    ASSERT_TRUE(p.conns[0]->progress(moved).isOk());  // buffers it
    std::vector<char> b(5, 0);
    const uint64_t t = p.conns[1]->postRecv(b.data(), b.size());
    Status s = waitRecv(*p.conns[1], t);
    expectBad(s, ErrorCategory::kInvalidUsage, "5 bytes");
    EXPECT_NE(s.message().find("lane 1"), std::string::npos) << s.message();
  }
  {
    Shared p = makeShared(1, 2);
    sendRaw(p.raw[0], header(0, 0, 0, "abcd", 4, 1), "abce");  // garbled while buffered
    expectBad(waitRecv(*p.conns[0], 1), ErrorCategory::kRemote, "checksum mismatch");
  }
  {
    Shared p = makeShared(1, 2);
    sendRaw(p.raw[0], header(0, 0, 0, "abcd", 4, 9), "abcd");
    expectBad(waitRecv(*p.conns[0], 1), ErrorCategory::kRemote, "channel 9");
  }
}

// Early frames beyond WanOptions::earlyBytes wait in the socket (TCP flow control) until a
// receive takes some; nothing is lost.
TEST(WanLinks, EarlyFramesBeyondTheBoundWaitInTheSocket) {
  WanOptions opt;
  opt.earlyBytes = 8;
  Shared q = makeShared(1, 3, opt);
  sendRaw(q.raw[0], header(0, 0, 0, "11111111", 8, 1), "11111111");  // fills the bound
  sendRaw(q.raw[0], header(1, 0, 0, "2222", 4, 2), "2222");          // must wait
  sendRaw(q.raw[0], header(2, 0, 0, "00", 2, 0), "00");
  std::vector<char> zero(2, 0), one(8, 0), two(4, 0);
  const uint64_t t0 = q.conns[0]->postRecv(zero.data(), zero.size());
  for (int i = 0; i < 50; ++i) {
    bool moved = false;
    ASSERT_TRUE(q.conns[0]->progress(moved).isOk());
  }
  EXPECT_EQ(q.conns[0]->recvsDone(), 0u) << "channel 0's frame sits behind the parked one";
  q.conns[1]->postRecv(one.data(), one.size());  // frees the bound
  ASSERT_TRUE(waitRecv(*q.conns[0], t0).isOk());
  q.conns[2]->postRecv(two.data(), two.size());
  ASSERT_TRUE(waitRecv(*q.conns[2], 1).isOk());
  EXPECT_EQ(std::string(one.begin(), one.end()), "11111111");
  EXPECT_EQ(std::string(two.begin(), two.end()), "2222");
  EXPECT_EQ(std::string(zero.begin(), zero.end()), "00");
}

// A channel closed on this side: frames still on their way for it (half read, parked, or later)
// are read and dropped, and the other channels carry on.
TEST(WanLinks, FramesForAClosedChannelAreDroppedAndTheOthersCarryOn) {
  WanOptions opt;
  opt.earlyBytes = 8;
  Shared p = makeShared(1, 3, opt);
  sendRaw(p.raw[0], header(0, 0, 0, "11111111", 8, 1), "11111111");  // buffered: fills the bound
  sendRaw(p.raw[0], header(1, 0, 0, "2222", 4, 2), "2222");          // parked
  bool moved = false;
  ASSERT_TRUE(p.conns[0]->progress(moved).isOk());
  p.conns[2].reset();  // closes channel 2 with its frame parked
  p.conns[1].reset();  // and channel 1 with its frame buffered
  sendRaw(p.raw[0], header(2, 1, 0, "late", 4, 2), "late");  // a later frame for channel 2
  sendRaw(p.raw[0], header(3, 0, 0, "00", 2, 0), "00");
  std::vector<char> zero(2, 0);
  const uint64_t t = p.conns[0]->postRecv(zero.data(), zero.size());
  ASSERT_TRUE(waitRecv(*p.conns[0], t).isOk());
  EXPECT_EQ(std::string(zero.begin(), zero.end()), "00");
}

// Both ends real: three channels over two shared streams, messages of many sizes posted in one
// order and received in another; every byte arrives where it belongs.
TEST(WanLinks, ChannelsOverSharedStreamsDeliverEverything) {
  WanOptions opt;
  opt.frameBytes = 4096;
  opt.windowBytes = 64 << 10;
  std::vector<Fd> right;
  std::vector<Fd> left = socketPairs(2, right);
  auto la = std::make_shared<WanLink>("rank 1 (WAN streams)", std::move(left), opt);
  auto lb = std::make_shared<WanLink>("rank 0 (WAN streams)", std::move(right), opt);
  constexpr int kChannels = 3, kMessages = 6;
  std::vector<std::unique_ptr<WanConnection>> a, b;
  for (int c = 0; c < kChannels; ++c) {
    a.push_back(std::make_unique<WanConnection>(1, "rank 1 (lane)", la, c));
    b.push_back(std::make_unique<WanConnection>(0, "rank 0 (lane)", lb, c));
  }
  auto sizeOf = [](int c, int m) { return static_cast<size_t>((c * 7919 + m * 104729) % 50000); };
  auto fill = [](int c, int m, size_t i) { return static_cast<char>(c * 31 + m * 17 + i * 13); };
  std::vector<std::vector<char>> out, in;
  for (int m = 0; m < kMessages; ++m)  // sends: message by message, every channel
    for (int c = 0; c < kChannels; ++c) {
      out.emplace_back(sizeOf(c, m));
      for (size_t i = 0; i < out.back().size(); ++i) out.back()[i] = fill(c, m, i);
      a[c]->postSend(out.back().data(), out.back().size());
    }
  // Receives: channel 2 only after all of channel 0, channel 1 last.
  in.resize(kChannels * kMessages);
  for (int c : {0, 2, 1}) {
    for (int m = 0; m < kMessages; ++m) {
      auto& buf = in[c * kMessages + m];
      buf.assign(sizeOf(c, m), 0);
      b[c]->postRecv(buf.data(), buf.size());
    }
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (b[c]->recvsDone() < kMessages) {
      bool moved = false;
      for (auto& conn : a) ASSERT_TRUE(conn->progress(moved).isOk());
      ASSERT_TRUE(b[c]->progress(moved).isOk());
      ASSERT_LT(Clock::now(), deadline) << "channel " << c;
    }
  }
  for (int c = 0; c < kChannels; ++c)
    for (int m = 0; m < kMessages; ++m) {
      const auto& buf = in[c * kMessages + m];
      bool same = true;
      for (size_t i = 0; i < buf.size() && same; ++i) same = buf[i] == fill(c, m, i);
      EXPECT_TRUE(same) << "channel " << c << " message " << m;
    }
  for (int c = 0; c < kChannels; ++c) EXPECT_EQ(a[c]->sendsDone(), static_cast<uint64_t>(kMessages));
}

// Eager staging: a send that fits the window completes before the peer reads a byte; one that
// does not fit completes only as the peer drains.
TEST(WanFrames, SendsCompleteWhenStagedNotWhenDelivered) {
  WanOptions opt;
  opt.frameBytes = 4096;
  opt.windowBytes = 64 << 10;
  Pair p = make(2, opt);
  std::vector<char> small(20000, 's');
  uint64_t t = p.conn->postSend(small.data(), small.size());
  bool moved = false;
  ASSERT_TRUE(p.conn->progress(moved).isOk());
  EXPECT_EQ(p.conn->sendsDone(), t) << "a send inside the window completes at once";
  std::fill(small.begin(), small.end(), 'X');  // the caller may reuse its buffer now

  // Read it back from the raw ends: frames of 4096 bytes, in order of seq over both streams.
  std::string got(20000, '\0');
  size_t bytes = 0;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (bytes < got.size() && Clock::now() < deadline) {
    ASSERT_TRUE(p.conn->progress(moved).isOk());
    for (auto& fd : p.raw) {
      FrameHeader h;
      if (::recv(fd.get(), &h, sizeof(h), MSG_DONTWAIT | MSG_PEEK) != static_cast<ssize_t>(sizeof(h))) continue;
      ASSERT_EQ(::recv(fd.get(), &h, sizeof(h), MSG_WAITALL), static_cast<ssize_t>(sizeof(h)));
      ASSERT_EQ(h.magic, FrameHeader::kMagic);
      ASSERT_LE(h.length, 4096u);
      ASSERT_EQ(h.messageBytes, 20000u);
      ASSERT_EQ(::recv(fd.get(), &got[h.offset], h.length, MSG_WAITALL), static_cast<ssize_t>(h.length));
      FrameHeader z = h;
      z.crc = 0;
      EXPECT_EQ(h.crc, crc32c(&got[h.offset], h.length, crc32c(&z, sizeof(z))));
      bytes += h.length;
    }
  }
  EXPECT_EQ(got, std::string(20000, 's')) << "the staged copy, not the reused buffer, crossed";

  std::vector<char> big(1 << 20, 'b');
  uint64_t t2 = p.conn->postSend(big.data(), big.size());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(p.conn->progress(moved).isOk());
  EXPECT_LT(p.conn->sendsDone(), t2) << "1 MiB cannot be staged in a 64 KiB window undrained";
}

// A sender whose window is full of frames already written waits for acknowledgements: it polls
// its streams for input only, sleeps there (a socket with room would wake it at once, for as
// long as the peer takes to acknowledge), and an acknowledgement wakes it and frees the window.
TEST(WanFrames, ASenderWaitingForAcknowledgementsSleepsInPoll) {
  WanOptions opt;
  opt.frameBytes = 4096;
  opt.windowBytes = 16 << 10;
  Pair p = make(2, opt);
  std::vector<char> big(64 << 10, 'b');
  const uint64_t t = p.conn->postSend(big.data(), big.size());
  for (bool moved = true; moved;) {  // stage and write all the window holds
    moved = false;
    ASSERT_TRUE(p.conn->progress(moved).isOk());
  }
  ASSERT_LT(p.conn->sendsDone(), t);
  std::vector<pollfd> fds;
  ASSERT_TRUE(p.conn->appendPollFds(fds));
  ASSERT_EQ(fds.size(), 2u);
  for (const pollfd& f : fds) {
    EXPECT_EQ(f.events & POLLOUT, 0) << "every frame is written: nothing to wait for room for";
    EXPECT_NE(f.events & POLLIN, 0) << "acknowledgements free the window";
  }
  EXPECT_EQ(::poll(fds.data(), fds.size(), 200), 0) << "woken with nothing to do";

  FrameHeader ack{};
  ack.magic = FrameHeader::kMagic;
  ack.version = FrameHeader::kVersion;
  ack.flags = FrameHeader::kFlagAck;
  ack.seq = 1000;  // every frame this stream carried
  ack.crc = crc32c(&ack, sizeof(ack));
  sendRaw(p.raw[0], ack, "");
  EXPECT_EQ(::poll(fds.data(), fds.size(), 5000), 1) << "the acknowledgement did not wake the sender";
  bool moved = false;
  ASSERT_TRUE(p.conn->progress(moved).isOk());
  EXPECT_TRUE(moved) << "the acknowledged frames left the window and the next ones were staged";
}

// Growing the window re-lays the staged bytes out in a larger ring: frames already on the wire,
// frames staged across the old ring's end and the rest of the send all arrive intact.
TEST(WanFrames, TheWindowGrowsUnderFramesInFlight) {
  WanOptions opt;
  opt.frameBytes = 4096;
  opt.windowBytes = 64 << 10;
  std::vector<Fd> other;
  std::vector<Fd> mine = socketPairs(2, other);
  for (Fd& fd : mine) {  // small socket buffers: most of the window waits in the ring, unsent
    const int bytes = 4096;
    ASSERT_EQ(setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)), 0);
  }
  WanConnection a(1, "rank 1 (test, wan)", std::move(mine), opt);
  WanConnection b(0, "rank 0 (test, wan)", std::move(other), opt);
  auto pattern = [](size_t n, int seed) {
    std::vector<char> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) % 251);
    return v;
  };
  auto until = [&](const std::function<bool()>& done) {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    bool moved = false;
    while (!done() && Clock::now() < deadline) {
      ASSERT_TRUE(a.progress(moved).isOk());
      ASSERT_TRUE(b.progress(moved).isOk());
    }
    ASSERT_TRUE(done());
  };
  // 40 KiB through and acknowledged: the ring's live part now starts 40 KiB in.
  const auto first = pattern(40 << 10, 1);
  std::vector<char> got1(first.size());
  const uint64_t r1 = b.postRecv(got1.data(), got1.size());
  const uint64_t s1 = a.postSend(first.data(), first.size());
  until([&] { return b.recvsDone() >= r1 && a.sendsDone() >= s1; });
  bool moved = false;
  for (int i = 0; i < 50; ++i) {  // the acknowledgements back
    ASSERT_TRUE(b.progress(moved).isOk());
    ASSERT_TRUE(a.progress(moved).isOk());
  }
  // 1 MiB staged while nobody reads: the window fills, wrapping around the 64 KiB ring.
  const auto second = pattern(1 << 20, 7);
  const uint64_t s2 = a.postSend(second.data(), second.size());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(a.progress(moved).isOk());
  ASSERT_LT(a.sendsDone(), s2);
  a.link().growWindow((200 << 10) + 4096);
  EXPECT_EQ(a.link().windowBytes(), (200u << 10) + 4096);
  a.link().growWindow(32 << 10);  // never shrinks
  EXPECT_EQ(a.link().windowBytes(), (200u << 10) + 4096);
  std::vector<char> got2(second.size());
  const uint64_t r2 = b.postRecv(got2.data(), got2.size());
  until([&] { return b.recvsDone() >= r2 && a.sendsDone() >= s2; });
  EXPECT_TRUE(got1 == first);
  EXPECT_TRUE(got2 == second) << "a byte staged before the window grew was lost or moved";
}

}  // namespace
}  // namespace xsite::transport::wan
