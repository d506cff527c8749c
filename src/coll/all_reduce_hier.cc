// Hierarchical all-reduce (the bandwidth path), per chunk:
//   1. domain reduce-scatter    (ring of the L ranks of a domain)
//   2. site reduce-scatter      (rail ring: same local index, the D domains of a site)
//   3. cross-site all-reduce    (the rank owning the same shard in every site: a ring, or a
//                                direct exchange between two sites or with a codec)
//   4. site all-gather, 5. domain all-gather.
// Each stage has its own channel, and the engine pipelines chunks through the stages. A chunk
// is cut into P = L*D shards; rank (domain position d, local l) owns shard l*D + d. Uneven
// topologies (sites of different sizes) fall back to the leader-based schedule.
#include <memory>

#include "coll/collectives.h"
#include "coll/exchange_stage.h"
#include "coll/ring_stage.h"
#include "util/log.h"

namespace xsite::coll {

compress::CodecId effectiveCodec(const Context& ctx, compress::CodecId requested, DataType type,
                                 ReduceOp op) {
  using compress::CodecId;
  if (requested == CodecId::kNone || ctx.topology().numSites() < 2 || !ctx.topology().isRegular())
    return CodecId::kNone;
  const bool lossyOk = compress::codecSupports(requested, type) &&
                       (op == ReduceOp::kSum || op == ReduceOp::kAvg);
  if (compress::isLossy(requested) && !lossyOk) {
    XSITE_DEBUG(kColl, "codec %s does not apply to a %s %s all-reduce: the cross-site stage "
                       "runs exact", std::string(codecName(requested)).c_str(),
                std::string(dataTypeName(type)).c_str(), std::string(reduceOpName(op)).c_str());
    return CodecId::kNone;
  }
  return requested;
}

std::unique_ptr<Operation> allReduceHierarchical(Context& ctx, const void* send, void* recv,
                                                 size_t count, DataType type, ReduceOp op,
                                                 const CodecChoice& codecChoice) {
  const auto& t = ctx.topology();
  if (!t.isRegular()) {
    static bool once = [&] {
      XSITE_INFO(kColl, "hierarchical all-reduce on an uneven topology (%s): using the leader "
                        "schedule", t.describe().c_str());
      return true;
    }();
    (void)once;
    return allReduceLatency(ctx, send, recv, count, type, op);
  }
  const int rank = ctx.rank();
  const auto& place = t.place(rank);
  const int L = static_cast<int>(t.domainRanks(place.domain).size());
  const int D = static_cast<int>(t.siteDomains(place.site).size());
  const int P = L * D;
  const int l = place.local;
  const int shard = shardIndex(t, rank);
  const int S = t.numSites();
  const size_t esize = dataTypeSize(type);
  const int chunks = chunkCount(ctx, count, type);
  const auto* in = static_cast<const char*>(send);
  auto* out = static_cast<char*>(recv);

  // The layouts outlive this function (the operation runs them): they hold values only.
  auto chunkRange = [count, chunks](int c, size_t& off, size_t& n) {
    off = splitPoint(count, chunks, c);
    n = splitPoint(count, chunks, c + 1) - off;
  };
  auto domainLayout = [=](bool fromInput) {
    return [=](int c, RingLayout& lay) {
      size_t off, n;
      chunkRange(c, off, n);
      lay.input = (fromInput ? in : out) + off * esize;
      lay.work = lay.output = out + off * esize;
      for (int i = 0; i <= L; ++i) lay.bounds.push_back(splitPoint(n, P, static_cast<size_t>(i) * D));
    };
  };
  auto railLayout = [=](int c, RingLayout& lay) {
    size_t off, n;
    chunkRange(c, off, n);
    size_t base = splitPoint(n, P, static_cast<size_t>(l) * D);
    lay.input = lay.work = lay.output = out + (off + base) * esize;
    for (int i = 0; i <= D; ++i) lay.bounds.push_back(splitPoint(n, P, static_cast<size_t>(l) * D + i) - base);
  };
  auto wanLayout = [=](int c, RingLayout& lay) {
    size_t off, n;
    chunkRange(c, off, n);
    size_t lo = splitPoint(n, P, shard), hi = splitPoint(n, P, shard + 1);
    lay.input = lay.work = lay.output = out + (off + lo) * esize;
    for (int i = 0; i <= S; ++i) lay.bounds.push_back(splitPoint(hi - lo, S, i));
  };

  const int avg = op == ReduceOp::kAvg ? ctx.size() : 0;
  const compress::CodecId codecId = effectiveCodec(ctx, codecChoice.codec, type, op);
  // Error feedback: one residual per key over this rank's shard of every chunk.
  std::vector<size_t> residualOffset(chunks + 1, 0);
  float* residual = nullptr;
  if (codecChoice.errorFeedback && compress::isLossy(codecId)) {
    for (int c = 0; c < chunks; ++c) {
      size_t off, n;
      chunkRange(c, off, n);
      residualOffset[c + 1] = residualOffset[c] + splitPoint(n, P, shard + 1) - splitPoint(n, P, shard);
    }
    Result<float*> r = ctx.errorFeedback().residual(codecChoice.key, residualOffset[chunks]);
    throwIfError(r ? Status::ok() : r.status());
    residual = r.value();
  }
  auto exchangeLayout = [=](int c, ExchangeLayout& lay) {
    RingLayout ring;
    wanLayout(c, ring);
    lay.region = ring.work;
    lay.bounds = std::move(ring.bounds);
    lay.residual = residual ? residual + residualOffset[c] : nullptr;
  };
  auto operation = std::make_unique<Operation>(ctx, "allReduce(hier)");
  auto ring = [&](RingView view, int channel, RingMode mode, int divisor, RingStage::LayoutFn lay) {
    return operation->own(
        std::make_unique<RingStage>(ctx, std::move(view), channel, mode, type, op, divisor, std::move(lay)));
  };
  Stage* domainRs = ring(domainRing(t, rank), kChDomainRs, RingMode::kReduceScatter, 0, domainLayout(true));
  Stage* railRs = ring(railRing(t, rank), kChRailRs, RingMode::kReduceScatter, 0, railLayout);
  // The cross-site stage runs on several lanes so that several chunks are in flight on the WAN.
  // With a codec it is a direct exchange (exchange_stage.h); exact, a ring, except between two
  // sites on a link that needs several lanes: there the exchange of whole shards takes one round
  // trip per chunk instead of the ring's two, which a long or lossy link pays for in every round.
  // Where one lane covers the link, the ring's half-shard steps are gentler on the bottleneck's
  // queue (at 5.5 ms and a 2 x BDP queue the exchange overflowed it and took 7-10% longer).
  // Per chunk a rank puts 2(S-1)/S of its shard on the WAN either way.
  const double laneWire = static_cast<double>(count) * esize / chunks / P * 2.0 * (S - 1) / S /
                          compress::nominalRatio(codecId, type, ctx.settings().codecOptions.blockSize);
  const int lanes = wanLaneCount(ctx, count * esize, laneWire, P);
  XSITE_DEBUG(kColl, "allReduce(hier) of %zu bytes: %d chunks, cross-site stage on %d lanes%s",
              count * esize, chunks, lanes, ctx.settings().wanLanes > 0 ? " (XSITE_WAN_LANES)" : "");
  const bool exchange = codecId != compress::CodecId::kNone || (S == 2 && lanes > 1);
  std::vector<Stage*> wan;
  for (int lane = 0; lane < lanes; ++lane)
    wan.push_back(!exchange ? ring(wanRing(t, rank), kChWan + lane, RingMode::kAllReduce, avg, wanLayout)
                            : operation->own(std::make_unique<ExchangeStage>(
                                  ctx, wanRing(t, rank), kChWan + lane, ctx.codec(codecId), type,
                                  op, avg, exchangeLayout)));
  Stage* railAg = ring(railRing(t, rank), kChRailAg, RingMode::kAllGather, 0, railLayout);
  Stage* domainAg = ring(domainRing(t, rank), kChDomainAg, RingMode::kAllGather, 0, domainLayout(false));
  operation->schedule({{domainRs}, {railRs}, wan, {railAg}, {domainAg}}, chunks);
  return operation;
}

}  // namespace xsite::coll
