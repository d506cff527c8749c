// The topology model: regular and uneven shapes, every inconsistency fromRecords reports, the
// topology file parser, and the rank record built from the environment.
#include "topo/topology.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "topo/env_record.h"
#include "util/params.h"
#include "xsite/error.h"

namespace xsite::topo {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename F>
Error errorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no xsite::Error thrown";
  return Error(ErrorCategory::kInternal, "no error");
}

RankRecord rec(int rank, int site, const std::string& domain, int local = -1) {
  RankRecord r;
  r.rank = rank;
  r.site = site;
  r.domain = domain;
  r.localRank = local;
  return r;
}

Error recordsError(const std::vector<RankRecord>& recs) {
  Error e = errorOf([&] { Topology::fromRecords(recs); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage) << e.what();
  return e;
}

// ---- regular / fromShape ---------------------------------------------------------------------

TEST(Topology, Regular2x2x2) {
  Topology t = Topology::regular(2, 2, 2);
  EXPECT_EQ(t.size(), 8);
  EXPECT_EQ(t.numSites(), 2);
  EXPECT_EQ(t.numDomains(), 4);
  EXPECT_TRUE(t.isRegular());
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(t.place(r).site, r / 4) << r;
    EXPECT_EQ(t.place(r).domain, r / 2) << r;
    EXPECT_EQ(t.place(r).local, r % 2) << r;
    EXPECT_EQ(t.sitePosition(r), r % 4) << r;
  }
  EXPECT_THAT(t.domainRanks(2), ElementsAre(4, 5));
  EXPECT_THAT(t.siteDomains(1), ElementsAre(2, 3));
  EXPECT_THAT(t.siteRanks(1), ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(t.domainLeader(3), 6);
  EXPECT_EQ(t.siteLeader(0), 0);
  EXPECT_EQ(t.siteLeader(1), 4);
  EXPECT_EQ(t.describe(), "8 ranks in 2 sites: site 0 = [2 2]; site 1 = [2 2] (regular)");
  EXPECT_THROW(t.place(8), std::out_of_range);
}

TEST(Topology, RegularRejectsEmptyDimensions) {
  EXPECT_EQ(errorOf([] { Topology::regular(0, 2, 2); }).category(), ErrorCategory::kInvalidUsage);
  EXPECT_EQ(errorOf([] { Topology::regular(2, 0, 2); }).category(), ErrorCategory::kInvalidUsage);
  EXPECT_EQ(errorOf([] { Topology::regular(2, 2, 0); }).category(), ErrorCategory::kInvalidUsage);
}

TEST(Topology, SingleRank) {
  Topology t = Topology::regular(1, 1, 1);
  EXPECT_EQ(t.size(), 1);
  EXPECT_TRUE(t.isRegular());
  EXPECT_EQ(t.describe(), "1 ranks in 1 site: site 0 = [1] (regular)");
}

TEST(Topology, UnevenShape) {
  Topology t = Topology::fromShape({{2, 2}, {2}});
  EXPECT_EQ(t.size(), 6);
  EXPECT_EQ(t.numSites(), 2);
  EXPECT_EQ(t.numDomains(), 3);
  EXPECT_FALSE(t.isRegular());
  EXPECT_THAT(t.siteRanks(0), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(t.siteRanks(1), ElementsAre(4, 5));
  EXPECT_EQ(t.siteLeader(1), 4);
  EXPECT_EQ(t.domainLeader(1), 2);
  EXPECT_EQ(t.sitePosition(3), 3);
  EXPECT_EQ(t.sitePosition(5), 1);
  EXPECT_EQ(t.place(5).domain, 2);
  EXPECT_EQ(t.describe(), "6 ranks in 2 sites: site 0 = [2 2]; site 1 = [2] (uneven)");
}

TEST(Topology, RegularityIsPerSite) {
  // Same rank count per site, uniform domains inside each site: regular.
  EXPECT_TRUE(Topology::fromShape({{2, 2}, {4}}).isRegular());
  EXPECT_TRUE(Topology::fromShape({{2}, {2}, {2}}).isRegular());
  EXPECT_TRUE(Topology::fromShape({{1, 1, 1, 1}}).isRegular());
  // Domains of different sizes inside one site.
  EXPECT_FALSE(Topology::fromShape({{3, 1}}).isRegular());
  EXPECT_FALSE(Topology::fromShape({{2, 2}, {1, 3}}).isRegular());
  // Sites of different sizes.
  EXPECT_FALSE(Topology::fromShape({{4}, {2}}).isRegular());
  EXPECT_FALSE(Topology::fromShape({{2}, {2}, {2, 2}}).isRegular());
}

// ---- fromRecords -----------------------------------------------------------------------------

TEST(FromRecords, DomainsAreNumberedSiteBySite) {
  // Site 1's domain holds the lowest ranks, and local ranks are given in reverse.
  std::vector<RankRecord> recs = {rec(0, 1, "b", 1), rec(1, 1, "b", 0), rec(2, 0, "a"),
                                  rec(3, 0, "a")};
  Topology t = Topology::fromRecords(recs);
  EXPECT_EQ(t.numDomains(), 2);
  EXPECT_EQ(t.domainName(0), "a");
  EXPECT_EQ(t.domainName(1), "b");
  EXPECT_EQ(t.place(2).domain, 0);
  EXPECT_EQ(t.place(0).domain, 1);
  EXPECT_EQ(t.place(0).site, 1);
  EXPECT_EQ(t.place(0).local, 1);
  EXPECT_EQ(t.place(1).local, 0);
  EXPECT_THAT(t.domainRanks(1), ElementsAre(1, 0));  // by local rank
  EXPECT_EQ(t.domainLeader(1), 1);
  EXPECT_EQ(t.siteLeader(0), 2);
  EXPECT_EQ(t.siteLeader(1), 1);
  EXPECT_TRUE(t.isRegular());
  // Records may arrive in any order.
  std::vector<RankRecord> shuffled = {recs[3], recs[1], recs[0], recs[2]};
  Topology u = Topology::fromRecords(shuffled);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(u.place(r).domain, t.place(r).domain);
    EXPECT_EQ(u.place(r).local, t.place(r).local);
  }
}

TEST(FromRecords, MatchingClaimsAreAccepted) {
  std::vector<RankRecord> recs = {rec(0, 0, "a", 0), rec(1, 0, "a", 1)};
  for (auto& r : recs) {
    r.worldSize = 2;
    r.localSize = 2;
  }
  EXPECT_EQ(Topology::fromRecords(recs).size(), 2);
}

TEST(FromRecords, NoRanks) {
  EXPECT_THAT(recordsError({}).what(), HasSubstr("no ranks"));
}

TEST(FromRecords, RankTwice) {
  Error e = recordsError({rec(0, 0, "a"), rec(1, 0, "a"), rec(1, 0, "b")});
  EXPECT_THAT(e.what(), HasSubstr("rank 1 appears twice"));
}

TEST(FromRecords, RankOutOfRange) {
  RankRecord bad = rec(5, 0, "a");
  bad.source = "host7";
  Error e = recordsError({rec(0, 0, "a"), bad});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("rank 5 (host7)"), HasSubstr("outside 0..1")));
  Error neg = recordsError({rec(0, 0, "a"), rec(-1, 0, "a")});
  EXPECT_THAT(neg.what(), HasSubstr("rank -1"));
}

TEST(FromRecords, WorldSizeDisagreement) {
  RankRecord r1 = rec(1, 0, "a");
  r1.worldSize = 4;
  Error e = recordsError({rec(0, 0, "a"), r1});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("rank 1"), HasSubstr("4 ranks"), HasSubstr("2 ranks joined")));
}

TEST(FromRecords, NegativeSiteAndMissingDomain) {
  EXPECT_THAT(recordsError({rec(0, -1, "a")}).what(), AllOf(HasSubstr("rank 0"), HasSubstr("negative site")));
  EXPECT_THAT(recordsError({rec(0, 0, "a"), rec(1, 0, "")}).what(),
              AllOf(HasSubstr("rank 1"), HasSubstr("no domain")));
}

TEST(FromRecords, DomainSpanningTwoSites) {
  Error e = recordsError({rec(0, 0, "x"), rec(1, 0, "y"), rec(2, 1, "x")});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("domain 'x' spans two sites"), HasSubstr("rank 0"),
                              HasSubstr("rank 2"), HasSubstr("site 1")));
}

TEST(FromRecords, LocalRankClaimedTwice) {
  Error e = recordsError({rec(0, 0, "x", 0), rec(1, 0, "x", 1), rec(2, 0, "x", 1)});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("local rank 1 of domain 'x'"), HasSubstr("rank 1"),
                              HasSubstr("rank 2")));
}

TEST(FromRecords, LocalRankBeyondDomainSize) {
  Error e = recordsError({rec(0, 0, "x", 0), rec(1, 0, "x", 2)});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("rank 1"), HasSubstr("local rank 2"),
                              HasSubstr("domain 'x' has only 2 ranks")));
}

TEST(FromRecords, LocalSizeClaimMismatch) {
  RankRecord r1 = rec(1, 0, "x");
  r1.localSize = 3;
  Error e = recordsError({rec(0, 0, "x"), r1, rec(2, 0, "y")});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("rank 1"), HasSubstr("domain 'x' has 3 ranks"),
                              HasSubstr("2 ranks joined")));
}

TEST(FromRecords, MixedExplicitAndImplicitLocalRanks) {
  Error e = recordsError({rec(0, 0, "x", 0), rec(1, 0, "x")});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("domain 'x'"), HasSubstr("rank 0"), HasSubstr("rank 1")));
  // The other way round: the first rank gives none, a later one does.
  Error f = recordsError({rec(0, 0, "x"), rec(1, 0, "x"), rec(2, 0, "x", 2)});
  EXPECT_THAT(f.what(), AllOf(HasSubstr("domain 'x'"), HasSubstr("rank 0"), HasSubstr("rank 2")));
}

TEST(FromRecords, SiteGap) {
  Error e = recordsError({rec(0, 0, "a"), rec(1, 2, "b")});
  EXPECT_THAT(e.what(), AllOf(HasSubstr("no rank is in site 1"), HasSubstr("0..2")));
}

// ---- the topology file -----------------------------------------------------------------------

TEST(TopologyFile, ParsesCommentsAndBlankLines) {
  const std::string text =
      "# two sites, one domain each\n"
      "rank=0 site=0 domain=a local=0\n"
      "\n"
      "   \t\n"
      "rank=1 site=0 domain=a local=1   # trailing comment\n"
      "  rank=2   site=1 domain=b\n"
      "domain=b rank=3 site=1";  // any key order, no final newline
  auto recs = parseTopologyFile(text, "topo.txt");
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].rank, 0);
  EXPECT_EQ(recs[0].localRank, 0);
  EXPECT_EQ(recs[0].source, "topo.txt:2");
  EXPECT_EQ(recs[1].rank, 1);
  EXPECT_EQ(recs[1].localRank, 1);
  EXPECT_EQ(recs[1].domain, "a");
  EXPECT_EQ(recs[1].source, "topo.txt:5");
  EXPECT_EQ(recs[2].site, 1);
  EXPECT_EQ(recs[2].domain, "b");
  EXPECT_EQ(recs[2].localRank, -1);
  EXPECT_EQ(recs[3].rank, 3);
  EXPECT_EQ(recs[3].source, "topo.txt:7");
  Topology t = Topology::fromRecords(recs);
  EXPECT_EQ(t.describe(), "4 ranks in 2 sites: site 0 = [2]; site 1 = [2] (regular)");
}

TEST(TopologyFile, SiteDefaultsToZero) {
  auto recs = parseTopologyFile("rank=0 domain=h\n", "f");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].site, 0);
}

Error fileError(const std::string& text) {
  Error e = errorOf([&] { parseTopologyFile(text, "topo.txt"); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
  return e;
}

TEST(TopologyFile, BadLinesNameTheLine) {
  const std::string good = "# header\nrank=0 domain=a\n";  // lines 1-2
  EXPECT_THAT(fileError(good + "site=0 domain=a\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("missing rank")));
  EXPECT_THAT(fileError(good + "rank=1 site=0\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("missing domain")));
  EXPECT_THAT(fileError(good + "rank=1 domain=a color=red\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("unknown key 'color'")));
  EXPECT_THAT(fileError(good + "\nrank=x domain=a\n").what(),
              AllOf(HasSubstr("topo.txt line 4"), HasSubstr("rank='x'")));
  EXPECT_THAT(fileError(good + "rank=-1 domain=a\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("rank='-1'")));
  EXPECT_THAT(fileError(good + "rank=1 site=1x domain=a\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("site='1x'")));
  EXPECT_THAT(fileError(good + "rank=1 local=99999999999 domain=a\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("local='99999999999'")));
  EXPECT_THAT(fileError(good + "rank=1 domain=a rank=2\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("'rank' given twice")));
  EXPECT_THAT(fileError(good + "rank=1 domain=a site\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("'site'")));
  EXPECT_THAT(fileError(good + "rank=1 domain=\n").what(),
              AllOf(HasSubstr("topo.txt line 3"), HasSubstr("'domain='")));
}

TEST(TopologyFile, EmptyFile) {
  EXPECT_THAT(fileError("").what(), HasSubstr("no ranks"));
  EXPECT_THAT(fileError("# only\n\n# comments\n").what(), HasSubstr("topo.txt: no ranks"));
}

// ---- recordFromParams ------------------------------------------------------------------------

RankRecord fromEnv(std::map<std::string, std::string> env, const std::string& host = "hostA") {
  params::Params p([env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
  return recordFromParams(p, host);
}

Error envError(std::map<std::string, std::string> env) {
  Error e = errorOf([&] { fromEnv(env); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage) << e.what();
  return e;
}

TEST(RecordFromParams, NothingSetIsOneProcess) {
  RankRecord r = fromEnv({}, "myhost");
  EXPECT_EQ(r.rank, 0);
  EXPECT_EQ(r.worldSize, 1);
  EXPECT_EQ(r.site, 0);
  EXPECT_EQ(r.domain, "myhost");
  EXPECT_EQ(r.localRank, -1);
  EXPECT_EQ(r.localSize, -1);
  EXPECT_EQ(r.source, "single process");
}

TEST(RecordFromParams, EachLauncherAlone) {
  RankRecord x = fromEnv({{"XSITE_RANK", "1"}, {"XSITE_WORLD_SIZE", "4"}});
  EXPECT_EQ(x.rank, 1);
  EXPECT_EQ(x.worldSize, 4);
  EXPECT_EQ(x.source, "XSITE_*");
  RankRecord t = fromEnv({{"RANK", "2"}, {"WORLD_SIZE", "5"}});
  EXPECT_EQ(t.rank, 2);
  EXPECT_EQ(t.worldSize, 5);
  EXPECT_EQ(t.source, "torchrun");
  RankRecord o = fromEnv({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "6"}});
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.worldSize, 6);
  EXPECT_EQ(o.source, "Open MPI");
  RankRecord s = fromEnv({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "7"}});
  EXPECT_EQ(s.rank, 4);
  EXPECT_EQ(s.worldSize, 7);
  EXPECT_EQ(s.source, "Slurm");
}

TEST(RecordFromParams, PrecedenceXsiteTorchOmpiSlurm) {
  std::map<std::string, std::string> all = {
      {"XSITE_RANK", "2"},           {"XSITE_WORLD_SIZE", "8"},
      {"RANK", "2"},                 {"WORLD_SIZE", "8"},
      {"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "8"},
      {"SLURM_PROCID", "2"},         {"SLURM_NTASKS", "8"}};
  EXPECT_EQ(fromEnv(all).source, "XSITE_*");
  all.erase("XSITE_RANK");
  EXPECT_EQ(fromEnv(all).source, "torchrun");
  all.erase("RANK");
  EXPECT_EQ(fromEnv(all).source, "Open MPI");
  all.erase("OMPI_COMM_WORLD_RANK");
  EXPECT_EQ(fromEnv(all).source, "Slurm");
  EXPECT_EQ(fromEnv(all).rank, 2);
  EXPECT_EQ(fromEnv(all).worldSize, 8);
  // The world size may come from another launcher than the rank.
  RankRecord mixed = fromEnv({{"SLURM_PROCID", "1"}, {"WORLD_SIZE", "3"}});
  EXPECT_EQ(mixed.rank, 1);
  EXPECT_EQ(mixed.worldSize, 3);
}

TEST(RecordFromParams, DisagreementNamesBothVariables) {
  EXPECT_THAT(envError({{"XSITE_RANK", "3"}, {"RANK", "5"}, {"WORLD_SIZE", "8"}}).what(),
              AllOf(HasSubstr("XSITE_RANK=3"), HasSubstr("RANK=5")));
  EXPECT_THAT(envError({{"RANK", "1"}, {"SLURM_PROCID", "0"}, {"WORLD_SIZE", "8"}}).what(),
              AllOf(HasSubstr("RANK=1"), HasSubstr("SLURM_PROCID=0")));
  EXPECT_THAT(envError({{"RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"SLURM_NTASKS", "8"}}).what(),
              AllOf(HasSubstr("OMPI_COMM_WORLD_SIZE=4"), HasSubstr("SLURM_NTASKS=8")));
  EXPECT_THAT(envError({{"XSITE_LOCAL_RANK", "0"}, {"LOCAL_RANK", "1"}}).what(),
              AllOf(HasSubstr("XSITE_LOCAL_RANK=0"), HasSubstr("LOCAL_RANK=1")));
  EXPECT_THAT(envError({{"GROUP_RANK", "3"}, {"SLURM_NODEID", "4"}}).what(),
              AllOf(HasSubstr("GROUP_RANK=3"), HasSubstr("SLURM_NODEID=4")));
}

TEST(RecordFromParams, RankWithoutWorldSizeAndViceVersa) {
  EXPECT_THAT(envError({{"RANK", "1"}}).what(),
              AllOf(HasSubstr("rank is set"), HasSubstr("torchrun"), HasSubstr("world size")));
  EXPECT_THAT(envError({{"SLURM_NTASKS", "4"}}).what(), HasSubstr("no rank"));
}

TEST(RecordFromParams, RankMustBeBelowWorldSize) {
  EXPECT_THAT(envError({{"RANK", "4"}, {"WORLD_SIZE", "4"}}).what(),
              HasSubstr("rank 4 is not below the world size 4"));
  EXPECT_NO_THROW(fromEnv({{"RANK", "3"}, {"WORLD_SIZE", "4"}}));
}

TEST(RecordFromParams, LauncherValuesMustBeNonNegativeIntegers) {
  EXPECT_THAT(envError({{"RANK", "abc"}, {"WORLD_SIZE", "4"}}).what(), HasSubstr("RANK='abc'"));
  EXPECT_THAT(envError({{"RANK", "1"}, {"WORLD_SIZE", "-4"}}).what(), HasSubstr("WORLD_SIZE='-4'"));
  EXPECT_THAT(envError({{"XSITE_RANK", "-1"}, {"XSITE_WORLD_SIZE", "4"}}).what(),
              HasSubstr("XSITE_RANK='-1'"));
  EXPECT_THAT(envError({{"LOCAL_RANK", ""}}).what(), HasSubstr("LOCAL_RANK=''"));
}

TEST(RecordFromParams, DomainSources) {
  EXPECT_EQ(fromEnv({{"XSITE_DOMAIN", "nvl0"}, {"GROUP_RANK", "3"}, {"SLURM_NODEID", "3"}}).domain,
            "nvl0");
  EXPECT_EQ(fromEnv({{"GROUP_RANK", "3"}, {"SLURM_NODEID", "3"}}).domain, "node3");
  EXPECT_EQ(fromEnv({{"SLURM_NODEID", "7"}}).domain, "node7");
  EXPECT_EQ(fromEnv({}, "gpu-host-12").domain, "gpu-host-12");
}

TEST(RecordFromParams, SiteAndLocalRanks) {
  RankRecord r = fromEnv({{"XSITE_SITE", "2"},
                          {"LOCAL_RANK", "1"},
                          {"LOCAL_WORLD_SIZE", "4"},
                          {"RANK", "5"},
                          {"WORLD_SIZE", "8"}});
  EXPECT_EQ(r.site, 2);
  EXPECT_EQ(r.localRank, 1);
  EXPECT_EQ(r.localSize, 4);
  RankRecord o = fromEnv({{"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}});
  EXPECT_EQ(o.localRank, 2);
  EXPECT_EQ(o.localSize, 3);
  EXPECT_EQ(fromEnv({{"SLURM_LOCALID", "6"}}).localRank, 6);
  EXPECT_EQ(fromEnv({{"XSITE_LOCAL_RANK", "0"}, {"XSITE_LOCAL_SIZE", "2"}}).localSize, 2);
  EXPECT_THAT(envError({{"XSITE_SITE", "-1"}}).what(), HasSubstr("XSITE_SITE"));
}

TEST(RecordFromParams, RecordsOfAWorldBuildATopology) {
  // Four processes as torchrun would start them on two nodes of two sites.
  std::vector<RankRecord> recs;
  for (int r = 0; r < 4; ++r)
    recs.push_back(fromEnv({{"RANK", std::to_string(r)},
                            {"WORLD_SIZE", "4"},
                            {"LOCAL_RANK", std::to_string(r % 2)},
                            {"LOCAL_WORLD_SIZE", "2"},
                            {"GROUP_RANK", std::to_string(r / 2)},
                            {"XSITE_SITE", std::to_string(r / 2)}}));
  Topology t = Topology::fromRecords(recs);
  EXPECT_EQ(t.describe(), "4 ranks in 2 sites: site 0 = [2]; site 1 = [2] (regular)");
  EXPECT_EQ(t.domainName(1), "node1");
}

}  // namespace
}  // namespace xsite::topo
