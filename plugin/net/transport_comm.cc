// The net plugin's comms over the library's connections (tcp, WAN streams): comm.h.
#include <cstring>

#include "plugin/net/comm.h"

namespace xsite::plugin::net {

// ---- send ---------------------------------------------------------------------------------

TransportSendComm::TransportSendComm(std::unique_ptr<transport::Connection> conn,
                                     std::unique_ptr<ConnectionLease> lease,
                                     compress::CodecId codec)
    : SendComm(conn->label()), conn_(std::move(conn)), lease_(std::move(lease)) {
  if (codec != compress::CodecId::kNone) codec_ = compress::makeCodec(codec);
}

Status TransportSendComm::progress() {
  for (; handed_ < queue_.size(); ++handed_) {
    Request* r = queue_[handed_];
    const void* payload = r->data[0];
    size_t bytes = r->posted[0];
    auto tag = static_cast<uint32_t>(r->tags[0]);
    std::vector<char> encoding;
    if (codec_ && bytes >= kMinCompressBytes) {
      if ((tag & kEncodedTag) != 0)
        return Status(ErrorCategory::kInternal,
                      label_ + ": isend with tag " + std::to_string(r->tags[0]) +
                          ": NCCL's tags are ranks, and a negative one leaves no room to mark "
                          "an encoded payload (XSITE_NET_CODEC)");
      encoding.resize(codec_->maxEncodedBytes(bytes, DataType::kUint8));
      Result<size_t> n = codec_->encode(payload, bytes, DataType::kUint8, encoding.data(),
                                        encoding.size());
      if (!n) return n.status();  // nothing of this request was handed: handed_ stays in step
      encoding.resize(n.value());
      payload = encoding.data();
      bytes = n.value();
      tag |= kEncodedTag;
    }
    encoded_.push_back(std::move(encoding));  // (moving keeps its bytes where they are)
    r->ticket = conn_->postSend(payload, bytes, tag);
  }
  bool moved = false;
  XSITE_RETURN_IF_ERROR(conn_->progress(moved));
  while (handed_ > 0 && queue_.front()->ticket <= conn_->sendsDone()) {
    Request* r = queue_.front();
    r->done = true;
    r->pending = 0;
    queue_.pop_front();
    encoded_.pop_front();
    --handed_;
  }
  return Status::ok();
}

// ---- receive ------------------------------------------------------------------------------

TransportRecvComm::TransportRecvComm(std::unique_ptr<transport::Connection> conn,
                                     std::unique_ptr<ConnectionLease> lease, bool encodes)
    : RecvComm(conn->label()), conn_(std::move(conn)), lease_(std::move(lease)), encodes_(encodes) {}

Status TransportRecvComm::progress() {
  while (true) {
    bool moved = false;
    XSITE_RETURN_IF_ERROR(conn_->progress(moved));
    for (; landed_ < conn_->recvsDone(); ++landed_) {
      XSITE_RETURN_IF_ERROR(land(landings_.front()));
      landings_.pop_front();
    }
    Result<bool> handed = handNext();
    if (!handed) return handed.status();
    if (!handed.value()) return Status::ok();
  }
}

Result<bool> TransportRecvComm::handNext() {
  Request* r = nullptr;
  for (Request* q : queue_)
    if (q->handed < q->n) {
      r = q;
      break;
    }
  if (r == nullptr) return false;
  // A single receive of a sender that never encodes goes to the connection at once, into NCCL's
  // buffer, however many are in flight before it. Otherwise the message's tag chooses: it is
  // probed once every receive before it has landed.
  if (r->n == 1 && !encodes_) {
    landings_.push_back(Landing{r, 0, false, {}});
    conn_->postRecv(r->data[0], r->posted[0], &landings_.back().arrival);
    r->handed = 1;
    return true;
  }
  transport::Arrival next;
  if (!landings_.empty() || !conn_->probe(next)) return false;
  // The top bit marks an encoding only where the sender said it may encode (Hello::kEncodes).
  const bool encoded = encodes_ && (next.tag & kEncodedTag) != 0;
  const auto tag = static_cast<int>(encodes_ ? next.tag & ~kEncodedTag : next.tag);
  int target = -1;
  for (int i = 0; i < r->n && target < 0; ++i)
    if (!r->filled[i] && (r->n == 1 || r->tags[i] == tag)) target = i;
  if (target < 0)
    return peerError("sent a message with tag " + std::to_string(tag) +
                     " that no buffer of the posted grouped receive expects");
  if (encoded) {
    // Never more than the codecs' raw form: their header and the bytes.
    if (next.bytes > r->posted[target] + sizeof(compress::EncodedHeader))
      return transport::sizeError(label_, "an encoding of " + std::to_string(next.bytes) + " bytes",
                                  r->posted[target], true);
    if (next.bytes < sizeof(compress::EncodedHeader))
      return peerError("sent an encoded payload of " + std::to_string(next.bytes) +
                       " bytes, shorter than its header (garbled stream)");
    wire_.resize(next.bytes);
    landings_.push_back(Landing{r, target, true, {}});
    conn_->postRecv(wire_.data(), wire_.size(), &landings_.back().arrival);
  } else {
    landings_.push_back(Landing{r, target, false, {}});
    conn_->postRecv(r->data[target], r->posted[target], &landings_.back().arrival);
  }
  ++r->handed;
  return true;
}

Status TransportRecvComm::land(Landing& l) {
  size_t bytes = l.arrival.bytes;
  if (l.encoded) {
    compress::EncodedHeader eh;
    memcpy(&eh, wire_.data(), sizeof eh);  // wire_ holds at least a header (handNext)
    std::unique_ptr<compress::Codec>* codec = nullptr;
    if (eh.codec == static_cast<uint8_t>(compress::CodecId::kLz4)) codec = &lz4_;
    if (eh.codec == static_cast<uint8_t>(compress::CodecId::kZstd)) codec = &zstd_;
    if (codec == nullptr)
      return peerError("sent a payload of codec " + std::to_string(eh.codec) +
                       ", not a lossless one (garbled stream)");
    if (eh.count > l.r->posted[l.target])
      return transport::sizeError(label_, transport::messageOf(eh.count) + " (encoded)",
                                  l.r->posted[l.target], true);
    if (!*codec) *codec = compress::makeCodec(static_cast<compress::CodecId>(eh.codec));
    bytes = eh.count;
    Status s = (*codec)->decode(wire_.data(), wire_.size(), bytes, DataType::kUint8,
                                l.r->data[l.target]);
    if (!s) return Status(s.category(), label_ + ": " + s.message());
  }
  fill(l.target, bytes);
  return Status::ok();
}

}  // namespace xsite::plugin::net
