// Which NIC serves which rank (and rail) of a domain. Pure: the NICs and ranks arrive as records
// (transport/nic discovers the NICs; a rank's locality comes from its GPU, when known).
//
// Rail r is local rank r: the rail-aligned cross-domain and cross-site stages connect rank r of
// every domain to rank r of the others, so rank r's traffic leaves through the NIC of rail r.
// Without locality, rail r uses NIC r mod count. With locality, each rank takes the nearest NIC
// (sharing the deepest PCI path with it, then the same NUMA node), the least loaded among equally
// near ones, so ranks still spread over NICs; ties keep the r mod count choice.
#pragma once

#include <string>
#include <vector>

namespace xsite::topo {

struct NicLocality {
  std::string name;     // for messages and output
  std::string pciPath;  // "/sys/devices/pci0000:00/0000:00:03.0"; "" when unknown
  int numaNode = -1;    // -1 when unknown
};

struct RankLocality {
  std::string pciPath;  // of the rank's accelerator; "" when unknown
  int numaNode = -1;
};

struct NicChoice {
  int rail = -1;  // = local rank
  int nic = -1;   // index into the NIC list; -1 when there are no NICs
};

// One choice per rank of `ranks` (index = local rank).
std::vector<NicChoice> assignNics(const std::vector<NicLocality>& nics,
                                  const std::vector<RankLocality>& ranks);

// How near a NIC is to a rank: the number of PCI path components they share below the root
// complex ("pci0000:00" counts), 0 when either path is unknown or they share none.
int pciAffinity(const std::string& a, const std::string& b);

}  // namespace xsite::topo
