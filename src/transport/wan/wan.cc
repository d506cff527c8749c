#include "transport/wan/wan.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <new>
#include <thread>

#include "util/crc32c.h"
#include "util/log.h"
#include "util/status.h"
#include "util/tcp_path.h"

namespace xsite::transport::wan {
namespace {

constexpr size_t kHdr = sizeof(FrameHeader);

uint32_t headerCrc(FrameHeader h) {
  h.crc = 0;
  return crc32c(&h, sizeof(h));
}

// What a buffered early frame counts against WanOptions::earlyBytes (empty ones too).
size_t earlyCost(const FrameHeader& h) { return h.length + kHdr; }

using Clock = std::chrono::steady_clock;
constexpr auto kTryLimit = std::chrono::seconds(3);             // one dial, hello and answer
constexpr auto kRedialPause = std::chrono::milliseconds(200);   // between failed dials
constexpr auto kProbePeriod = std::chrono::seconds(1);          // waiting side: is the peer alive?
constexpr auto kWatchPeriod = std::chrono::milliseconds(100);   // idle links' sockets looked at
constexpr auto kAdaptPeriod = std::chrono::milliseconds(50);   // adapt() looks at the clock
constexpr double kRateRtts = 4;     // the path's rate is measured over this many round trips
constexpr auto kRateSpan = std::chrono::milliseconds(500);  // ... and at least this long (bursts)
constexpr double kMaxGrowth = 4;    // adapt(): most a window or buffer grows in one look
constexpr double kWindowBdps = 8;   // staging window: bandwidth-delay products (see wanSizing)
constexpr auto kSecureLimit = std::chrono::seconds(30);         // a stream's TLS handshake

bool peerClosed(int fd) noexcept {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return true;  // not TCP
  return info.tcpi_state == TCP_CLOSE_WAIT;
}

// The most the kernel's buffer autotuning gives a TCP socket (the third field of
// net.ipv4.tcp_wmem and tcp_rmem, read once); 0 when unknown.
struct AutotuneLimits {
  int send = 0, receive = 0;
};
const AutotuneLimits& autotuneLimits() noexcept {
  static const AutotuneLimits limits = [] {
    auto third = [](const char* path) -> int {
      long a = 0, b = 0, c = 0;
      FILE* f = std::fopen(path, "r");
      if (!f) return 0;
      const int n = std::fscanf(f, "%ld %ld %ld", &a, &b, &c);
      std::fclose(f);
      return n == 3 ? static_cast<int>(std::min<long>(c, INT32_MAX)) : 0;
    };
    return AutotuneLimits{third("/proc/sys/net/ipv4/tcp_wmem"), third("/proc/sys/net/ipv4/tcp_rmem")};
  }();
  return limits;
}

double secondsOf(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Closes with a reset, so that the peer's end of a stream given up learns it at once.
void resetAndClose(Fd& fd) noexcept {
  if (!fd.valid()) return;
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.reset();
}

}  // namespace

WanSizing wanSizing(double rateMbit, double latencyUs, int streams, size_t windowBytes) noexcept {
  const double bdp = rateMbit / 8.0 * 2.0 * latencyUs;  // bytes per round trip
  WanSizing z;
  const double perStream = 4.0 * bdp / std::max(1, streams);
  z.socketBytes = perStream <= std::min(autotuneLimits().send, autotuneLimits().receive)
                      ? 0  // the kernel's autotuning reaches it: leave it on
                      : static_cast<int>(std::clamp(perStream, 1.0 * (1 << 20), 64.0 * (1 << 20)));
  z.windowBytes =
      windowBytes > 0 ? windowBytes : std::max<size_t>(4u << 20, static_cast<size_t>(kWindowBdps * bdp));
  z.fixedWindow = windowBytes > 0;
  return z;
}

void prepareWanSocket(int fd, int socketBytes, const std::string& cc, const char* ccVariable) noexcept {
  setBufferSizes(fd, socketBytes);
  if (cc.empty() || setCongestionControl(fd, cc)) return;
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true))
    XSITE_WARN(kNet, "the kernel refused TCP congestion control '%s' for WAN streams (%s); they use "
                     "'%s'. Load it (modprobe tcp_%s) or choose another with %s",
               cc.c_str(), errnoString(errno).c_str(), congestionControl(fd).c_str(), cc.c_str(),
               ccVariable);
}

WanLink::WanLink(std::string label, std::vector<Fd> fds, WanOptions options)
    : label_(std::move(label)), opt_(options), byChannel_(256, nullptr), closed_(256, false) {
  opt_.frameBytes = std::clamp<size_t>(opt_.frameBytes, 4096, kMaxFrameBytes);
  opt_.windowBytes = std::max(opt_.windowBytes, 2 * opt_.frameBytes);
  stagingBytes_ = opt_.windowBytes;
  staging_.reset(new char[stagingBytes_]);
  streams_.resize(fds.size());
  for (size_t i = 0; i < fds.size(); ++i) {
    streams_[i].sndLocked = streams_[i].rcvLocked = opt_.socketBytes > 0;
    setNonBlocking(fds[i].get(), true);
    setNoDelay(fds[i].get());  // a frame is a whole unit: never wait for more (Nagle)
    streams_[i].fd = std::move(fds[i]);
    if (opt_.tls) startTls(streams_[i], opt_.tlsClient, Clock::now());
  }
}

void WanLink::attach(WanConnection* c, int channel) {
  if (channel < 0 || channel >= static_cast<int>(byChannel_.size()) || byChannel_[channel])
    throw Error(ErrorCategory::kInternal,
                label_ + ": channel " + std::to_string(channel) + " is taken or out of range");
  std::lock_guard<std::mutex> rl(recvMu_);
  std::lock_guard<std::mutex> lk(sendMu_);
  byChannel_[channel] = c;
  closed_[channel] = false;
  channels_.push_back(c);
}

void WanLink::detach(int channel) noexcept {
  std::lock_guard<std::mutex> rl(recvMu_);
  std::lock_guard<std::mutex> lk(sendMu_);
  WanConnection* c = byChannel_[channel];
  if (!sendOrder_.empty() && sendOrder_.front() == c) {  // its unstaged bytes are dropped
    stagedOfHead_ = 0;
    headFramed_ = false;
  }
  sendOrder_.erase(std::remove(sendOrder_.begin(), sendOrder_.end(), c), sendOrder_.end());
  c->dropEarly();
  // A frame half read for it is read to its end and dropped (its receive buffer may be gone).
  for (Stream& s : streams_) {
    if (!s.routed || s.discard || s.in.channel != channel) continue;
    if (s.buffered) earlyHeld_ -= earlyCost(s.in);
    if (!s.buffered) {
      Status st = bufferPayload(s);
      if (!st) error_ = st;
    }
    s.buffered = false;
    s.discard = true;
  }
  // A frame parked for it is dropped when next read; later frames for it too (closed[]).
  byChannel_[channel] = nullptr;
  closed_[channel] = true;
  channels_.erase(std::remove(channels_.begin(), channels_.end(), c), channels_.end());
}

Status WanLink::badFrame(const std::string& why) const {
  return Status(ErrorCategory::kRemote,
                label_ + " sent a garbled WAN frame: " + why +
                    " (the stream is corrupt, or the peer is not an xsite rank of this job)");
}

uint64_t WanLink::postSend(WanConnection* c, const void* data, size_t bytes, uint32_t tag) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  sendOrder_.push_back(c);
  return c->Connection::postSend(data, bytes, tag);
}

bool WanLink::waitingHeader(int channel, uint64_t message, FrameHeader& out) const noexcept {
  std::lock_guard<std::mutex> lk(recvMu_);
  for (const Stream& s : streams_)
    if (s.inGot == kHdr && !s.routed && s.in.flags == 0 && s.in.channel == channel &&
        s.in.message == message) {
      out = s.in;
      return true;
    }
  return false;
}

// Copies the sends into the staging ring frame by frame, in the order they were posted over
// all channels, as far as the window allows; a send whose bytes are all staged is complete.
Status WanLink::stage(bool& moved) noexcept {
  while (!sendOrder_.empty()) {
    WanConnection* c = sendOrder_.front();
    const WanConnection::Send op = c->headSend();
    const size_t remaining = op.bytes - stagedOfHead_;
    if (remaining == 0 && (op.bytes > 0 || headFramed_)) {
      c->sendStaged();
      sendOrder_.pop_front();
      stagedOfHead_ = 0;
      headFramed_ = false;
      moved = true;
      continue;
    }
    const size_t len = std::min(remaining, opt_.frameBytes);
    if (len > opt_.windowBytes - (stageHead_ - stageTail_)) break;  // window full
    const char* src = op.data + stagedOfHead_;
    const size_t pos = stageHead_ % stagingBytes_;
    const size_t first = std::min(len, stagingBytes_ - pos);
    if (len > 0) {  // (an empty message has no buffer: src may be null)
      memcpy(staging_.get() + pos, src, first);
      memcpy(staging_.get(), src + first, len - first);
    }
    auto f = std::make_unique<OutFrame>();
    FrameHeader& h = f->hdr;
    h = FrameHeader{};
    h.magic = FrameHeader::kMagic;
    h.version = FrameHeader::kVersion;
    h.channel = static_cast<uint8_t>(c->channel());
    h.length = static_cast<uint32_t>(len);
    h.seq = nextSeq_++;
    h.message = op.message;
    h.offset = stagedOfHead_;
    h.messageBytes = op.bytes;
    h.tag = op.tag;
    h.crc = crc32c(src, len, headerCrc(h));
    f->stagingPos = stageHead_;
    frames_.push_back(std::move(f));
    stageHead_ += len;
    stagedOfHead_ += len;
    headFramed_ = true;
    moved = true;
  }
  return Status::ok();
}

// Every stream with room takes the next frame: the streams' capacities add up. A stream that
// fails to write is marked (sendFailed) and heals; the others carry on.
Status WanLink::writeStreams(bool& moved) noexcept {
  for (auto& s : streams_) {
    if (!up(s)) continue;
    Status st = writeStream(s, moved);
    if (st) continue;
    if (!resume_) return st;
    s.sendFailed = st;
    healing_.store(true, std::memory_order_release);
  }
  return Status::ok();
}

Status WanLink::writeStream(Stream& s, bool& moved) noexcept {
  if (s.tls) {  // ciphertext of earlier writes first; while it waits, the socket is full
    XSITE_RETURN_IF_ERROR(s.tls->flush(s.fd.get()));
    if (s.tls->outPending()) return Status::ok();
  }
  while (true) {
    const bool midFrame = s.writeIdx < s.inflight.size() && s.inflight[s.writeIdx]->written > 0;
    if (!s.ackActive && s.ackWant > s.ackSent && !midFrame) {
      FrameHeader& a = s.ackOut;
      a = FrameHeader{};
      a.magic = FrameHeader::kMagic;
      a.version = FrameHeader::kVersion;
      a.flags = FrameHeader::kFlagAck;
      a.seq = s.ackWant;
      a.crc = headerCrc(a);
      s.ackSent = s.ackWant;
      s.ackActive = true;
      s.ackWritten = 0;
    }
    if (s.ackActive) {
      iovec iov{reinterpret_cast<char*>(&s.ackOut) + s.ackWritten, kHdr - s.ackWritten};
      Result<size_t> w = sendOn(s, &iov, 1);
      if (!w) return w.status();
      if (w.value() == 0) return Status::ok();  // socket full
      moved = true;
      s.ackWritten += w.value();
      if (s.ackWritten < kHdr) return Status::ok();
      s.ackActive = false;
      continue;
    }
    if (s.writeIdx == s.inflight.size()) {
      if (nextUnassigned_ >= frames_.size()) return Status::ok();
      s.inflight.push_back(frames_[nextUnassigned_++].get());
    }
    OutFrame& f = *s.inflight[s.writeIdx];
    const size_t len = f.hdr.length;
    iovec iov[3];
    int n = 0;
    if (f.written < kHdr)
      iov[n++] = {reinterpret_cast<char*>(&f.hdr) + f.written, kHdr - f.written};
    size_t done = f.written > kHdr ? f.written - kHdr : 0;
    if (done < len) {
      size_t pos = (f.stagingPos + done) % stagingBytes_;
      size_t first = std::min(len - done, stagingBytes_ - pos);
      iov[n++] = {staging_.get() + pos, first};
      if (first < len - done) iov[n++] = {staging_.get(), len - done - first};
    }
    Result<size_t> w = sendOn(s, iov, n);
    if (!w) return w.status();
    if (w.value() == 0) return Status::ok();  // socket full
    moved = true;
    f.written += w.value();
    if (f.written < kHdr + len) return Status::ok();  // socket full
    ++s.writeIdx;
  }
}

Result<size_t> WanLink::sendOn(Stream& s, const iovec* iov, int iovcnt) noexcept {
  return s.tls ? s.tls->send(s.fd.get(), iov, iovcnt) : socketSend(label_, s.fd.get(), iov, iovcnt);
}

Result<size_t> WanLink::recvOn(Stream& s, void* data, size_t bytes) noexcept {
  return s.tls ? s.tls->recv(s.fd.get(), data, bytes) : socketRecv(label_, s.fd.get(), data, bytes);
}

// The peer has every frame of `s` numbered below `below`: they leave the window.
Status WanLink::acknowledge(Stream& s, uint64_t below) noexcept {
  while (!s.inflight.empty() && s.inflight.front()->hdr.seq < below) {
    if (s.writeIdx == 0)
      return badFrame("acknowledged frame " + std::to_string(s.inflight.front()->hdr.seq) +
                      ", which was never sent whole");
    s.inflight.front()->acked = true;
    ackedBytes_ += s.inflight.front()->hdr.length;
    s.inflight.pop_front();
    --s.writeIdx;
  }
  return Status::ok();
}

void WanLink::releaseStaging() noexcept {
  while (!frames_.empty() && frames_.front()->acked) {
    stageTail_ = frames_.front()->stagingPos + frames_.front()->hdr.length;
    frames_.pop_front();
    --nextUnassigned_;
  }
}

Status WanLink::checkRange(const FrameHeader& h) const {
  if (h.offset <= h.messageBytes && h.length <= h.messageBytes - h.offset) return Status::ok();
  return badFrame("frame [" + std::to_string(h.offset) + ", +" + std::to_string(h.length) +
                  ") lies outside its " + std::to_string(h.messageBytes) + "-byte message");
}

// A buffer of its own for the payload of the frame being read on `s` (a frame with no
// receive yet, or one read only to be dropped).
Status WanLink::bufferPayload(Stream& s) noexcept {
  const uint32_t n = s.in.length;
  s.early.reset(n > 0 ? new (std::nothrow) char[n] : nullptr);
  if (n > 0 && !s.early)
    return Status(ErrorCategory::kSystem, label_ + ": out of memory reading a WAN frame");
  s.dst = s.early.get();
  return Status::ok();
}

// Where a frame's payload goes: straight into its receive when that is posted; else, on a link
// of several channels, into a buffer of its own (one channel must not block another), unless the
// early frames already hold opt_.earlyBytes; on a link of one channel it stays in the socket
// until its receive is posted. A frame of a failed or closed channel is read and dropped.
Status WanLink::route(Stream& s) noexcept {
  const FrameHeader& h = s.in;
  WanConnection* c = byChannel_[h.channel];  // nullptr: closed here
  if (c != nullptr && h.message < c->recvMessage())
    return badFrame("frame of message " + std::to_string(h.message) + " on " + c->label() +
                    ", which is already complete");
  char* into = nullptr;
  const bool posted = c != nullptr && c->headRecv(into);
  bool take = c != nullptr && !c->failed();
  const bool direct = take && posted && h.message == c->recvMessage();
  if (direct) XSITE_RETURN_IF_ERROR(c->accept(h, take));
  s.buffered = s.discard = false;
  if (!take) {
    XSITE_RETURN_IF_ERROR(bufferPayload(s));
    s.discard = true;
  } else if (direct) {
    s.dst = into + h.offset;
  } else {
    XSITE_RETURN_IF_ERROR(checkRange(h));
    if (channels_.size() == 1) return Status::ok();  // waits in the socket
    if (earlyHeld_ > 0 && earlyHeld_ + earlyCost(h) > opt_.earlyBytes) return Status::ok();
    XSITE_RETURN_IF_ERROR(bufferPayload(s));
    earlyHeld_ += earlyCost(h);
    s.buffered = true;
  }
  s.crc = headerCrc(h);
  s.routed = true;
  return Status::ok();
}

Status WanLink::frameDone(Stream& s) noexcept {
  const FrameHeader& h = s.in;
  if (s.crc != h.crc)
    return badFrame("checksum mismatch in frame at offset " + std::to_string(h.offset) +
                    " of message " + std::to_string(h.message) + " on channel " +
                    std::to_string(h.channel));
  s.recvBelow = h.seq + 1;
  if (s.discard)
    s.early.reset();
  else if (s.buffered)
    byChannel_[h.channel]->keepEarly(h, std::move(s.early));
  else
    byChannel_[h.channel]->delivered(h.length);
  receivedBytes_.fetch_add(h.length, std::memory_order_relaxed);
  s.inGot = 0;
  s.payloadGot = 0;
  s.routed = false;
  s.buffered = s.discard = false;
  s.dst = nullptr;
  return Status::ok();
}

Status WanLink::readStream(Stream& s, bool& moved) noexcept {
  while (!s.ended && s.state == StreamState::kUp) {
    if (s.inGot < kHdr) {
      Result<size_t> r = recvOn(s, reinterpret_cast<char*>(&s.in) + s.inGot, kHdr - s.inGot);
      if (!r) {
        // A peer that sent its last frames and closed ends each stream between frames, and a
        // stream may end while the others still carry the rest: only a stream cut inside a
        // frame, or every stream ended with a receive posted (progress()), is an error.
        // A socket aborted here (ss -K, a TCP_USER_TIMEOUT) also reads as closed; only one the
        // peer closed waits in CLOSE_WAIT.
        char c;
        if (s.inGot == 0 && ::recv(s.fd.get(), &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0 &&
            peerClosed(s.fd.get())) {
          s.ended = true;
          return Status::ok();
        }
        return streamFailed(s, r.status());
      }
      if (r.value() == 0) return Status::ok();
      moved = true;
      s.inGot += r.value();
      if (s.inGot < kHdr) continue;
      const FrameHeader& h = s.in;
      if (h.magic != FrameHeader::kMagic || h.version != FrameHeader::kVersion) {
        const auto* b = reinterpret_cast<const uint8_t*>(&h);
        if (!s.tls && b[0] == 0x16 && b[1] == 0x03)  // a TLS handshake record
          return Status(ErrorCategory::kInvalidUsage,
                        label_ + " speaks TLS on its WAN streams and this rank does not: set "
                                 "XSITE_WAN_TLS the same on every rank");
        char m[16];
        snprintf(m, sizeof(m), "%08x", h.magic);
        return badFrame(std::string("bad magic 0x") + m + " or version " + std::to_string(h.version));
      }
      if (h.reserved0 != 0 || h.reserved1 != 0) return badFrame("reserved fields set");
      if (h.flags == FrameHeader::kFlagAck) {
        if (h.length != 0 || h.crc != headerCrc(h)) return badFrame("garbled acknowledgement");
        s.inGot = 0;
        std::lock_guard<std::mutex> lk(sendMu_);
        XSITE_RETURN_IF_ERROR(acknowledge(s, h.seq));
        continue;
      }
      if (h.flags != 0) return badFrame("unknown flags " + std::to_string(h.flags));
      if (h.length > kMaxFrameBytes) return badFrame("frame of " + std::to_string(h.length) + " bytes");
      if (byChannel_[h.channel] == nullptr && !closed_[h.channel])
        return badFrame("frame for channel " + std::to_string(h.channel) + ", which this link does not carry");
      if (h.seq < s.recvBelow) return badFrame("frame sequence went backwards");
      s.payloadGot = 0;
      s.routed = false;
    }
    if (!s.routed) {
      XSITE_RETURN_IF_ERROR(route(s));
      if (!s.routed) return Status::ok();  // no room to buffer it yet
    }
    const FrameHeader& h = s.in;
    if (s.payloadGot < h.length) {
      char* dst = s.dst + s.payloadGot;
      Result<size_t> r = recvOn(s, dst, h.length - s.payloadGot);
      if (!r) return streamFailed(s, r.status());
      if (r.value() == 0) return Status::ok();
      moved = true;
      s.crc = crc32c(dst, r.value(), s.crc);
      s.payloadGot += r.value();
      if (s.payloadGot < h.length) continue;
    }
    XSITE_RETURN_IF_ERROR(frameDone(s));
    moved = true;
  }
  return Status::ok();
}

Status WanLink::flushLocked(bool& moved) noexcept {
  XSITE_RETURN_IF_ERROR(sendError_);
  Status s = stage(moved);
  if (s) s = writeStreams(moved);
  releaseStaging();
  if (s) s = stage(moved);
  if (s) s = writeStreams(moved);
  if (!s) sendError_ = s;
  return s;
}

bool WanLink::pendingLocked() const noexcept {
  if (!sendError_.isOk()) return false;
  if (!sendOrder_.empty() || nextUnassigned_ < frames_.size()) return true;
  return std::any_of(streams_.begin(), streams_.end(), [&](const Stream& s) { return writing(s); });
}

void WanLink::flush(bool& moved, bool& pending) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  if (!flushLocked(moved)) return;
  pending = pending || pendingLocked();
}

void WanLink::pendingFds(std::vector<int>& out) {
  std::lock_guard<std::mutex> lk(sendMu_);
  for (const auto& s : streams_)
    if (writing(s)) out.push_back(s.fd.get());
}

bool WanLink::appendPollFds(std::vector<pollfd>& out) const noexcept {
  if (healing()) return false;  // sockets come and go: the caller polls by time
  std::lock_guard<std::mutex> rl(recvMu_);
  std::lock_guard<std::mutex> lk(sendMu_);
  // A send not yet staged waits for the window, which acknowledgements free: they come back on
  // every stream. A stream is written to when it has bytes of its own to write, or when a staged
  // frame has no stream yet (any stream with room takes it); a stream whose frames are all
  // written waits for input only, or it would wake its caller for as long as the socket has room.
  const bool stalledSend = !sendOrder_.empty();
  const bool unassigned = nextUnassigned_ < frames_.size();
  const bool wantRecv = std::any_of(channels_.begin(), channels_.end(),
                                    [](const WanConnection* c) { return c->wantsInput(); });
  for (const auto& s : streams_) {
    // A stream whose frame waits for room to be buffered has nothing to read until one is taken.
    const bool parked = s.ended || (s.inGot == kHdr && !s.routed);
    short e = static_cast<short>((wantRecv || stalledSend) && !parked ? POLLIN : 0);
    if (up(s) && (unassigned || writing(s))) e |= POLLOUT;
    // Bytes TLS holds are invisible to poll(): the caller polls by time until they are read.
    if (s.tls && (e & POLLIN) && s.tls->inBuffered()) return false;
    if (e != 0) out.push_back({s.fd.get(), e, 0});
  }
  return true;
}

void WanLink::breakFailedSends() noexcept {
  for (Stream& s : streams_)
    if (s.state == StreamState::kUp && !s.sendFailed.isOk()) breakStream(s, s.sendFailed);
}

// Moves everything of every channel: a frame for one channel may sit in front of another's.
Status WanLink::progress(bool& moved) noexcept {
  std::lock_guard<std::mutex> rl(recvMu_);
  XSITE_RETURN_IF_ERROR(error_);
  Status st;
  {
    std::lock_guard<std::mutex> lk(sendMu_);
    if (healing()) {  // TLS handshakes move with the owner's progress too (links without healing)
      const auto now = Clock::now();
      for (Stream& s : streams_)
        if (s.state == StreamState::kSecuring) secureStream(s, now);
      const auto securing = [](const Stream& s) { return s.state == StreamState::kSecuring; };
      const auto lost = [](const Stream& s) { return s.state == StreamState::kBroken; };
      if (!resume_ && error_.isOk() && std::none_of(streams_.begin(), streams_.end(), securing)) {
        auto first = std::find_if(streams_.begin(), streams_.end(), lost);
        if (first != streams_.end()) failLink(first->why);
      }
      updateHealing();
      XSITE_RETURN_IF_ERROR(error_);
    }
    st = flushLocked(moved);
    if (st && resume_) breakFailedSends();
  }
  // A message completed can let buffered frames in, and room freed can unpark a stream.
  for (int pass = 0; st && pass < 4; ++pass) {
    bool any = false;
    for (WanConnection* c : channels_)
      if (st) st = c->takeEarly(any);
    for (auto& s : streams_)
      if (st) st = readStream(s, any);
    if (!any) break;
    moved = true;
  }
  if (st) {  // acknowledge what arrived, and stage into the window the acknowledgements freed
    std::lock_guard<std::mutex> lk(sendMu_);
    for (auto& s : streams_) s.ackWant = std::max(s.ackWant, s.recvBelow);
    st = flushLocked(moved);
    if (st && resume_) breakFailedSends();
  }
  if (!st) error_ = st;
  return st;
}

bool WanLink::allEnded() const noexcept {
  std::lock_guard<std::mutex> rl(recvMu_);
  return std::all_of(streams_.begin(), streams_.end(), [](const Stream& s) { return s.ended; });
}

bool WanLink::drain(Clock::time_point deadline) noexcept {
  while (true) {
    bool moved = false;
    Status st = progress(moved);
    {
      std::lock_guard<std::mutex> lk(sendMu_);
      if (frames_.empty() && sendOrder_.empty()) return true;
    }
    // A peer that closed every stream acknowledges nothing more.
    if (!st || Clock::now() >= deadline || allEnded()) return false;
    if (!moved) {
      std::vector<pollfd> pfds;
      if (appendPollFds(pfds)) {
        for (auto& p : pfds) p.events |= POLLIN;
        ::poll(pfds.data(), pfds.size(), 1);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
}

// ---- healing --------------------------------------------------------------------------------

void WanLink::enableResume(WanResume resume) {
  std::lock_guard<std::mutex> rl(recvMu_);
  std::lock_guard<std::mutex> lk(sendMu_);
  resume_ = std::make_unique<WanResume>(std::move(resume));
}

void WanLink::updateHealing() noexcept {
  healing_.store(error_.isOk() && std::any_of(streams_.begin(), streams_.end(),
                                               [&](const Stream& s) { return !up(s); }),
                 std::memory_order_release);
}

Status WanLink::streamFailed(Stream& s, const Status& why) noexcept {
  // Bytes changed on the path (TLS refused them) end the link, like a garbled frame.
  if (!resume_ || (s.tls && s.tls->rejected())) return why;
  std::lock_guard<std::mutex> lk(sendMu_);
  breakStream(s, why);
  return Status::ok();
}

// Closes the stream's socket and forgets the frame it was reading (it comes again), so that the
// stream can resume on a new socket from the last whole frame either side has.
void WanLink::breakStream(Stream& s, Status why) noexcept {
  if (s.state != StreamState::kUp && s.state != StreamState::kSecuring) return;
  s.tls.reset();
  if (s.routed) {
    if (s.buffered)
      earlyHeld_ -= earlyCost(s.in);
    else if (!s.discard && byChannel_[s.in.channel] != nullptr)
      byChannel_[s.in.channel]->unaccept(s.in);
  }
  s.inGot = s.payloadGot = 0;
  s.routed = s.buffered = s.discard = false;
  s.early.reset();
  s.dst = nullptr;
  s.ended = false;
  resetAndClose(s.fd);
  s.ackActive = false;
  s.sendFailed = Status::ok();
  s.state = StreamState::kBroken;
  s.why = why;
  s.brokenAt = s.nextTry = Clock::now();
  s.trying.reset();
  healing_.store(true, std::memory_order_release);
  XSITE_WARN(kNet, "%s: WAN stream %d broke (%s); %s", label_.c_str(), indexOf(s),
             why.message().c_str(),
             resume_->dialer ? "dialing again" : "waiting for the peer to dial again");
}

void WanLink::resumeStream(Stream& s, Fd fd, uint64_t peerRecvBelow) noexcept {
  const size_t before = s.inflight.size();
  Status st = acknowledge(s, peerRecvBelow);
  if (!st) {
    failLink(st);
    return;
  }
  for (OutFrame* f : s.inflight) f->written = 0;
  s.writeIdx = 0;
  setNonBlocking(fd.get(), true);
  setNoDelay(fd.get());
  s.fd = std::move(fd);
  s.sndLocked = s.rcvLocked = opt_.socketBytes > 0;  // as set up again (WanResume::prepare)
  s.trying.reset();
  s.state = StreamState::kUp;
  if (opt_.tls) startTls(s, resume_->dialer, Clock::now());
  s.ackSent = s.ackWant = s.recvBelow;  // the peer learnt it in the handshake
  XSITE_INFO(kNet, "%s: WAN stream %d healed after %.2f s; %zu frames resent, %zu were already there",
             label_.c_str(), indexOf(s), secondsOf(Clock::now() - s.brokenAt), s.inflight.size(),
             before - s.inflight.size());
  updateHealing();
}

void WanLink::failLink(const Status& why) noexcept {
  if (error_.isOk()) error_ = why;
  if (sendError_.isOk()) sendError_ = why;
  for (Stream& s : streams_) s.trying.reset();
  healing_.store(false, std::memory_order_release);
  XSITE_WARN(kNet, "%s", why.message().c_str());
}

Status WanLink::refused(const Stream& s) const {
  return Status(ErrorCategory::kRemote,
                label_ + ": WAN stream " + std::to_string(indexOf(s)) + " broke (" +
                    s.why.message() + ") and the peer's listener at " + resume_->peer.toString() +
                    " refuses connections: did that rank exit or crash?");
}

void WanLink::retryLater(Stream& s, Clock::time_point now) noexcept {
  s.trying.reset();
  s.state = StreamState::kBroken;
  s.nextTry = now + (resume_->dialer ? Clock::duration(kRedialPause) : Clock::duration(kProbePeriod));
}

// Dials the peer's listener: to re-open the stream (dialer), or to learn whether the peer still
// listens (the waiting side's probe: a refusal means its process is gone).
void WanLink::startTry(Stream& s, Clock::time_point now) noexcept {
  s.probe = !resume_->dialer;
  Fd fd = dialStart(resume_->peer, [&](int f) {
    if (!s.probe && resume_->prepare) resume_->prepare(f);
  });
  if (!fd.valid()) {
    if (errno == ECONNREFUSED) {
      failLink(refused(s));
      return;
    }
    retryLater(s, now);
    return;
  }
  s.trying = std::move(fd);
  s.state = StreamState::kDialing;
  s.tryDeadline = now + kTryLimit;
}

void WanLink::healStream(Stream& s, Clock::time_point now) noexcept {
  if (s.state == StreamState::kSecuring) {
    secureStream(s, now);
    return;
  }
  if (now - s.brokenAt > resume_->timeout) {
    char t[32];
    snprintf(t, sizeof(t), "%.0f", secondsOf(resume_->timeout));
    failLink(Status(ErrorCategory::kRemote,
                    label_ + ": WAN stream " + std::to_string(indexOf(s)) + " broke (" +
                        s.why.message() + ") and could not be re-established within " + t +
                        " s (XSITE_WAN_RECONNECT_TIMEOUT): is the path to that rank down?"));
    return;
  }
  if (!s.trying.valid()) {
    if (now >= s.nextTry) startTry(s, now);
    return;
  }
  if (now > s.tryDeadline) {
    retryLater(s, now);
    return;
  }
  if (s.state == StreamState::kDialing) {
    pollfd p{s.trying.get(), POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) return;
    const int err = socketError(s.trying.get());
    if (err == ECONNREFUSED) {
      failLink(refused(s));
      return;
    }
    if (err != 0) {
      retryLater(s, now);
      return;
    }
    if (s.probe) {  // the peer is alive: it will dial
      retryLater(s, now);
      return;
    }
    ResumeHello hello = resume_->hello;
    hello.magic = ResumeHello::kMagic;
    hello.stream = static_cast<uint32_t>(indexOf(s));
    hello.recvBelow = s.recvBelow;  // a broken stream reads nothing: it stays so
    s.dial = std::make_unique<bootstrap::AuthDial>(resume_->secret,
                                                   "the listener at " + resume_->peer.toString(),
                                                   &hello, sizeof(hello), sizeof(ResumeReply));
    s.state = StreamState::kAuthenticating;
    return;
  }
  // The listener's challenge, our answer and hello, its proof and how far it received.
  switch (s.dial->step(s.trying.get())) {
    case bootstrap::AuthDial::State::kWaiting: return;
    case bootstrap::AuthDial::State::kClosed: retryLater(s, now); return;  // not ready for it yet
    case bootstrap::AuthDial::State::kFailed:
      failLink(Status(s.dial->error().category(), label_ + ": re-opening WAN stream " +
                                                      std::to_string(indexOf(s)) + ": " +
                                                      s.dial->error().message()));
      return;
    case bootstrap::AuthDial::State::kProved: break;
  }
  ResumeReply reply;
  std::memcpy(&reply, s.dial->reply(), sizeof(reply));
  s.dial.reset();
  if (reply.magic != ResumeReply::kMagic) {
    failLink(badFrame("answered a stream's re-opening with garbage"));
    return;
  }
  if (reply.flags & ResumeReply::kNoSuchLink) {
    failLink(Status(ErrorCategory::kRemote,
                    label_ + ": WAN stream " + std::to_string(indexOf(s)) + " broke (" +
                        s.why.message() + ") and the peer at " + resume_->peer.toString() +
                        " has closed this link (its comm or communicator is gone)"));
    return;
  }
  resumeStream(s, std::move(s.trying), reply.recvBelow);
}

void WanLink::startTls(Stream& s, bool client, Clock::time_point now) {
  s.tls = opt_.tls->open(client, label_ + ", stream " + std::to_string(indexOf(s)));
  s.state = StreamState::kSecuring;
  s.securingSince = now;
  healing_.store(true, std::memory_order_release);
}

void WanLink::secureStream(Stream& s, Clock::time_point now) noexcept {
  Result<bool> done = s.tls->handshake(s.fd.get());
  if (done && done.value()) {
    s.state = StreamState::kUp;
    XSITE_DEBUG(kNet, "%s: WAN stream %d secured (TLS 1.3) in %.3f s", label_.c_str(), indexOf(s),
                secondsOf(now - s.securingSince));
    return;
  }
  if (done && now - s.securingSince <= kSecureLimit) return;  // waits for the peer
  Status why = done ? Status(ErrorCategory::kTimeout,
                             label_ + ": WAN stream " + std::to_string(indexOf(s)) +
                                 ": the peer did not complete the TLS handshake within 30 s "
                                 "(does it run with XSITE_WAN_TLS=1?)")
                    : done.status();
  const bool lost = !s.tls->rejected() && done.status().category() != ErrorCategory::kTimeout;
  if (lost && resume_) {
    breakStream(s, why);  // the socket failed: heal it like any broken stream
    return;
  }
  if (lost) {
    // Without healing a lost socket ends the link, but the peer may have refused this side on
    // another stream and closed them all: that refusal says what to fix, so the streams still in
    // their handshake finish first (progress() fails the link once none is).
    s.tls.reset();
    resetAndClose(s.fd);
    s.state = StreamState::kBroken;
    s.why = why;
    return;
  }
  failLink(why);  // a peer that rejects the handshake would reject it on any socket
}

// A stream of a link nobody uses breaks unseen (nothing reads or writes it): look at the sockets
// now and then, so that it heals before it is needed and its timeout counts from the break.
void WanLink::watchIdle(Clock::time_point now) noexcept {
  if (now < nextWatch_) return;
  nextWatch_ = now + kWatchPeriod;
  std::unique_lock<std::mutex> rl(recvMu_, std::try_to_lock);
  if (!rl.owns_lock()) return;  // the owner is progressing the link: it sees errors itself
  std::lock_guard<std::mutex> lk(sendMu_);
  if (!error_.isOk()) return;
  for (Stream& s : streams_) {
    if (s.state != StreamState::kUp || s.ended) continue;
    pollfd p{s.fd.get(), 0, 0};
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & (POLLERR | POLLHUP))) continue;
    const int err = socketError(s.fd.get());
    breakStream(s, Status(ErrorCategory::kRemote,
                          label_ + ": " + (err != 0 ? errnoString(err) : std::string("hung up")) +
                              " (seen while the link was idle)"));
  }
}

size_t WanLink::windowBytes() const noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  return opt_.windowBytes;
}

double WanLink::minRttUs() const noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  int up = 0;
  return minRttLocked(up);
}

double WanLink::minRttLocked(int& up) const noexcept {
  double rtt = 0;
  up = 0;
  for (const Stream& s : streams_) {
    const double r = s.state == StreamState::kUp && s.fd.valid() ? tcpMinRttUs(s.fd.get()) : 0;
    if (r <= 0) continue;
    ++up;
    rtt = rtt > 0 ? std::min(rtt, r) : r;
  }
  return rtt;
}

// Re-lays the live bytes [stageTail_, stageHead_) out in a larger ring; frames keep their
// (monotonic) staging positions. Nothing holds a pointer into the ring outside sendMu_.
void WanLink::growWindow(size_t bytes) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  growWindowLocked(bytes);
}

void WanLink::growWindowLocked(size_t bytes) noexcept {
  if (bytes <= opt_.windowBytes) return;
  if (bytes > stagingBytes_) {
    std::unique_ptr<char[]> ring(new (std::nothrow) char[bytes]);
    if (!ring) return;  // stays as it is
    for (size_t p = stageTail_; p < stageHead_;) {
      const size_t from = p % stagingBytes_, to = p % bytes;
      const size_t n = std::min({stageHead_ - p, stagingBytes_ - from, bytes - to});
      memcpy(ring.get() + to, staging_.get() + from, n);
      p += n;
    }
    staging_ = std::move(ring);
    stagingBytes_ = bytes;
  }
  opt_.windowBytes = bytes;
}

// The path, not the settings. What the path carries is measured over kRateRtts round trips and
// at least kRateSpan (what arrives in 200 ms can swing by a factor of three): the rate at which
// the peer acknowledges this side's frames (sending) and at which frames arrive (receiving). Times
// the smallest RTT the kernel saw on a stream (TCP_INFO), each is a bandwidth-delay product as
// measured. From it, as wanSizing() does from the settings: a staging window of kWindowBdps
// products and socket buffers of four products over the streams. While they limit, the measured
// rate is what they let through, so each look grows them again (at most kMaxGrowth times over)
// until the path is the limit. Buffers the kernel's autotuning still covers (net.ipv4.tcp_wmem,
// tcp_rmem) are left to it. Only ever grows, up to the caps.
void WanLink::adapt() noexcept {
  const auto now = Clock::now();
  if (now < nextAdapt_) return;
  nextAdapt_ = now + kAdaptPeriod;
  // rateSince_ is this thread's alone: no lock, and no TCP_INFO, before a span can have passed.
  if (rateSince_ != Clock::time_point{} && now - rateSince_ < kRateSpan) return;
  std::lock_guard<std::mutex> lk(sendMu_);
  int up = 0;
  const double rtt = minRttLocked(up);
  const uint64_t received = receivedBytes_.load(std::memory_order_relaxed);
  if (rtt <= 0 || up == 0 || rateSince_ == Clock::time_point{}) {
    rateSince_ = now;
    rateAcked_ = ackedBytes_;
    rateReceived_ = received;
    return;
  }
  const auto span = now - rateSince_;
  if (span < std::max<Clock::duration>(std::chrono::microseconds(static_cast<int64_t>(kRateRtts * rtt)),
                                       kRateSpan))
    return;
  const double seconds = secondsOf(span);
  const double sendBdp = (ackedBytes_ - rateAcked_) / seconds * rtt / 1e6;
  const double recvBdp = (received - rateReceived_) / seconds * rtt / 1e6;
  rateSince_ = now;
  rateAcked_ = ackedBytes_;
  rateReceived_ = received;

  auto grow = [&](Stream& s, bool send, double want) {
    int have = 0;
    socklen_t len = sizeof(have);
    if (::getsockopt(s.fd.get(), SOL_SOCKET, send ? SO_SNDBUF : SO_RCVBUF, &have, &len) != 0) return;
    bool& locked = send ? s.sndLocked : s.rcvLocked;
    const int limit = send ? autotuneLimits().send : autotuneLimits().receive;
    want = std::min({want, kMaxGrowth * have, double(opt_.maxSocketBytes)});  // as the kernel counts
    if (want <= 1.25 * have || (!locked && want <= limit)) return;
    const int ask = static_cast<int>(want / 2);  // the kernel doubles what it is asked
    if (!setBufferSize(s.fd.get(), send, ask)) return;
    locked = true;
    XSITE_INFO(kNet, "%s stream %d: %s buffer %d -> %d bytes (path: %.1f ms RTT, %.0f Mbit/s)",
               label_.c_str(), indexOf(s), send ? "send" : "receive", have, 2 * ask, rtt / 1e3,
               (send ? sendBdp : recvBdp) / rtt * 8);
  };
  for (Stream& s : streams_) {
    if (s.state != StreamState::kUp || !s.fd.valid()) continue;
    grow(s, true, 2 * 4 * sendBdp / up);  // as the kernel counts: twice the four products
    grow(s, false, 2 * 4 * recvBdp / up);
  }
  if (opt_.fixedWindow || opt_.windowBytes >= opt_.maxWindowBytes) return;
  const double want = std::min({kWindowBdps * sendBdp, kMaxGrowth * opt_.windowBytes,
                                double(opt_.maxWindowBytes)});
  if (want <= 1.25 * opt_.windowBytes) return;  // grow in real steps
  const size_t bytes = (static_cast<size_t>(want) + 4095) & ~size_t{4095};
  XSITE_INFO(kNet, "%s: staging window %zu -> %zu bytes (path: %.1f ms RTT, %.0f Mbit/s)",
             label_.c_str(), opt_.windowBytes, bytes, rtt / 1e3, sendBdp / rtt * 8);
  growWindowLocked(bytes);
}

void WanLink::heal() noexcept {
  if (!resume_) return;
  if (!healing()) watchIdle(Clock::now());
  if (!healing()) return;
  std::lock_guard<std::mutex> rl(recvMu_);
  std::lock_guard<std::mutex> lk(sendMu_);
  if (!error_.isOk()) return;
  breakFailedSends();
  const auto now = Clock::now();
  for (Stream& s : streams_) {
    if (s.state != StreamState::kUp) healStream(s, now);
    if (!error_.isOk()) return;
  }
  updateHealing();
}

void WanLink::adopt(uint32_t index, Fd fd, uint64_t peerRecvBelow) noexcept {
  std::lock_guard<std::mutex> rl(recvMu_);
  std::lock_guard<std::mutex> lk(sendMu_);
  if (!resume_ || !error_.isOk() || index >= streams_.size()) return;
  Stream& s = streams_[index];
  if (s.state == StreamState::kUp || s.state == StreamState::kSecuring)  // the peer saw the break first
    breakStream(s, Status(ErrorCategory::kRemote, "the peer re-opened it"));
  if (resume_->prepare) resume_->prepare(fd.get());
  const ResumeReply reply{ResumeReply::kMagic, 0, s.recvBelow};
  if (::send(fd.get(), &reply, sizeof(reply), MSG_NOSIGNAL | MSG_DONTWAIT) !=
      static_cast<ssize_t>(sizeof(reply)))
    return;  // the peer dials again
  resumeStream(s, std::move(fd), peerRecvBelow);
}

// ---- one channel ----------------------------------------------------------------------------

WanConnection::WanConnection(int peer, std::string label, std::vector<Fd> streams, WanOptions options)
    : WanConnection(peer, label, std::make_shared<WanLink>(label, std::move(streams), options), 0) {}

WanConnection::WanConnection(int peer, std::string label, std::shared_ptr<WanLink> link, int channel)
    : Connection(peer, std::move(label)), link_(std::move(link)), channel_(channel) {
  link_->attach(this, channel);
}

WanConnection::~WanConnection() { link_->detach(channel_); }

uint64_t WanConnection::postSend(const void* data, size_t bytes, uint32_t tag) noexcept {
  return link_->postSend(this, data, bytes, tag);
}

bool WanConnection::probe(Arrival& next) noexcept {
  if (recvQueued()) return false;
  FrameHeader h;
  auto it = early_.find(recvMessage_);
  probing_ = it == early_.end() && !link_->waitingHeader(channel_, recvMessage_, h);
  if (probing_) return false;
  if (it != early_.end()) h = it->second.front().hdr;
  next = Arrival{h.messageBytes, h.tag};
  return true;
}

Status WanConnection::accept(const FrameHeader& h, bool& take) noexcept {
  const Op* op = frontRecv();
  if (recvRanges_.empty()) {  // the message's first frame here: its size and tag
    Status st = takes(*op, h.messageBytes);
    take = st.isOk();
    if (!take) {
      error_ = std::move(st);
      return Status::ok();
    }
    recvSize_ = h.messageBytes;
    recvTag_ = h.tag;
  } else if (h.messageBytes != recvSize_ || h.tag != recvTag_) {
    return link_->badFrame("frames of message " + std::to_string(h.message) + " on " + label() +
                           " disagree on its size or tag");
  }
  take = true;
  XSITE_RETURN_IF_ERROR(link_->checkRange(h));
  if (h.length == 0 && h.messageBytes != 0)
    return link_->badFrame("empty frame in a non-empty message");
  // Frames of one message must not overlap (then their lengths adding up means all arrived).
  auto next = recvRanges_.lower_bound(h.offset);
  const bool overlaps =
      (next != recvRanges_.end() && (next->first == h.offset || next->first < h.offset + h.length)) ||
      (next != recvRanges_.begin() && std::prev(next)->first + std::prev(next)->second > h.offset);
  if (overlaps || recvClaimed_ + h.length > h.messageBytes)
    return link_->badFrame("frame at offset " + std::to_string(h.offset) + " of message " +
                           std::to_string(h.message) + " on " + label() + " arrived twice");
  recvRanges_.emplace(h.offset, h.length);
  recvClaimed_ += h.length;
  return Status::ok();
}

void WanConnection::unaccept(const FrameHeader& h) noexcept {
  if (recvRanges_.erase(h.offset) > 0) recvClaimed_ -= h.length;
}

void WanConnection::delivered(size_t bytes) noexcept {
  recvBytes_ += bytes;
  if (recvBytes_ < recvSize_ || recvClaimed_ < recvSize_) return;
  completeRecv(recvSize_, recvTag_);
  ++recvMessage_;
  recvBytes_ = 0;
  recvClaimed_ = 0;
  recvRanges_.clear();
}

void WanConnection::dropEarly() noexcept {
  for (const auto& [message, frames] : early_)
    for (const auto& f : frames) link_->releaseEarly(earlyCost(f.hdr));
  early_.clear();
}

Status WanConnection::takeEarly(bool& moved) noexcept {
  if (!error_.isOk()) {
    dropEarly();
    return Status::ok();
  }
  while (Op* op = frontRecv()) {
    auto it = early_.find(recvMessage_);
    if (it == early_.end()) return Status::ok();
    std::vector<EarlyFrame> frames = std::move(it->second);
    early_.erase(it);
    for (const EarlyFrame& f : frames) link_->releaseEarly(earlyCost(f.hdr));
    const uint64_t message = recvMessage_;
    for (EarlyFrame& f : frames) {
      if (recvMessage_ != message)
        return link_->badFrame("more frames of message " + std::to_string(message) + " on " +
                               label() + " than its size holds");
      bool take = true;
      XSITE_RETURN_IF_ERROR(accept(f.hdr, take));
      if (!take) {
        dropEarly();
        return Status::ok();
      }
      if (f.hdr.length > 0) memcpy(op->data + f.hdr.offset, f.payload.get(), f.hdr.length);
      moved = true;
      delivered(f.hdr.length);
    }
  }
  // Frames buffered for a message that has completed without them are duplicates.
  if (!early_.empty() && early_.begin()->first < recvMessage_)
    return link_->badFrame("frame of message " + std::to_string(early_.begin()->first) + " on " +
                           label() + " arrived twice (that message completed without it)");
  return Status::ok();
}

void WanConnection::keepEarly(const FrameHeader& h, std::unique_ptr<char[]> payload) {
  early_[h.message].push_back(EarlyFrame{h, std::move(payload)});
}

bool WanConnection::appendPollFds(std::vector<pollfd>& out) const noexcept {
  return link_->appendPollFds(out);
}

Status WanConnection::progress(bool& moved) noexcept {
  XSITE_RETURN_IF_ERROR(link_->progress(moved));
  XSITE_RETURN_IF_ERROR(error_);
  if (recvQueued() && link_->allEnded())
    return peerGone("closed the connection: did that rank exit or crash?");
  return Status::ok();
}

}  // namespace xsite::transport::wan
