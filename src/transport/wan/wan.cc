#include "transport/wan/wan.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <new>

#include "util/crc32c.h"
#include "util/status.h"

namespace xsite::transport::wan {
namespace {

constexpr size_t kHdr = sizeof(FrameHeader);

uint32_t headerCrc(FrameHeader h) {
  h.crc = 0;
  return crc32c(&h, sizeof(h));
}

// What a buffered early frame counts against WanOptions::earlyBytes (empty ones too).
size_t earlyCost(const FrameHeader& h) { return h.length + kHdr; }

}  // namespace

WanSizing wanSizing(double rateMbit, double latencyUs, int streams, size_t windowBytes) noexcept {
  const double bdp = rateMbit / 8.0 * 2.0 * latencyUs;  // bytes per round trip
  WanSizing z;
  z.socketBytes = static_cast<int>(
      std::clamp(4.0 * bdp / std::max(1, streams), 1.0 * (1 << 20), 64.0 * (1 << 20)));
  z.windowBytes =
      windowBytes > 0 ? windowBytes : std::max<size_t>(4u << 20, static_cast<size_t>(4 * bdp));
  return z;
}

bool prepareWanSocket(int fd, int socketBytes, const std::string& cc) noexcept {
  setBufferSizes(fd, socketBytes);
  return cc.empty() || setCongestionControl(fd, cc);
}

WanLink::WanLink(std::string label, std::vector<Fd> fds, WanOptions options)
    : label_(std::move(label)), opt_(options), byChannel_(256, nullptr), closed_(256, false) {
  opt_.frameBytes = std::clamp<size_t>(opt_.frameBytes, 4096, kMaxFrameBytes);
  opt_.windowBytes = std::max(opt_.windowBytes, 2 * opt_.frameBytes);
  stagingBytes_ = opt_.windowBytes;
  staging_.reset(new char[stagingBytes_]);
  streams_.resize(fds.size());
  for (size_t i = 0; i < fds.size(); ++i) {
    setNonBlocking(fds[i].get(), true);
    setNoDelay(fds[i].get());  // a frame is a whole unit: never wait for more (Nagle)
    streams_[i].fd = std::move(fds[i]);
  }
}

void WanLink::attach(WanConnection* c, int channel) {
  if (channel < 0 || channel >= static_cast<int>(byChannel_.size()) || byChannel_[channel])
    throw Error(ErrorCategory::kInternal,
                label_ + ": channel " + std::to_string(channel) + " is taken or out of range");
  std::lock_guard<std::mutex> lk(sendMu_);
  byChannel_[channel] = c;
  closed_[channel] = false;
  channels_.push_back(c);
}

void WanLink::detach(int channel) noexcept {
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

uint64_t WanLink::postSend(WanConnection* c, const void* data, size_t bytes) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  sendOrder_.push_back(c);
  return c->Connection::postSend(data, bytes);
}

// Copies the sends into the staging ring frame by frame, in the order they were posted over
// all channels, as far as the window allows; a send whose bytes are all staged is complete.
Status WanLink::stage(bool& moved) noexcept {
  while (!sendOrder_.empty()) {
    WanConnection* c = sendOrder_.front();
    auto* op = c->frontSend();
    const size_t remaining = op->bytes - stagedOfHead_;
    if (remaining == 0 && (op->bytes > 0 || headFramed_)) {
      c->completeSend();
      ++c->sendMessage_;
      sendOrder_.pop_front();
      stagedOfHead_ = 0;
      headFramed_ = false;
      moved = true;
      continue;
    }
    const size_t len = std::min(remaining, opt_.frameBytes);
    if (len > opt_.windowBytes - (stageHead_ - stageTail_)) break;  // window full
    const char* src = op->data + stagedOfHead_;
    const size_t pos = stageHead_ % stagingBytes_;
    const size_t first = std::min(len, stagingBytes_ - pos);
    memcpy(staging_.get() + pos, src, first);
    memcpy(staging_.get(), src + first, len - first);
    auto f = std::make_unique<OutFrame>();
    FrameHeader& h = f->hdr;
    h = FrameHeader{};
    h.magic = FrameHeader::kMagic;
    h.version = FrameHeader::kVersion;
    h.channel = static_cast<uint8_t>(c->channel_);
    h.length = static_cast<uint32_t>(len);
    h.seq = nextSeq_++;
    h.message = c->sendMessage_;
    h.offset = stagedOfHead_;
    h.messageBytes = op->bytes;
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

// Every stream with room takes the next frame: the streams' capacities add up.
Status WanLink::writeStreams(bool& moved) noexcept {
  for (auto& s : streams_) {
    while (true) {
      if (s.out == nullptr) {
        if (nextUnassigned_ >= frames_.size()) break;
        s.out = frames_[nextUnassigned_++].get();
      }
      OutFrame& f = *s.out;
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
      Result<size_t> w = socketSend(label_, s.fd.get(), iov, n);
      if (!w) return w.status();
      if (w.value() == 0) break;  // socket full
      moved = true;
      f.written += w.value();
      if (f.written < kHdr + len) break;  // socket full
      f.done = true;
      s.out = nullptr;
    }
  }
  return Status::ok();
}

void WanLink::releaseStaging() noexcept {
  while (!frames_.empty() && frames_.front()->done) {
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
  if (c != nullptr && h.message < c->recvMessage_)
    return badFrame("frame of message " + std::to_string(h.message) + " on " + c->label() +
                    ", which is already complete");
  auto* op = c != nullptr ? c->frontRecv() : nullptr;
  bool take = c != nullptr && c->error_.isOk();
  const bool direct = take && op != nullptr && h.message == c->recvMessage_;
  if (direct) XSITE_RETURN_IF_ERROR(c->accept(h, take));
  s.buffered = s.discard = false;
  if (!take) {
    XSITE_RETURN_IF_ERROR(bufferPayload(s));
    s.discard = true;
  } else if (direct) {
    s.dst = op->data + h.offset;
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
  if (s.discard)
    s.early.reset();
  else if (s.buffered)
    byChannel_[h.channel]->early_[h.message].push_back(WanConnection::EarlyFrame{h, std::move(s.early)});
  else
    byChannel_[h.channel]->delivered(h.length);
  s.inGot = 0;
  s.payloadGot = 0;
  s.routed = false;
  s.buffered = s.discard = false;
  s.dst = nullptr;
  return Status::ok();
}

Status WanLink::readStream(Stream& s, bool& moved) noexcept {
  while (!s.ended) {
    if (s.inGot < kHdr) {
      Result<size_t> r = socketRecv(label_, s.fd.get(), reinterpret_cast<char*>(&s.in) + s.inGot, kHdr - s.inGot);
      if (!r) {
        // A peer that sent its last frames and closed ends each stream between frames, and a
        // stream may end while the others still carry the rest: only a stream cut inside a
        // frame, or every stream ended with a receive posted (progress()), is an error.
        char c;
        if (s.inGot == 0 && ::recv(s.fd.get(), &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0) {
          s.ended = true;
          return Status::ok();
        }
        return r.status();
      }
      if (r.value() == 0) return Status::ok();
      moved = true;
      s.inGot += r.value();
      if (s.inGot < kHdr) continue;
      const FrameHeader& h = s.in;
      if (h.magic != FrameHeader::kMagic || h.version != FrameHeader::kVersion) {
        char m[16];
        snprintf(m, sizeof(m), "%08x", h.magic);
        return badFrame(std::string("bad magic 0x") + m + " or version " + std::to_string(h.version));
      }
      if (h.codec != 0) return badFrame("unknown codec " + std::to_string(h.codec));
      if (h.flags != 0) return badFrame("unknown flags " + std::to_string(h.flags));
      if (h.length > kMaxFrameBytes) return badFrame("frame of " + std::to_string(h.length) + " bytes");
      if (byChannel_[h.channel] == nullptr && !closed_[h.channel])
        return badFrame("frame for channel " + std::to_string(h.channel) + ", which this link does not carry");
      if (s.haveSeq && h.seq <= s.lastSeq) return badFrame("frame sequence went backwards");
      s.lastSeq = h.seq;
      s.haveSeq = true;
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
      Result<size_t> r = socketRecv(label_, s.fd.get(), dst, h.length - s.payloadGot);
      if (!r) return r.status();
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

void WanLink::flush(bool& moved, bool& pending) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  if (!flushLocked(moved)) return;
  pending = pending || !frames_.empty() || !sendOrder_.empty();
}

void WanLink::pendingFds(std::vector<int>& out) {
  std::lock_guard<std::mutex> lk(sendMu_);
  for (const auto& s : streams_)
    if (s.out != nullptr) out.push_back(s.fd.get());
}

bool WanLink::appendPollFds(std::vector<pollfd>& out) const noexcept {
  bool stalledSend;  // a send not yet staged: it waits for socket space to free the window
  {
    std::lock_guard<std::mutex> lk(sendMu_);
    stalledSend = !sendOrder_.empty();
  }
  const bool wantRecv = std::any_of(channels_.begin(), channels_.end(),
                                    [](const WanConnection* c) { return c->recvQueued(); });
  short events = static_cast<short>((wantRecv ? POLLIN : 0) | (stalledSend ? POLLOUT : 0));
  for (const auto& s : streams_) {
    // A stream whose frame waits for room to be buffered has nothing to read until one is taken.
    const bool parked = s.ended || (s.inGot == kHdr && !s.routed);
    short e = static_cast<short>(parked ? (events & ~POLLIN) : events);
    if (e != 0) out.push_back({s.fd.get(), e, 0});
  }
  return true;
}

// Moves everything of every channel: a frame for one channel may sit in front of another's.
Status WanLink::progress(bool& moved) noexcept {
  XSITE_RETURN_IF_ERROR(error_);
  Status st;
  {
    std::lock_guard<std::mutex> lk(sendMu_);
    st = flushLocked(moved);
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
  if (!st) error_ = st;
  return st;
}

// ---- one channel ----------------------------------------------------------------------------

WanConnection::WanConnection(int peer, std::string label, std::vector<Fd> streams, WanOptions options)
    : WanConnection(peer, label, std::make_shared<WanLink>(label, std::move(streams), options), 0) {}

WanConnection::WanConnection(int peer, std::string label, std::shared_ptr<WanLink> link, int channel)
    : Connection(peer, std::move(label)), link_(std::move(link)), channel_(channel) {
  link_->attach(this, channel);
}

WanConnection::~WanConnection() { link_->detach(channel_); }

uint64_t WanConnection::postSend(const void* data, size_t bytes) noexcept {
  return link_->postSend(this, data, bytes);
}

Status WanConnection::accept(const FrameHeader& h, bool& take) noexcept {
  const Op* op = frontRecv();
  take = h.messageBytes == op->bytes;
  if (!take) {
    error_ = sizeMismatch(h.messageBytes, op->bytes);
    return Status::ok();
  }
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

void WanConnection::delivered(size_t bytes) noexcept {
  recvBytes_ += bytes;
  if (recvBytes_ < frontRecv()->bytes || recvClaimed_ < frontRecv()->bytes) return;
  completeRecv();
  ++recvMessage_;
  recvBytes_ = 0;
  recvClaimed_ = 0;
  recvRanges_.clear();
}

void WanConnection::dropEarly() noexcept {
  for (const auto& [message, frames] : early_)
    for (const auto& f : frames) link_->earlyHeld_ -= earlyCost(f.hdr);
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
    for (const EarlyFrame& f : frames) link_->earlyHeld_ -= earlyCost(f.hdr);
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

bool WanConnection::appendPollFds(std::vector<pollfd>& out) const noexcept {
  return link_->appendPollFds(out);
}

Status WanConnection::progress(bool& moved) noexcept {
  XSITE_RETURN_IF_ERROR(link_->progress(moved));
  XSITE_RETURN_IF_ERROR(error_);
  if (recvQueued() && std::all_of(link_->streams_.begin(), link_->streams_.end(),
                                  [](const WanLink::Stream& s) { return s.ended; }))
    return peerGone("closed the connection: did that rank exit or crash?");
  return Status::ok();
}

}  // namespace xsite::transport::wan
