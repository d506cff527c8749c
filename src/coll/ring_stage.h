// A ring stage: reduce-scatter, all-gather, or both (all-reduce) over a ring of g ranks, on the
// region of one chunk split into g blocks. Each ring step is cut into slices so that sending
// slice j of step k overlaps receiving and reducing slice j of step k-1, as NCCL's ring does.
// Rank at ring index r ends the reduce-scatter owning block r.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "coll/pipeline.h"

namespace xsite::coll {

enum class RingMode { kReduceScatter, kAllGather, kAllReduce };

// Where a chunk's data lives for one ring stage. Offsets are in elements.
struct RingLayout {
  const char* input = nullptr;  // reduce-scatter reads its own contribution here
  char* work = nullptr;         // partial sums between steps (may equal input or output)
  char* output = nullptr;       // final blocks
  std::vector<size_t> bounds;   // g+1 block boundaries, relative to input/work/output
  bool compactInput = false;    // all-gather: input holds only this rank's block
  bool compactOutput = false;   // reduce-scatter: output holds only this rank's block
};

class RingStage final : public Stage {
 public:
  using LayoutFn = std::function<void(int chunk, RingLayout& layout)>;
  // avgDivisor > 0: divide the final blocks by it (ReduceOp::kAvg) before they are gathered.
  RingStage(Context& ctx, const RingView& ring, int channel, RingMode mode, DataType type,
            ReduceOp op, int avgDivisor, LayoutFn layout);
  void start(int chunk) override;
  Status advance(bool& moved, bool& done) noexcept override;
  std::string describe() const override;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;

 private:
  static constexpr int kWindow = 4;  // receive slots in flight
  struct Slice {
    int block;
    size_t offset;  // elements, relative to the region
    size_t count;
    bool reduceStep;
    bool finalReduce;
  };
  Slice slice(int64_t message) const;
  void processRecv(int64_t message);

  Context& ctx_;
  RingView ring_;
  int channel_;
  RingMode mode_;
  DataType type_;
  ReduceOp op_;
  int avgDivisor_;
  LayoutFn layoutFn_;
  size_t esize_;
  transport::Connection* left_ = nullptr;
  transport::Connection* right_ = nullptr;
  char* slots_ = nullptr;
  size_t slotBytes_ = 0;

  RingLayout layout_;
  int rsSteps_ = 0, steps_ = 0, slicesPerStep_ = 1;
  int64_t total_ = 0, sendPosted_ = 0, recvPosted_ = 0, recvProcessed_ = 0;
  uint64_t recvTickets_[kWindow] = {};
  uint64_t lastSendTicket_ = 0;
};

}  // namespace xsite::coll
