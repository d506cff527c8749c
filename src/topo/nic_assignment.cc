#include "topo/nic_assignment.h"

#include <sstream>

namespace xsite::topo {

namespace {

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/'))
    if (!part.empty()) out.push_back(part);
  return out;
}

// The components from the root complex ("pci0000:00") down; empty when there is none.
std::vector<std::string> pciChain(const std::string& path) {
  auto parts = components(path);
  for (size_t i = 0; i < parts.size(); ++i)
    if (parts[i].rfind("pci", 0) == 0) return {parts.begin() + i, parts.end()};
  return {};
}

}  // namespace

int pciAffinity(const std::string& a, const std::string& b) {
  const auto x = pciChain(a), y = pciChain(b);
  int shared = 0;
  while (shared < static_cast<int>(x.size()) && shared < static_cast<int>(y.size()) &&
         x[shared] == y[shared])
    ++shared;
  return shared;
}

std::vector<NicChoice> assignNics(const std::vector<NicLocality>& nics,
                                  const std::vector<RankLocality>& ranks) {
  const int count = static_cast<int>(nics.size());
  std::vector<NicChoice> out(ranks.size());
  std::vector<int> load(nics.size(), 0);
  for (int r = 0; r < static_cast<int>(ranks.size()); ++r) {
    out[r].rail = r;
    if (count == 0) continue;
    // Scan from r mod count so that, all else equal, the round-robin choice wins.
    int best = -1, bestPci = -1, bestNuma = -1;
    for (int k = 0; k < count; ++k) {
      const int n = (r + k) % count;
      const int pci = pciAffinity(ranks[r].pciPath, nics[n].pciPath);
      const int numa = ranks[r].numaNode >= 0 && ranks[r].numaNode == nics[n].numaNode ? 1 : 0;
      const bool better = best < 0 || pci > bestPci || (pci == bestPci && numa > bestNuma) ||
                          (pci == bestPci && numa == bestNuma && load[n] < load[best]);
      if (better) best = n, bestPci = pci, bestNuma = numa;
    }
    out[r].nic = best;
    ++load[best];
  }
  return out;
}

}  // namespace xsite::topo
