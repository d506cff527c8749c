// The cost model: an alpha-beta estimate of each all-reduce schedule on a topology, from what
// the links are believed to be. The library's `auto` and the NCCL tuner (plugin/tuner) both ask
// it: which schedule, and how many parallel pipelines ("channels") a transfer needs.
#pragma once

#include <cstddef>

#include "topo/topology.h"
#include "util/params.h"
#include "xsite/types.h"

namespace xsite::topo {

struct LinkModel {
  double latencyUs;   // one way
  double bytesPerUs;  // bandwidth (1 Mbit/s = 0.125 bytes/us)
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

  // Bytes in flight that keep the slowest link the topology crosses busy: its rate times its
  // round trip (2 x one-way latency). 0 for a single rank.
  double bdpBytes(const Topology& topo) const;
  // How many independent pipelines (NCCL's channels, xsite's WAN lanes) a transfer of `bytes`
  // per rank needs when each keeps at most `windowBytes` in flight per round trip of the slowest
  // link: enough to hold
  // min(bytes, bandwidth-delay product) in flight, so a latency-bound message that fits one
  // window gets 1, and a bandwidth-bound one ceil(BDP / window). Clamped to [1, maxPipelines].
  int pipelines(size_t bytes, const Topology& topo, double windowBytes, int maxPipelines) const;
};

// What XSITE_{DOMAIN,SITE,WAN}_{LATENCY_US,RATE_MBIT} say about the links (the library's
// settings and the NCCL tuner read them the same way).
CostModel costModelFromParams(const params::Params& p);

}  // namespace xsite::topo
