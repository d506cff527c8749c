#include "topo/topology.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "xsite/error.h"

namespace xsite::topo {
namespace {

[[noreturn]] void bad(const std::string& msg) { throw Error(ErrorCategory::kInvalidUsage, msg); }

std::string who(const RankRecord& r) {
  return "rank " + std::to_string(r.rank) + (r.source.empty() ? "" : " (" + r.source + ")");
}

}  // namespace

Topology Topology::fromRecords(const std::vector<RankRecord>& records) {
  const int n = static_cast<int>(records.size());
  if (n == 0) bad("topology: no ranks");
  std::vector<const RankRecord*> byRank(n, nullptr);
  for (const auto& r : records) {
    if (r.rank < 0 || r.rank >= n)
      bad("topology: " + who(r) + " is outside 0.." + std::to_string(n - 1));
    if (byRank[r.rank]) bad("topology: rank " + std::to_string(r.rank) + " appears twice");
    byRank[r.rank] = &r;
    if (r.worldSize >= 0 && r.worldSize != n)
      bad("topology: " + who(r) + " says the world has " + std::to_string(r.worldSize) +
          " ranks but " + std::to_string(n) + " ranks joined");
    if (r.site < 0) bad("topology: " + who(r) + " has a negative site " + std::to_string(r.site));
    if (r.domain.empty()) bad("topology: " + who(r) + " has no domain");
  }
  // Domains: in order of their first rank; each inside one site.
  std::map<std::string, int> domainIndexByName;
  std::vector<std::string> names;
  std::vector<int> domainSite;
  std::vector<std::vector<const RankRecord*>> members;
  for (int rank = 0; rank < n; ++rank) {
    const RankRecord& r = *byRank[rank];
    auto [it, fresh] = domainIndexByName.emplace(r.domain, static_cast<int>(names.size()));
    if (fresh) {
      names.push_back(r.domain);
      domainSite.push_back(r.site);
      members.emplace_back();
    }
    int d = it->second;
    if (domainSite[d] != r.site)
      bad("topology: domain '" + r.domain + "' spans two sites: " + who(*members[d].front()) +
          " is in site " + std::to_string(domainSite[d]) + " but " + who(r) + " is in site " +
          std::to_string(r.site));
    members[d].push_back(&r);
  }
  int numSites = 1 + *std::max_element(domainSite.begin(), domainSite.end());
  std::vector<std::vector<int>> siteDomainsTmp(numSites);
  for (size_t d = 0; d < names.size(); ++d) siteDomainsTmp[domainSite[d]].push_back(static_cast<int>(d));
  for (int s = 0; s < numSites; ++s)
    if (siteDomainsTmp[s].empty())
      bad("topology: sites must be numbered 0.." + std::to_string(numSites - 1) +
          " without gaps, but no rank is in site " + std::to_string(s));

  Topology t;
  t.places_.resize(n);
  // Renumber domains site by site so that domain indices grow with the site.
  for (int s = 0; s < numSites; ++s) {
    t.siteDomains_.emplace_back();
    for (int oldD : siteDomainsTmp[s]) {
      int d = static_cast<int>(t.domainNames_.size());
      t.siteDomains_.back().push_back(d);
      t.domainNames_.push_back(names[oldD]);
      auto& m = members[oldD];
      const int size = static_cast<int>(m.size());
      std::vector<int> ranks(size, -1);
      bool explicitLocal = m.front()->localRank >= 0;
      for (size_t i = 0; i < m.size(); ++i) {
        const RankRecord& r = *m[i];
        if ((r.localRank >= 0) != explicitLocal)
          bad("topology: in domain '" + names[oldD] + "' " + who(*m.front()) +
              (explicitLocal ? " gives" : " does not give") + " a local rank but " + who(r) +
              (explicitLocal ? " does not" : " does"));
        if (r.localSize >= 0 && r.localSize != size)
          bad("topology: " + who(r) + " says its domain '" + names[oldD] + "' has " +
              std::to_string(r.localSize) + " ranks but " + std::to_string(size) +
              " ranks joined it");
        int local = explicitLocal ? r.localRank : static_cast<int>(i);
        if (local >= size)
          bad("topology: " + who(r) + " has local rank " + std::to_string(local) +
              " but its domain '" + names[oldD] + "' has only " + std::to_string(size) + " ranks");
        if (ranks[local] >= 0)
          bad("topology: local rank " + std::to_string(local) + " of domain '" + names[oldD] +
              "' is claimed by both rank " + std::to_string(ranks[local]) + " and " + who(r));
        ranks[local] = r.rank;
        t.places_[r.rank] = Place{s, d, local};
      }
      t.domainRanks_.push_back(ranks);
    }
  }
  t.index();
  return t;
}

void Topology::index() {
  siteRanks_.assign(siteDomains_.size(), {});
  sitePos_.assign(places_.size(), 0);
  for (size_t s = 0; s < siteDomains_.size(); ++s)
    for (int d : siteDomains_[s])
      for (int r : domainRanks_[d]) {
        sitePos_[r] = static_cast<int>(siteRanks_[s].size());
        siteRanks_[s].push_back(r);
      }
  regular_ = true;
  for (size_t s = 0; s < siteDomains_.size(); ++s) {
    if (siteRanks_[s].size() != siteRanks_[0].size()) regular_ = false;
    for (int d : siteDomains_[s])
      if (domainRanks_[d].size() != domainRanks_[siteDomains_[s][0]].size()) regular_ = false;
  }
}

Topology Topology::fromShape(const std::vector<std::vector<int>>& shape) {
  std::vector<RankRecord> recs;
  int rank = 0;
  for (size_t s = 0; s < shape.size(); ++s)
    for (size_t d = 0; d < shape[s].size(); ++d)
      for (int l = 0; l < shape[s][d]; ++l) {
        RankRecord r;
        r.rank = rank++;
        r.site = static_cast<int>(s);
        r.domain = "s" + std::to_string(s) + "d" + std::to_string(d);
        r.localRank = l;
        recs.push_back(r);
      }
  return fromRecords(recs);
}

Topology Topology::regular(int sites, int domainsPerSite, int ranksPerDomain) {
  if (sites < 1 || domainsPerSite < 1 || ranksPerDomain < 1)
    bad("topology: sites, domains and ranks per domain must all be at least 1");
  return fromShape(std::vector<std::vector<int>>(sites, std::vector<int>(domainsPerSite, ranksPerDomain)));
}

std::string Topology::describe() const {
  std::ostringstream o;
  o << size() << " ranks in " << numSites() << (numSites() == 1 ? " site" : " sites") << ":";
  for (int s = 0; s < numSites(); ++s) {
    o << (s ? ";" : "") << " site " << s << " = [";
    for (size_t i = 0; i < siteDomains_[s].size(); ++i)
      o << (i ? " " : "") << domainRanks_[siteDomains_[s][i]].size();
    o << "]";
  }
  o << (regular_ ? " (regular)" : " (uneven)");
  return o.str();
}

std::vector<RankRecord> parseTopologyFile(const std::string& text, const std::string& origin) {
  std::vector<RankRecord> out;
  std::istringstream in(text);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string word;
    RankRecord r;
    r.source = origin + ":" + std::to_string(lineNo);
    bool any = false;
    std::set<std::string> seen;
    while (words >> word) {
      any = true;
      auto eq = word.find('=');
      std::string key = word.substr(0, eq), value = eq == std::string::npos ? "" : word.substr(eq + 1);
      auto where = origin + " line " + std::to_string(lineNo);
      if (eq == std::string::npos || value.empty())
        bad(where + ": expected key=value, got '" + word + "'");
      if (!seen.insert(key).second) bad(where + ": '" + key + "' given twice");
      auto number = [&]() {
        char* end = nullptr;
        long v = std::strtol(value.c_str(), &end, 10);
        if (*end != '\0' || v < 0 || v > 1 << 24)
          bad(where + ": " + key + "='" + value + "' is not a non-negative integer");
        return static_cast<int>(v);
      };
      if (key == "rank") r.rank = number();
      else if (key == "site") r.site = number();
      else if (key == "local") r.localRank = number();
      else if (key == "domain") r.domain = value;
      else bad(where + ": unknown key '" + key + "' (expected rank, site, domain, local)");
    }
    if (!any) continue;
    auto where = origin + " line " + std::to_string(lineNo);
    if (r.rank < 0) bad(where + ": missing rank=");
    if (r.domain.empty()) bad(where + ": missing domain=");
    out.push_back(r);
  }
  if (out.empty()) bad(origin + ": no ranks listed");
  return out;
}

std::vector<RankRecord> readTopologyFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorCategory::kInvalidUsage, "XSITE_TOPO_FILE: cannot read '" + path + "'");
  std::stringstream text;
  text << f.rdbuf();
  return parseTopologyFile(text.str(), path);
}

}  // namespace xsite::topo
