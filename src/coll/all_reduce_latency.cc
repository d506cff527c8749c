// Latency path: reduce to the domain leader, then to the site leader; site leaders exchange
// across sites (one WAN one-way delay) and all reduce in site order; then broadcast back down.
// Works on every topology, so it is also the hierarchical fallback for uneven ones.
#include "coll/collectives.h"
#include "coll/star_stage.h"

namespace xsite::coll {

void allReduceLatency(Context& ctx, const void* send, void* recv, size_t count, DataType type,
                      ReduceOp op) {
  const auto& t = ctx.topology();
  const auto& place = t.place(ctx.rank());
  const size_t esize = dataTypeSize(type);
  const int chunks = chunkCount(ctx, count, type);
  const auto* in = static_cast<const char*>(send);
  auto* out = static_cast<char*>(recv);
  auto layout = [&](bool fromInput) {
    return [&, fromInput](int c, StarLayout& lay) {
      size_t off = splitPoint(count, chunks, c);
      lay.count = splitPoint(count, chunks, c + 1) - off;
      lay.input = (fromInput ? in : out) + off * esize;
      lay.output = out + off * esize;
    };
  };
  const auto& domain = t.domainRanks(place.domain);
  std::vector<int> siteLeaders, domainLeaders;
  for (int d : t.siteDomains(place.site)) domainLeaders.push_back(t.domainLeader(d));
  for (int s = 0; s < t.numSites(); ++s) siteLeaders.push_back(t.siteLeader(s));
  const int domainLeader = t.domainLeader(place.domain), siteLeader = t.siteLeader(place.site);
  const int avg = op == ReduceOp::kAvg ? ctx.size() : 0;
  const int slot = kScratchStar;  // one per star stage, five

  StarStage domainUp(ctx, "domain reduce", StarMode::kReduce, domain, domainLeader, type, op, 0,
                     slot, layout(true));
  StarStage siteUp(ctx, "site reduce", StarMode::kReduce, domainLeaders, siteLeader, type, op, 0,
                   slot + 1, layout(false));
  StarStage cross(ctx, "cross-site exchange", StarMode::kExchange, siteLeaders, -1, type, op, avg,
                  slot + 2, layout(false));
  StarStage siteDown(ctx, "site broadcast", StarMode::kBroadcast, domainLeaders, siteLeader, type,
                     op, 0, slot + 3, layout(false));
  StarStage domainDown(ctx, "domain broadcast", StarMode::kBroadcast, domain, domainLeader, type,
                       op, 0, slot + 4, layout(false));
  runPipeline(ctx, {{&domainUp}, {&siteUp}, {&cross}, {&siteDown}, {&domainDown}}, chunks, "allReduce(latency)");
}

}  // namespace xsite::coll
