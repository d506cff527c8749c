// The WAN listener's resume path (src/transport/wan/resume.{h,cc}): a ResumeAcceptor on a real
// loopback listener, with one link registered (peer rank 3, channel 0, 2 streams, healing on), and
// 1-4 callers that send it the fuzzer's bytes. A caller first proves the job's secret
// (bootstrap/auth.h), done right by the target, unless ctl bit 3 makes the fuzzer's bytes the
// answer to the challenge too (such a caller must never get further). A caller whose hello does
// not name that link exactly (magic, job, rank, channel, stream in range) must never be adopted;
// the first that does must be. Adoption is seen from the caller's side: the link answers with a
// ResumeReply. Bytes after the hello reach the link's frame decoder on the adopted stream.
//
// Input: [count][caller]...; caller: [ctl][u8 len][len bytes]
//   ctl bit 0: the target writes a valid magic, job, rank and channel into the first 32 bytes
//   (the stream and recvBelow stay the fuzzer's); bit 1: shut down the sending side afterwards;
//   bit 2: close the connection right after sending; bit 3: no authentication
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/auth.h"
#include "fuzz_input.h"
#include "transport/wan/resume.h"
#include "transport/wan/wan.h"
#include "util/socket.h"

namespace {

using namespace xsite;
using namespace xsite::transport::wan;

constexpr uint64_t kJob = 0x6a6f622d66757a7aull;
constexpr int kPeer = 3, kChannel = 0;
constexpr uint32_t kStreams = 2;

// A hello of the job's format naming a link the acceptor does not have: answered "no such link".
bool unknownLink(const std::string& b) {
  if (b.size() < sizeof(ResumeHello)) return false;
  ResumeHello h;
  memcpy(&h, b.data(), sizeof h);
  return h.magic == ResumeHello::kMagic && (h.job != kJob || h.rank != kPeer || h.channel != kChannel);
}

bool validHello(const std::string& b) {
  if (b.size() < sizeof(ResumeHello)) return false;
  ResumeHello h;
  memcpy(&h, b.data(), sizeof h);
  return h.magic == ResumeHello::kMagic && h.job == kJob && h.rank == kPeer &&
         h.channel == kChannel && h.stream < kStreams;
}

// An oracle failed: says which, then aborts (libFuzzer saves the input).
[[noreturn]] void fail(const char* why) {
  fprintf(stderr, "fuzz_hellos: %s\n", why);
  abort();
}

const bootstrap::JobSecret& secret() {
  static const bootstrap::JobSecret s(std::string("fuzz-job-secret-0123456789"));
  return s;
}

// Reads exactly n bytes from a non-blocking caller socket, polling the acceptor meanwhile
// (time-bounded, not spin-bounded: a loaded machine may not run us for a while).
bool readWhilePolling(int fd, void* out, size_t n, ResumeAcceptor& acceptor) {
  size_t got = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got < n && std::chrono::steady_clock::now() < until) {
    acceptor.poll();
    const ssize_t r = ::recv(fd, static_cast<char*>(out) + got, n - got, MSG_DONTWAIT);
    if (r > 0) got += static_cast<size_t>(r);
    else if (r == 0 || (errno != EAGAIN && errno != EINTR)) return false;
    else std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return got == n;
}

struct Caller {
  Fd fd;
  bool authed = false;
  std::string sent;
  bool open = true;      // its sending side is open: an incomplete hello just waits
  std::string got;       // what the link answered
  bool ended = false;    // the acceptor or the link closed it
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("XSITE_DEBUG", "NONE", 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xsite::fuzz::Input in(data, size);
  std::vector<Fd> mine, theirs;
  for (uint32_t i = 0; i < kStreams; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    mine.emplace_back(sv[0]);
    theirs.emplace_back(sv[1]);
  }
  WanOptions opt;
  opt.frameBytes = 1024;
  opt.windowBytes = 64 << 10;
  opt.earlyBytes = 64 << 10;
  auto link = std::make_shared<WanLink>("rank 3 (fuzz, wan)", std::move(mine), opt);
  WanResume resume;
  resume.dialer = false;
  resume.peer = sockAddrOf("127.0.0.1", 1);
  resume.hello = ResumeHello{ResumeHello::kMagic, 0, kChannel, 0, kJob, 0};
  resume.timeout = std::chrono::milliseconds(1000);
  link->enableResume(resume);
  WanConnection conn(kPeer, "rank 3 (fuzz, wan)", link, kChannel);
  static const std::string kSend(5000, 's');
  conn.postSend(kSend.data(), kSend.size());  // frames in flight: a hello's recvBelow acknowledges them
  std::vector<char> recvBuf(256);
  conn.postRecv(recvBuf.data(), recvBuf.size());

  Fd listener = tcpListen(sockAddrOf("127.0.0.1", 0));
  const SockAddr addr = localAddr(listener.get());
  ResumeAcceptor acceptor(std::move(listener), secret());
  acceptor.add(kJob, kPeer, kChannel, link.get());

  const auto drainTheirs = [&] {
    char buf[65536];
    for (auto& fd : theirs)
      while (::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
      }
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<Caller> callers;
  const int count = 1 + in.u8() % 4;
  for (int i = 0; i < count; ++i) {
    const uint8_t ctl = in.u8();
    std::string bytes = in.bytes(in.u8());
    if ((ctl & 1) && bytes.size() >= sizeof(ResumeHello)) {
      ResumeHello h;
      memcpy(&h, bytes.data(), sizeof h);
      h.magic = ResumeHello::kMagic;
      h.job = kJob;
      h.rank = kPeer;
      h.channel = kChannel;
      memcpy(&bytes[0], &h, sizeof h);
    }
    Caller c;
    c.fd = xsite::fuzz::withoutAlarm([&] { return tcpConnect(addr, deadline); });
    setNonBlocking(c.fd.get(), true);
    if (!(ctl & 8)) {  // the job's challenge-response, done right: it must be accepted
      bootstrap::AuthChallenge ch{};
      bootstrap::AuthResponse resp{};
      bootstrap::AuthProof proof{};
      if (!readWhilePolling(c.fd.get(), &ch, sizeof ch, acceptor)) fail("no challenge");
      if (!secret().respond(ch, resp, "fuzz listener")) fail("a bad challenge");
      if (::send(c.fd.get(), &resp, sizeof resp, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof resp))
        fail("cannot send the response");
      if (!readWhilePolling(c.fd.get(), &proof, sizeof proof, acceptor)) fail("no proof");
      if (!secret().checkProof(ch, resp, proof)) fail("a bad proof");
      c.authed = true;
    }
    if (!bytes.empty()) (void)!::send(c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    c.sent = bytes;
    if (ctl & 2) {
      ::shutdown(c.fd.get(), SHUT_WR);
      c.open = false;
    }
    if (ctl & 4) {
      c.fd.reset();
      c.open = false;
      c.ended = true;
    }
    callers.push_back(std::move(c));
    acceptor.poll();
  }

  // Until every caller that can be decided is: its hello is whole, or it stopped sending.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    acceptor.poll();
    bool moved = false;
    (void)conn.progress(moved);
    drainTheirs();
    bool pending = false;
    for (auto& c : callers) {
      if (c.ended || c.got.size() >= sizeof(ResumeReply)) continue;
      char buf[4096];
      const ssize_t r = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) c.got.append(buf, static_cast<size_t>(r));
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) c.ended = true;
      const size_t whole = c.authed ? sizeof(ResumeHello) : sizeof(bootstrap::AuthResponse);
      const bool decidable = c.sent.size() >= whole || !c.open;
      if (decidable && !c.ended && c.got.size() < sizeof(ResumeReply)) pending = true;
    }
    if (!pending) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

  bool firstValid = true;
  for (auto& c : callers) {
    ResumeReply rep{};
    const bool answered = c.got.size() >= sizeof(rep) &&
                          (memcpy(&rep, c.got.data(), sizeof rep), rep.magic == ResumeReply::kMagic);
    const bool gone = answered && (rep.flags & ResumeReply::kNoSuchLink) != 0;
    const bool adopted = answered && !gone;
    if (!c.authed) {
      // Nothing but the challenge may reach a caller that did not prove the secret.
      if (c.got.size() > sizeof(bootstrap::AuthChallenge)) fail("an unauthenticated caller got an answer");
      continue;
    }
    if (adopted && !validHello(c.sent)) fail("adopted a caller with an invalid hello");
    if (gone && !unknownLink(c.sent)) fail("told a caller whose link exists (or whose hello is garbage) that it is gone");
    if (validHello(c.sent)) {
      // The first valid caller, if it was still there to be answered, is adopted.
      if (firstValid && !adopted && c.fd.valid() && c.got.empty()) fail("a valid hello was not adopted");
      firstValid = false;
    }
  }
  return 0;
}
