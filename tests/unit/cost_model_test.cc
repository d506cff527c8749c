// The cost model's choices on the reference topologies, and the ring views and link plan the
// schedules run on (coll/context.cc): rings are the expected members, and planLinks is symmetric.
#include "topo/cost_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "coll/context.h"
#include "topo/topology.h"
#include "util/params.h"

namespace xsite {
namespace {

using ::testing::ElementsAre;
using topo::CostModel;
using topo::Topology;

constexpr size_t kSmall = 8;
constexpr size_t kLarge = size_t{64} << 20;

TEST(CostModel, DefaultsMatchTheParamsRegistry) {
  // The struct's defaults and params.def's must describe the same links.
  auto def = [](params::Id id) { return std::stod(params::info(id).defaultValue); };
  const CostModel m;
  EXPECT_DOUBLE_EQ(m.domain.latencyUs, def(params::Id::kDomainLatencyUs));
  EXPECT_DOUBLE_EQ(m.domain.bytesPerUs, def(params::Id::kDomainRateMbit) / 8);
  EXPECT_DOUBLE_EQ(m.site.latencyUs, def(params::Id::kSiteLatencyUs));
  EXPECT_DOUBLE_EQ(m.site.bytesPerUs, def(params::Id::kSiteRateMbit) / 8);
  EXPECT_DOUBLE_EQ(m.wan.latencyUs, 5500);  // 5.5 ms
  EXPECT_DOUBLE_EQ(m.wan.bytesPerUs, 125);  // 1 Gbit/s
  EXPECT_DOUBLE_EQ(m.wan.latencyUs, def(params::Id::kWanLatencyUs));
  EXPECT_DOUBLE_EQ(m.wan.bytesPerUs, def(params::Id::kWanRateMbit) / 8);
}

TEST(CostModel, CompressionMakesTheHierarchicalPathCheaperAndMovesTheCrossover) {
  const Topology t = Topology::regular(2, 2, 2);
  const CostModel m;
  EXPECT_LT(m.estimateUs(Algorithm::kHierarchical, kLarge, t, 4),
            m.estimateUs(Algorithm::kHierarchical, kLarge, t) / 3);
  EXPECT_EQ(m.estimateUs(Algorithm::kRing, kLarge, t, 4), m.estimateUs(Algorithm::kRing, kLarge, t));
  // The smallest size at which the hierarchical path wins drops with a ratio of 8.
  auto crossover = [&](double ratio) {
    size_t b = 1024;
    while (m.choose(b, t, ratio) != Algorithm::kHierarchical && b < (size_t{1} << 34)) b *= 2;
    return b;
  };
  EXPECT_LT(crossover(8), crossover(1));
}

TEST(CostModel, TwoSitesPickLatencyForSmallAndHierarchicalForLarge) {
  const Topology t = Topology::regular(2, 2, 2);
  const CostModel m;
  EXPECT_EQ(m.choose(kSmall, t), Algorithm::kLatency);
  EXPECT_EQ(m.choose(kLarge, t), Algorithm::kHierarchical);
  EXPECT_GT(m.estimateUs(Algorithm::kRing, kLarge, t), m.estimateUs(Algorithm::kHierarchical, kLarge, t));
  EXPECT_GT(m.estimateUs(Algorithm::kLatency, kLarge, t),
            m.estimateUs(Algorithm::kHierarchical, kLarge, t));
  // A small message pays the WAN latency once on the latency path, 2(n-1) times on the ring.
  const double lat = m.estimateUs(Algorithm::kLatency, kSmall, t);
  EXPECT_GE(lat, m.wan.latencyUs);
  EXPECT_LT(lat, 2 * m.wan.latencyUs);
  EXPECT_GE(m.estimateUs(Algorithm::kRing, kSmall, t), 14 * m.wan.latencyUs);
  // 64 MiB cannot cross a 1 Gbit/s WAN faster than its bytes take: S / 125 bytes/us.
  EXPECT_GE(m.estimateUs(Algorithm::kHierarchical, kLarge, t), kLarge / m.wan.bytesPerUs);
}

TEST(CostModel, ChoiceSwitchesOnceAsMessagesGrow) {
  const Topology t = Topology::regular(2, 2, 2);
  const CostModel m;
  std::vector<Algorithm> seq;
  for (size_t b = 1; b <= (size_t{1} << 30); b <<= 1) {
    Algorithm a = m.choose(b, t);
    if (seq.empty() || seq.back() != a) seq.push_back(a);
  }
  EXPECT_THAT(seq, ElementsAre(Algorithm::kLatency, Algorithm::kHierarchical));
}

TEST(CostModel, AutoIsTheCheapest) {
  const CostModel m;
  for (const Topology& t : {Topology::regular(2, 2, 2), Topology::regular(1, 1, 8),
                            Topology::regular(1, 4, 2), Topology::fromShape({{2, 2}, {2}})})
    for (size_t b : {size_t{8}, size_t{1} << 16, size_t{1} << 22, kLarge}) {
      SCOPED_TRACE(t.describe() + " bytes " + std::to_string(b));
      const double ring = m.estimateUs(Algorithm::kRing, b, t);
      const double hier = m.estimateUs(Algorithm::kHierarchical, b, t);
      const double latency = m.estimateUs(Algorithm::kLatency, b, t);
      const double best = std::min({ring, hier, latency});
      EXPECT_EQ(m.estimateUs(Algorithm::kAuto, b, t), best);
      EXPECT_EQ(m.estimateUs(m.choose(b, t), b, t), best);
      EXPECT_NE(m.choose(b, t), Algorithm::kAuto);
    }
}

TEST(CostModel, EstimatesGrowWithSize) {
  const CostModel m;
  for (const Topology& t : {Topology::regular(2, 2, 2), Topology::fromShape({{2, 2}, {2}})})
    for (Algorithm a : {Algorithm::kRing, Algorithm::kHierarchical, Algorithm::kLatency}) {
      double prev = -1;
      for (size_t b = 1; b <= kLarge; b <<= 2) {
        double us = m.estimateUs(a, b, t);
        EXPECT_GT(us, prev) << algorithmName(a) << " " << b;
        prev = us;
      }
    }
}

TEST(CostModel, SingleDomainRingIsNotWorseThanHierarchical) {
  const Topology t = Topology::regular(1, 1, 8);
  const CostModel m;
  for (size_t b : {kSmall, size_t{1} << 20, kLarge}) {
    const double ring = m.estimateUs(Algorithm::kRing, b, t);
    const double hier = m.estimateUs(Algorithm::kHierarchical, b, t);
    // One level: the hierarchical schedule is the ring; they may differ by rounding only.
    EXPECT_LE(ring, hier * (1 + 1e-12)) << b;
  }
  // Large messages: the bandwidth-optimal ring beats the leader schedule (L-1 full copies).
  EXPECT_LT(m.estimateUs(Algorithm::kRing, kLarge, t), m.estimateUs(Algorithm::kLatency, kLarge, t));
  EXPECT_NE(m.choose(kLarge, t), Algorithm::kLatency);
  // The ring inside one domain never pays a WAN or site latency.
  EXPECT_LT(m.estimateUs(Algorithm::kRing, kSmall, t), 14 * m.site.latencyUs);
}

TEST(CostModel, OneRankCostsNothingToRing) {
  const CostModel m;
  EXPECT_EQ(m.estimateUs(Algorithm::kRing, kLarge, Topology::regular(1, 1, 1)), 0);
}

TEST(CostModel, UnevenHierarchicalIsEstimatedAsTheLeaderSchedule) {
  // all_reduce_hier.cc runs the latency schedule on uneven topologies; the estimate says so.
  const Topology t = Topology::fromShape({{2, 2}, {2}});
  const CostModel m;
  for (size_t b : {kSmall, kLarge})
    EXPECT_EQ(m.estimateUs(Algorithm::kHierarchical, b, t), m.estimateUs(Algorithm::kLatency, b, t));
}

TEST(CostModel, SlowerWanMakesCrossSitePathsSlower) {
  const Topology t = Topology::regular(2, 2, 2);
  CostModel fast, slow;
  slow.wan.bytesPerUs /= 10;
  slow.wan.latencyUs *= 10;
  for (Algorithm a : {Algorithm::kRing, Algorithm::kHierarchical, Algorithm::kLatency})
    EXPECT_GT(slow.estimateUs(a, kLarge, t), fast.estimateUs(a, kLarge, t)) << algorithmName(a);
}

// ---- ring views ------------------------------------------------------------------------------

// ---- pipelines (NCCL channels, WAN lanes) that keep a bandwidth-delay product in flight ----

constexpr double kWindow = 4.0 * 1024 * 1024;  // NCCL's SIMPLE slots: 8 x 512 KiB per round trip

CostModel wanModel(double latencyUs, double mbit) {
  CostModel m;
  m.wan = {latencyUs, mbit / 8};
  return m;
}

TEST(CostModelChannels, BdpIsTheSlowestLinksRateTimesItsRoundTrip) {
  const CostModel m = wanModel(40000, 1000);  // 40 ms one way, 1 Gbit/s
  EXPECT_DOUBLE_EQ(m.bdpBytes(Topology::regular(2, 2, 2)), 125.0 * 80000);  // 10 MB
  // One site: the site link is the slowest.
  EXPECT_DOUBLE_EQ(m.bdpBytes(Topology::regular(1, 2, 2)),
                   m.site.bytesPerUs * 2 * m.site.latencyUs);
  EXPECT_DOUBLE_EQ(m.bdpBytes(Topology::regular(1, 1, 1)), 0);
}

TEST(CostModelChannels, LargeCrossSiteTransferKeepsABdpInFlight) {
  const Topology t = Topology::regular(2, 2, 2);
  // 10 MB BDP / 4 MiB per channel -> 3 channels.
  EXPECT_EQ(wanModel(40000, 1000).pipelines(size_t{1} << 30, t, kWindow, 32), 3);
  // 10 Gbit/s, 20 ms: 50 MB in flight -> 12 channels.
  EXPECT_EQ(wanModel(20000, 10000).pipelines(size_t{1} << 30, t, kWindow, 32), 12);
  // 100 Gbit/s, 40 ms: 1 GB in flight, more than NCCL offers -> the cap.
  EXPECT_EQ(wanModel(40000, 100000).pipelines(size_t{1} << 30, t, kWindow, 32), 32);
  EXPECT_EQ(wanModel(40000, 100000).pipelines(size_t{1} << 30, t, kWindow, 8), 8);
}

TEST(CostModelChannels, SmallMessagesGetOneOrTwo) {
  const Topology t = Topology::regular(2, 2, 2);
  const CostModel m = wanModel(20000, 10000);  // a fat pipe: 12 channels for large messages
  for (size_t b : {size_t{8}, size_t{1024}, size_t{64} << 10, size_t{4} << 20})
    EXPECT_EQ(m.pipelines(b, t, kWindow, 32), 1) << b;
  EXPECT_EQ(m.pipelines(size_t{8} << 20, t, kWindow, 32), 2);
  // A message larger than the window but smaller than the BDP: as many windows as it fills.
  EXPECT_EQ(m.pipelines(size_t{20} << 20, t, kWindow, 32), 5);
}

TEST(CostModelChannels, GrowWithSizeAndStayInBounds) {
  const Topology t = Topology::regular(3, 2, 4);
  for (double mbit : {100.0, 1000.0, 10000.0, 400000.0}) {
    const CostModel m = wanModel(30000, mbit);
    int prev = 1;
    for (size_t b = 8; b <= (size_t{1} << 30); b *= 4) {
      const int c = m.pipelines(b, t, kWindow, 16);
      EXPECT_GE(c, prev) << mbit << " " << b;
      EXPECT_GE(c, 1);
      EXPECT_LE(c, 16);
      prev = c;
    }
  }
  // Degenerate inputs still give a usable count.
  const CostModel m;
  EXPECT_EQ(m.pipelines(size_t{1} << 30, t, 0, 32), 1);
  EXPECT_EQ(m.pipelines(size_t{1} << 30, t, kWindow, 0), 1);
  EXPECT_EQ(m.pipelines(0, t, kWindow, 32), 1);
}

TEST(RingViews, TwoByTwoByTwo) {
  const Topology t = Topology::regular(2, 2, 2);
  auto flat = coll::flatRing(t, 5);
  EXPECT_THAT(flat.members, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(flat.index, 5);
  EXPECT_EQ(flat.left(), 4);
  EXPECT_EQ(flat.right(), 6);
  EXPECT_EQ(coll::flatRing(t, 7).right(), 0);
  EXPECT_EQ(coll::flatRing(t, 0).left(), 7);

  auto dom = coll::domainRing(t, 5);
  EXPECT_THAT(dom.members, ElementsAre(4, 5));
  EXPECT_EQ(dom.index, 1);
  EXPECT_EQ(dom.left(), 4);
  EXPECT_EQ(dom.right(), 4);

  // Rail: same local index, every domain of the site, in domain order.
  EXPECT_THAT(coll::railRing(t, 0).members, ElementsAre(0, 2));
  EXPECT_THAT(coll::railRing(t, 3).members, ElementsAre(1, 3));
  EXPECT_EQ(coll::railRing(t, 3).index, 1);
  EXPECT_THAT(coll::railRing(t, 5).members, ElementsAre(5, 7));
  EXPECT_EQ(coll::railRing(t, 5).index, 0);

  // Shards: local * D + domain position; the WAN ring joins equal shards, one per site.
  const int shards[8] = {0, 2, 1, 3, 0, 2, 1, 3};
  for (int r = 0; r < 8; ++r) EXPECT_EQ(coll::shardIndex(t, r), shards[r]) << r;
  EXPECT_THAT(coll::wanRing(t, 5).members, ElementsAre(1, 5));
  EXPECT_EQ(coll::wanRing(t, 5).index, 1);
  EXPECT_THAT(coll::wanRing(t, 2).members, ElementsAre(2, 6));
  EXPECT_EQ(coll::wanRing(t, 2).index, 0);
  EXPECT_THAT(coll::wanRing(t, 0).members, ElementsAre(0, 4));
  EXPECT_THAT(coll::wanRing(t, 7).members, ElementsAre(3, 7));
}

TEST(RingViews, ThreeSitesEveryRankInItsRings) {
  const Topology t = Topology::regular(3, 2, 2);
  for (int r = 0; r < t.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    for (const auto& v : {coll::flatRing(t, r), coll::domainRing(t, r), coll::railRing(t, r),
                          coll::wanRing(t, r)}) {
      ASSERT_GE(v.index, 0);
      ASSERT_LT(v.index, v.size());
      EXPECT_EQ(v.members[v.index], r);
      EXPECT_EQ(std::set<int>(v.members.begin(), v.members.end()).size(), v.members.size());
    }
    auto wan = coll::wanRing(t, r);
    ASSERT_EQ(wan.size(), 3);
    for (int s = 0; s < 3; ++s) {
      EXPECT_EQ(t.place(wan.members[s]).site, s);
      EXPECT_EQ(coll::shardIndex(t, wan.members[s]), coll::shardIndex(t, r));
    }
    auto rail = coll::railRing(t, r);
    ASSERT_EQ(rail.size(), 2);
    for (int m : rail.members) {
      EXPECT_EQ(t.place(m).site, t.place(r).site);
      EXPECT_EQ(t.place(m).local, t.place(r).local);
    }
  }
  // Inside a site the shards are a permutation of 0..P-1.
  for (int s = 0; s < 3; ++s) {
    std::set<int> seen;
    for (int r : t.siteRanks(s)) seen.insert(coll::shardIndex(t, r));
    EXPECT_EQ(seen, (std::set<int>{0, 1, 2, 3}));
  }
}

// ---- planLinks -------------------------------------------------------------------------------

using Link = std::pair<int, int>;  // (peer, channel)

std::set<Link> linksOf(const Topology& t, int rank) {
  std::set<Link> out;
  const coll::BackendChoice backends{transport::Backend::kShm, transport::Backend::kTcp,
                                     transport::Backend::kLoopback};
  for (const auto& l : coll::planLinks(t, rank, backends, 3)) {
    EXPECT_TRUE(out.insert({l.peer, l.channel}).second) << "duplicate link " << l.peer << "/" << l.channel;
    EXPECT_NE(l.peer, rank) << "link to itself on " << l.channelName;
    EXPECT_GE(l.peer, 0);
    EXPECT_LT(l.peer, t.size());
    EXPECT_EQ(l.channelName, coll::channelName(l.channel));
    const auto &p = t.place(l.peer), &me = t.place(rank);
    EXPECT_EQ(l.backend, p.domain == me.domain ? backends.sameDomain
                         : p.site == me.site   ? backends.sameSite
                                               : backends.otherSite)
        << rank << "->" << l.peer;
  }
  return out;
}

class PlanLinks : public ::testing::TestWithParam<std::vector<std::vector<int>>> {};

TEST_P(PlanLinks, SymmetricAndCoversEveryScheduleNeighbour) {
  const Topology t = Topology::fromShape(GetParam());
  SCOPED_TRACE(t.describe());
  std::vector<std::set<Link>> all;
  for (int r = 0; r < t.size(); ++r) all.push_back(linksOf(t, r));
  for (int a = 0; a < t.size(); ++a)
    for (const auto& [b, ch] : all[a])
      EXPECT_TRUE(all[b].count({a, ch}))
          << a << " lists (" << b << ", " << coll::channelName(ch) << ") but " << b << " does not list " << a;

  auto needs = [&](int r, const coll::RingView& v, int ch) {
    if (v.size() < 2) return;
    EXPECT_TRUE(all[r].count({v.left(), ch})) << r << " left on " << coll::channelName(ch);
    EXPECT_TRUE(all[r].count({v.right(), ch})) << r << " right on " << coll::channelName(ch);
  };
  for (int r = 0; r < t.size(); ++r) {
    needs(r, coll::flatRing(t, r), coll::kChRing);
    needs(r, coll::domainRing(t, r), coll::kChDomainRs);
    needs(r, coll::domainRing(t, r), coll::kChDomainAg);
    if (t.isRegular()) {
      needs(r, coll::railRing(t, r), coll::kChRailRs);
      needs(r, coll::railRing(t, r), coll::kChRailAg);
      for (int lane = 0; lane < 3; ++lane) needs(r, coll::wanRing(t, r), coll::kChWan + lane);
      EXPECT_FALSE(all[r].count({coll::wanRing(t, r).right(), coll::kChWan + 3})) << "only 3 lanes";
    }
    // Star: every rank reaches its domain leader, its site leader and every other site's leader.
    const auto& p = t.place(r);
    std::vector<int> leaders{t.domainLeader(p.domain), t.siteLeader(p.site)};
    for (int s = 0; s < t.numSites(); ++s) leaders.push_back(t.siteLeader(s));
    for (int d : t.siteDomains(p.site)) leaders.push_back(t.domainLeader(d));
    for (int l : leaders) {
      if (l == r) continue;
      EXPECT_TRUE(all[r].count({l, coll::kChStar})) << r << " -> leader " << l;
    }
  }
  if (!t.isRegular()) {
    for (int r = 0; r < t.size(); ++r)
      for (const auto& [b, ch] : all[r])
        EXPECT_TRUE(ch != coll::kChRailRs && ch != coll::kChRailAg && ch != coll::kChWan)
            << "uneven topology with a " << coll::channelName(ch) << " link";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PlanLinks,
    ::testing::Values(std::vector<std::vector<int>>{{1}}, std::vector<std::vector<int>>{{2}},
                      std::vector<std::vector<int>>{{8}}, std::vector<std::vector<int>>{{2, 2}, {2, 2}},
                      std::vector<std::vector<int>>{{2, 2}, {2}}, std::vector<std::vector<int>>{{2, 2}, {4}},
                      std::vector<std::vector<int>>{{3, 1}}, std::vector<std::vector<int>>{{1}, {1}, {1}},
                      std::vector<std::vector<int>>{{1, 1, 1}, {3}, {2, 1}},
                      std::vector<std::vector<int>>{{2, 2, 2}, {2, 2, 2}, {2, 2, 2}},
                      std::vector<std::vector<int>>{{4, 4}, {4, 4}}));

TEST(PlanLinksCount, TwoByTwoByTwoRankZero) {
  const Topology t = Topology::regular(2, 2, 2);
  std::set<Link> l = linksOf(t, 0);
  auto peers = [&](int ch) {
    std::set<int> p;
    for (const auto& [b, c] : l)
      if (c == ch) p.insert(b);
    return p;
  };
  EXPECT_EQ(peers(coll::kChRing), (std::set<int>{1, 7}));
  EXPECT_EQ(peers(coll::kChDomainRs), (std::set<int>{1}));
  EXPECT_EQ(peers(coll::kChDomainAg), (std::set<int>{1}));
  EXPECT_EQ(peers(coll::kChRailRs), (std::set<int>{2}));
  EXPECT_EQ(peers(coll::kChRailAg), (std::set<int>{2}));
  EXPECT_EQ(peers(coll::kChWan), (std::set<int>{4}));
  // Rank 0 leads its domain, its site: it links to its member, the other domain's leader, the
  // other site's leader, and (symmetrized) every rank whose star reaches it: 3 and 5..7 reach
  // rank 0 as their site's or the other site's leader.
  EXPECT_EQ(peers(coll::kChStar), (std::set<int>{1, 2, 3, 4, 5, 6, 7}));
}

}  // namespace
}  // namespace xsite
