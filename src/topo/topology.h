// The topology model: every rank sits in one domain (an NVLink domain; a host in emulation), and
// every domain in one site. Pure logic: no I/O, no environment; inputs arrive as records.
#pragma once

#include <string>
#include <vector>

namespace xsite::topo {

// What one rank says about itself before the topology is known.
struct RankRecord {
  int rank = -1;
  int worldSize = -1;
  int site = 0;
  std::string domain;  // a name; ranks with the same name share a domain
  int localRank = -1;  // -1: assigned by rank order inside the domain
  int localSize = -1;  // -1: not claimed
  std::string source;  // where the record came from, for messages ("XSITE_*", "torchrun", ...)
};

struct Place {
  int site;
  int domain;  // global domain index, numbered site by site
  int local;   // index inside the domain
};

class Topology {
 public:
  // Validates and builds; throws Error(kInvalidUsage) naming what disagrees.
  static Topology fromRecords(const std::vector<RankRecord>& records);
  // sites x domainsPerSite x ranksPerDomain, ranks numbered site-major.
  static Topology regular(int sites, int domainsPerSite, int ranksPerDomain);
  // Per-site list of per-domain sizes, e.g. {{2,2},{2}}: site 0 has two domains of 2 ranks.
  static Topology fromShape(const std::vector<std::vector<int>>& domainSizesPerSite);

  int size() const { return static_cast<int>(places_.size()); }
  int numSites() const { return static_cast<int>(siteDomains_.size()); }
  int numDomains() const { return static_cast<int>(domainRanks_.size()); }
  const Place& place(int rank) const { return places_.at(rank); }
  const std::vector<int>& domainRanks(int domain) const { return domainRanks_.at(domain); }
  const std::vector<int>& siteDomains(int site) const { return siteDomains_.at(site); }
  const std::vector<int>& siteRanks(int site) const { return siteRanks_.at(site); }
  const std::string& domainName(int domain) const { return domainNames_.at(domain); }
  int domainLeader(int domain) const { return domainRanks_.at(domain).front(); }
  int siteLeader(int site) const { return domainLeader(siteDomains_.at(site).front()); }
  // Position of a rank inside its site: domain position in the site * L + local index.
  int sitePosition(int rank) const { return sitePos_.at(rank); }

  // Regular: every site has the same number of ranks and, inside each site, every domain the
  // same number of ranks. The rail-aligned hierarchical schedule needs it.
  bool isRegular() const { return regular_; }
  std::string describe() const;  // "2 sites: site 0 = 2 domains x 2 ranks, ..."

 private:
  void index();
  std::vector<Place> places_;
  std::vector<std::string> domainNames_;
  std::vector<std::vector<int>> domainRanks_, siteDomains_, siteRanks_;
  std::vector<int> sitePos_;
  bool regular_ = false;
};

// The topology file: one line per rank, `rank=R site=S domain=NAME [local=L]`; '#' comments.
// Throws Error(kInvalidUsage) with the line number of what is wrong.
std::vector<RankRecord> parseTopologyFile(const std::string& text, const std::string& origin);
// Reads and parses the topology file at `path` (XSITE_TOPO_FILE); an unreadable file is an
// Error(kInvalidUsage) naming it.
std::vector<RankRecord> readTopologyFile(const std::string& path);

}  // namespace xsite::topo
