// xsite-info: what xsite sees in this environment (like ucx_info).
//   xsite-info        version and this rank's place as the variables describe it
//   xsite-info -c     every XSITE_* variable with its effective value, default and doc
//   xsite-info -a     also the launcher variables that are set
//   xsite-info -n     the NICs discovery finds (RDMA through libibverbs, else IP interfaces), which
//                     of them XSITE_NICS allows, and which serves each of XSITE_LOCAL_SIZE ranks
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "topo/env_record.h"
#include "topo/nic_assignment.h"
#include "transport/nic/nic.h"
#include "util/params.h"
#include "util/socket.h"
#include "xsite/error.h"
#include "xsite/version.h"

namespace {

namespace nic = xsite::transport::nic;

bool isSelected(const nic::NicInfo& n, const nic::NicSelection& sel) {
  return std::any_of(sel.nics.begin(), sel.nics.end(),
                     [&](const nic::NicInfo& s) { return s.label() == n.label(); });
}

void printNics(const xsite::params::Params& p) {
  const auto d = nic::discoverNics(p);
  if (d.branch == nic::NicInfo::Kind::kRdma)
    printf("NICs: RDMA devices from libibverbs\n");
  else
    printf("NICs: no RDMA devices (libibverbs: %s): IP interfaces (the kernel's, this network namespace)\n",
           d.rdmaNote.c_str());
  printf("  %-10s %-4s %-18s %-4s %-12s %-11s %-10s %-4s %-15s %s\n", "name", "kind", "guid",
         "port", "state", "speed", "link", "numa", "use", "pci path");
  for (const auto& n : d.all) {
    const std::string speed = n.speedMbps > 0 ? std::to_string(n.speedMbps) + " Mbps" : "unknown";
    const std::string use = isSelected(n, d.selected) ? "yes"
                            : !n.up                   ? "no (not up)"
                                                      : "no (XSITE_NICS)";
    printf("  %-10s %-4s %-18s %-4s %-12s %-11s %-10s %-4s %-15s %s\n", n.name.c_str(),
           nic::kindName(n.kind), n.guid ? nic::formatGuid(n.guid).c_str() : "-",
           n.port ? std::to_string(n.port).c_str() : "-", n.state.c_str(), speed.c_str(),
           n.linkLayer.empty() ? "-" : n.linkLayer.c_str(),
           n.numaNode >= 0 ? std::to_string(n.numaNode).c_str() : "-", use.c_str(),
           n.pciPath.empty() ? "(virtual)" : n.pciPath.c_str());
  }
  if (p.isSet(xsite::params::Id::kNics))  // names that match nothing: discovery warned
    printf("XSITE_NICS=%s\n", p.string(xsite::params::Id::kNics).c_str());

  const int64_t localSize = p.integer(xsite::params::Id::kLocalSize);
  const int ranks = localSize > 0 ? static_cast<int>(localSize) : 1;
  std::vector<xsite::topo::NicLocality> nics;
  for (const auto& n : d.selected.nics) nics.push_back({n.label(), n.pciPath, n.numaNode});
  // Rank locality (the GPU's PCI path) is unknown here: the assignment is by rail.
  const auto choice = xsite::topo::assignNics(nics, std::vector<xsite::topo::RankLocality>(ranks));
  printf("rails for %d local rank%s%s:\n", ranks, ranks == 1 ? "" : "s",
         localSize > 0 ? " (XSITE_LOCAL_SIZE)" : " (XSITE_LOCAL_SIZE unset)");
  for (const auto& c : choice)
    printf("  local rank %d (rail %d) -> %s\n", c.rail, c.rail,
           c.nic >= 0 ? nics[c.nic].name.c_str() : "(no usable NIC)");
}

}  // namespace

int main(int argc, char** argv) {
  bool config = false, all = false, nics = false;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "-c")) config = true;
    else if (!strcmp(argv[i], "-a")) config = all = true;
    else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--nics")) nics = true;
    else {
      fprintf(stderr,
              "usage: xsite-info [-c] [-a] [-n]\n  -c  effective configuration\n  -a  also launcher "
              "variables\n  -n, --nics  discovered NICs and the rank each serves\n");
      return 2;
    }
  }
  try {
    const auto& p = xsite::params::Params::global();
    if (config) {
      fputs(p.describe(all).c_str(), stdout);
      return 0;
    }
    if (nics) {
      printf("xsite %s\n", XSITE_VERSION_STRING);
      printNics(p);
      return 0;
    }
    auto r = xsite::topo::recordFromParams(p, xsite::hostName());
    printf("xsite %s\n", XSITE_VERSION_STRING);
    printf("rank %d of %d (%s): site %d, domain '%s', local rank %d\n", r.rank, r.worldSize,
           r.source.c_str(), r.site, r.domain.c_str(), r.localRank);
    return 0;
  } catch (const xsite::Error& e) {
    fprintf(stderr, "xsite-info: %s\n", e.what());
    return 1;
  }
}
