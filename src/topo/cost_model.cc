#include "topo/cost_model.h"

#include <algorithm>
#include <cmath>

namespace xsite::topo {
namespace {

// The slowest link a group of ranks crosses.
LinkModel worstLink(const CostModel& m, const Topology& t) {
  if (t.numSites() > 1) return m.wan;
  if (t.numDomains() > 1) return m.site;
  return m.domain;
}

double ringUs(int g, double bytes, LinkModel link, int steps) {
  return g <= 1 ? 0 : steps * (link.latencyUs + bytes / g / link.bytesPerUs);
}

}  // namespace

double CostModel::estimateUs(Algorithm algo, size_t bytesIn, const Topology& t,
                             double wanRatio) const {
  const double S = static_cast<double>(bytesIn);
  const int n = t.size(), s = t.numSites();
  switch (algo) {
    case Algorithm::kRing: {
      // Every step waits for the slowest hop; the WAN carries one flow per direction.
      return ringUs(n, S, worstLink(*this, t), 2 * (n - 1));
    }
    case Algorithm::kHierarchical: {
      if (!t.isRegular()) return estimateUs(Algorithm::kLatency, bytesIn, t);
      const int L = static_cast<int>(t.domainRanks(0).size());
      const int D = static_cast<int>(t.siteDomains(0).size());
      const int P = L * D;  // ranks per site; each drives its own WAN rail
      // Bandwidth terms of the five stages; the rails of a site share the WAN link.
      double dom = L > 1 ? 2.0 * (L - 1) * (S / L) / domain.bytesPerUs : 0;
      double site = D > 1 ? 2.0 * (D - 1) * (S / P) / this->site.bytesPerUs : 0;
      double cross =
          s > 1 ? 2.0 * (s - 1) * (S / P / s) / (wan.bytesPerUs / P) / std::max(wanRatio, 1e-3) : 0;
      // Pipelined: every stage's latency once per step plus the slowest stage's bandwidth. Between
      // two sites on a long link the cross-site stage is one exchange, not a ring's two steps,
      // but the second WAN latency stays: it stands for what the five pipelined stages cost
      // beyond the latency path's hops (with one, auto chose this path for 8 B - 1 MiB on the
      // default link, 10-20% slower there).
      double lat = 2 * (L - 1) * domain.latencyUs + 2 * (D - 1) * this->site.latencyUs +
                   2 * (s - 1) * wan.latencyUs;
      return lat + std::max({dom, site, cross});
    }
    case Algorithm::kLatency: {
      int L = 0, D = 0;
      for (int d = 0; d < t.numDomains(); ++d) L = std::max<int>(L, t.domainRanks(d).size());
      for (int x = 0; x < s; ++x) D = std::max<int>(D, t.siteDomains(x).size());
      double up = (L > 1 ? domain.latencyUs + (L - 1) * S / domain.bytesPerUs : 0) +
                  (D > 1 ? site.latencyUs + (D - 1) * S / site.bytesPerUs : 0);
      double cross = s > 1 ? wan.latencyUs + (s - 1) * S / wan.bytesPerUs : 0;
      return 2 * up + cross;
    }
    case Algorithm::kAuto:
      return estimateUs(choose(bytesIn, t, wanRatio), bytesIn, t, wanRatio);
  }
  return 0;
}

Algorithm CostModel::choose(size_t bytes, const Topology& t, double wanRatio) const {
  Algorithm best = Algorithm::kRing;
  double bestUs = estimateUs(best, bytes, t, wanRatio);
  for (Algorithm a : {Algorithm::kHierarchical, Algorithm::kLatency}) {
    double us = estimateUs(a, bytes, t, wanRatio);
    if (us < bestUs) {
      best = a;
      bestUs = us;
    }
  }
  return best;
}

double CostModel::bdpBytes(const Topology& t) const {
  if (t.size() <= 1) return 0;
  const LinkModel link = worstLink(*this, t);
  return link.bytesPerUs * 2 * link.latencyUs;
}

int CostModel::pipelines(size_t bytes, const Topology& t, double windowBytes,
                         int maxPipelines) const {
  const int cap = std::max(maxPipelines, 1);
  if (!(windowBytes > 0)) return 1;
  const double inFlight = std::min(static_cast<double>(bytes), bdpBytes(t));
  const double need = std::ceil(inFlight / windowBytes);
  return static_cast<int>(std::clamp(need, 1.0, static_cast<double>(cap)));
}

CostModel costModelFromParams(const params::Params& p) {
  using params::Id;
  auto link = [&](Id lat, Id rate) {
    return LinkModel{p.real(lat), std::max(p.real(rate), 1e-3) / 8.0};
  };
  CostModel m;
  m.domain = link(Id::kDomainLatencyUs, Id::kDomainRateMbit);
  m.site = link(Id::kSiteLatencyUs, Id::kSiteRateMbit);
  m.wan = link(Id::kWanLatencyUs, Id::kWanRateMbit);
  return m;
}

}  // namespace xsite::topo
