// Reduce-scatter: the ring's reduce-scatter half over all ranks. Partial sums travel through a
// workspace (the send buffer itself when the call is in place, as NCCL allows).
#include "coll/collectives.h"
#include "coll/ring_stage.h"

namespace xsite::coll {

std::unique_ptr<Operation> reduceScatterRing(Context& ctx, const void* send, void* recv,
                                             size_t recvCount, DataType type, ReduceOp op) {
  const int n = ctx.size();
  const size_t esize = dataTypeSize(type);
  const auto* in = static_cast<const char*>(send);
  auto* out = static_cast<char*>(recv);
  const bool inPlace = in + ctx.rank() * recvCount * esize == out;
  char* work = inPlace ? out - ctx.rank() * recvCount * esize
                       : ctx.scratch(kScratchReduceScatter, recvCount * n * esize);
  auto operation = std::make_unique<Operation>(ctx, "reduceScatter(ring)");
  Stage* ring = operation->own(std::make_unique<RingStage>(
      ctx, flatRing(ctx.topology(), ctx.rank()), kChRing, RingMode::kReduceScatter, type, op,
      op == ReduceOp::kAvg ? n : 0, [=](int, RingLayout& l) {
        l.input = in;
        l.work = work;
        l.output = out;
        l.compactOutput = true;
        for (int i = 0; i <= n; ++i) l.bounds.push_back(recvCount * i);
      }));
  operation->schedule({{ring}}, 1);
  return operation;
}

}  // namespace xsite::coll
