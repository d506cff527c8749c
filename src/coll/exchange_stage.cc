#include "coll/exchange_stage.h"

#include <algorithm>
#include <cstring>

#include "coll/reduce.h"
#include "compress/error_feedback.h"

namespace xsite::coll {

ExchangeStage::ExchangeStage(Context& ctx, const RingView& group, int channel,
                             const compress::Codec& codec, DataType type, ReduceOp op,
                             int avgDivisor, LayoutFn layout)
    : ctx_(ctx),
      group_(group),
      channel_(channel),
      codec_(codec),
      fixedSize_(codec.id() == compress::CodecId::kNone || compress::isLossy(codec.id())),
      whole_(group.size() == 2),
      raw_(whole_ && codec.id() == compress::CodecId::kNone),
      type_(type),
      op_(op),
      avgDivisor_(avgDivisor),
      layoutFn_(std::move(layout)),
      esize_(dataTypeSize(type)) {
  for (int site = 0; site < group_.size(); ++site)
    if (site != group_.index)
      peers_.push_back(Peer{site, &ctx_.conn(group_.members[site], channel_), nullptr, nullptr, nullptr});
}

std::string ExchangeStage::describe() const {
  std::string s = std::string(channelName(channel_)) + " " + std::string(codecName(codec_.id())) +
                  (whole_ ? " whole-shard" : "") + " exchange among " +
                  std::to_string(group_.size()) + " sites (ranks";
  for (int r : group_.members) s += " " + std::to_string(r);
  return s + ")";
}

bool ExchangeStage::appendPollFds(std::vector<pollfd>& out) const noexcept {
  for (const auto& p : peers_)
    if (!p.conn->appendPollFds(out)) return false;
  return true;
}

void ExchangeStage::start(int chunk) {
  layout_ = ExchangeLayout{};
  layoutFn_(chunk, layout_);
  size_t maxPiece = 0;
  for (int site = 0; site < group_.size(); ++site) maxPiece = std::max(maxPiece, pieceCount(site));
  maxEncoded_ = raw_ ? maxPiece * esize_ : codec_.maxEncodedBytes(maxPiece, type_);
  // One scratch region per stage (never in use by a transfer when a chunk starts). Pieces: per
  // peer its send, two receive and one decode buffer, then the result's encoding and the float
  // scratch. Whole: per peer its receive and decode buffer, then my encoding, its decoded form
  // and the float scratch; raw, the receive buffers alone.
  const size_t enc = (maxEncoded_ + 63) & ~size_t{63};
  const size_t dec = (maxPiece * std::max<size_t>(esize_, 4) + 63) & ~size_t{63};
  const size_t perPeer = raw_ ? enc : whole_ ? enc + dec : 3 * enc + dec;
  const size_t tail = raw_ ? 0 : whole_ ? enc + 2 * dec : enc + dec;
  char* base = ctx_.scratch(kScratchExchange + (channel_ - kChWan), peers_.size() * perPeer + tail);
  for (size_t i = 0; i < peers_.size(); ++i) {
    Peer& p = peers_[i];
    char* b = base + i * perPeer;
    p = Peer{p.site, p.conn};
    if (whole_) {
      p.contribBuf = b;
      p.decoded = raw_ ? b : b + enc;
    } else {
      p.sendBuf = b;
      p.contribBuf = b + enc;
      p.resultBuf = b + 2 * enc;
      p.decoded = b + 3 * enc;
    }
  }
  char* rest = base + peers_.size() * perPeer;
  resultBuf_ = raw_ ? nullptr : rest;
  ownDecoded_ = whole_ && compress::isLossy(codec_.id()) ? rest + enc : nullptr;
  floatScratch_ = raw_ ? nullptr : reinterpret_cast<float*>(rest + (whole_ ? enc + dec : enc));
  phase_ = Phase::kStart;
  resultSize_ = 0;
}

Status ExchangeStage::encodeContributions() {
  for (Peer& p : peers_) {
    const size_t n = pieceCount(p.site);
    Result<size_t> bytes =
        residual(p.site) != nullptr
            ? compress::encodeWithFeedback(codec_, piece(p.site), n, type_, residual(p.site),
                                           p.sendBuf, maxEncoded_, p.decoded, floatScratch_)
            : codec_.encode(piece(p.site), n, type_, p.sendBuf, maxEncoded_);
    if (!bytes) return bytes.status();
    // Receives, in arrival order: the contribution to my piece, then the peer's result.
    post(p, p.sendBuf, bytes.value(), n, pieceCount(group_.index));
    p.conn->postRecv(p.resultBuf, wireBytes(pieceCount(p.site)),
                     fixedSize_ ? nullptr : &p.resultIn);
  }
  return Status::ok();
}

size_t ExchangeStage::wireBytes(size_t count) const {
  if (raw_) return count * esize_;
  return fixedSize_ ? codec_.maxEncodedBytes(count, type_) : maxEncoded_;
}

void ExchangeStage::post(Peer& p, const char* data, size_t bytes, size_t count, size_t theirCount) {
  p.lastSend = p.conn->postSend(data, bytes);
  ctx_.countWan(count * esize_, bytes);
  p.ticket = p.conn->postRecv(p.contribBuf, wireBytes(theirCount), fixedSize_ ? nullptr : &p.contribIn);
  p.await = Await::kContrib;
}

// Whole: my shard, encoded once (raw: as it is), to every peer; their shards posted to receive.
// The shard itself is only read until the sends complete: advance() reduces into it after that.
Status ExchangeStage::encodeWhole() {
  const size_t n = pieceCount(group_.index);
  const char* wire = layout_.region;
  if (raw_) {
    resultSize_ = n * esize_;
  } else {
    Result<size_t> bytes =
        ownDecoded_ != nullptr
            ? compress::encodeWithFeedback(codec_, layout_.region, n, type_, layout_.residual,
                                           resultBuf_, maxEncoded_, ownDecoded_, floatScratch_)
            : codec_.encode(layout_.region, n, type_, resultBuf_, maxEncoded_);
    if (!bytes) return bytes.status();
    resultSize_ = bytes.value();
    wire = resultBuf_;
  }
  for (Peer& p : peers_) post(p, wire, resultSize_, n, n);
  return Status::ok();
}

// Whole: every site's shard (a lossy codec's as decoded, so that every site has the same
// values) reduced in site order into mine.
void ExchangeStage::reduceWhole() {
  const int me = group_.index, s = group_.size();
  const size_t n = pieceCount(me);
  auto value = [&](int site) -> const char* {
    if (site == me) return ownDecoded_ != nullptr ? ownDecoded_ : layout_.region;
    for (const Peer& p : peers_)
      if (p.site == site) return p.decoded;
    return nullptr;
  };
  reduce(layout_.region, value(0), value(1), n, type_, op_);
  for (int site = 2; site < s; ++site) reduce(layout_.region, layout_.region, value(site), n, type_, op_);
  if (avgDivisor_ > 0) divideInPlace(layout_.region, n, type_, avgDivisor_);
}

// The size of what arrived: fixed, or (lossless) what the peer's encoding took, within bounds.
Result<size_t> ExchangeStage::arrived(const Peer& p, const transport::Arrival& in, size_t count) const {
  if (fixedSize_) return wireBytes(count);
  if (in.bytes >= sizeof(compress::EncodedHeader) && in.bytes <= codec_.maxEncodedBytes(count, type_))
    return in.bytes;
  return Status(ErrorCategory::kRemote,
                "rank " + std::to_string(p.conn->peer()) + " sent " + std::to_string(in.bytes) +
                    " encoded bytes for " + std::to_string(count) + " elements of codec " +
                    std::string(codecName(codec_.id())) + " (garbled stream or mismatched call)");
}

Status ExchangeStage::receive(Peer& p, bool& moved) {
  while (p.await != Await::kNothing && p.conn->recvsDone() >= p.ticket) {
    moved = true;
    if (p.await == Await::kContrib) {
      const size_t n = pieceCount(group_.index);
      Result<size_t> bytes = arrived(p, p.contribIn, n);
      Status st = !bytes ? bytes.status()
                  : raw_ ? Status::ok()
                         : codec_.decode(p.contribBuf, bytes.value(), n, type_, p.decoded);
      if (!st)
        return Status(st.category(), "contribution from rank " + std::to_string(p.conn->peer()) +
                                         ": " + st.message());
      ++p.ticket;  // pieces: the result was posted right after
      p.await = whole_ ? Await::kNothing : Await::kResult;
    } else {
      const size_t n = pieceCount(p.site);
      Result<size_t> bytes = arrived(p, p.resultIn, n);
      Status st = !bytes ? bytes.status()
                         : codec_.decode(p.resultBuf, bytes.value(), n, type_, piece(p.site));
      if (!st)
        return Status(st.category(), "result from rank " + std::to_string(p.conn->peer()) +
                                         ": " + st.message());
      p.await = Await::kNothing;
    }
  }
  return Status::ok();
}

Status ExchangeStage::reduceAndEncodeResult() {
  const int me = group_.index, s = group_.size();
  const size_t n = pieceCount(me);
  auto value = [&](int site) -> const char* {
    if (site == me) return piece(me);
    for (const Peer& p : peers_)
      if (p.site == site) return p.decoded;
    return nullptr;
  };
  // Reduce in site order, the owner's own contribution exactly, into the first peer's decode
  // buffer (read before it is overwritten: reduce() allows out == a).
  char* acc = peers_[0].decoded;
  reduce(acc, value(0), value(1), n, type_, op_);
  for (int site = 2; site < s; ++site) reduce(acc, acc, value(site), n, type_, op_);
  if (avgDivisor_ > 0) divideInPlace(acc, n, type_, avgDivisor_);
  // Encode the result once; the owner keeps the decoded form, as every other site will.
  Result<size_t> bytes = compress::encodeWithFeedback(codec_, acc, n, type_, residual(me),
                                                      resultBuf_, maxEncoded_, piece(me),
                                                      floatScratch_);
  if (!bytes) return bytes.status();
  resultSize_ = bytes.value();
  for (Peer& p : peers_) {
    p.lastSend = p.conn->postSend(resultBuf_, resultSize_);
    ctx_.countWan(n * esize_, resultSize_);
  }
  return Status::ok();
}

Status ExchangeStage::advance(bool& moved, bool& done) noexcept {
  if (phase_ == Phase::kStart) {
    XSITE_RETURN_IF_ERROR(whole_ ? encodeWhole() : encodeContributions());
    phase_ = Phase::kContributions;
    moved = true;
  }
  bool contributions = true, finished = true, sent = true;
  for (Peer& p : peers_) {
    XSITE_RETURN_IF_ERROR(p.conn->progress(moved));
    XSITE_RETURN_IF_ERROR(receive(p, moved));
    contributions = contributions && p.await != Await::kContrib;
    finished = finished && p.await == Await::kNothing;
    sent = sent && p.conn->sendsDone() >= p.lastSend;
  }
  if (whole_) {
    if (!finished || !sent) return Status::ok();
    reduceWhole();
    moved = done = true;
    return Status::ok();
  }
  if (phase_ == Phase::kContributions && contributions) {
    XSITE_RETURN_IF_ERROR(reduceAndEncodeResult());
    phase_ = Phase::kResults;
    moved = true;
    for (Peer& p : peers_) XSITE_RETURN_IF_ERROR(p.conn->progress(moved));
    sent = false;
  }
  if (phase_ != Phase::kResults || !finished || !sent) return Status::ok();
  done = true;
  return Status::ok();
}

}  // namespace xsite::coll
