#include "coll/star_stage.h"

#include <algorithm>
#include <cstring>

#include "coll/reduce.h"

namespace xsite::coll {

StarStage::StarStage(Context& ctx, std::string name, StarMode mode, std::vector<int> members,
                     int leader, DataType type, ReduceOp op, int avgDivisor, int scratchSlot,
                     StarLayoutFn layout)
    : ctx_(ctx),
      name_(std::move(name)),
      mode_(mode),
      members_(std::move(members)),
      leader_(leader),
      type_(type),
      op_(op),
      avgDivisor_(avgDivisor),
      scratchSlot_(scratchSlot),
      layoutFn_(std::move(layout)),
      esize_(dataTypeSize(type)) {
  auto it = std::find(members_.begin(), members_.end(), ctx_.rank());
  if (it != members_.end()) me_ = static_cast<int>(it - members_.begin());
  conns_.assign(members_.size(), nullptr);
  if (me_ < 0) return;
  const bool lead = mode_ == StarMode::kExchange || ctx_.rank() == leader_;
  for (size_t i = 0; i < members_.size(); ++i) {
    int peer = members_[i];
    if (peer == ctx_.rank()) continue;
    if (lead || peer == leader_) conns_[i] = &ctx_.conn(peer, kChStar);
  }
}

std::string StarStage::describe() const {
  std::string s = name_ + " (" + std::to_string(members_.size()) + " ranks";
  if (mode_ != StarMode::kExchange) s += ", leader rank " + std::to_string(leader_);
  return s + ")";
}

bool StarStage::appendPollFds(std::vector<pollfd>& out) const noexcept {
  bool all = true;
  for (const auto& p : pending_) all = p.conn->appendPollFds(out) && all;
  return all;
}

void StarStage::start(int chunk) {
  layout_ = StarLayout{};
  pending_.clear();
  reduced_ = false;
  if (me_ < 0) return;
  layoutFn_(chunk, layout_);
  const size_t bytes = layout_.count * esize_;
  const bool lead = ctx_.rank() == leader_;
  switch (mode_) {
    case StarMode::kBroadcast:
      if (lead) {
        if (layout_.input != layout_.output && bytes) memmove(layout_.output, layout_.input, bytes);
        for (auto* c : conns_)
          if (c) pending_.push_back({c, c->postSend(layout_.output, bytes), true});
      } else {
        auto* c = conns_[std::find(members_.begin(), members_.end(), leader_) - members_.begin()];
        pending_.push_back({c, c->postRecv(layout_.output, bytes), false});
      }
      break;
    case StarMode::kReduce:
    case StarMode::kExchange: {
      const bool gather = mode_ == StarMode::kExchange || lead;
      if (gather) scratch_ = ctx_.scratch(scratchSlot_, bytes * members_.size());
      for (size_t i = 0; i < members_.size(); ++i) {
        auto* c = conns_[i];
        if (!c) continue;
        if (gather) pending_.push_back({c, c->postRecv(scratch_ + i * bytes, bytes), false});
        if (mode_ == StarMode::kExchange || !lead)
          pending_.push_back({c, c->postSend(layout_.input, bytes), true});
      }
      break;
    }
  }
}

// Reduce every member's contribution in member order into output (bit-identical wherever the
// same members and order are used), then divide for kAvg.
void StarStage::finishReduce() {
  const size_t bytes = layout_.count * esize_;
  const size_t n = layout_.count;
  if (n == 0) return;
  // Accumulate into the scratch slot of member 0 (or this rank's input when it is member 0).
  auto contribution = [&](size_t i) -> const char* {
    return static_cast<int>(i) == me_ ? layout_.input : scratch_ + i * bytes;
  };
  char* acc = me_ == 0 ? layout_.output : scratch_;
  if (acc != contribution(0)) memmove(acc, contribution(0), bytes);
  for (size_t i = 1; i < members_.size(); ++i) reduce(acc, acc, contribution(i), n, type_, op_);
  if (acc != layout_.output) memmove(layout_.output, acc, bytes);
  if (avgDivisor_ > 0) divideInPlace(layout_.output, n, type_, avgDivisor_);
}

Status StarStage::advance(bool& moved, bool& done) noexcept {
  if (me_ < 0) {
    done = true;
    return Status::ok();
  }
  bool all = true;
  for (auto& p : pending_) {
    XSITE_RETURN_IF_ERROR(p.conn->progress(moved));
    all = all && (p.send ? p.conn->sendsDone() : p.conn->recvsDone()) >= p.ticket;
  }
  if (!all) return Status::ok();
  const bool lead = ctx_.rank() == leader_;
  if (!reduced_ && (mode_ == StarMode::kExchange || (mode_ == StarMode::kReduce && lead))) {
    finishReduce();
    moved = true;
  }
  reduced_ = true;
  done = true;
  return Status::ok();
}

}  // namespace xsite::coll
