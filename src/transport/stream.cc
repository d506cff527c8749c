#include "transport/stream.h"

#include <cstdio>

namespace xsite::transport {

Status StreamConnection::progress(bool& moved) noexcept {
  bool any = false;
  XSITE_RETURN_IF_ERROR(progressSends(any));
  XSITE_RETURN_IF_ERROR(progressRecvs(any));
  if (any) {
    moved = true;
  } else if (!idle()) {
    auto now = std::chrono::steady_clock::now();
    if (now - lastCheck_ > std::chrono::milliseconds(100)) {
      lastCheck_ = now;
      return checkPeer();
    }
  }
  return Status::ok();
}

Status StreamConnection::progressSends(bool& moved) noexcept {
  while (Op* op = frontSend()) {
    if (sendHdrDone_ == 0 && op->done == 0) sendHdr_ = {MessageHeader::kMagic, op->tag, op->bytes};
    iovec iov[2];
    int n = 0;
    if (sendHdrDone_ < sizeof(MessageHeader))
      iov[n++] = {reinterpret_cast<char*>(&sendHdr_) + sendHdrDone_,
                  sizeof(MessageHeader) - sendHdrDone_};
    if (op->done < op->bytes) iov[n++] = {op->data + op->done, op->bytes - op->done};
    size_t w = 0;
    if (n > 0) {
      Result<size_t> r = writeSome(iov, n);
      if (!r) return r.status();
      w = r.value();
      if (w == 0) return Status::ok();
      moved = true;
    }
    size_t hdrPart = std::min(w, sizeof(MessageHeader) - sendHdrDone_);
    sendHdrDone_ += hdrPart;
    op->done += w - hdrPart;
    if (sendHdrDone_ == sizeof(MessageHeader) && op->done == op->bytes) {
      sendHdrDone_ = 0;
      completeSend();
    }
  }
  return Status::ok();
}

bool StreamConnection::probe(Arrival& next) noexcept {
  if (recvQueued()) return false;
  if (recvHdrGot_ < sizeof(MessageHeader)) {
    probing_ = true;
    return false;
  }
  next = Arrival{recvHdr_.bytes, recvHdr_.tag};
  return true;
}

Result<bool> StreamConnection::readHeader(bool& moved) noexcept {
  while (recvHdrGot_ < sizeof(MessageHeader)) {
    Result<size_t> r = readSome(reinterpret_cast<char*>(&recvHdr_) + recvHdrGot_,
                                sizeof(MessageHeader) - recvHdrGot_);
    if (!r) return r.status();
    if (r.value() == 0) return false;
    moved = true;
    recvHdrGot_ += r.value();
  }
  if (recvHdr_.magic != MessageHeader::kMagic) {
    char magic[16];
    snprintf(magic, sizeof(magic), "%08x", recvHdr_.magic);
    return Status(ErrorCategory::kRemote,
                  label() + " sent a garbled frame (bad magic 0x" + magic +
                      "): the stream is corrupt or the peer is not an xsite rank of this job");
  }
  return true;
}

Status StreamConnection::progressRecvs(bool& moved) noexcept {
  if (probing_ && !recvQueued()) {
    Result<bool> head = readHeader(moved);
    if (!head) return head.status();
    if (head.value()) probing_ = false;
    return Status::ok();
  }
  while (Op* op = frontRecv()) {
    probing_ = false;
    if (recvHdrGot_ < sizeof(MessageHeader)) {
      Result<bool> head = readHeader(moved);
      if (!head) return head.status();
      if (!head.value()) return Status::ok();
    }
    if (op->done == 0) XSITE_RETURN_IF_ERROR(takes(*op, recvHdr_.bytes));  // (maybe probed)
    const size_t bytes = recvHdr_.bytes;
    if (op->done < bytes) {
      Result<size_t> r = readSome(op->data + op->done, bytes - op->done);
      if (!r) return r.status();
      if (r.value() == 0) return Status::ok();
      moved = true;
      op->done += r.value();
    }
    if (op->done == bytes) {
      recvHdrGot_ = 0;
      completeRecv(bytes, recvHdr_.tag);
    }
  }
  return Status::ok();
}

}  // namespace xsite::transport
