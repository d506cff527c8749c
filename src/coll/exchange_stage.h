// The cross-site stage of the hierarchical all-reduce as a direct exchange among the s ranks
// that own the same shard in every site (the WAN group), with a codec (or none) on the wire.
//
// Among more than two sites (pieces): per chunk, the shard is cut into s pieces; the rank of
// site i owns piece i.
//   1. every rank encodes its contribution to piece j and sends it to the owner of piece j;
//   2. the owner decodes the other sites' contributions, reduces all s in site order (its own
//      exactly), encodes the result once, sends that encoding to every other site, and keeps
//      the decoded form of its own encoding as the result;
//   3. every rank decodes the other owners' results into place.
// Between two sites (whole): every rank encodes its whole shard once and sends it to the other
// site; both decode both encodings (a lossy codec's own one too) and reduce them in site order.
// The same bytes cross the WAN as with pieces or the ring (one shard each way), in one round
// trip per chunk instead of two: on a long or lossy link every round waits for the slowest
// frame, a lost one's recovery included. Each contribution is encoded once, the result never.
// Every rank therefore ends with the same bytes under every codec. With error feedback, each
// encoding adds in what the previous call with the same key lost (compress/error_feedback.h).
// Lossless codecs' encodings vary in size: their receives take up to the largest and learn the
// size that arrived (transport::Arrival); the others have a size every rank knows.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "coll/pipeline.h"
#include "compress/codec.h"

namespace xsite::coll {

struct ExchangeLayout {
  char* region = nullptr;       // this rank's shard of the chunk (in place)
  std::vector<size_t> bounds;   // s+1 piece boundaries, in elements
  float* residual = nullptr;    // error feedback for the region (nullptr: none)
};

class ExchangeStage final : public Stage {
 public:
  using LayoutFn = std::function<void(int chunk, ExchangeLayout& layout)>;
  // avgDivisor > 0: divide the reduced piece by it (ReduceOp::kAvg) before it is encoded.
  ExchangeStage(Context& ctx, const RingView& group, int channel, const compress::Codec& codec,
                DataType type, ReduceOp op, int avgDivisor, LayoutFn layout);
  void start(int chunk) override;
  Status advance(bool& moved, bool& done) noexcept override;
  std::string describe() const override;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;

 private:
  // What a peer's connection waits for next, in the order its messages arrive.
  enum class Await { kContrib, kResult, kNothing };
  struct Peer {
    int site;
    transport::Connection* conn;
    char* sendBuf = nullptr;     // my encoded contribution to the peer's piece (pieces only)
    char* contribBuf = nullptr;  // the peer's encoded contribution to my piece (whole: shard)
    char* resultBuf = nullptr;   // the peer's encoded result (its piece; pieces only)
    char* decoded = nullptr;     // the peer's contribution, decoded (raw: contribBuf itself)
    transport::Arrival contribIn{}, resultIn{};  // lossless: the sizes that arrived
    Await await = Await::kNothing;
    uint64_t ticket = 0;  // of the receive `await` waits for
    uint64_t lastSend = 0;
  };
  // Whole: the one "piece" is the shard, and every site contributes all of it.
  size_t pieceCount(int site) const {
    return whole_ ? layout_.bounds.back() : layout_.bounds[site + 1] - layout_.bounds[site];
  }
  char* piece(int site) const { return layout_.region + layout_.bounds[site] * esize_; }
  float* residual(int site) const {
    return layout_.residual ? layout_.residual + layout_.bounds[site] : nullptr;
  }
  // Sends `bytes` of `data` (an encoding of `count` elements) to `p` and posts the receive of
  // the peer's contribution (an encoding of `theirCount`).
  void post(Peer& p, const char* data, size_t bytes, size_t count, size_t theirCount);
  // The bytes a receive of `count` encoded elements takes: exactly (raw, fixed-size codecs), or
  // at most.
  size_t wireBytes(size_t count) const;
  Status encodeContributions();
  Status encodeWhole();
  Status reduceAndEncodeResult();
  void reduceWhole();
  Status receive(Peer& p, bool& moved);  // handles the peer's completed receives, in order
  Result<size_t> arrived(const Peer& p, const transport::Arrival& in, size_t count) const;

  Context& ctx_;
  RingView group_;
  int channel_;
  const compress::Codec& codec_;
  bool fixedSize_;  // every rank knows the encoded size (none, lossy); else it is learned
  bool whole_;      // two sites: whole shards are exchanged (see above)
  bool raw_;        // codec none: the elements themselves go on the wire
  DataType type_;
  ReduceOp op_;
  int avgDivisor_;
  LayoutFn layoutFn_;
  size_t esize_;
  std::vector<Peer> peers_;
  char* resultBuf_ = nullptr;  // pieces: my result's encoding; whole: my shard's
  char* ownDecoded_ = nullptr;  // whole, lossy: my shard as every site decodes it
  float* floatScratch_ = nullptr;
  size_t maxEncoded_ = 0;

  ExchangeLayout layout_;
  enum class Phase { kIdle, kStart, kContributions, kResults } phase_ = Phase::kIdle;
  uint64_t resultSize_ = 0;
};

}  // namespace xsite::coll
