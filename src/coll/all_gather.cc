// All-gather: the ring's all-gather half over all ranks, received straight into place.
#include "coll/collectives.h"
#include "coll/ring_stage.h"

namespace xsite::coll {

std::unique_ptr<Operation> allGatherRing(Context& ctx, const void* send, void* recv,
                                         size_t sendCount, DataType type) {
  const int n = ctx.size();
  auto operation = std::make_unique<Operation>(ctx, "allGather(ring)");
  Stage* ring = operation->own(std::make_unique<RingStage>(
      ctx, flatRing(ctx.topology(), ctx.rank()), kChRing, RingMode::kAllGather, type,
      ReduceOp::kSum, 0, [=](int, RingLayout& l) {
        l.input = static_cast<const char*>(send);
        l.work = l.output = static_cast<char*>(recv);
        l.compactInput = true;
        for (int i = 0; i <= n; ++i) l.bounds.push_back(sendCount * i);
      }));
  operation->schedule({{ring}}, 1);
  return operation;
}

}  // namespace xsite::coll
