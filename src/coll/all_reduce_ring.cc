// Flat ring all-reduce: the schedule NCCL runs on a flat network. 2(N-1) steps, every one paying
// the slowest hop's latency; bandwidth-optimal when all links are equal.
#include "coll/collectives.h"
#include "coll/ring_stage.h"

namespace xsite::coll {

std::unique_ptr<Operation> allReduceRing(Context& ctx, const void* send, void* recv, size_t count,
                                         DataType type, ReduceOp op) {
  const int n = ctx.size();
  auto operation = std::make_unique<Operation>(ctx, "allReduce(ring)");
  Stage* ring = operation->own(std::make_unique<RingStage>(
      ctx, flatRing(ctx.topology(), ctx.rank()), kChRing, RingMode::kAllReduce, type, op,
      op == ReduceOp::kAvg ? n : 0, [=](int, RingLayout& l) {
        l.input = static_cast<const char*>(send);
        l.work = l.output = static_cast<char*>(recv);
        for (int i = 0; i <= n; ++i) l.bounds.push_back(splitPoint(count, n, i));
      }));
  operation->schedule({{ring}}, 1);
  return operation;
}

}  // namespace xsite::coll
