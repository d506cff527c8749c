// Broadcast down a tree that crosses the WAN once: the root sends to every other site's leader,
// each site's leader (the root in its own site) to the leaders of the other domains of its site,
// each domain's leader to its members. Chunks are pipelined through the three levels.
#include "coll/collectives.h"
#include "coll/star_stage.h"

namespace xsite::coll {

std::unique_ptr<Operation> broadcastTree(Context& ctx, const void* send, void* recv, size_t count,
                                         DataType type, int root) {
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
  const char* input = static_cast<const char*>(ctx.rank() == root ? send : recv);
  auto layout = [=](int c, StarLayout& lay) {
    size_t off = splitPoint(count, chunks, c);
    lay.count = splitPoint(count, chunks, c + 1) - off;
    lay.input = input + off * esize;
    lay.output = static_cast<char*>(recv) + off * esize;
  };
  const int slot = kScratchStar;  // one per star stage, three
  auto operation = std::make_unique<Operation>(ctx, "broadcast");
  auto star = [&](const char* name, const std::vector<int>& group, int leader, int scratch) {
    return operation->own(std::make_unique<StarStage>(ctx, name, StarMode::kBroadcast, group,
                                                      leader, type, ReduceOp::kSum, 0, scratch,
                                                      layout));
  };
  Stage* cross = star("cross-site broadcast", sites, root, slot);
  Stage* site = star("site broadcast", domains, siteLeader(place.site), slot + 1);
  Stage* domain = star("domain broadcast", members, domainLeader(place.domain), slot + 2);
  operation->schedule({{cross}, {site}, {domain}}, chunks);
  return operation;
}

}  // namespace xsite::coll
