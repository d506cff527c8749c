// All-gather: the ring's all-gather half over all ranks, received straight into place.
#include "coll/collectives.h"
#include "coll/ring_stage.h"

namespace xsite::coll {

void allGatherRing(Context& ctx, const void* send, void* recv, size_t sendCount, DataType type) {
  const int n = ctx.size();
  RingStage ring(ctx, flatRing(ctx.topology(), ctx.rank()), kChRing, RingMode::kAllGather, type,
                 ReduceOp::kSum, 0, [&](int, RingLayout& l) {
                   l.input = static_cast<const char*>(send);
                   l.work = l.output = static_cast<char*>(recv);
                   l.compactInput = true;
                   for (int i = 0; i <= n; ++i) l.bounds.push_back(sendCount * i);
                 });
  runPipeline(ctx, {{&ring}}, 1, "allGather(ring)");
}

}  // namespace xsite::coll
