// Latency path: reduce to the domain leader, then to the site leader; site leaders exchange
// across sites (one WAN one-way delay) and all reduce in site order; then broadcast back down.
// Works on every topology, so it is also the hierarchical fallback for uneven ones.
#include "coll/collectives.h"
#include "coll/star_stage.h"

namespace xsite::coll {

std::unique_ptr<Operation> allReduceLatency(Context& ctx, const void* send, void* recv, size_t count,
                                            DataType type, ReduceOp op) {
  const auto& t = ctx.topology();
  const auto& place = t.place(ctx.rank());
  const size_t esize = dataTypeSize(type);
  const int chunks = chunkCount(ctx, count, type);
  const auto* in = static_cast<const char*>(send);
  auto* out = static_cast<char*>(recv);
  auto layout = [=](bool fromInput) {
    return [=](int c, StarLayout& lay) {
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

  auto operation = std::make_unique<Operation>(ctx, "allReduce(latency)");
  auto star = [&](const char* name, StarMode mode, const std::vector<int>& group, int leader,
                  int divisor, int scratch, bool fromInput) {
    return operation->own(std::make_unique<StarStage>(ctx, name, mode, group, leader, type, op,
                                                      divisor, scratch, layout(fromInput)));
  };
  Stage* domainUp = star("domain reduce", StarMode::kReduce, domain, domainLeader, 0, slot, true);
  Stage* siteUp = star("site reduce", StarMode::kReduce, domainLeaders, siteLeader, 0, slot + 1, false);
  Stage* cross = star("cross-site exchange", StarMode::kExchange, siteLeaders, -1, avg, slot + 2, false);
  Stage* siteDown = star("site broadcast", StarMode::kBroadcast, domainLeaders, siteLeader, 0, slot + 3, false);
  Stage* domainDown = star("domain broadcast", StarMode::kBroadcast, domain, domainLeader, 0, slot + 4, false);
  operation->schedule({{domainUp}, {siteUp}, {cross}, {siteDown}, {domainDown}}, chunks);
  return operation;
}

}  // namespace xsite::coll
