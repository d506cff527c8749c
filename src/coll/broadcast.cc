// Broadcast down a tree that crosses the WAN once: the root sends to every other site's leader,
// each site's leader (the root in its own site) to the leaders of the other domains of its site,
// each domain's leader to its members. Chunks are pipelined through the three levels.
#include "coll/collectives.h"
#include "coll/star_stage.h"

namespace xsite::coll {

void broadcastTree(Context& ctx, const void* send, void* recv, size_t count, DataType type, int root) {
  const auto& t = ctx.topology();
  const auto& place = t.place(ctx.rank());
  const auto& rootPlace = t.place(root);
  auto domainLeader = [&](int d) { return d == rootPlace.domain ? root : t.domainLeader(d); };
  auto siteLeader = [&](int s) { return s == rootPlace.site ? root : t.siteLeader(s); };

  std::vector<int> sites, domains, members;
  for (int s = 0; s < t.numSites(); ++s) sites.push_back(siteLeader(s));
  for (int d : t.siteDomains(place.site)) domains.push_back(domainLeader(d));
  members = t.domainRanks(place.domain);

  const size_t esize = dataTypeSize(type);
  const int chunks = chunkCount(ctx, count, type);
  auto layout = [&](int c, StarLayout& lay) {
    size_t off = splitPoint(count, chunks, c);
    lay.count = splitPoint(count, chunks, c + 1) - off;
    lay.input = static_cast<const char*>(ctx.rank() == root ? send : recv) + off * esize;
    lay.output = static_cast<char*>(recv) + off * esize;
  };
  const int slot = kScratchStar;  // one per star stage, three
  StarStage cross(ctx, "cross-site broadcast", StarMode::kBroadcast, sites, root, type,
                  ReduceOp::kSum, 0, slot, layout);
  StarStage site(ctx, "site broadcast", StarMode::kBroadcast, domains, siteLeader(place.site), type,
                 ReduceOp::kSum, 0, slot + 1, layout);
  StarStage domain(ctx, "domain broadcast", StarMode::kBroadcast, members,
                   domainLeader(place.domain), type, ReduceOp::kSum, 0, slot + 2, layout);
  runPipeline(ctx, {{&cross}, {&site}, {&domain}}, chunks, "broadcast");
}

}  // namespace xsite::coll
