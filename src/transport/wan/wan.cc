#include "transport/wan/wan.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/crc32c.h"

namespace xsite::transport::wan {
namespace {

constexpr size_t kHdr = sizeof(FrameHeader);

uint32_t headerCrc(FrameHeader h) {
  h.crc = 0;
  return crc32c(&h, sizeof(h));
}

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

WanConnection::WanConnection(int peer, std::string label, std::vector<Fd> fds, WanOptions options)
    : Connection(peer, std::move(label)), opt_(options) {
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

Status WanConnection::badFrame(const std::string& why) const {
  return Status(ErrorCategory::kRemote,
                label() + " sent a garbled WAN frame: " + why +
                    " (the stream is corrupt, or the peer is not an xsite rank of this job)");
}

// Copies the head send into the staging ring frame by frame, as far as the window allows; a
// send whose bytes are all staged is complete.
Status WanConnection::stage(bool& moved) noexcept {
  while (Op* op = frontSend()) {
    const size_t remaining = op->bytes - stagedOfHead_;
    if (remaining == 0 && (op->bytes > 0 || headFramed_)) {
      completeSend();
      ++sendMessage_;
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
    f->hdr = FrameHeader{FrameHeader::kMagic, FrameHeader::kVersion, 0, 0,
                         static_cast<uint32_t>(len), 0, nextSeq_++, sendMessage_, stagedOfHead_,
                         op->bytes};
    f->hdr.crc = crc32c(src, len, headerCrc(f->hdr));
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
Status WanConnection::writeStreams(bool& moved) noexcept {
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
      Result<size_t> w = socketSend(s.fd.get(), iov, n);
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

void WanConnection::releaseStaging() noexcept {
  while (!frames_.empty() && frames_.front()->done) {
    stageTail_ = frames_.front()->stagingPos + frames_.front()->hdr.length;
    frames_.pop_front();
    --nextUnassigned_;
  }
}

// Validates a complete header against the head receive; the payload goes straight to its place.
Status WanConnection::checkHeader(Stream& s) noexcept {
  const FrameHeader& h = s.in;
  const Op* op = frontRecv();
  if (h.messageBytes != op->bytes) return sizeMismatch(h.messageBytes, op->bytes);
  if (h.offset > h.messageBytes || h.length > h.messageBytes - h.offset)
    return badFrame("frame [" + std::to_string(h.offset) + ", +" + std::to_string(h.length) +
                    ") lies outside its " + std::to_string(h.messageBytes) + "-byte message");
  if (h.length == 0 && h.messageBytes != 0) return badFrame("empty frame in a non-empty message");
  if (!recvOffsets_.insert(h.offset).second || recvBytes_ + h.length > h.messageBytes)
    return badFrame("frame at offset " + std::to_string(h.offset) + " of message " +
                    std::to_string(h.message) + " arrived twice");
  s.crc = headerCrc(h);
  s.checked = true;
  return Status::ok();
}

Status WanConnection::readStream(Stream& s, bool& moved) noexcept {
  while (Op* op = frontRecv()) {
    if (s.ended) return Status::ok();
    if (s.inGot < kHdr) {
      Result<size_t> r = socketRecv(s.fd.get(), reinterpret_cast<char*>(&s.in) + s.inGot, kHdr - s.inGot);
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
      if (h.length > kMaxFrameBytes) return badFrame("frame of " + std::to_string(h.length) + " bytes");
      if (s.haveSeq && h.seq <= s.lastSeq) return badFrame("frame sequence went backwards");
      s.lastSeq = h.seq;
      s.haveSeq = true;
      s.payloadGot = 0;
      s.checked = false;
      if (h.message < recvMessage_)
        return badFrame("frame of message " + std::to_string(h.message) + ", which is already complete");
    }
    if (s.in.message != recvMessage_) return Status::ok();  // parked: a later message's frame
    if (!s.checked) XSITE_RETURN_IF_ERROR(checkHeader(s));
    const FrameHeader& h = s.in;
    if (s.payloadGot < h.length) {
      char* dst = op->data + h.offset + s.payloadGot;
      Result<size_t> r = socketRecv(s.fd.get(), dst, h.length - s.payloadGot);
      if (!r) return r.status();
      if (r.value() == 0) return Status::ok();
      moved = true;
      s.crc = crc32c(dst, r.value(), s.crc);
      s.payloadGot += r.value();
      if (s.payloadGot < h.length) continue;
    }
    if (s.crc != h.crc)
      return badFrame("checksum mismatch in frame at offset " + std::to_string(h.offset) +
                      " of message " + std::to_string(h.message));
    recvBytes_ += h.length;
    s.inGot = 0;
    s.payloadGot = 0;
    s.checked = false;
    if (recvBytes_ == op->bytes) {
      completeRecv();
      ++recvMessage_;
      recvBytes_ = 0;
      recvOffsets_.clear();
    }
  }
  return Status::ok();
}

uint64_t WanConnection::postSend(const void* data, size_t bytes) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  return Connection::postSend(data, bytes);
}

Status WanConnection::flushLocked(bool& moved) noexcept {
  XSITE_RETURN_IF_ERROR(sendError_);
  Status s = stage(moved);
  if (s) s = writeStreams(moved);
  releaseStaging();
  if (s) s = stage(moved);
  if (s) s = writeStreams(moved);
  if (!s) sendError_ = s;
  return s;
}

void WanConnection::flush(bool& moved, bool& pending) noexcept {
  std::lock_guard<std::mutex> lk(sendMu_);
  if (!flushLocked(moved)) return;
  pending = pending || !frames_.empty() || frontSend() != nullptr;
}

bool WanConnection::appendPollFds(std::vector<pollfd>& out) const noexcept {
  bool stalledSend;  // a send not yet staged: it waits for socket space to free the window
  {
    std::lock_guard<std::mutex> lk(sendMu_);
    stalledSend = sendQueued();
  }
  short events = static_cast<short>((recvQueued() ? POLLIN : 0) | (stalledSend ? POLLOUT : 0));
  for (const auto& s : streams_) {
    // A stream parked on a later message's frame has nothing to read until another completes.
    const bool parked = s.ended || (s.inGot == sizeof(FrameHeader) && s.in.message != recvMessage_);
    short e = static_cast<short>(parked ? (events & ~POLLIN) : events);
    if (e != 0) out.push_back({s.fd.get(), e, 0});
  }
  return true;
}

void WanConnection::pendingFds(std::vector<int>& out) {
  std::lock_guard<std::mutex> lk(sendMu_);
  for (const auto& s : streams_)
    if (s.out != nullptr) out.push_back(s.fd.get());
}

Status WanConnection::progress(bool& moved) noexcept {
  {
    std::lock_guard<std::mutex> lk(sendMu_);
    XSITE_RETURN_IF_ERROR(flushLocked(moved));
  }
  // A message completed on one stream can unpark frames waiting on the others: go round again.
  for (int pass = 0; pass < 4; ++pass) {
    uint64_t before = recvsDone();
    for (auto& s : streams_) XSITE_RETURN_IF_ERROR(readStream(s, moved));
    if (recvsDone() == before) break;
  }
  if (recvQueued() &&
      std::all_of(streams_.begin(), streams_.end(), [](const Stream& s) { return s.ended; }))
    return peerGone("closed the connection: did that rank exit or crash?");
  return Status::ok();
}

}  // namespace xsite::transport::wan
