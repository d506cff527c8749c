// The cost model: an alpha-beta estimate of each all-reduce schedule on a topology, from what
// the links are believed to be. The library's `auto` and (later) the NCCL tuner both ask it.
#pragma once

#include <cstddef>

#include "topo/topology.h"
#include "xsite/types.h"

namespace xsite::topo {

struct LinkModel {
  double latencyUs;    // one way
  double bytesPerUs;   // bandwidth (1 Mbit/s = 0.125 bytes/us)
};

struct CostModel {
  LinkModel domain{2, 5000};
  LinkModel site{30, 1250};
  LinkModel wan{5500, 125};  // shared by every rail crossing between two sites

  // Microseconds the schedule is expected to take for `bytes` per rank. `wanRatio` is the
  // compression ratio of the hierarchical schedule's cross-site stage (its codec; 1: none).
  double estimateUs(Algorithm algo, size_t bytes, const Topology& topo, double wanRatio = 1) const;
  // The cheapest of ring, hierarchical and latency (never kAuto).
  Algorithm choose(size_t bytes, const Topology& topo, double wanRatio = 1) const;
};

}  // namespace xsite::topo
