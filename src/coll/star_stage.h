// Star stages: a leader and its members, one whole-chunk message per link. The latency path and
// broadcast are built from them; they pay one link latency per level, whatever the size.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "coll/pipeline.h"

namespace xsite::coll {

// Where a chunk lives for a star stage: `input` is this rank's contribution (or the data to
// send), `output` where the result lands; `count` elements.
struct StarLayout {
  const char* input = nullptr;
  char* output = nullptr;
  size_t count = 0;
};
using StarLayoutFn = std::function<void(int chunk, StarLayout& layout)>;

enum class StarMode {
  kReduce,     // members send to the leader; the leader reduces in member order
  kBroadcast,  // the leader sends to every member
  kExchange,   // every member sends to every other; all reduce in member order (no leader)
};

// `members` lists the ranks in reduction order and includes this rank (and the leader);
// `leader` is ignored for kExchange. A rank outside `members` has nothing to do.
class StarStage final : public Stage {
 public:
  StarStage(Context& ctx, std::string name, StarMode mode, std::vector<int> members, int leader,
            DataType type, ReduceOp op, int avgDivisor, int scratchSlot, StarLayoutFn layout);
  void start(int chunk) override;
  Status advance(bool& moved, bool& done) noexcept override;
  std::string describe() const override;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;

 private:
  void finishReduce();
  Context& ctx_;
  std::string name_;
  StarMode mode_;
  std::vector<int> members_;
  int leader_;
  DataType type_;
  ReduceOp op_;
  int avgDivisor_;
  int scratchSlot_;
  StarLayoutFn layoutFn_;
  size_t esize_;
  int me_ = -1;  // index of this rank in members_
  std::vector<transport::Connection*> conns_;  // per member (nullptr for self / unused)
  StarLayout layout_;
  char* scratch_ = nullptr;
  struct Pending {
    transport::Connection* conn;
    uint64_t ticket;
    bool send;
  };
  std::vector<Pending> pending_;
  bool reduced_ = false;
};

}  // namespace xsite::coll
