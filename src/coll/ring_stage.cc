#include "coll/ring_stage.h"

#include <algorithm>
#include <cstring>

#include "coll/reduce.h"

namespace xsite::coll {

RingStage::RingStage(Context& ctx, const RingView& ring, int channel, RingMode mode,
                     DataType type, ReduceOp op, int avgDivisor, LayoutFn layout)
    : ctx_(ctx),
      ring_(ring),
      channel_(channel),
      mode_(mode),
      type_(type),
      op_(op),
      avgDivisor_(avgDivisor),
      layoutFn_(std::move(layout)),
      esize_(dataTypeSize(type)) {
  const int g = ring_.size();
  if (g > 1) {
    left_ = &ctx_.conn(ring_.left(), channel_);
    right_ = &ctx_.conn(ring_.right(), channel_);
  }
  rsSteps_ = mode_ == RingMode::kAllGather ? 0 : g - 1;
  steps_ = rsSteps_ + (mode_ == RingMode::kReduceScatter ? 0 : g - 1);
  slotBytes_ = std::max(ctx_.settings().sliceBytes / esize_, size_t{1}) * esize_;
  if (rsSteps_ > 0) slots_ = ctx_.scratch(channel_, slotBytes_ * kWindow);
}

std::string RingStage::describe() const {
  static const char* kModes[] = {"reduce-scatter", "all-gather", "all-reduce"};
  std::string s = std::string(channelName(channel_)) + " " + kModes[static_cast<int>(mode_)] +
                  " ring of " + std::to_string(ring_.size());
  if (ring_.size() > 1)
    s += " (receiving from rank " + std::to_string(ring_.left()) + ", sending to rank " +
         std::to_string(ring_.right()) + ")";
  return s;
}

bool RingStage::appendPollFds(std::vector<pollfd>& out) const noexcept {
  if (left_ == nullptr) return true;
  return left_->appendPollFds(out) && (right_ == left_ || right_->appendPollFds(out));
}

void RingStage::start(int chunk) {
  layout_ = RingLayout{};
  layoutFn_(chunk, layout_);
  const int g = ring_.size(), r = ring_.index;
  const auto& b = layout_.bounds;
  size_t maxBlock = 0;
  for (int i = 0; i < g; ++i) maxBlock = std::max(maxBlock, b[i + 1] - b[i]);
  const size_t sliceElems = slotBytes_ / esize_;
  slicesPerStep_ = static_cast<int>(std::max<size_t>(1, (maxBlock + sliceElems - 1) / sliceElems));
  total_ = static_cast<int64_t>(steps_) * slicesPerStep_;
  sendPosted_ = recvPosted_ = recvProcessed_ = 0;
  lastSendTicket_ = 0;

  // Own block: gathered as is, or (single-member ring) reduced already.
  size_t own = b[r], ownCount = b[r + 1] - b[r];
  char* ownOut = layout_.output + (layout_.compactOutput ? 0 : own * esize_);
  const char* ownIn = layout_.input + (layout_.compactInput ? 0 : own * esize_);
  if ((mode_ == RingMode::kAllGather || g == 1) && ownIn != ownOut && ownCount > 0)
    memmove(ownOut, ownIn, ownCount * esize_);
  if (g == 1 && mode_ != RingMode::kAllGather && avgDivisor_ > 0)
    divideInPlace(ownOut, ownCount, type_, avgDivisor_);
}

RingStage::Slice RingStage::slice(int64_t m) const {
  const int g = ring_.size(), r = ring_.index;
  const int step = static_cast<int>(m / slicesPerStep_);
  const int j = static_cast<int>(m % slicesPerStep_);
  Slice s;
  s.reduceStep = step < rsSteps_;
  int agStep = step - rsSteps_;
  // Received block of the step (the sender's block is one further along the ring).
  s.block = s.reduceStep ? ((r - step - 2) % g + 2 * g) % g : ((r - agStep - 1) % g + 2 * g) % g;
  s.finalReduce = s.reduceStep && step == rsSteps_ - 1;
  size_t len = layout_.bounds[s.block + 1] - layout_.bounds[s.block];
  size_t lo = splitPoint(len, slicesPerStep_, j), hi = splitPoint(len, slicesPerStep_, j + 1);
  s.offset = layout_.bounds[s.block] + lo;
  s.count = hi - lo;
  return s;
}

void RingStage::processRecv(int64_t m) {
  Slice s = slice(m);
  if (!s.reduceStep || s.count == 0) return;  // gathered slices land in place
  const char* slot = slots_ + (m % kWindow) * slotBytes_;
  const char* in = layout_.input + s.offset * esize_;
  char* out;
  if (s.finalReduce)
    out = layout_.output +
          (layout_.compactOutput ? s.offset - layout_.bounds[ring_.index] : s.offset) * esize_;
  else
    out = layout_.work + s.offset * esize_;
  reduce(out, in, slot, s.count, type_, op_);
  if (s.finalReduce && avgDivisor_ > 0) divideInPlace(out, s.count, type_, avgDivisor_);
}

Status RingStage::advance(bool& moved, bool& done) noexcept {
  if (total_ == 0) {
    done = true;
    return Status::ok();
  }
  XSITE_RETURN_IF_ERROR(left_->progress(moved));
  if (right_ != left_) XSITE_RETURN_IF_ERROR(right_->progress(moved));

  // Completed receives, in order.
  while (recvProcessed_ < recvPosted_ &&
         left_->recvsDone() >= recvTickets_[recvProcessed_ % kWindow]) {
    processRecv(recvProcessed_++);
    moved = true;
  }
  // Post receives into free slots (reduce steps) or straight into place (gather steps).
  while (recvPosted_ < total_ && recvPosted_ - recvProcessed_ < kWindow) {
    Slice s = slice(recvPosted_);
    char* dst = s.reduceStep ? slots_ + (recvPosted_ % kWindow) * slotBytes_
                             : layout_.output + s.offset * esize_;
    recvTickets_[recvPosted_ % kWindow] = left_->postRecv(dst, s.count * esize_);
    ++recvPosted_;
    moved = true;
  }
  // Post sends whose data is ready: the block this rank received one step earlier.
  while (sendPosted_ < total_) {
    const int64_t m = sendPosted_;
    const int step = static_cast<int>(m / slicesPerStep_);
    if (step > 0 && recvProcessed_ <= m - slicesPerStep_) break;
    // The right neighbour receives, at this step and slice, the block this rank sends.
    const int g = ring_.size(), r = ring_.index;
    const bool reduceStep = step < rsSteps_;
    const int agStep = step - rsSteps_;
    const int block = reduceStep ? ((r - step - 1) % g + 2 * g) % g : ((r - agStep) % g + 2 * g) % g;
    const int j = static_cast<int>(m % slicesPerStep_);
    size_t len = layout_.bounds[block + 1] - layout_.bounds[block];
    size_t lo = splitPoint(len, slicesPerStep_, j), hi = splitPoint(len, slicesPerStep_, j + 1);
    size_t off = layout_.bounds[block] + lo;
    const char* src;
    if (reduceStep)
      src = (step == 0 ? layout_.input : layout_.work) + off * esize_;
    else
      src = layout_.output + off * esize_;
    lastSendTicket_ = right_->postSend(src, (hi - lo) * esize_);
    if (channel_ >= kChWan && channel_ <= kChWanLast) ctx_.countWan((hi - lo) * esize_, (hi - lo) * esize_);
    ++sendPosted_;
    moved = true;
  }
  if (sendPosted_ > 0) XSITE_RETURN_IF_ERROR(right_->progress(moved));
  done = recvProcessed_ == total_ && sendPosted_ == total_ && right_->sendsDone() >= lastSendTicket_;
  return Status::ok();
}

}  // namespace xsite::coll
